// quantize.h - scalar reference quantizers (bit-exact with ggml's and gguf-py's reference code)
// and the decoding of one row of any type the runtime knows.
#pragma once

#include <cstdint>

#include "quant/blocks.h"
#include "quant/types.h"

namespace looplm {

void quantize_row_q8_0_ref(const float * x, block_q8_0 * y, int64_t n);
// Activations: the Q8_0 quantization of x with the precomputed terms of block_q8_s.
void quantize_row_q8_s_ref(const float * x, block_q8_s * y, int64_t n);
// Fills ds and bias of a block whose d and qs are set.
void finish_block_q8_s(block_q8_s * y);
void quantize_row_q4_0_ref(const float * x, block_q4_0 * y, int64_t n);
void quantize_row_q4_1_ref(const float * x, block_q4_1 * y, int64_t n);

// Decodes one row of n elements (a whole number of blocks) to f32; throws
// std::invalid_argument for a type without a decoder (its traits row has none).
void dequantize_row(DType t, const void * src, float * dst, int64_t n);

}  // namespace looplm
