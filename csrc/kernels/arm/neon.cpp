// kernels/arm/neon.cpp - ARMv8.0 Advanced SIMD (NEON) kernels: every aarch64 CPU has them, so this
// file needs no extra flag. Without SDOT the int8 dot products are widening multiplies
// (vmull_s8 / vmlal_high_s8) and pairwise widening adds (vpaddlq_s16 / vpadalq_s16);
// dotprod.cpp is the same scheme with vdotq_s32: both take their quantized GEMMs from
// qgemm.inc, and dotprod reuses this file's quantizer and float kernels. See the
// SIGILL note in kernels/kernels.h (static helpers, no STL, no templates).
#include <arm_neon.h>

#include "kernels/kernels.h"
#include "kernels/kscales.h"
#include "kernels/kv_rows.h"
#include "kernels/x16.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace looplm {

namespace {

// fp16 <-> f32 with the scalar FCVT (IEEE half, round to nearest even as FPCR sets it).
static inline float h2f(uint16_t h) {
    __fp16 f;
    __builtin_memcpy(&f, &h, sizeof(f));
    return static_cast<float>(f);
}

static inline uint16_t f2h(float x) {
    const __fp16 f = static_cast<__fp16>(x);
    uint16_t h;
    __builtin_memcpy(&h, &f, sizeof(h));
    return h;
}

// Quantizes 32 floats to a block_q8_s exactly as quantize_row_q8_s_ref does: d = amax / 127
// (the division of the reference), id = 1 / d from the unrounded d, q = round half away from
// zero of x * id (FCVTAS), then d rounded to fp16 and widened; ds and bias as
// finish_block_q8_s. |x * id| <= 127 up to an ulp, so the narrowing never saturates.
static inline void quantize_block(const float * x, block_q8_s * y) {
    float32x4_t v[8];
    for (int i = 0; i < 8; i++) v[i] = vld1q_f32(x + 4 * i);
    float32x4_t m = vabsq_f32(v[0]);
    for (int i = 1; i < 8; i++) m = vmaxq_f32(m, vabsq_f32(v[i]));
    const float d = vmaxvq_f32(m) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int32x4_t q[8];
    for (int i = 0; i < 8; i++) q[i] = vcvtaq_s32_f32(vmulq_n_f32(v[i], id));
    for (int h = 0; h < 2; h++) {
        const int16x8_t a = vcombine_s16(vqmovn_s32(q[4 * h]), vqmovn_s32(q[4 * h + 1]));
        const int16x8_t b = vcombine_s16(vqmovn_s32(q[4 * h + 2]), vqmovn_s32(q[4 * h + 3]));
        vst1q_s8(y->qs + 16 * h, vcombine_s8(vqmovn_s16(a), vqmovn_s16(b)));
    }
    // Lane i = q[4i] + ... + q[4i+3]: two rounds of pairwise adds.
    const int32x4_t lo = vpaddq_s32(vpaddq_s32(q[0], q[1]), vpaddq_s32(q[2], q[3]));  // lanes 0..3
    const int32x4_t hi = vpaddq_s32(vpaddq_s32(q[4], q[5]), vpaddq_s32(q[6], q[7]));  // lanes 4..7
    vst1q_s32(y->bias, vmulq_n_s32(lo, -8));
    vst1q_s32(y->bias + 4, vmulq_n_s32(hi, -128));  // -8 x16 (see block_q8_s)
    y->d = h2f(f2h(d));
    y->ds = y->d * static_cast<float>(vaddvq_s32(vaddq_s32(lo, hi)));
}

static void quantize_q8(const float * x, void * vy, int64_t n) {
    block_q8_s * y = static_cast<block_q8_s *>(vy);
    for (int64_t b = 0; b < n / QK; b++) quantize_block(x + b * QK, y + b);
}

// The 32 products of (a0, a1) with one activation block's quants (x0, x1), summed into 4 int32
// lanes. Each int16 lane adds two products of magnitude <= 128 * 127 (activation quants are
// never -128, see quantize_block), so it cannot overflow: 2 * 16256 < 32768.
static inline int32x4_t dot32(int8x16_t a0, int8x16_t a1, int8x16_t x0, int8x16_t x1) {
    int16x8_t p0 = vmull_s8(vget_low_s8(a0), vget_low_s8(x0));
    p0 = vmlal_high_s8(p0, a0, x0);
    int16x8_t p1 = vmull_s8(vget_low_s8(a1), vget_low_s8(x1));
    p1 = vmlal_high_s8(p1, a1, x1);
    return vpadalq_s16(vpaddlq_s16(p0), p1);
}

#include "kernels/arm/qgemm.inc"

// x16.inc's four rows against one activation block. NEON has no by-lane int8 multiply, so
// activation bytes 4c..4c+3 are broadcast to every 32-bit lane (one DUP each, shared by the four
// quads of a group-block); each widening multiply then gives two rows' products in int16 lanes
// (low half: rows 0-1, high half: rows 2-3), the eight chunk vectors accumulate into two int16x8
// (8 products per lane, nibbles <= 15 and |x| <= 127: 8 * 1905 = 15240), one pairwise add sums
// lanes to [r0 r0 r1 r1 r2 r2 r3 r3] (30480 < 32768), one widening pairwise add into st gives
// [r0 r1 r2 r3].
static inline int32x4_t x16_quad(int32x4_t st, const int8x16_t * w, int8x16_t x0, int8x16_t x1) {
    const int32x4_t a = vreinterpretq_s32_s8(x0), b = vreinterpretq_s32_s8(x1);
    const int8x16_t xr[8] = {vreinterpretq_s8_s32(vdupq_laneq_s32(a, 0)), vreinterpretq_s8_s32(vdupq_laneq_s32(a, 1)),
                             vreinterpretq_s8_s32(vdupq_laneq_s32(a, 2)), vreinterpretq_s8_s32(vdupq_laneq_s32(a, 3)),
                             vreinterpretq_s8_s32(vdupq_laneq_s32(b, 0)), vreinterpretq_s8_s32(vdupq_laneq_s32(b, 1)),
                             vreinterpretq_s8_s32(vdupq_laneq_s32(b, 2)), vreinterpretq_s8_s32(vdupq_laneq_s32(b, 3))};
    int16x8_t lo = vmull_s8(vget_low_s8(w[0]), vget_low_s8(xr[0]));
    int16x8_t hi = vmull_high_s8(w[0], xr[0]);
    for (int i = 1; i < 8; i++) {
        lo = vmlal_s8(lo, vget_low_s8(w[i]), vget_low_s8(xr[i]));
        hi = vmlal_high_s8(hi, w[i], xr[i]);
    }
    return vpadalq_s16(st, vpaddq_s16(lo, hi));
}

// x16.inc's Q6_K quad: the 4 chunks' widening multiplies against activation bytes 4c..4c+3
// broadcast, summed in int16 (4 products per lane of at most 63 * 127: 32004 < 32768), widened
// pairwise twice into [r0 r1 r2 r3].
static inline int32x4_t x16_quad4(int32x4_t st, const int8x16_t * w, int8x16_t x) {
    const int32x4_t a = vreinterpretq_s32_s8(x);
    const int8x16_t xr[4] = {vreinterpretq_s8_s32(vdupq_laneq_s32(a, 0)), vreinterpretq_s8_s32(vdupq_laneq_s32(a, 1)),
                             vreinterpretq_s8_s32(vdupq_laneq_s32(a, 2)), vreinterpretq_s8_s32(vdupq_laneq_s32(a, 3))};
    int16x8_t lo = vmull_s8(vget_low_s8(w[0]), vget_low_s8(xr[0]));
    int16x8_t hi = vmull_high_s8(w[0], xr[0]);
    for (int i = 1; i < 4; i++) {
        lo = vmlal_s8(lo, vget_low_s8(w[i]), vget_low_s8(xr[i]));
        hi = vmlal_high_s8(hi, w[i], xr[i]);
    }
    return vaddq_s32(st, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
}

constexpr int kX16Cols = 2;  // 4 quads x 2 columns of accumulators, 8 nibble and 16 broadcast vectors

// acc + the 16 products of a and b in 4 int32 lanes, for kquants.inc (see there for why the
// int16 pair sums cannot overflow).
static inline int32x4_t sdot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
    return vpadalq_s16(acc, vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b));
}

// The 32 products of (a0, a1) and (b0, b1) in 4 int32 lanes, for kquants.inc's sub-blocks of
// 32, whose weights are at most 31 (Q4_K, Q5_K): each int16 lane adds four products of at
// most 31 * 127, 15748 < 32768, so one widening pairwise add serves all four.
static inline int32x4_t sdot32(int8x16_t a0, int8x16_t b0, int8x16_t a1, int8x16_t b1) {
    int16x8_t p = vmull_s8(vget_low_s8(a0), vget_low_s8(b0));
    p = vmlal_high_s8(p, a0, b0);
    p = vmlal_s8(p, vget_low_s8(a1), vget_low_s8(b1));
    p = vmlal_high_s8(p, a1, b1);
    return vpaddlq_s16(p);
}

#include "kernels/arm/kquants.inc"
#include "kernels/arm/x16.inc"  // after the plain GEMMs it takes the tail rows to

// f32 -> block_q8_K exactly as quantize_q8k_ref: the first element of largest |x| (sign kept)
// sets iscale = -127 / max; q = min(127, round half to even (x * iscale)) (FCVTNS),
// d = 1 / iscale; bsums from the int32 quants.
static void quantize_q8k(const float * x, void * vy, int64_t n) {
    block_q8_K * y = static_cast<block_q8_K *>(vy);
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int j = 0; j < QK_K; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + j)));
        const float amax = vmaxvq_f32(m);
        __builtin_memset(&y[b], 0, sizeof(block_q8_K));
        if (amax == 0.0f) continue;
        int first = 0;
        while (first < QK_K - 1 && __builtin_fabsf(x[first]) != amax) first++;  // (bounded: NaN)
        const float iscale = -127.0f / x[first];
        const int32x4_t cap = vdupq_n_s32(127);
        for (int j = 0; j < QK_K; j += 16) {
            int32x4_t q[4];
            for (int i = 0; i < 4; i++) {
                q[i] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 4 * i), iscale)), cap);
            }
            const int16x8_t a = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
            const int16x8_t c = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
            vst1q_s8(y[b].qs + j, vcombine_s8(vqmovn_s16(a), vqmovn_s16(c)));
            const int32x4_t s = vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3]));
            y[b].bsums[j / 16] = static_cast<int16_t>(vaddvq_s32(s));
        }
        y[b].d = 1.0f / iscale;
    }
}

// ---- float kernels: F16 through FCVTL, BF16 as a 16-bit left shift, FMA in f32.

// BF16 -> f32: interleaving with zeros puts each value in the high half of a 32-bit lane.
static inline float32x4_t bf16_lo(uint16x8_t h) { return vreinterpretq_f32_u16(vzip1q_u16(vdupq_n_u16(0), h)); }
static inline float32x4_t bf16_hi(uint16x8_t h) { return vreinterpretq_f32_u16(vzip2q_u16(vdupq_n_u16(0), h)); }
static inline float32x4_t f16_lo(uint16x8_t h) { return vcvt_f32_f16(vget_low_f16(vreinterpretq_f16_u16(h))); }
static inline float32x4_t f16_hi(uint16x8_t h) { return vcvt_high_f32_f16(vreinterpretq_f16_u16(h)); }

static float dot_f16_f32(int64_t n, const uint16_t * a, const float * b) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f), a2 = vdupq_n_f32(0.0f), a3 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const uint16x8_t h0 = vld1q_u16(a + i), h1 = vld1q_u16(a + i + 8);
        a0 = vfmaq_f32(a0, f16_lo(h0), vld1q_f32(b + i));
        a1 = vfmaq_f32(a1, f16_hi(h0), vld1q_f32(b + i + 4));
        a2 = vfmaq_f32(a2, f16_lo(h1), vld1q_f32(b + i + 8));
        a3 = vfmaq_f32(a3, f16_hi(h1), vld1q_f32(b + i + 12));
    }
    for (; i + 4 <= n; i += 4)
        a0 = vfmaq_f32(a0, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(a + i))), vld1q_f32(b + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; i++) sum += h2f(a[i]) * b[i];
    return sum;
}

static float dot_bf16_f32(int64_t n, const uint16_t * a, const float * b) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f), a2 = vdupq_n_f32(0.0f), a3 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const uint16x8_t h0 = vld1q_u16(a + i), h1 = vld1q_u16(a + i + 8);
        a0 = vfmaq_f32(a0, bf16_lo(h0), vld1q_f32(b + i));
        a1 = vfmaq_f32(a1, bf16_hi(h0), vld1q_f32(b + i + 4));
        a2 = vfmaq_f32(a2, bf16_lo(h1), vld1q_f32(b + i + 8));
        a3 = vfmaq_f32(a3, bf16_hi(h1), vld1q_f32(b + i + 12));
    }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; i++) sum += bf16_to_fp32(a[i]) * b[i];
    return sum;
}

static float dot_f32(int64_t n, const float * a, const float * b) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f), a2 = vdupq_n_f32(0.0f), a3 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, vld1q_f32(a + i), vld1q_f32(b + i));
        a1 = vfmaq_f32(a1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        a2 = vfmaq_f32(a2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        a3 = vfmaq_f32(a3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, vld1q_f32(a + i), vld1q_f32(b + i));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void f32_to_f16(int64_t n, const float * x, uint16_t * y) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
        vst1q_u16(y + i, vreinterpretq_u16_f16(h));
    }
    for (; i < n; i++) y[i] = f2h(x[i]);
}

#include "kernels/arm/exp_ps.inc"

static void silu_mul(int64_t n, float * g, const float * u) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t x = vld1q_f32(g + i);
        const float32x4_t den = vaddq_f32(vdupq_n_f32(1.0f), exp_ps(vnegq_f32(x)));
        vst1q_f32(g + i, vdivq_f32(vmulq_f32(x, vld1q_f32(u + i)), den));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + __builtin_expf(-g[i])) * u[i];
}

// The 16-bit float GEMMs, as the quantized ones: four weight rows against one activation row
// per pass, each activation vector loaded once for the four, eight FMA chains (two per row),
// the next four rows prefetched meanwhile (four rows of 16 elements are 128 bytes: two
// lines per step), the four sums reduced into one vector; the remaining rows by the dot.
// Columns one after another (the order of gemm_by_dot16).
#define LOOPLM_ROWS4_16(T, LO, HI, DOT)                                                                               \
    static void rows4_##T(int64_t n, const char * w0, size_t ws, const float * x, float * out) {                      \
        const uint16_t * w[4] = {reinterpret_cast<const uint16_t *>(w0), reinterpret_cast<const uint16_t *>(w0 + ws), \
                                 reinterpret_cast<const uint16_t *>(w0 + 2 * ws),                                     \
                                 reinterpret_cast<const uint16_t *>(w0 + 3 * ws)};                                    \
        float32x4_t a[4][2];                                                                                          \
        for (int r = 0; r < 4; r++) a[r][0] = a[r][1] = vdupq_n_f32(0.0f);                                            \
        const char * next = w0 + 4 * ws;                                                                              \
        const size_t step = n >= 16 ? 4 * ws / static_cast<size_t>(n / 16) : 0;                                       \
        int64_t i = 0;                                                                                                \
        for (; i + 16 <= n; i += 16) {                                                                                \
            const char * pf = next + static_cast<size_t>(i / 16) * step;                                              \
            __builtin_prefetch(pf, 0, 3);                                                                             \
            __builtin_prefetch(pf + 64, 0, 3);                                                                        \
            const float32x4_t x0 = vld1q_f32(x + i), x1 = vld1q_f32(x + i + 4);                                       \
            const float32x4_t x2 = vld1q_f32(x + i + 8), x3 = vld1q_f32(x + i + 12);                                  \
            for (int r = 0; r < 4; r++) {                                                                             \
                const uint16x8_t h0 = vld1q_u16(w[r] + i), h1 = vld1q_u16(w[r] + i + 8);                              \
                a[r][0] = vfmaq_f32(a[r][0], LO(h0), x0);                                                             \
                a[r][1] = vfmaq_f32(a[r][1], HI(h0), x1);                                                             \
                a[r][0] = vfmaq_f32(a[r][0], LO(h1), x2);                                                             \
                a[r][1] = vfmaq_f32(a[r][1], HI(h1), x3);                                                             \
            }                                                                                                         \
        }                                                                                                             \
        float32x4_t s = hsum4f(vaddq_f32(a[0][0], a[0][1]), vaddq_f32(a[1][0], a[1][1]), vaddq_f32(a[2][0], a[2][1]), \
                               vaddq_f32(a[3][0], a[3][1]));                                                          \
        if (i < n) { /* (n is a multiple of 32 for a GEMM; kept whole for any n) */                                   \
            float t[4];                                                                                               \
            for (int r = 0; r < 4; r++) t[r] = DOT(n - i, w[r] + i, x + i);                                           \
            s = vaddq_f32(s, vld1q_f32(t));                                                                           \
        }                                                                                                             \
        vst1q_f32(out, s);                                                                                            \
    }                                                                                                                 \
    static void gemm_##T(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,     \
                         float * out, size_t ldo) {                                                                   \
        const char * wb = static_cast<const char *>(w);                                                               \
        for (int64_t c = 0; c < nc; c++) {                                                                            \
            const float * xc = reinterpret_cast<const float *>(static_cast<const char *>(x) + c * xs);                \
            int64_t r = 0;                                                                                            \
            for (; r + 4 <= nr; r += 4) rows4_##T(n, wb + r * ws, ws, xc, out + c * ldo + r);                         \
            for (; r < nr; r++) out[c * ldo + r] = DOT(n, reinterpret_cast<const uint16_t *>(wb + r * ws), xc);       \
        }                                                                                                             \
    }

LOOPLM_ROWS4_16(f16, f16_lo, f16_hi, dot_f16_f32)
LOOPLM_ROWS4_16(bf16, bf16_lo, bf16_hi, dot_bf16_f32)

static void gemm_f32(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                     float * out, size_t ldo) {
    gemm_by_dot32(dot_f32, n, w, ws, nr, x, xs, nc, out, ldo);
}

}  // namespace

extern const Kernels kernels_neon = {
    "neon",
    quantize_q8,
    gemm_q4_0,
    gemm_q4_1,
    gemm_q8_0,
    gemm_f16,
    gemm_bf16,
    gemm_f32,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,  // no packed GEMM
    dot_f16_f32,
    dot_f32,
    f32_to_f16,
    silu_mul,
    gemm_q5_0,
    gemm_q5_1,
    quantize_q8k,
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
    LOOPLM_KV_ENTRIES(kv_, _neon),  // attention over runs of KV rows (kv_neon.cpp)
};

}  // namespace looplm
