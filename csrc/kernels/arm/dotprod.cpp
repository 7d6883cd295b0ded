// kernels/arm/dotprod.cpp - ARMv8.2 NEON + dotprod kernels (Cortex-A76/Raspberry Pi 5, Neoverse,
// Apple M). vdotq_s32 (SDOT) adds four int8 x int8 products into each int32 lane, so a
// 32-element block is two instructions. The weight preparation and the GEMM loops are
// qgemm.inc, shared with neon.cpp; only dot32 differs. Compiled with
// -march=armv8.2-a+dotprod for this file only; see the SIGILL note in kernels/kernels.h (static
// helpers, no STL, no templates).
#include <arm_neon.h>

#include "kernels/kernels.h"
#include "kernels/kscales.h"
#include "kernels/kv_rows.h"
#include "kernels/x16.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace looplm {

namespace {

static inline float h2f(uint16_t h) {
    __fp16 f;
    __builtin_memcpy(&f, &h, sizeof(f));
    return static_cast<float>(f);
}

// The 32 products of (a0, a1) with one activation block's quants (x0, x1) in 4 int32 lanes.
static inline int32x4_t dot32(int8x16_t a0, int8x16_t a1, int8x16_t x0, int8x16_t x1) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), a0, x0), a1, x1);
}

#include "kernels/arm/qgemm.inc"

// x16.inc's four rows against one activation block: SDOT by lane, each instruction the 4
// products of 4 consecutive elements of each row with activation bytes 4c..4c+3 of x0 (low
// nibbles) or x1 (high nibbles); one chain per quad (a group-block's four quads are independent).
static inline int32x4_t x16_quad(int32x4_t st, const int8x16_t * w, int8x16_t x0, int8x16_t x1) {
    int32x4_t s = vdotq_laneq_s32(st, w[0], x0, 0);
    s = vdotq_laneq_s32(s, w[1], x0, 1);
    s = vdotq_laneq_s32(s, w[2], x0, 2);
    s = vdotq_laneq_s32(s, w[3], x0, 3);
    s = vdotq_laneq_s32(s, w[4], x1, 0);
    s = vdotq_laneq_s32(s, w[5], x1, 1);
    s = vdotq_laneq_s32(s, w[6], x1, 2);
    return vdotq_laneq_s32(s, w[7], x1, 3);
}

// x16.inc's Q6_K quad: 4 SDOT by lane, chunk c against activation bytes 4c..4c+3.
static inline int32x4_t x16_quad4(int32x4_t st, const int8x16_t * w, int8x16_t x) {
    int32x4_t s = vdotq_laneq_s32(st, w[0], x, 0);
    s = vdotq_laneq_s32(s, w[1], x, 1);
    s = vdotq_laneq_s32(s, w[2], x, 2);
    return vdotq_laneq_s32(s, w[3], x, 3);
}

constexpr int kX16Cols = 4;  // 4 quads x 4 columns of accumulators, 8 nibble vectors

// acc + the 16 products of a and b in 4 int32 lanes (SDOT), for kquants.inc.
static inline int32x4_t sdot16(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
// The 32 products of (a0, a1) and (b0, b1) in 4 int32 lanes.
static inline int32x4_t sdot32(int8x16_t a0, int8x16_t b0, int8x16_t a1, int8x16_t b1) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), a0, b0), a1, b1);
}

#include "kernels/arm/kquants.inc"
#include "kernels/arm/x16.inc"  // after the plain GEMMs it takes the tail rows to

}  // namespace

// The activation quantizer and the float kernels are kernels_neon's (no dot products there);
// kernels_neon is constant-initialized, so reading it here is safe at static-init time.
extern const Kernels kernels_dotprod = {
    "dotprod",
    kernels_neon.quantize_q8,
    gemm_q4_0,
    gemm_q4_1,
    gemm_q8_0,
    kernels_neon.gemm_f16,
    kernels_neon.gemm_bf16,
    kernels_neon.gemm_f32,
    nullptr,  // no packed GEMM
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    kernels_neon.dot_f16_f32,
    kernels_neon.dot_f32,
    kernels_neon.f32_to_f16,
    kernels_neon.silu_mul,
    gemm_q5_0,
    gemm_q5_1,
    kernels_neon.quantize_q8k,
    gemm_q4_K,
    gemm_q5_K,
    gemm_q6_K,
    gemm_q4_0x16,
    gemm_q4_1x16,
    gemm_q4_Kx16,
    gemm_q6_Kx16,  // the x16 layout (x16.inc)
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,                        // no packed K-quant GEMM
    LOOPLM_KV_ENTRIES(kv_, _neon),  // KV row runs: NEON's (kv_neon.cpp)
};

}  // namespace looplm
