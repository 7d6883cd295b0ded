// kernels/arm/kv_neon.cpp - ARMv8.0 NEON kernels of runs of KV cache rows (kernels/kv_rows.h), for
// the neon and dotprod tables, as x86/kv_avx2.cpp with 4 lanes: scores 8 rows per pass (each
// slice of q loaded once for the 8 rows, the 8 accumulators reduced together by pairwise adds),
// weighted sums 32 output columns in 8 accumulators over the whole run. Quantized rows are
// widened int8 -> f32 (vmovl). Baseline aarch64, no extra flag; see the SIGILL note in
// kernels/kernels.h (static helpers, no STL, no templates).
#include <arm_neon.h>

#include "kernels/kv_rows.h"
#include "quant/blocks.h"

namespace looplm {

namespace {

#include "kernels/arm/exp_ps.inc"

static inline float h2f(uint16_t h) {
    __fp16 f;
    __builtin_memcpy(&f, &h, sizeof(f));
    return static_cast<float>(f);
}

// The sums of a[0..3] as one vector (lane i = sum of a[i]).
static inline float32x4_t reduce4(const float32x4_t * a) {
    return vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3]));
}

// 4 elements as floats
static inline float32x4_t load_f16(const uint16_t * p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline float32x4_t load_f32(const float * p) { return vld1q_f32(p); }
static inline float elem_f16(const uint16_t * p) { return h2f(*p); }
static inline float elem_f32(const float * p) { return *p; }

// 16 int8 -> 4 x float32x4
static inline void cvt16(int8x16_t q, float32x4_t * f) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
    f[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    f[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
    f[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    f[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
}

// A block's 32 quants as 8 x 4 floats in element order (Q4_0: minus 8; byte j holds j, j + 16).
static inline void q8_floats(const block_q8_0 * b, float32x4_t * f) {
    cvt16(vld1q_s8(b->qs), f);
    cvt16(vld1q_s8(b->qs + 16), f + 4);
}

static inline void q4_floats(const block_q4_0 * b, float32x4_t * f) {
    const uint8x16_t raw = vld1q_u8(b->qs);
    const int8x16_t eight = vdupq_n_s8(8);
    cvt16(vsubq_s8(vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f))), eight), f);
    cvt16(vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), eight), f + 4);
}

static inline const uint8_t * at(const void * rows, size_t stride, int64_t r) {
    return static_cast<const uint8_t *>(rows) + static_cast<size_t>(r) * stride;
}

}  // namespace

// Float rows (T = float / uint16_t): 8 rows per pass, any n (a scalar tail after the 4-wide part).
#define LOOPLM_KV_FLOAT(NAME, T, LOAD, ELEM)                                                                  \
    void kv_scores_##NAME##_neon(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q, \
                                 float scale, float * out) {                                                  \
        const int64_t nv = n & ~int64_t(3);                                                                   \
        int64_t r = 0;                                                                                        \
        for (; r + 8 <= nrows; r += 8) {                                                                      \
            const T * p[8];                                                                                   \
            float32x4_t acc[8];                                                                               \
            for (int i = 0; i < 8; i++) {                                                                     \
                p[i] = reinterpret_cast<const T *>(at(rows, stride, r + i));                                  \
                acc[i] = vdupq_n_f32(0.0f);                                                                   \
            }                                                                                                 \
            for (int64_t j = 0; j < nv; j += 4) {                                                             \
                const float32x4_t x = vld1q_f32(q + j);                                                       \
                for (int i = 0; i < 8; i++) acc[i] = vfmaq_f32(acc[i], LOAD(p[i] + j), x);                    \
            }                                                                                                 \
            float32x4_t s[2] = {reduce4(acc), reduce4(acc + 4)};                                              \
            if (nv < n) {                                                                                     \
                float t[8];                                                                                   \
                for (int i = 0; i < 8; i++) {                                                                 \
                    t[i] = 0.0f;                                                                              \
                    for (int64_t j = nv; j < n; j++) t[i] += ELEM(p[i] + j) * q[j];                           \
                }                                                                                             \
                s[0] = vaddq_f32(s[0], vld1q_f32(t));                                                         \
                s[1] = vaddq_f32(s[1], vld1q_f32(t + 4));                                                     \
            }                                                                                                 \
            vst1q_f32(out + r, vmulq_n_f32(s[0], scale));                                                     \
            vst1q_f32(out + r + 4, vmulq_n_f32(s[1], scale));                                                 \
        }                                                                                                     \
        for (; r < nrows; r++) {                                                                              \
            const T * p = reinterpret_cast<const T *>(at(rows, stride, r));                                   \
            float32x4_t acc = vdupq_n_f32(0.0f);                                                              \
            for (int64_t j = 0; j < nv; j += 4) acc = vfmaq_f32(acc, LOAD(p + j), vld1q_f32(q + j));          \
            float s = vaddvq_f32(acc);                                                                        \
            for (int64_t j = nv; j < n; j++) s += ELEM(p + j) * q[j];                                         \
            out[r] = scale * s;                                                                               \
        }                                                                                                     \
    }                                                                                                         \
    void kv_wsum_##NAME##_neon(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w,   \
                               float * acc) {                                                                 \
        int64_t j = 0;                                                                                        \
        for (; j + 32 <= n; j += 32) {                                                                        \
            float32x4_t a[8];                                                                                 \
            for (int i = 0; i < 8; i++) a[i] = vld1q_f32(acc + j + 4 * i);                                    \
            for (int64_t r = 0; r < nrows; r++) {                                                             \
                const T * p = reinterpret_cast<const T *>(at(rows, stride, r)) + j;                           \
                for (int i = 0; i < 8; i++) a[i] = vfmaq_n_f32(a[i], LOAD(p + 4 * i), w[r]);                  \
            }                                                                                                 \
            for (int i = 0; i < 8; i++) vst1q_f32(acc + j + 4 * i, a[i]);                                     \
        }                                                                                                     \
        for (; j + 4 <= n; j += 4) {                                                                          \
            float32x4_t a = vld1q_f32(acc + j);                                                               \
            for (int64_t r = 0; r < nrows; r++)                                                               \
                a = vfmaq_n_f32(a, LOAD(reinterpret_cast<const T *>(at(rows, stride, r)) + j), w[r]);         \
            vst1q_f32(acc + j, a);                                                                            \
        }                                                                                                     \
        for (; j < n; j++) {                                                                                  \
            float a = acc[j];                                                                                 \
            for (int64_t r = 0; r < nrows; r++)                                                               \
                a += w[r] * ELEM(reinterpret_cast<const T *>(at(rows, stride, r)) + j);                       \
            acc[j] = a;                                                                                       \
        }                                                                                                     \
    }

LOOPLM_KV_FLOAT(f32, float, load_f32, elem_f32)
LOOPLM_KV_FLOAT(f16, uint16_t, load_f16, elem_f16)

// Quantized rows (B = block type, FLOATS = its quants as 8 x 4 floats), n a multiple of 32.
#define LOOPLM_KV_QUANT(NAME, B, FLOATS)                                                                      \
    void kv_scores_##NAME##_neon(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q, \
                                 float scale, float * out) {                                                  \
        const int64_t nb = n / QK;                                                                            \
        int64_t r = 0;                                                                                        \
        for (; r + 8 <= nrows; r += 8) {                                                                      \
            const B * p[8];                                                                                   \
            float32x4_t acc[8];                                                                               \
            for (int i = 0; i < 8; i++) {                                                                     \
                p[i] = reinterpret_cast<const B *>(at(rows, stride, r + i));                                  \
                acc[i] = vdupq_n_f32(0.0f);                                                                   \
            }                                                                                                 \
            for (int64_t b = 0; b < nb; b++) {                                                                \
                float32x4_t x[8];                                                                             \
                for (int k = 0; k < 8; k++) x[k] = vld1q_f32(q + b * QK + 4 * k);                             \
                for (int i = 0; i < 8; i++) {                                                                 \
                    float32x4_t f[8];                                                                         \
                    FLOATS(p[i] + b, f);                                                                      \
                    float32x4_t s = vmulq_f32(f[0], x[0]);                                                    \
                    for (int k = 1; k < 8; k++) s = vfmaq_f32(s, f[k], x[k]);                                 \
                    acc[i] = vfmaq_n_f32(acc[i], s, h2f(p[i][b].d));                                          \
                }                                                                                             \
            }                                                                                                 \
            vst1q_f32(out + r, vmulq_n_f32(reduce4(acc), scale));                                             \
            vst1q_f32(out + r + 4, vmulq_n_f32(reduce4(acc + 4), scale));                                     \
        }                                                                                                     \
        for (; r < nrows; r++) {                                                                              \
            const B * p = reinterpret_cast<const B *>(at(rows, stride, r));                                   \
            float32x4_t acc = vdupq_n_f32(0.0f);                                                              \
            for (int64_t b = 0; b < nb; b++) {                                                                \
                float32x4_t f[8];                                                                             \
                FLOATS(p + b, f);                                                                             \
                float32x4_t s = vmulq_f32(f[0], vld1q_f32(q + b * QK));                                       \
                for (int k = 1; k < 8; k++) s = vfmaq_f32(s, f[k], vld1q_f32(q + b * QK + 4 * k));            \
                acc = vfmaq_n_f32(acc, s, h2f(p[b].d));                                                       \
            }                                                                                                 \
            out[r] = scale * vaddvq_f32(acc);                                                                 \
        }                                                                                                     \
    }                                                                                                         \
    void kv_wsum_##NAME##_neon(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w,   \
                               float * acc) {                                                                 \
        for (int64_t b = 0; b < n / QK; b++) {                                                                \
            float * y = acc + b * QK;                                                                         \
            float32x4_t a[8];                                                                                 \
            for (int i = 0; i < 8; i++) a[i] = vld1q_f32(y + 4 * i);                                          \
            for (int64_t r = 0; r < nrows; r++) {                                                             \
                const B * p = reinterpret_cast<const B *>(at(rows, stride, r)) + b;                           \
                float32x4_t f[8];                                                                             \
                FLOATS(p, f);                                                                                 \
                const float wd = w[r] * h2f(p->d);                                                            \
                for (int i = 0; i < 8; i++) a[i] = vfmaq_n_f32(a[i], f[i], wd);                               \
            }                                                                                                 \
            for (int i = 0; i < 8; i++) vst1q_f32(y + 4 * i, a[i]);                                           \
        }                                                                                                     \
    }

LOOPLM_KV_QUANT(q8_0, block_q8_0, q8_floats)
LOOPLM_KV_QUANT(q4_0, block_q4_0, q4_floats)

float kv_exp_sum_neon(int64_t n, float * x, float m) {
    const float32x4_t vm = vdupq_n_f32(m);
    float32x4_t sum = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t e = exp_ps(vsubq_f32(vld1q_f32(x + i), vm));
        vst1q_f32(x + i, e);
        sum = vaddq_f32(sum, e);
    }
    float s = vaddvq_f32(sum);
    for (; i < n; i++) {
        x[i] = __builtin_expf(x[i] - m);
        s += x[i];
    }
    return s;
}

}  // namespace looplm
