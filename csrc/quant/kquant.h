// kquant.h - quantizers of the K-quant weight formats (Q4_K, Q5_K, Q6_K): ggml's block layout,
// and the scale/min search of llama.cpp's reference quantizers (without an importance matrix),
// so a file written by looplm is as accurate as one written by llama-quantize.
#pragma once

#include <cstdint>

#include "quant/blocks.h"
#include "quant/types.h"

namespace looplm {

// n a multiple of QK_K.
void quantize_row_q4_K(const float * x, block_q4_K * y, int64_t n);
void quantize_row_q5_K(const float * x, block_q5_K * y, int64_t n);
void quantize_row_q6_K(const float * x, block_q6_K * y, int64_t n);

// One row of n elements of type t (Q4_K, Q5_K, Q6_K, and the 32-element types Q8_0, Q4_0,
// Q4_1); throws std::invalid_argument for another type or a row that is not a whole number
// of blocks.
void quantize_row(DType t, const float * x, void * y, int64_t n);

}  // namespace looplm
