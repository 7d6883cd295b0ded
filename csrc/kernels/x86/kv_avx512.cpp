// kernels/x86/kv_avx512.cpp - AVX-512 kernels of runs of KV cache rows (kernels/kv_rows.h), as
// kv_avx2.cpp with 16 lanes: scores 8 rows per pass (q sliced once per pass, masked loads for
// the float rows' tail), weighted sums 128 output columns in 8 accumulators over the whole run.
// Compiled with the AVX-512 flags only for this file; see the SIGILL note in kernels/kernels.h.
// GCC 12's avx512fintrin.h leaves the pass-through operand of the unmasked conversions
// undefined on purpose, and then warns about it when they are inlined here.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/kv_rows.h"
#include "quant/blocks.h"

namespace looplm {

namespace {

// The 8 horizontal sums of a[0..7] as one 8-lane vector (lane i = sum of a[i]).
static inline __m256 reduce8(const __m512 * a) {
    __m256 h[8];
    for (int i = 0; i < 8; i++)
        h[i] = _mm256_add_ps(_mm512_castps512_ps256(a[i]),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a[i]), 1)));
    const __m256 s01 = _mm256_hadd_ps(h[0], h[1]), s23 = _mm256_hadd_ps(h[2], h[3]);
    const __m256 s45 = _mm256_hadd_ps(h[4], h[5]), s67 = _mm256_hadd_ps(h[6], h[7]);
    const __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
    const __m256 lo = _mm256_permute2f128_ps(s0123, s4567, 0x20), hi = _mm256_permute2f128_ps(s0123, s4567, 0x31);
    return _mm256_add_ps(lo, hi);
}

// 16 elements (the first `m` lanes where masked; the rest read as 0).
static inline __m512 load_f16(const uint16_t * p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
}
static inline __m512 load_f32(const float * p) { return _mm512_loadu_ps(p); }
static inline __m512 mload_f16(__mmask16 m, const uint16_t * p) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
static inline __m512 mload_f32(__mmask16 m, const float * p) { return _mm512_maskz_loadu_ps(m, p); }

static inline __m512 cvt16(__m128i b) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)); }

// A block's 32 quants as 2 x 16 floats in element order (Q4_0: minus 8; byte j holds j, j + 16).
static inline void q8_floats(const block_q8_0 * b, __m512 * f) {
    f[0] = cvt16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(b->qs)));
    f[1] = cvt16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(b->qs + 16)));
}

static inline void q4_floats(const block_q4_0 * b, __m512 * f) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b->qs));
    const __m128i m = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    f[0] = cvt16(_mm_sub_epi8(_mm_and_si128(raw, m), eight));
    f[1] = cvt16(_mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m), eight));
}

static inline const uint8_t * at(const void * rows, size_t stride, int64_t r) {
    return static_cast<const uint8_t *>(rows) + static_cast<size_t>(r) * stride;
}

}  // namespace

// Float rows (T = float / uint16_t), any n: the tail of n % 16 elements by masked loads.
#define LOOPLM_KV_FLOAT(NAME, T, LOAD, MLOAD)                                                                     \
    void kv_scores_##NAME##_avx512(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q,   \
                                   float scale, float * out) {                                                    \
        const int64_t nv = n & ~int64_t(15);                                                                      \
        const __mmask16 tail = static_cast<__mmask16>((1u << (n - nv)) - 1);                                      \
        int64_t r = 0;                                                                                            \
        for (; r + 8 <= nrows; r += 8) {                                                                          \
            const T * p[8];                                                                                       \
            __m512 acc[8];                                                                                        \
            for (int i = 0; i < 8; i++) {                                                                         \
                p[i] = reinterpret_cast<const T *>(at(rows, stride, r + i));                                      \
                acc[i] = _mm512_setzero_ps();                                                                     \
            }                                                                                                     \
            for (int64_t j = 0; j < nv; j += 16) {                                                                \
                const __m512 x = _mm512_loadu_ps(q + j);                                                          \
                for (int i = 0; i < 8; i++) acc[i] = _mm512_fmadd_ps(LOAD(p[i] + j), x, acc[i]);                  \
            }                                                                                                     \
            if (tail) {                                                                                           \
                const __m512 x = _mm512_maskz_loadu_ps(tail, q + nv);                                             \
                for (int i = 0; i < 8; i++) acc[i] = _mm512_fmadd_ps(MLOAD(tail, p[i] + nv), x, acc[i]);          \
            }                                                                                                     \
            _mm256_storeu_ps(out + r, _mm256_mul_ps(reduce8(acc), _mm256_set1_ps(scale)));                        \
        }                                                                                                         \
        for (; r < nrows; r++) {                                                                                  \
            const T * p = reinterpret_cast<const T *>(at(rows, stride, r));                                       \
            __m512 acc = _mm512_setzero_ps();                                                                     \
            for (int64_t j = 0; j < nv; j += 16) acc = _mm512_fmadd_ps(LOAD(p + j), _mm512_loadu_ps(q + j), acc); \
            if (tail) acc = _mm512_fmadd_ps(MLOAD(tail, p + nv), _mm512_maskz_loadu_ps(tail, q + nv), acc);       \
            out[r] = scale * _mm512_reduce_add_ps(acc);                                                           \
        }                                                                                                         \
    }                                                                                                             \
    void kv_wsum_##NAME##_avx512(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w,     \
                                 float * acc) {                                                                   \
        int64_t j = 0;                                                                                            \
        for (; j + 128 <= n; j += 128) {                                                                          \
            __m512 a[8];                                                                                          \
            for (int i = 0; i < 8; i++) a[i] = _mm512_loadu_ps(acc + j + 16 * i);                                 \
            for (int64_t r = 0; r < nrows; r++) {                                                                 \
                const T * p = reinterpret_cast<const T *>(at(rows, stride, r)) + j;                               \
                const __m512 wr = _mm512_set1_ps(w[r]);                                                           \
                for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(wr, LOAD(p + 16 * i), a[i]);                   \
            }                                                                                                     \
            for (int i = 0; i < 8; i++) _mm512_storeu_ps(acc + j + 16 * i, a[i]);                                 \
        }                                                                                                         \
        for (; j < n; j += 16) {                                                                                  \
            const __mmask16 m = static_cast<__mmask16>(n - j >= 16 ? 0xffff : (1u << (n - j)) - 1);               \
            __m512 a = _mm512_maskz_loadu_ps(m, acc + j);                                                         \
            for (int64_t r = 0; r < nrows; r++) {                                                                 \
                a = _mm512_fmadd_ps(_mm512_set1_ps(w[r]),                                                         \
                                    MLOAD(m, reinterpret_cast<const T *>(at(rows, stride, r)) + j), a);           \
            }                                                                                                     \
            _mm512_mask_storeu_ps(acc + j, m, a);                                                                 \
        }                                                                                                         \
    }

LOOPLM_KV_FLOAT(f32, float, load_f32, mload_f32)
LOOPLM_KV_FLOAT(f16, uint16_t, load_f16, mload_f16)

// Quantized rows (B = block type, FLOATS = its quants as 2 x 16 floats), n a multiple of 32.
#define LOOPLM_KV_QUANT(NAME, B, FLOATS)                                                                        \
    void kv_scores_##NAME##_avx512(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q, \
                                   float scale, float * out) {                                                  \
        const int64_t nb = n / QK;                                                                              \
        int64_t r = 0;                                                                                          \
        for (; r + 8 <= nrows; r += 8) {                                                                        \
            const B * p[8];                                                                                     \
            __m512 acc[8];                                                                                      \
            for (int i = 0; i < 8; i++) {                                                                       \
                p[i] = reinterpret_cast<const B *>(at(rows, stride, r + i));                                    \
                acc[i] = _mm512_setzero_ps();                                                                   \
            }                                                                                                   \
            for (int64_t b = 0; b < nb; b++) {                                                                  \
                const __m512 x0 = _mm512_loadu_ps(q + b * QK), x1 = _mm512_loadu_ps(q + b * QK + 16);           \
                for (int i = 0; i < 8; i++) {                                                                   \
                    __m512 f[2];                                                                                \
                    FLOATS(p[i] + b, f);                                                                        \
                    const __m512 s = _mm512_fmadd_ps(f[1], x1, _mm512_mul_ps(f[0], x0));                        \
                    acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(p[i][b].d)), s, acc[i]);                  \
                }                                                                                               \
            }                                                                                                   \
            _mm256_storeu_ps(out + r, _mm256_mul_ps(reduce8(acc), _mm256_set1_ps(scale)));                      \
        }                                                                                                       \
        for (; r < nrows; r++) {                                                                                \
            const B * p = reinterpret_cast<const B *>(at(rows, stride, r));                                     \
            __m512 acc = _mm512_setzero_ps();                                                                   \
            for (int64_t b = 0; b < nb; b++) {                                                                  \
                __m512 f[2];                                                                                    \
                FLOATS(p + b, f);                                                                               \
                const __m512 s = _mm512_fmadd_ps(f[1], _mm512_loadu_ps(q + b * QK + 16),                        \
                                                 _mm512_mul_ps(f[0], _mm512_loadu_ps(q + b * QK)));             \
                acc = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(p[b].d)), s, acc);                               \
            }                                                                                                   \
            out[r] = scale * _mm512_reduce_add_ps(acc);                                                         \
        }                                                                                                       \
    }                                                                                                           \
    void kv_wsum_##NAME##_avx512(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w,   \
                                 float * acc) {                                                                 \
        const int64_t nb = n / QK;                                                                              \
        int64_t b = 0;                                                                                          \
        for (; b + 4 <= nb; b += 4) {                                                                           \
            float * y = acc + b * QK;                                                                           \
            __m512 a[8];                                                                                        \
            for (int i = 0; i < 8; i++) a[i] = _mm512_loadu_ps(y + 16 * i);                                     \
            for (int64_t r = 0; r < nrows; r++) {                                                               \
                const B * p = reinterpret_cast<const B *>(at(rows, stride, r)) + b;                             \
                for (int k = 0; k < 4; k++) {                                                                   \
                    __m512 f[2];                                                                                \
                    FLOATS(p + k, f);                                                                           \
                    const __m512 wk = _mm512_set1_ps(w[r] * _cvtsh_ss(p[k].d));                                 \
                    a[2 * k] = _mm512_fmadd_ps(wk, f[0], a[2 * k]);                                             \
                    a[2 * k + 1] = _mm512_fmadd_ps(wk, f[1], a[2 * k + 1]);                                     \
                }                                                                                               \
            }                                                                                                   \
            for (int i = 0; i < 8; i++) _mm512_storeu_ps(y + 16 * i, a[i]);                                     \
        }                                                                                                       \
        for (; b < nb; b++) {                                                                                   \
            float * y = acc + b * QK;                                                                           \
            __m512 a0 = _mm512_loadu_ps(y), a1 = _mm512_loadu_ps(y + 16);                                       \
            for (int64_t r = 0; r < nrows; r++) {                                                               \
                const B * p = reinterpret_cast<const B *>(at(rows, stride, r)) + b;                             \
                __m512 f[2];                                                                                    \
                FLOATS(p, f);                                                                                   \
                const __m512 wk = _mm512_set1_ps(w[r] * _cvtsh_ss(p->d));                                       \
                a0 = _mm512_fmadd_ps(wk, f[0], a0);                                                             \
                a1 = _mm512_fmadd_ps(wk, f[1], a1);                                                             \
            }                                                                                                   \
            _mm512_storeu_ps(y, a0);                                                                            \
            _mm512_storeu_ps(y + 16, a1);                                                                       \
        }                                                                                                       \
    }

LOOPLM_KV_QUANT(q8_0, block_q8_0, q8_floats)
LOOPLM_KV_QUANT(q4_0, block_q4_0, q4_floats)

}  // namespace looplm
