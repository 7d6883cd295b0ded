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

// Q8_1 as looplm holds it in memory (never in files): Q8_0 plus the exact integer sum of
// the quants, so that the m * sum(x) term of a Q4_1 dot product is exact. ggml's Q8_1
// stores fp16(d * sum) instead, which rounds.
struct block_q8_1 {
    uint16_t d;   // fp16 scale
    int16_t sum;  // sum(qs), |sum| <= 32 * 127
    int8_t qs[QK];
};
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 is 36 bytes");

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
void quantize_row_q8_1_ref(const float * x, block_q8_1 * y, int64_t n);
void quantize_row_q4_0_ref(const float * x, block_q4_0 * y, int64_t n);
void quantize_row_q4_1_ref(const float * x, block_q4_1 * y, int64_t n);

// Decodes one row of n elements of any runnable type to f32.
void dequantize_row(DType t, const void * src, float * dst, int64_t n);

}  // namespace looplm
