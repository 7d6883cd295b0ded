// kernels/x86/avx2.cpp - AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c only
// for this file; see the SIGILL note in kernels/kernels.h (static helpers, no STL, no templates).
#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/kpack.h"
#include "kernels/kscales.h"
#include "kernels/kv_rows.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace looplm {

namespace {

static inline int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t f2h(float f) { return static_cast<uint16_t>(_cvtss_sh(f, 0)); }

#include "kernels/x86/qgemm.inc"

// Quantizes 32 floats to a block_q8_s exactly as quantize_row_q8_s_ref does: d = amax / 127
// rounded to fp16, q = round half away from zero of x * (1 / d), plus ds and bias8.
static inline void quantize_block(const float * x, block_q8_s * y) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float d = _mm_cvtss_f32(m4) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    const __m256 half = _mm256_set1_ps(0.49999997f);  // nextafter(0.5, 0): exact roundf
    v0 = _mm256_mul_ps(v0, vid);
    v1 = _mm256_mul_ps(v1, vid);
    v2 = _mm256_mul_ps(v2, vid);
    v3 = _mm256_mul_ps(v3, vid);
    v0 = _mm256_add_ps(v0, _mm256_or_ps(_mm256_and_ps(v0, sign), half));
    v1 = _mm256_add_ps(v1, _mm256_or_ps(_mm256_and_ps(v1, sign), half));
    v2 = _mm256_add_ps(v2, _mm256_or_ps(_mm256_and_ps(v2, sign), half));
    v3 = _mm256_add_ps(v3, _mm256_or_ps(_mm256_and_ps(v3, sign), half));
    __m256i i0 = _mm256_cvttps_epi32(v0), i1 = _mm256_cvttps_epi32(v1);
    __m256i i2 = _mm256_cvttps_epi32(v2), i3 = _mm256_cvttps_epi32(v3);
    // pack 4x8 int32 -> 32 int8 and undo the lane interleave of the packs
    i0 = _mm256_packs_epi32(i0, i1);
    i2 = _mm256_packs_epi32(i2, i3);
    i0 = _mm256_packs_epi16(i0, i2);
    const __m256i q = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(y->qs), q);
    // per-lane sums of 4 quants: bias = -8 * lane (x16 for lanes 4..7), ds = d * sum
    const __m256i lanes = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
    const __m256i bias = _mm256_sllv_epi32(lanes, _mm256_setr_epi32(3, 3, 3, 3, 7, 7, 7, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(y->bias), _mm256_sub_epi32(_mm256_setzero_si256(), bias));
    y->d = _cvtsh_ss(static_cast<uint16_t>(_cvtss_sh(d, 0)));
    y->ds = y->d * static_cast<float>(hsum_epi32(lanes));
}

static void quantize_q8(const float * x, void * vy, int64_t n) {
    block_q8_s * y = static_cast<block_q8_s *>(vy);
    for (int64_t b = 0; b < n / QK; b++) quantize_block(x + b * QK, y + b);
}

// 32 nibbles -> 32 bytes in element order: low nibbles (elements 0..15) in the low lane,
// high nibbles (16..31) in the high lane.
static inline __m256i unpack_nibbles(const uint8_t * qs) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i *>(qs));
    const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0f));
}

// int32x8 sums of 4 adjacent u8 * s8 products (lane i: elements 4i..4i+3).
static inline __m256i dot_u8_s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// One block of one row against one activation block. Q4_0: the plain nibbles 0..15 (u8), the
// -8 offset from the activation's bias lanes; lanes 4..7 of block_q8_s::bias are stored x16,
// so they are shifted back.
static inline __m256i bias8(const block_q8_s & x) {
    return _mm256_srav_epi32(load256(x.bias), _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
}

static inline QW prep_q4_0(const block_q4_0 & w) { return {unpack_nibbles(w.qs), _mm256_setzero_si256()}; }
static inline __m256i idot_q4_0(const QW & q, const block_q8_s & x) {
    return _mm256_add_epi32(dot_u8_s8(q.a, load256(x.qs)), bias8(x));
}
static inline void min_q4_0(const block_q4_0 &, const block_q8_s &, float &) {}
static inline __m256 lanes_q4_0() { return _mm256_set1_ps(1.0f); }

// Q4_1: the plain nibbles; the minimum comes from the activation's precomputed ds.
static inline QW prep_q4_1(const block_q4_1 & w) { return {unpack_nibbles(w.qs), _mm256_setzero_si256()}; }
static inline __m256i idot_q4_1(const QW & q, const block_q8_s & x) { return dot_u8_s8(q.a, load256(x.qs)); }
static inline void min_q4_1(const block_q4_1 & w, const block_q8_s & x, float & m) { m += h2f(w.m) * x.ds; }
static inline __m256 lanes_q4_1() { return _mm256_set1_ps(1.0f); }

// Q8_0: maddubs wants u8 x s8, so |w| times sign(w) * x.
static inline QW prep_q8_0(const block_q8_0 & w) {
    const __m256i q = load256(w.qs);
    return {_mm256_sign_epi8(q, q), q};
}
static inline __m256i idot_q8_0(const QW & q, const block_q8_s & x) {
    return dot_u8_s8(q.a, _mm256_sign_epi8(load256(x.qs), q.b));
}
static inline void min_q8_0(const block_q8_0 &, const block_q8_s &, float &) {}
static inline __m256 lanes_q8_0() { return _mm256_set1_ps(1.0f); }

LOOPLM_QGEMM(q4_0, block_q4_0, true)
LOOPLM_QGEMM(q4_1, block_q4_1, false)
LOOPLM_QGEMM(q8_0, block_q8_0, false)

#include "kernels/x86/kquants.inc"

#define LOOPLM_KDOT4(acc, x, w) _mm256_add_epi32((acc), dot_u8_s8((x), (w)))
#define LOOPLM_KROWS 4
#include "kernels/x86/kgemm.inc"
#undef LOOPLM_KDOT4
#undef LOOPLM_KROWS

// Q5_0: the five-bit quants 0..31 (u8), the -16 offset from twice the activation's -8 bias.
static inline QW prep_q5_0(const block_q5_0 & w) { return {q5_bytes(w.qs, w.qh), _mm256_setzero_si256()}; }
static inline __m256i idot_q5_0(const QW & q, const block_q8_s & x) {
    return _mm256_add_epi32(dot_u8_s8(q.a, load256(x.qs)), _mm256_slli_epi32(bias8(x), 1));
}
static inline void min_q5_0(const block_q5_0 &, const block_q8_s &, float &) {}
static inline __m256 lanes_q5_0() { return _mm256_set1_ps(1.0f); }

// Q5_1: the five-bit quants; the minimum from the activation's ds, as Q4_1.
static inline QW prep_q5_1(const block_q5_1 & w) { return {q5_bytes(w.qs, w.qh), _mm256_setzero_si256()}; }
static inline __m256i idot_q5_1(const QW & q, const block_q8_s & x) { return dot_u8_s8(q.a, load256(x.qs)); }
static inline void min_q5_1(const block_q5_1 & w, const block_q8_s & x, float & m) { m += h2f(w.m) * x.ds; }
static inline __m256 lanes_q5_1() { return _mm256_set1_ps(1.0f); }

LOOPLM_QGEMM(q5_0, block_q5_0, true)
LOOPLM_QGEMM(q5_1, block_q5_1, false)

static inline __m256 load_f16(const uint16_t * p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
}

static inline __m256 load_bf16(const uint16_t * p) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static float dot_f16_f32(int64_t n, const uint16_t * a, const float * b) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(load_f16(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(load_f16(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load_f16(a + i), _mm256_loadu_ps(b + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += h2f(a[i]) * b[i];
    return sum;
}

static float dot_bf16_f32(int64_t n, const uint16_t * a, const float * b) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(load_bf16(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(load_bf16(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load_bf16(a + i), _mm256_loadu_ps(b + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += bf16_to_fp32(a[i]) * b[i];
    return sum;
}

static float dot_f32(int64_t n, const float * a, const float * b) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void f32_to_f16(int64_t n, const float * x, uint16_t * y) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm_storeu_si128(reinterpret_cast<__m128i *>(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), 0));
    }
    for (; i < n; i++) y[i] = f2h(x[i]);
}

#include "kernels/x86/exp_ps.inc"

static void silu_mul(int64_t n, float * g, const float * u) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 den = _mm256_add_ps(_mm256_set1_ps(1.0f), exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x)));
        _mm256_storeu_ps(g + i, _mm256_div_ps(_mm256_mul_ps(x, _mm256_loadu_ps(u + i)), den));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + __builtin_expf(-g[i])) * u[i];
}

LOOPLM_FLOAT_GEMMS

}  // namespace

// x16_avx2.cpp
void gemm_q4_0x16_avx2(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);
void gemm_q4_1x16_avx2(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);
void gemm_q4_Kx16_avx2(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);
void gemm_q6_Kx16_avx2(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);

extern const Kernels kernels_avx2 = {
    "avx2",
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
    nullptr,
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
    gemm_q4_0x16_avx2,
    gemm_q4_1x16_avx2,
    gemm_q4_Kx16_avx2,
    gemm_q6_Kx16_avx2,  // the x16 layout (x16_avx2.cpp)
    pack_x8k_ref,
    packed_x8k_bytes_ref,
    gemm8_q4_K,
    gemm8_q5_K,
    gemm8_q6_K,                     // kgemm.inc, maddubs
    LOOPLM_KV_ENTRIES(kv_, _avx2),  // attention over runs of KV rows (kv_avx2.cpp)
};

}  // namespace looplm
