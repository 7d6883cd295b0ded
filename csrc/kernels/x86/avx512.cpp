// kernels/x86/avx512.cpp - AVX-512 (F, BW, VL) + VNNI kernels. The integer dot products use
// vpdpbusd (u8 x s8 -> s32 in one step) on 256-bit vectors, as ggml's per-row kernels do;
// Q4_0/Q4_1 nibbles are used in place (see q4_bytes). Compiled with the AVX-512 flags only
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

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

#include "kernels/x86/qgemm.inc"

// The 16 bytes of a Q4/Q4_1 block as 32 unsigned bytes without unpacking: the low lane holds
// the low nibbles (elements 0..15), the high lane the high nibbles in place, i.e. 16 x
// elements 16..31. Dot-product lanes 4..7 are therefore 16x too; block_q8_s::bias is stored
// to match, and each row's sum scales those lanes by 1/16 once (exact: a power of two).
static inline __m256i q4_bytes(const uint8_t * qs) {
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(qs)));
    return _mm256_and_si256(
        t, _mm256_setr_epi64x(0x0f0f0f0f0f0f0f0fll, 0x0f0f0f0f0f0f0f0fll, static_cast<long long>(0xf0f0f0f0f0f0f0f0ull),
                              static_cast<long long>(0xf0f0f0f0f0f0f0f0ull)));
}

static inline __m256 lane_scale() { return _mm256_setr_ps(1, 1, 1, 1, 0.0625f, 0.0625f, 0.0625f, 0.0625f); }

// -128 * (x lane sums): the offset of a Q8_0 weight flipped to unsigned (w ^ 0x80 = w + 128).
static inline __m256i bias128(const block_q8_s & x) {
    return _mm256_sllv_epi32(load256(x.bias), _mm256_setr_epi32(4, 4, 4, 4, 0, 0, 0, 0));
}

// Per type, one block of one row against one activation block (see qgemm.inc).
// Q4_0: the nibbles in place; vpdpbusd starts from the activation's bias lanes (the -8 offset).
static inline QW prep_q4_0(const block_q4_0 & w) { return {q4_bytes(w.qs), _mm256_setzero_si256()}; }
static inline __m256i idot_q4_0(const QW & q, const block_q8_s & x) {
    return _mm256_dpbusd_epi32(load256(x.bias), q.a, load256(x.qs));
}
static inline void min_q4_0(const block_q4_0 &, const block_q8_s &, float &) {}
static inline __m256 lanes_q4_0() { return lane_scale(); }

// Q4_1: the nibbles in place, no offset; the minimum comes from the activation's ds.
static inline QW prep_q4_1(const block_q4_1 & w) { return {q4_bytes(w.qs), _mm256_setzero_si256()}; }
static inline __m256i idot_q4_1(const QW & q, const block_q8_s & x) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), q.a, load256(x.qs));
}
static inline void min_q4_1(const block_q4_1 & w, const block_q8_s & x, float & m) { m += h2f(w.m) * x.ds; }
static inline __m256 lanes_q4_1() { return lane_scale(); }

// Q8_0: the weight flipped to unsigned (w ^ 0x80 = w + 128), the offset from bias128.
static inline QW prep_q8_0(const block_q8_0 & w) {
    return {_mm256_xor_si256(load256(w.qs), _mm256_set1_epi8(static_cast<char>(0x80))), _mm256_setzero_si256()};
}
static inline __m256i idot_q8_0(const QW & q, const block_q8_s & x) {
    return _mm256_dpbusd_epi32(bias128(x), q.a, load256(x.qs));
}
static inline void min_q8_0(const block_q8_0 &, const block_q8_s &, float &) {}
static inline __m256 lanes_q8_0() { return _mm256_set1_ps(1.0f); }

LOOPLM_QGEMM(q4_0, block_q4_0, true)
LOOPLM_QGEMM(q4_1, block_q4_1, false)
LOOPLM_QGEMM(q8_0, block_q8_0, false)

#include "kernels/x86/kquants.inc"

#define LOOPLM_KDOT4(acc, x, w) _mm256_dpbusd_epi32((acc), (x), (w))
#define LOOPLM_KROWS 8
#include "kernels/x86/kgemm.inc"
#undef LOOPLM_KDOT4
#undef LOOPLM_KROWS

// Q5_0: the five-bit quants 0..31 unpacked (no nibble-in-place trick: the fifth bit of the
// high elements would land in bit 8); vpdpbusd starts from -16 x the lane sums (the bias
// lanes doubled; lanes 4..7, stored x16 of -8, divided by 8).
static inline QW prep_q5_0(const block_q5_0 & w) { return {q5_bytes(w.qs, w.qh), _mm256_setzero_si256()}; }
static inline __m256i idot_q5_0(const QW & q, const block_q8_s & x) {
    const __m256i b16 = _mm256_srav_epi32(_mm256_sllv_epi32(load256(x.bias), _mm256_setr_epi32(1, 1, 1, 1, 0, 0, 0, 0)),
                                          _mm256_setr_epi32(0, 0, 0, 0, 3, 3, 3, 3));
    return _mm256_dpbusd_epi32(b16, q.a, load256(x.qs));
}
static inline void min_q5_0(const block_q5_0 &, const block_q8_s &, float &) {}
static inline __m256 lanes_q5_0() { return _mm256_set1_ps(1.0f); }

// Q5_1: the five-bit quants, no offset; the minimum from the activation's ds.
static inline QW prep_q5_1(const block_q5_1 & w) { return {q5_bytes(w.qs, w.qh), _mm256_setzero_si256()}; }
static inline __m256i idot_q5_1(const QW & q, const block_q8_s & x) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), q.a, load256(x.qs));
}
static inline void min_q5_1(const block_q5_1 & w, const block_q8_s & x, float & m) { m += h2f(w.m) * x.ds; }
static inline __m256 lanes_q5_1() { return _mm256_set1_ps(1.0f); }

LOOPLM_QGEMM(q5_0, block_q5_0, true)
LOOPLM_QGEMM(q5_1, block_q5_1, false)

}  // namespace

// avx512_gemm.cpp
void pack_x8_avx512(int64_t n, const void * x, size_t xs, void * out);
size_t packed_x8_bytes_avx512(int64_t n);
void gemm8_q4_0_avx512(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);
void gemm8_q4_1_avx512(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);
void gemm8_q8_0_avx512(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);
// x16_avx512.cpp
void gemm_q4_0x16_avx512(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);
void gemm_q4_1x16_avx512(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);
void gemm_q4_Kx16_avx512(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);
void gemm_q6_Kx16_avx512(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);

// The activation quantizer and the float kernels are AVX2's (every CPU with this set has AVX2);
// kernels_avx2 is constant-initialized, so reading it here is safe at static-init time.
extern const Kernels kernels_avx512 = {
    "avx512",
    kernels_avx2.quantize_q8,
    gemm_q4_0,
    gemm_q4_1,
    gemm_q8_0,
    kernels_avx2.gemm_f16,
    kernels_avx2.gemm_bf16,
    kernels_avx2.gemm_f32,
    pack_x8_avx512,
    packed_x8_bytes_avx512,
    gemm8_q4_0_avx512,
    gemm8_q4_1_avx512,
    gemm8_q8_0_avx512,
    kernels_avx2.dot_f16_f32,
    kernels_avx2.dot_f32,
    kernels_avx2.f32_to_f16,
    kernels_avx2.silu_mul,
    gemm_q5_0,
    gemm_q5_1,
    quantize_q8k,
    gemm_q4_K,  // kquants.inc compiled for this set (VNNI brings nothing there, see that file)
    gemm_q5_K,
    gemm_q6_K,
    gemm_q4_0x16_avx512,
    gemm_q4_1x16_avx512,
    gemm_q4_Kx16_avx512,
    gemm_q6_Kx16_avx512,  // the x16 layout (x16_avx512.cpp)
    pack_x8k_ref,         // (kernels/ref_kquants.cpp: data movement, no ISA flags needed)
    packed_x8k_bytes_ref,
    gemm8_q4_K,  // kgemm.inc with vpdpbusd
    gemm8_q5_K,
    gemm8_q6_K,
    kv_scores_f32_avx512,
    kv_scores_f16_avx512,
    kv_scores_q8_0_avx512,
    kv_scores_q4_0_avx512,
    kv_wsum_f32_avx512,
    kv_wsum_f16_avx512,
    kv_wsum_q8_0_avx512,
    kv_wsum_q4_0_avx512,
    kernels_avx2.exp_sum,  // attention over runs of KV rows (kv_avx512.cpp; AVX2's exp)
};

}  // namespace looplm
