// blocks.h - the on-disk block structs of ggml's quantized types (ggml-common.h's layouts) and
// the in-memory activation block of the integer kernels. Plain data: every struct is checked
// against its size on disk, and kernels (compiled with ISA flags) may include this header.
#pragma once

#include <cstdint>

namespace looplm {

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

// Q5_0: x = d * (q - 16), q = 5 bits: the low 4 as Q4_0's nibbles, bit 4 of element j in bit j
// of qh (little-endian uint32).
struct block_q5_0 {
    uint16_t d;  // fp16 scale
    uint8_t qh[4];
    uint8_t qs[QK / 2];
};
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 is 22 bytes on disk");

// Q5_1: x = d * q + m, bits as Q5_0.
struct block_q5_1 {
    uint16_t d;  // fp16 scale
    uint16_t m;  // fp16 minimum
    uint8_t qh[4];
    uint8_t qs[QK / 2];
};
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 is 24 bytes on disk");

constexpr int QK_K = 256;         // elements per super-block of the K-quants
constexpr int K_SCALE_SIZE = 12;  // Q4_K/Q5_K: 8 six-bit scales and 8 six-bit mins, packed

// Q4_K: 8 sub-blocks of 32; x = d * sc[j] * q - dmin * mn[j], q = 4 bits. scales packs the
// six-bit sc/mn (ggml's get_scale_min_k4); qs holds 64 elements per 32 bytes: low nibbles
// are the first 32, high nibbles the next 32.
struct block_q4_K {
    uint16_t d;     // fp16 super-block scale of the scales
    uint16_t dmin;  // fp16 super-block scale of the mins
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q4_K) == 144, "block_q4_K is 144 bytes on disk");

// Q5_K: Q4_K plus a fifth bit per element in qh (bit i of qh[l] for element 32 i + l).
struct block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q5_K) == 176, "block_q5_K is 176 bytes on disk");

// Q6_K: 16 sub-blocks of 16; x = d * scales[j] * (q - 32), q = 6 bits: 4 low bits in ql,
// 2 high bits in qh.
struct block_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;  // fp16 super-block scale
};
static_assert(sizeof(block_q6_K) == 210, "block_q6_K is 210 bytes on disk");

// Q8_K: the activation block of the K-quant dot products (ggml's layout; in memory only).
// d is f32; bsums[j] = sum of qs[16 j .. 16 j + 15], for the K-quants' mins.
struct block_q8_K {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};
static_assert(sizeof(block_q8_K) == 292, "block_q8_K is 292 bytes");

}  // namespace looplm
