// kernels/x86/x16_avx2.cpp - GEMMs over the x16 layout of Q4_0 / Q4_1 / Q4_K weights
// (kernels/x16.h), AVX2.
//
// A 256-bit register holds 4 consecutive nibbles of 8 rows (half a group); maddubs against
// the 4 activation bytes broadcast gives each row's pair sums in int16. The 8 products of a
// block (4 chunks, low and high nibbles) are summed in int16 before one madd widens them: each
// is at most 2 * 15 * 128 = 3840 in magnitude, so the sum of 8 (30720) cannot overflow. Q4_0's
// -8 offset is exact in integers: each (column, block) starts from -8 * sum(x).
//
// Q4_K (khalf below): per sub-block the 8 chunks' maddubs summed in int16 as well (the quants
// are at most 15 and the activations +-127: 8 * 2 * 15 * 127 = 30480), then one madd against
// the sub-block's six-bit scale in both int16 halves of each row's lane; the scales and mins of
// 8 rows unpacked at once from the layout's words, the mins by madd against the activation's
// sub-block sums.
//
// Half-groups (8 rows) pass against up to 4 columns at a time (2 for Q4_K); the tiling over
// columns and groups is kernels/x16_gemm.inc's.
// Same ISA flags and rules as avx2.cpp (see the SIGILL note in kernels/kernels.h).
#include <immintrin.h>

#include <cstddef>

#include "kernels/kernels.h"
#include "kernels/x16.h"
#include "quant/blocks.h"

namespace looplm {

namespace {

#include "kernels/x16_gemm.inc"

constexpr int kCols = 4;  // columns per pass over a group

constexpr size_t kAhead = 32;  // group-blocks prefetched ahead (into L2), as the AVX-512 kernel

static inline __m256i load256(const uint8_t * p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)); }

static inline __m256i bcast4(const int8_t * p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// Half h (rows 8h..8h+7) of one group against NC columns.
static inline __attribute__((always_inline)) void half(const uint8_t * g, int h, int64_t nb,
                                                       const block_q8_s * const * x, const int32_t * const * st,
                                                       float * out, size_t ldo, const int NC, const bool Q41) {
    const size_t gbytes = Q41 ? sizeof(block_q4_1x16) : sizeof(block_q4_0x16);
    const size_t qoff = (Q41 ? 64 : 32) + 32 * h;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[kCols];
    for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t * p = g + b * gbytes;
        // The first half's pass prefetches the whole group-block kAhead ahead (the second half
        // finds it cached): 1 thread +29%, 4 streams +84% (A/B, docs/benchmarks.md).
        if (h == 0) {
            for (size_t off = 0; off < gbytes; off += 64) {
                _mm_prefetch(reinterpret_cast<const char *>(p + kAhead * gbytes + off), _MM_HINT_T1);
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 16 * h)));
        const __m256 mw = Q41 ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 32 + 16 * h)))
                              : _mm256_setzero_ps();
        __m256i lo[4], hi[4];
        for (int k = 0; k < 4; k++) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + qoff + 64 * k));
            lo[k] = _mm256_and_si256(v, m4);
            hi[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        }
        for (int c = 0; c < NC; c++) {
            const block_q8_s & xb = x[c][b];
            __m256i s0 = _mm256_add_epi16(_mm256_maddubs_epi16(lo[0], bcast4(xb.qs + 0)),
                                          _mm256_maddubs_epi16(lo[1], bcast4(xb.qs + 4)));
            __m256i s1 = _mm256_add_epi16(_mm256_maddubs_epi16(lo[2], bcast4(xb.qs + 8)),
                                          _mm256_maddubs_epi16(lo[3], bcast4(xb.qs + 12)));
            s0 = _mm256_add_epi16(s0, _mm256_add_epi16(_mm256_maddubs_epi16(hi[0], bcast4(xb.qs + 16)),
                                                       _mm256_maddubs_epi16(hi[1], bcast4(xb.qs + 20))));
            s1 = _mm256_add_epi16(s1, _mm256_add_epi16(_mm256_maddubs_epi16(hi[2], bcast4(xb.qs + 24)),
                                                       _mm256_maddubs_epi16(hi[3], bcast4(xb.qs + 28))));
            __m256i s = _mm256_madd_epi16(_mm256_add_epi16(s0, s1), ones);
            if (!Q41) s = _mm256_add_epi32(s, _mm256_set1_epi32(st[c][b]));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(xb.d)), acc[c]);
            if (Q41) acc[c] = _mm256_fmadd_ps(mw, _mm256_set1_ps(xb.ds), acc[c]);
        }
    }
    for (int c = 0; c < NC; c++) _mm256_storeu_ps(out + c * ldo + 8 * h, acc[c]);
}

// Both halves of a group.
static inline __attribute__((always_inline)) void group(const uint8_t * g, int64_t nb, const block_q8_s * const * x,
                                                        const int32_t * const * st, float * out, size_t ldo,
                                                        const int NC, const bool Q41) {
    half(g, 0, nb, x, st, out, ldo, NC, Q41);
    half(g, 1, nb, x, st, out, ldo, NC, Q41);
}

LOOPLM_X16_GROUP_FNS(group, 1)
LOOPLM_X16_GROUP_FNS(group, 2)
LOOPLM_X16_GROUP_FNS(group, 3)
LOOPLM_X16_GROUP_FNS(group, 4)

static const X16GroupFn kGroupQ4_0[kCols + 1] = {nullptr, group_q4_0_1, group_q4_0_2, group_q4_0_3, group_q4_0_4};
static const X16GroupFn kGroupQ4_1[kCols + 1] = {nullptr, group_q4_1_1, group_q4_1_2, group_q4_1_3, group_q4_1_4};

constexpr int kColsK = 2;  // Q4_K: columns per pass over a half-group
constexpr size_t kKBytes = sizeof(block_q4_Kx16);

// Byte k (0..3) of every int32 lane in both of its int16 halves.
static inline __m256i byte_k2(__m256i v, int k) {
    const unsigned b = 0x8000u | static_cast<unsigned>(k);
    const __m256i ctrl = _mm256_add_epi32(
        _mm256_set1_epi32(static_cast<int>(b << 16 | b)),
        _mm256_setr_epi32(0, 0x00040004, 0x00080008, 0x000c000c, 0, 0x00040004, 0x00080008, 0x000c000c));
    return _mm256_shuffle_epi8(v, ctrl);
}

// Half h (rows 8h..8h+7) of one Q4_K group against NC columns with their min pairs.
static inline __attribute__((always_inline)) void khalf(const uint8_t * g, int h, int64_t nb,
                                                        const block_q8_K * const * x, const int32_t * const * mp,
                                                        float * out, size_t ldo, const int NC) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m6 = _mm256_set1_epi32(0x3f3f3f3f), n4 = _mm256_set1_epi32(0x0f0f0f0f);
    const __m256i m2 = _mm256_set1_epi32(0x03030303), even16 = _mm256_set1_epi32(0x00ff00ff);
    __m256 acc[kColsK];
    for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t * p = g + b * kKBytes;
        const __m256i u0 = load256(p + 64 + 32 * h), u2 = load256(p + 192 + 32 * h);
        const __m256i sc_lo = _mm256_and_si256(u0, m6);  // scales 0..3
        const __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(u2, n4),
                                              _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u0, 6), m2), 4));
        const uint8_t * qs = p + offsetof(block_q4_Kx16, qs) + 32 * h;
        __m256i isum[kColsK];
        for (int c = 0; c < NC; c++) isum[c] = _mm256_setzero_si256();
        for (int q = 0; q < 4; q++) {  // sub-blocks 2q (low nibbles) and 2q + 1 (high)
            __m256i se[kColsK], so[kColsK];
            for (int c = 0; c < NC; c++) se[c] = so[c] = _mm256_setzero_si256();
            for (int k = 0; k < 8; k++) {
                const __m256i v = load256(qs + 64 * (8 * q + k));
                const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                for (int c = 0; c < NC; c++) {
                    const int8_t * xq = x[c][b].qs + 64 * q + 4 * k;
                    se[c] = _mm256_add_epi16(se[c], _mm256_maddubs_epi16(lo, bcast4(xq)));
                    so[c] = _mm256_add_epi16(so[c], _mm256_maddubs_epi16(hi, bcast4(xq + 32)));
                }
            }
            const __m256i s = q < 2 ? sc_lo : sc_hi;
            const __m256i ce = byte_k2(s, (2 * q) % 4), co = byte_k2(s, (2 * q + 1) % 4);
            for (int c = 0; c < NC; c++) {
                isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(se[c], ce));
                isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(so[c], co));
            }
        }
        const __m256i u1 = load256(p + 128 + 32 * h);
        const __m256i mn_lo = _mm256_and_si256(u1, m6);  // mins 0..3
        const __m256i mn_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), n4),
                                              _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u1, 6), m2), 4));
        const __m256i mA = _mm256_and_si256(mn_lo, even16), mB = _mm256_and_si256(_mm256_srli_epi32(mn_lo, 8), even16);
        const __m256i mC = _mm256_and_si256(mn_hi, even16), mD = _mm256_and_si256(_mm256_srli_epi32(mn_hi, 8), even16);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 16 * h)));
        const __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 32 + 16 * h)));
        for (int c = 0; c < NC; c++) {
            const int32_t * pp = mp[c] + 4 * b;
            const __m256i sm = _mm256_add_epi32(_mm256_add_epi32(_mm256_madd_epi16(mA, _mm256_set1_epi32(pp[0])),
                                                                 _mm256_madd_epi16(mB, _mm256_set1_epi32(pp[1]))),
                                                _mm256_add_epi32(_mm256_madd_epi16(mC, _mm256_set1_epi32(pp[2])),
                                                                 _mm256_madd_epi16(mD, _mm256_set1_epi32(pp[3]))));
            const __m256 dx = _mm256_set1_ps(x[c][b].d);
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(dw, dx), acc[c]);
            acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(sm), _mm256_mul_ps(mw, dx), acc[c]);
        }
    }
    for (int c = 0; c < NC; c++) _mm256_storeu_ps(out + c * ldo + 8 * h, acc[c]);
}

static inline __attribute__((always_inline)) void kgroup(const uint8_t * g, int64_t nb, const block_q8_K * const * x,
                                                         const int32_t * const * mp, float * out, size_t ldo,
                                                         const int NC) {
    khalf(g, 0, nb, x, mp, out, ldo, NC);
    khalf(g, 1, nb, x, mp, out, ldo, NC);
}

LOOPLM_X16K_GROUP_FN(kgroup, 1)
LOOPLM_X16K_GROUP_FN(kgroup, 2)

static const X16KGroupFn kGroupQ4_K[kColsK + 1] = {nullptr, group_q4_K_1, group_q4_K_2};

}  // namespace

LOOPLM_X16_GEMMS(gemm_q4_0x16_avx2, gemm_q4_1x16_avx2, kGroupQ4_0, kGroupQ4_1, kCols, kernels_avx2.gemm_q4_0,
                 kernels_avx2.gemm_q4_1)
LOOPLM_X16K_GEMM(gemm_q4_Kx16_avx2, kGroupQ4_K, kColsK, kernels_avx2.gemm_q4_K)

}  // namespace looplm
