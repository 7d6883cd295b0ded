// kernels/x86/x16_avx2.cpp - GEMMs over the x16 layout of Q4_0 / Q4_1 / Q4_K / Q6_K weights
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
// Q6_K (k6half below): the quants of the four quarters from one qh and two ql chunks, maddubs
// summed in int16 two chunks at a time, madd by the int8 scale; the -32 offset from the bsums.
//
// Half-groups (8 rows) pass against up to 4 columns at a time (2 for Q4_K and Q6_K); the tiling over
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

constexpr int kColsK6 = 2;      // Q6_K: columns per pass over a half-group
constexpr size_t kAheadK6 = 3;  // Q6_K group-blocks prefetched ahead (~10 KB)
constexpr size_t kK6Bytes = sizeof(block_q6_Kx16);

// Half hh (rows 8hh..8hh+7) of one Q6_K group against NC columns: per sub-block its 4 chunks'
// maddubs summed in int16 two at a time (the quants are at most 63: 2 * 2 * 63 * 127 = 32004),
// each pair widened by madd against the sub-block's int8 scale in both int16 halves; the -32
// offset as 32 * sum_s scale_s bsums[s] by madd of the scale pairs against adjacent bsums.
static inline __attribute__((always_inline)) void k6half(const uint8_t * g, int hh, int64_t nb,
                                                         const block_q8_K * const * x, float * out, size_t ldo,
                                                         const int NC) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    // shuffles putting int16 half 0 (lo16) or 1 (hi16) of each 32-bit lane in both halves
    const __m256i lo16 = _mm256_setr_epi32(0x01000100, 0x05040504, 0x09080908, 0x0d0c0d0c, 0x01000100, 0x05040504,
                                           0x09080908, 0x0d0c0d0c);
    const __m256i hi16 = _mm256_add_epi8(lo16, _mm256_set1_epi8(2));
    __m256 acc[kColsK6];
    for (int c = 0; c < NC; c++) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t * p = g + b * kK6Bytes;
        if (hh == 0) {  // the first half prefetches the whole group-block, as the Q4_0 kernel
            for (size_t off = 0; off < kK6Bytes; off += 64) {
                _mm_prefetch(reinterpret_cast<const char *>(p + kAheadK6 * kK6Bytes + off), _MM_HINT_T1);
            }
        }
        __m256i sp[QK_K / 32];  // lane r: row 8hh + r's scales 2 j, 2 j + 1 as int16
        for (int j = 0; j < QK_K / 32; j++) {
            sp[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128(
                reinterpret_cast<const __m128i *>(p + offsetof(block_q6_Kx16, scales) + 32 * j + 16 * hh)));
        }
        const uint8_t * ql = p + offsetof(block_q6_Kx16, ql) + 32 * hh;
        const uint8_t * qh = p + offsetof(block_q6_Kx16, qh) + 32 * hh;
        __m256i isum[kColsK6];
        for (int c = 0; c < NC; c++) isum[c] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            for (int u = 0; u < 2; u++) {
                __m256i d[kColsK6][4][2];  // per quarter, the int16 sums of the run's chunks 0-1 and 2-3
                for (int c = 0; c < NC; c++) {
                    for (int k = 0; k < 4; k++) d[c][k][0] = d[c][k][1] = _mm256_setzero_si256();
                }
                for (int i = 4 * u; i < 4 * u + 4; i++) {
                    const __m256i vh = load256(qh + 64 * (8 * h + i));
                    const __m256i va = load256(ql + 64 * (16 * h + i)), vb = load256(ql + 64 * (16 * h + 8 + i));
                    __m256i q[4];
                    q[0] = _mm256_or_si256(_mm256_and_si256(va, m4), _mm256_and_si256(_mm256_slli_epi16(vh, 4), m30));
                    q[1] = _mm256_or_si256(_mm256_and_si256(vb, m4), _mm256_and_si256(_mm256_slli_epi16(vh, 2), m30));
                    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(va, 4), m4), _mm256_and_si256(vh, m30));
                    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(vb, 4), m4),
                                           _mm256_and_si256(_mm256_srli_epi16(vh, 2), m30));
                    const int half = (i - 4 * u) / 2;  // chunks 0, 1 and 2, 3 of the run summed in int16
                    for (int c = 0; c < NC; c++) {
                        const int8_t * xq = x[c][b].qs + 128 * h + 4 * i;
                        for (int k = 0; k < 4; k++) {
                            d[c][k][half] =
                                _mm256_add_epi16(d[c][k][half], _mm256_maddubs_epi16(q[k], bcast4(xq + 32 * k)));
                        }
                    }
                }
                for (int k = 0; k < 4; k++) {
                    const int s = 8 * h + 2 * k + u;  // scale s in both int16 halves of each lane
                    const __m256i sc = _mm256_shuffle_epi8(sp[s / 2], s % 2 ? hi16 : lo16);
                    for (int c = 0; c < NC; c++) {
                        isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(_mm256_madd_epi16(d[c][k][0], sc),
                                                                             _mm256_madd_epi16(d[c][k][1], sc)));
                    }
                }
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p + 16 * hh)));
        for (int c = 0; c < NC; c++) {
            const int16_t * bs = x[c][b].bsums;
            __m256i sm = _mm256_setzero_si256();
            for (int j = 0; j < QK_K / 32; j++) {
                int32_t pair;
                __builtin_memcpy(&pair, bs + 2 * j, 4);
                sm = _mm256_add_epi32(sm, _mm256_madd_epi16(sp[j], _mm256_set1_epi32(pair)));
            }
            isum[c] = _mm256_sub_epi32(isum[c], _mm256_slli_epi32(sm, 5));  // -32 sum_s scale_s bsums[s]
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_mul_ps(dw, _mm256_set1_ps(x[c][b].d)), acc[c]);
        }
    }
    for (int c = 0; c < NC; c++) _mm256_storeu_ps(out + c * ldo + 8 * hh, acc[c]);
}

static inline __attribute__((always_inline)) void k6group(const uint8_t * g, int64_t nb, const block_q8_K * const * x,
                                                          float * out, size_t ldo, const int NC) {
    k6half(g, 0, nb, x, out, ldo, NC);
    k6half(g, 1, nb, x, out, ldo, NC);
}

LOOPLM_X16K6_GROUP_FN(k6group, 1)
LOOPLM_X16K6_GROUP_FN(k6group, 2)

static const X16KGroupFn kGroupQ6_K[kColsK6 + 1] = {nullptr, group_q6_K_1, group_q6_K_2};

}  // namespace

LOOPLM_X16_GEMMS(gemm_q4_0x16_avx2, gemm_q4_1x16_avx2, kGroupQ4_0, kGroupQ4_1, kCols, kernels_avx2.gemm_q4_0,
                 kernels_avx2.gemm_q4_1)
LOOPLM_X16K_GEMM(gemm_q4_Kx16_avx2, kGroupQ4_K, kColsK, kernels_avx2.gemm_q4_K)
LOOPLM_X16K6_GEMM(gemm_q6_Kx16_avx2, kGroupQ6_K, kColsK6, kernels_avx2.gemm_q6_K)

}  // namespace looplm
