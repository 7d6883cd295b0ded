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

}  // namespace looplm
