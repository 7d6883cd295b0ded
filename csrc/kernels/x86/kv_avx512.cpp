// kernels/x86/kv_avx512.cpp - AVX-512 kernels of quantized KV rows (kernels/kv_rows.h): 16 int8
// quants widened to 16 floats per instruction, so a 32-element block is two FMAs. Compiled
// with the AVX-512 flags only for this file; see the SIGILL note in kernels/kernels.h.
#include <immintrin.h>

#include "kernels/kv_rows.h"
#include "quant/blocks.h"

namespace looplm {

namespace {

static inline __m512 cvt16(__m128i b) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)); }

static inline void q4_bytes(const uint8_t * qs, __m128i & lo, __m128i & hi) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i *>(qs));
    const __m128i m = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    lo = _mm_sub_epi8(_mm_and_si128(raw, m), eight);
    hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(raw, 4), m), eight);
}

}  // namespace

float kv_dot_q8_0_avx512(int64_t n, const void * vk, const float * x) {
    const block_q8_0 * k = static_cast<const block_q8_0 *>(vk);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(k[b].qs));
        const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(k[b].qs + 16));
        const __m512 s =
            _mm512_fmadd_ps(cvt16(q1), _mm512_loadu_ps(x + 16), _mm512_mul_ps(cvt16(q0), _mm512_loadu_ps(x)));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(k[b].d)), s, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

float kv_dot_q4_0_avx512(int64_t n, const void * vk, const float * x) {
    const block_q4_0 * k = static_cast<const block_q4_0 *>(vk);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        __m128i lo, hi;
        q4_bytes(k[b].qs, lo, hi);
        const __m512 s =
            _mm512_fmadd_ps(cvt16(hi), _mm512_loadu_ps(x + 16), _mm512_mul_ps(cvt16(lo), _mm512_loadu_ps(x)));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(_cvtsh_ss(k[b].d)), s, acc);
    }
    return _mm512_reduce_add_ps(acc);
}

void kv_axpy_q8_0_avx512(int64_t n, float a, const void * vx, float * y) {
    const block_q8_0 * x = static_cast<const block_q8_0 *>(vx);
    for (int64_t b = 0; b < n / QK; b++, y += QK) {
        const __m512 ad = _mm512_set1_ps(a * _cvtsh_ss(x[b].d));
        const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(x[b].qs));
        const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(x[b].qs + 16));
        _mm512_storeu_ps(y, _mm512_fmadd_ps(ad, cvt16(q0), _mm512_loadu_ps(y)));
        _mm512_storeu_ps(y + 16, _mm512_fmadd_ps(ad, cvt16(q1), _mm512_loadu_ps(y + 16)));
    }
}

void kv_axpy_q4_0_avx512(int64_t n, float a, const void * vx, float * y) {
    const block_q4_0 * x = static_cast<const block_q4_0 *>(vx);
    for (int64_t b = 0; b < n / QK; b++, y += QK) {
        const __m512 ad = _mm512_set1_ps(a * _cvtsh_ss(x[b].d));
        __m128i lo, hi;
        q4_bytes(x[b].qs, lo, hi);
        _mm512_storeu_ps(y, _mm512_fmadd_ps(ad, cvt16(lo), _mm512_loadu_ps(y)));
        _mm512_storeu_ps(y + 16, _mm512_fmadd_ps(ad, cvt16(hi), _mm512_loadu_ps(y + 16)));
    }
}

}  // namespace looplm
