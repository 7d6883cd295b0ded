// quant.h - ggml tensor types, on-disk block structs and scalar (de)quantization.
//
// Knows nothing about models. Block layouts follow ggml-common.h; every struct is
// checked against its on-disk size. Kernels (kernels_*.cpp) include this header
// only for the POD structs and inline-free declarations; all helpers here are
// defined out of line in quant.cpp (see the SIGILL note in kernels.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace looplm {

// ggml type ids (the values are part of the GGUF format).
enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
};

constexpr int QK = 32;  // elements per block of Q4_0, Q4_1, Q8_0, Q8_1

// Q4_0: x = d * (q - 8). Byte j holds element j (low nibble) and j + 16 (high nibble).
struct block_q4_0 {
    uint16_t d;  // fp16 scale
    uint8_t qs[QK / 2];
};
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 is 18 bytes on disk");

// Q4_1: x = d * q + m, nibble order as Q4_0.
struct block_q4_1 {
    uint16_t d;  // fp16 scale
    uint16_t m;  // fp16 minimum
    uint8_t qs[QK / 2];
};
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 is 20 bytes on disk");

// Q8_0: x = d * q.
struct block_q8_0 {
    uint16_t d;  // fp16 scale
    int8_t qs[QK];
};
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 is 34 bytes on disk");

// The activation block of every integer kernel, in memory only (never in files): Q8_0's
// quants and scale (bit-exact with ggml's Q8_0: the scale is the fp16-rounded amax/127,
// widened to f32 so kernels need not convert it) plus two precomputed terms:
//   ds   = d * sum(qs), the partner of Q4_1's minimum m: dot(d_w q + m, x) needs m * ds;
//   bias = Q4_0's offset -8 * sum(x) per 4-element lane (lane i: qs[4i..4i+3]), so that
//          dot(q - 8, x) becomes an unsigned x signed product plus a constant. Lanes 4..7
//          (elements 16..31, Q4_0's high nibbles) are stored x16: the VNNI kernel multiplies
//          the high nibbles in place (q & 0xF0 = 16 q) and scales those lanes by 1/16 once
//          per row. Kernels that want plain -8 sums shift lanes 4..7 right by 4.
struct block_q8_s {
    float d;
    float ds;
    int8_t qs[QK];
    int32_t bias[QK / 4];
};
static_assert(sizeof(block_q8_s) == 72, "block_q8_s is 72 bytes");

struct TypeInfo {
    const char * name;  // ggml's spelling, e.g. "Q4_0"
    int64_t block_elems;
    int64_t block_bytes;
    bool runnable;  // the runtime has kernels for it
};

// nullptr for an id this build does not know.
const TypeInfo * type_info(uint32_t type_id);
const char * type_name(DType t);
// Bytes of one row of n elements; n must be a multiple of the block size.
int64_t row_bytes(DType t, int64_t n);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even, like F16C
float bf16_to_fp32(uint16_t h);

// Scalar reference quantizers, bit-exact with ggml's (and gguf-py's) reference code.
void quantize_row_q8_0_ref(const float * x, block_q8_0 * y, int64_t n);
// Activations: the Q8_0 quantization of x with the precomputed terms of block_q8_s.
void quantize_row_q8_s_ref(const float * x, block_q8_s * y, int64_t n);
// Fills ds and bias of a block whose d and qs are set.
void finish_block_q8_s(block_q8_s * y);
void quantize_row_q4_0_ref(const float * x, block_q4_0 * y, int64_t n);
void quantize_row_q4_1_ref(const float * x, block_q4_1 * y, int64_t n);

// Decodes one row of n elements of any runnable type to f32.
void dequantize_row(DType t, const void * src, float * dst, int64_t n);

}  // namespace looplm
