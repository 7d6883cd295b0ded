// kernels/x86/kv_avx2.cpp - AVX2 + FMA + F16C kernels of runs of KV cache rows (kernels/kv_rows.h).
// Scores take 8 rows per pass: each 8-element slice of q is loaded once for the 8 rows, the 8
// accumulators are reduced together into one vector of 8 scores. Weighted sums hold 64 output
// columns in 8 accumulators over the whole run and write them once. Quantized rows are widened
// int8 -> f32 (no quantized query). Compiled with -mavx2 -mfma -mf16c only for this file; see
// the SIGILL note in kernels/kernels.h (static helpers, no STL, no templates).
#include <immintrin.h>

#include "kernels/kv_rows.h"
#include "quant/blocks.h"

namespace looplm {

namespace {

#include "kernels/x86/exp_ps.inc"

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// The 8 horizontal sums of a[0..7] as one vector (lane i = sum of a[i]).
static inline __m256 reduce8(const __m256 * a) {
    const __m256 s01 = _mm256_hadd_ps(a[0], a[1]), s23 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 s45 = _mm256_hadd_ps(a[4], a[5]), s67 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
    // s0123 = [a0 a1 a2 a3 | a0 a1 a2 a3] (low / high halves), likewise s4567
    const __m256 lo = _mm256_permute2f128_ps(s0123, s4567, 0x20), hi = _mm256_permute2f128_ps(s0123, s4567, 0x31);
    return _mm256_add_ps(lo, hi);
}

static inline __m256 load_f16(const uint16_t * p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
}
static inline __m256 load_f32(const float * p) { return _mm256_loadu_ps(p); }
static inline float elem_f16(const uint16_t * p) { return _cvtsh_ss(*p); }
static inline float elem_f32(const float * p) { return *p; }

// 8 int8 -> 8 floats
static inline __m256 cvt8(__m128i b) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)); }

// A block's 32 quants as 4 x 8 floats in element order (Q4_0: minus 8; byte j holds j, j + 16).
static inline void q8_floats(const block_q8_0 * b, __m256 * f) {
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b->qs));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b->qs + 16));
    f[0] = cvt8(q0);
    f[1] = cvt8(_mm_srli_si128(q0, 8));
    f[2] = cvt8(q1);
    f[3] = cvt8(_mm_srli_si128(q1, 8));
}

static inline void q4_floats(const block_q4_0 * b, __m256 * f) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b->qs));
    const __m128i m = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(raw, m), eight);
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m), eight);
    f[0] = cvt8(lo);
    f[1] = cvt8(_mm_srli_si128(lo, 8));
    f[2] = cvt8(hi);
    f[3] = cvt8(_mm_srli_si128(hi, 8));
}

static inline const uint8_t * at(const void * rows, size_t stride, int64_t r) {
    return static_cast<const uint8_t *>(rows) + static_cast<size_t>(r) * stride;
}

}  // namespace

// Float rows (T = float / uint16_t): 8 rows per pass, any n (a scalar tail after the 8-wide part).
#define LOOPLM_KV_FLOAT(NAME, T, LOAD, ELEM)                                                                          \
    void kv_scores_##NAME##_avx2(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q,         \
                                 float scale, float * out) {                                                          \
        const int64_t nv = n & ~int64_t(7);                                                                           \
        int64_t r = 0;                                                                                                \
        for (; r + 8 <= nrows; r += 8) {                                                                              \
            const T * p[8];                                                                                           \
            __m256 acc[8];                                                                                            \
            for (int i = 0; i < 8; i++) {                                                                             \
                p[i] = reinterpret_cast<const T *>(at(rows, stride, r + i));                                          \
                acc[i] = _mm256_setzero_ps();                                                                         \
            }                                                                                                         \
            for (int64_t j = 0; j < nv; j += 8) {                                                                     \
                const __m256 x = _mm256_loadu_ps(q + j);                                                              \
                for (int i = 0; i < 8; i++) acc[i] = _mm256_fmadd_ps(LOAD(p[i] + j), x, acc[i]);                      \
            }                                                                                                         \
            __m256 s = reduce8(acc);                                                                                  \
            if (nv < n) {                                                                                             \
                float t[8];                                                                                           \
                for (int i = 0; i < 8; i++) {                                                                         \
                    t[i] = 0.0f;                                                                                      \
                    for (int64_t j = nv; j < n; j++) t[i] += ELEM(p[i] + j) * q[j];                                   \
                }                                                                                                     \
                s = _mm256_add_ps(s, _mm256_loadu_ps(t));                                                             \
            }                                                                                                         \
            _mm256_storeu_ps(out + r, _mm256_mul_ps(s, _mm256_set1_ps(scale)));                                       \
        }                                                                                                             \
        for (; r < nrows; r++) {                                                                                      \
            const T * p = reinterpret_cast<const T *>(at(rows, stride, r));                                           \
            __m256 acc = _mm256_setzero_ps();                                                                         \
            for (int64_t j = 0; j < nv; j += 8) acc = _mm256_fmadd_ps(LOAD(p + j), _mm256_loadu_ps(q + j), acc);      \
            float s = hsum(acc);                                                                                      \
            for (int64_t j = nv; j < n; j++) s += ELEM(p + j) * q[j];                                                 \
            out[r] = scale * s;                                                                                       \
        }                                                                                                             \
    }                                                                                                                 \
    void kv_wsum_##NAME##_avx2(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w,           \
                               float * acc) {                                                                         \
        int64_t j = 0;                                                                                                \
        for (; j + 64 <= n; j += 64) {                                                                                \
            __m256 a[8];                                                                                              \
            for (int i = 0; i < 8; i++) a[i] = _mm256_loadu_ps(acc + j + 8 * i);                                      \
            for (int64_t r = 0; r < nrows; r++) {                                                                     \
                const T * p = reinterpret_cast<const T *>(at(rows, stride, r)) + j;                                   \
                const __m256 wr = _mm256_set1_ps(w[r]);                                                               \
                for (int i = 0; i < 8; i++) a[i] = _mm256_fmadd_ps(wr, LOAD(p + 8 * i), a[i]);                        \
            }                                                                                                         \
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(acc + j + 8 * i, a[i]);                                      \
        }                                                                                                             \
        for (; j + 8 <= n; j += 8) {                                                                                  \
            __m256 a = _mm256_loadu_ps(acc + j);                                                                      \
            for (int64_t r = 0; r < nrows; r++) {                                                                     \
                a = _mm256_fmadd_ps(_mm256_set1_ps(w[r]), LOAD(reinterpret_cast<const T *>(at(rows, stride, r)) + j), \
                                    a);                                                                               \
            }                                                                                                         \
            _mm256_storeu_ps(acc + j, a);                                                                             \
        }                                                                                                             \
        for (; j < n; j++) {                                                                                          \
            float a = acc[j];                                                                                         \
            for (int64_t r = 0; r < nrows; r++)                                                                       \
                a += w[r] * ELEM(reinterpret_cast<const T *>(at(rows, stride, r)) + j);                               \
            acc[j] = a;                                                                                               \
        }                                                                                                             \
    }

LOOPLM_KV_FLOAT(f32, float, load_f32, elem_f32)
LOOPLM_KV_FLOAT(f16, uint16_t, load_f16, elem_f16)

// Quantized rows (B = block type, FLOATS = its quants as 4 x 8 floats), n a multiple of 32.
#define LOOPLM_KV_QUANT(NAME, B, FLOATS)                                                                      \
    void kv_scores_##NAME##_avx2(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q, \
                                 float scale, float * out) {                                                  \
        const int64_t nb = n / QK;                                                                            \
        int64_t r = 0;                                                                                        \
        for (; r + 8 <= nrows; r += 8) {                                                                      \
            const B * p[8];                                                                                   \
            __m256 acc[8];                                                                                    \
            for (int i = 0; i < 8; i++) {                                                                     \
                p[i] = reinterpret_cast<const B *>(at(rows, stride, r + i));                                  \
                acc[i] = _mm256_setzero_ps();                                                                 \
            }                                                                                                 \
            for (int64_t b = 0; b < nb; b++) {                                                                \
                const float * x = q + b * QK;                                                                 \
                const __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);                            \
                const __m256 x2 = _mm256_loadu_ps(x + 16), x3 = _mm256_loadu_ps(x + 24);                      \
                for (int i = 0; i < 8; i++) {                                                                 \
                    __m256 f[4];                                                                              \
                    FLOATS(p[i] + b, f);                                                                      \
                    __m256 s = _mm256_mul_ps(f[0], x0);                                                       \
                    s = _mm256_fmadd_ps(f[1], x1, s);                                                         \
                    s = _mm256_fmadd_ps(f[2], x2, s);                                                         \
                    s = _mm256_fmadd_ps(f[3], x3, s);                                                         \
                    acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(p[i][b].d)), s, acc[i]);                \
                }                                                                                             \
            }                                                                                                 \
            _mm256_storeu_ps(out + r, _mm256_mul_ps(reduce8(acc), _mm256_set1_ps(scale)));                    \
        }                                                                                                     \
        for (; r < nrows; r++) {                                                                              \
            const B * p = reinterpret_cast<const B *>(at(rows, stride, r));                                   \
            __m256 acc = _mm256_setzero_ps();                                                                 \
            for (int64_t b = 0; b < nb; b++) {                                                                \
                const float * x = q + b * QK;                                                                 \
                __m256 f[4];                                                                                  \
                FLOATS(p + b, f);                                                                             \
                __m256 s = _mm256_mul_ps(f[0], _mm256_loadu_ps(x));                                           \
                for (int i = 1; i < 4; i++) s = _mm256_fmadd_ps(f[i], _mm256_loadu_ps(x + 8 * i), s);         \
                acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(p[b].d)), s, acc);                             \
            }                                                                                                 \
            out[r] = scale * hsum(acc);                                                                       \
        }                                                                                                     \
    }                                                                                                         \
    void kv_wsum_##NAME##_avx2(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w,   \
                               float * acc) {                                                                 \
        const int64_t nb = n / QK;                                                                            \
        int64_t b = 0;                                                                                        \
        for (; b + 2 <= nb; b += 2) {                                                                         \
            float * y = acc + b * QK;                                                                         \
            __m256 a[8];                                                                                      \
            for (int i = 0; i < 8; i++) a[i] = _mm256_loadu_ps(y + 8 * i);                                    \
            for (int64_t r = 0; r < nrows; r++) {                                                             \
                const B * p = reinterpret_cast<const B *>(at(rows, stride, r)) + b;                           \
                __m256 f[4];                                                                                  \
                FLOATS(p, f);                                                                                 \
                const __m256 w0 = _mm256_set1_ps(w[r] * _cvtsh_ss(p[0].d));                                   \
                for (int i = 0; i < 4; i++) a[i] = _mm256_fmadd_ps(w0, f[i], a[i]);                           \
                FLOATS(p + 1, f);                                                                             \
                const __m256 w1 = _mm256_set1_ps(w[r] * _cvtsh_ss(p[1].d));                                   \
                for (int i = 0; i < 4; i++) a[4 + i] = _mm256_fmadd_ps(w1, f[i], a[4 + i]);                   \
            }                                                                                                 \
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(y + 8 * i, a[i]);                                    \
        }                                                                                                     \
        if (b < nb) {                                                                                         \
            float * y = acc + b * QK;                                                                         \
            __m256 a[4];                                                                                      \
            for (int i = 0; i < 4; i++) a[i] = _mm256_loadu_ps(y + 8 * i);                                    \
            for (int64_t r = 0; r < nrows; r++) {                                                             \
                const B * p = reinterpret_cast<const B *>(at(rows, stride, r)) + b;                           \
                __m256 f[4];                                                                                  \
                FLOATS(p, f);                                                                                 \
                const __m256 w0 = _mm256_set1_ps(w[r] * _cvtsh_ss(p->d));                                     \
                for (int i = 0; i < 4; i++) a[i] = _mm256_fmadd_ps(w0, f[i], a[i]);                           \
            }                                                                                                 \
            for (int i = 0; i < 4; i++) _mm256_storeu_ps(y + 8 * i, a[i]);                                    \
        }                                                                                                     \
    }

LOOPLM_KV_QUANT(q8_0, block_q8_0, q8_floats)
LOOPLM_KV_QUANT(q4_0, block_q4_0, q4_floats)

float kv_exp_sum_avx2(int64_t n, float * x, float m) {
    const __m256 vm = _mm256_set1_ps(m);
    __m256 sum = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    float s = hsum(sum);
    for (; i < n; i++) {
        x[i] = __builtin_expf(x[i] - m);
        s += x[i];
    }
    return s;
}

}  // namespace looplm
