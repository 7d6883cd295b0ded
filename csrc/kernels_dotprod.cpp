// kernels_dotprod.cpp - ARMv8.2 NEON + dotprod kernels (Cortex-A76/Raspberry Pi 5, Neoverse,
// Apple M). vdotq_s32 (SDOT) adds four int8 x int8 products into each int32 lane, so a
// 32-element block is two instructions. The weight preparation is the same as in
// kernels_neon.cpp (Q4_0: 16 * (q - 8) from one XOR, shift and AND); only the dot differs. Compiled with
// -march=armv8.2-a+dotprod for this file only; see the SIGILL note in kernels.h (static
// helpers, no STL, no templates).
#include <arm_neon.h>

#include "kernels.h"
#include "quant.h"

namespace looplm {

namespace {

static inline float h2f(uint16_t h) {
    __fp16 f;
    __builtin_memcpy(&f, &h, sizeof(f));
    return static_cast<float>(f);
}

// The 32 products of (a0, a1) with one activation block's quants in 4 int32 lanes (exact).
static inline int32x4_t dot32(int8x16_t a0, int8x16_t a1, const block_q8_s & x) {
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), a0, vld1q_s8(x.qs)), a1, vld1q_s8(x.qs + 16));
}

// PREP / DOT / MIN per weight type, as in kernels_neon.cpp.
static inline void prep_q4_0(const block_q4_0 & w, int8x16_t & lo, int8x16_t & hi) {
    const uint8x16_t b = veorq_u8(vld1q_u8(w.qs), vdupq_n_u8(0x88));  // nibbles: q - 8, 4-bit signed
    lo = vreinterpretq_s8_u8(vshlq_n_u8(b, 4));                      // 16 * (q - 8), elements 0..15
    hi = vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0xF0)));         // 16 * (q - 8), elements 16..31
}
static inline float32x4_t dot_q4_0(int8x16_t lo, int8x16_t hi, const block_q8_s & x) {
    return vcvtq_n_f32_s32(dot32(lo, hi, x), 4);  // / 16, exact
}
static inline void min_q4_0(const block_q4_0 &, const block_q8_s &, float &) {}

static inline void prep_q4_1(const block_q4_1 & w, int8x16_t & lo, int8x16_t & hi) {
    const uint8x16_t b = vld1q_u8(w.qs);
    lo = vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0F)));
    hi = vreinterpretq_s8_u8(vshrq_n_u8(b, 4));
}
static inline float32x4_t dot_q4_1(int8x16_t lo, int8x16_t hi, const block_q8_s & x) {
    return vcvtq_f32_s32(dot32(lo, hi, x));
}
static inline void min_q4_1(const block_q4_1 & w, const block_q8_s & x, float & m) { m += h2f(w.m) * x.ds; }

static inline void prep_q8_0(const block_q8_0 & w, int8x16_t & lo, int8x16_t & hi) {
    lo = vld1q_s8(w.qs);
    hi = vld1q_s8(w.qs + 16);
}
static inline float32x4_t dot_q8_0(int8x16_t lo, int8x16_t hi, const block_q8_s & x) {
    return vcvtq_f32_s32(dot32(lo, hi, x));
}
static inline void min_q8_0(const block_q8_0 &, const block_q8_s &, float &) {}

// row1_T (decode: four accumulators), row4_T (four columns share each weight block), gemm_T.
#define LOOPLM_QGEMM(T, WT)                                                                              \
    static float row1_##T(int64_t nb, const WT * w, const block_q8_s * x) {                             \
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);                                     \
        float32x4_t a2 = vdupq_n_f32(0.0f), a3 = vdupq_n_f32(0.0f);                                     \
        float m = 0.0f;                                                                                  \
        int8x16_t lo, hi;                                                                                \
        int64_t b = 0;                                                                                   \
        for (; b + 4 <= nb; b += 4) {                                                                    \
            prep_##T(w[b], lo, hi);                                                                      \
            a0 = vfmaq_n_f32(a0, dot_##T(lo, hi, x[b]), h2f(w[b].d) * x[b].d);                           \
            prep_##T(w[b + 1], lo, hi);                                                                  \
            a1 = vfmaq_n_f32(a1, dot_##T(lo, hi, x[b + 1]), h2f(w[b + 1].d) * x[b + 1].d);               \
            prep_##T(w[b + 2], lo, hi);                                                                  \
            a2 = vfmaq_n_f32(a2, dot_##T(lo, hi, x[b + 2]), h2f(w[b + 2].d) * x[b + 2].d);               \
            prep_##T(w[b + 3], lo, hi);                                                                  \
            a3 = vfmaq_n_f32(a3, dot_##T(lo, hi, x[b + 3]), h2f(w[b + 3].d) * x[b + 3].d);               \
            for (int u = 0; u < 4; u++) min_##T(w[b + u], x[b + u], m);                                   \
        }                                                                                                \
        for (; b < nb; b++) {                                                                            \
            prep_##T(w[b], lo, hi);                                                                      \
            a0 = vfmaq_n_f32(a0, dot_##T(lo, hi, x[b]), h2f(w[b].d) * x[b].d);                           \
            min_##T(w[b], x[b], m);                                                                      \
        }                                                                                                \
        return vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3))) + m;                          \
    }                                                                                                    \
    static void row4_##T(int64_t nb, const WT * w, const block_q8_s * const * x, float * out, size_t ldo) { \
        float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}; \
        float m[4] = {0.0f, 0.0f, 0.0f, 0.0f};                                                           \
        for (int64_t b = 0; b < nb; b++) {                                                               \
            int8x16_t lo, hi;                                                                            \
            prep_##T(w[b], lo, hi);                                                                      \
            const float dw = h2f(w[b].d);                                                                \
            for (int c = 0; c < 4; c++) {                                                                \
                acc[c] = vfmaq_n_f32(acc[c], dot_##T(lo, hi, x[c][b]), dw * x[c][b].d);                  \
                min_##T(w[b], x[c][b], m[c]);                                                            \
            }                                                                                            \
        }                                                                                                \
        for (int c = 0; c < 4; c++) out[c * ldo] = vaddvq_f32(acc[c]) + m[c];                            \
    }                                                                                                    \
    static void gemm_##T(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs,   \
                         int64_t nc, float * out, size_t ldo) {                                          \
        const char * wb = static_cast<const char *>(w);                                                  \
        const char * xb = static_cast<const char *>(x);                                                  \
        int64_t c0 = 0;                                                                                  \
        for (; c0 + 4 <= nc; c0 += 4) {                                                                  \
            const block_q8_s * xc[4];                                                                    \
            for (int c = 0; c < 4; c++) xc[c] = reinterpret_cast<const block_q8_s *>(xb + (c0 + c) * xs); \
            for (int64_t r = 0; r < nr; r++) {                                                           \
                row4_##T(n / QK, reinterpret_cast<const WT *>(wb + r * ws), xc, out + c0 * ldo + r, ldo);  \
            }                                                                                            \
        }                                                                                                \
        for (; c0 < nc; c0++) {                                                                          \
            const block_q8_s * xc = reinterpret_cast<const block_q8_s *>(xb + c0 * xs);                  \
            for (int64_t r = 0; r < nr; r++) {                                                           \
                out[c0 * ldo + r] = row1_##T(n / QK, reinterpret_cast<const WT *>(wb + r * ws), xc);     \
            }                                                                                            \
        }                                                                                                \
    }

LOOPLM_QGEMM(q4_0, block_q4_0)
LOOPLM_QGEMM(q4_1, block_q4_1)
LOOPLM_QGEMM(q8_0, block_q8_0)

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
    kernels_neon.axpy_f16,
    kernels_neon.axpy_f32,
    kernels_neon.f32_to_f16,
    kernels_neon.silu_mul,
};

}  // namespace looplm
