// kernels/x86/kv_avx2.cpp - AVX2 + FMA + F16C kernels of quantized KV rows (kernels/kv_rows.h):
// the int8 quants widened to f32 and multiplied with the f32 query / accumulated into the f32
// output, 8 lanes at a time. Compiled with -mavx2 -mfma -mf16c only for this file; see the
// SIGILL note in kernels/kernels.h (static helpers, no STL, no templates).
#include <immintrin.h>

#include "kernels/kv_rows.h"
#include "quant/blocks.h"

namespace looplm {

namespace {

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 8 int8 -> 8 floats
static inline __m256 cvt8(__m128i b) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)); }

// The 32 quants of a Q4_0 block minus 8 as int8: elements 0..15 in lo, 16..31 in hi.
static inline void q4_bytes(const uint8_t * qs, __m128i & lo, __m128i & hi) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i *>(qs));
    const __m128i m = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    lo = _mm_sub_epi8(_mm_and_si128(raw, m), eight);
    hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m), eight);
}

}  // namespace

float kv_dot_q8_0_avx2(int64_t n, const void * vk, const float * x) {
    const block_q8_0 * k = static_cast<const block_q8_0 *>(vk);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(k[b].qs));
        const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(k[b].qs + 16));
        __m256 s = _mm256_mul_ps(cvt8(q0), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(q0, 8)), _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(cvt8(q1), _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(q1, 8)), _mm256_loadu_ps(x + 24), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(k[b].d)), s, acc);
    }
    return hsum(acc);
}

float kv_dot_q4_0_avx2(int64_t n, const void * vk, const float * x) {
    const block_q4_0 * k = static_cast<const block_q4_0 *>(vk);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        __m128i lo, hi;
        q4_bytes(k[b].qs, lo, hi);
        __m256 s = _mm256_mul_ps(cvt8(lo), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(cvt8(hi), _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(x + 24), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(k[b].d)), s, acc);
    }
    return hsum(acc);
}

void kv_axpy_q8_0_avx2(int64_t n, float a, const void * vx, float * y) {
    const block_q8_0 * x = static_cast<const block_q8_0 *>(vx);
    for (int64_t b = 0; b < n / QK; b++, y += QK) {
        const __m256 ad = _mm256_set1_ps(a * _cvtsh_ss(x[b].d));
        const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(x[b].qs));
        const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(x[b].qs + 16));
        _mm256_storeu_ps(y, _mm256_fmadd_ps(ad, cvt8(q0), _mm256_loadu_ps(y)));
        _mm256_storeu_ps(y + 8, _mm256_fmadd_ps(ad, cvt8(_mm_srli_si128(q0, 8)), _mm256_loadu_ps(y + 8)));
        _mm256_storeu_ps(y + 16, _mm256_fmadd_ps(ad, cvt8(q1), _mm256_loadu_ps(y + 16)));
        _mm256_storeu_ps(y + 24, _mm256_fmadd_ps(ad, cvt8(_mm_srli_si128(q1, 8)), _mm256_loadu_ps(y + 24)));
    }
}

void kv_axpy_q4_0_avx2(int64_t n, float a, const void * vx, float * y) {
    const block_q4_0 * x = static_cast<const block_q4_0 *>(vx);
    for (int64_t b = 0; b < n / QK; b++, y += QK) {
        const __m256 ad = _mm256_set1_ps(a * _cvtsh_ss(x[b].d));
        __m128i lo, hi;
        q4_bytes(x[b].qs, lo, hi);
        _mm256_storeu_ps(y, _mm256_fmadd_ps(ad, cvt8(lo), _mm256_loadu_ps(y)));
        _mm256_storeu_ps(y + 8, _mm256_fmadd_ps(ad, cvt8(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(y + 8)));
        _mm256_storeu_ps(y + 16, _mm256_fmadd_ps(ad, cvt8(hi), _mm256_loadu_ps(y + 16)));
        _mm256_storeu_ps(y + 24, _mm256_fmadd_ps(ad, cvt8(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(y + 24)));
    }
}

}  // namespace looplm
