// kernels/x86/x16_avx512.cpp - GEMMs over the x16 layout of Q4_0 / Q4_1 / Q4_K / Q6_K weights
// (kernels/x16.h), AVX-512 VNNI.
//
// One 512-bit register holds 4 consecutive nibbles of each of a group's 16 rows; vpdpbusd
// against the 4 activation bytes broadcast to all lanes advances all 16 rows, so one group-block
// (16 rows x 32 elements) is 4 loads, 8 masks/shifts, then per activation column 8 vpdpbusd,
// one conversion and one FMA: no horizontal sums, and the 16 output rows land in one register.
// Q4_0's -8 offset is exact in integers: each (column, block) starts from -8 * sum(x), the
// same for all 16 rows (computed once per call from block_q8_s::bias).
//
// Q4_K (kgroup below): the same vpdpbusd per 64-byte chunk, the low nibbles against sub-block
// 2p's activations and the high ones against 2p + 1's; each sub-block's int32 sums times its
// six-bit scale (vpmulld, exact), the scales and mins of all 16 rows unpacked at once from the
// three words of the layout; the mins by int16 pair multiply-adds (vpdpwssd) against the
// activation's sub-block sums.
//
// Q6_K (k6group below): the quants of all four quarters from one qh and two ql chunks, the
// same vpdpbusd, each 16-element sub-block's sum times its int8 scale; the -32 offset through
// the activation's bsums.
//
// The tiling over columns and groups is kernels/x16_gemm.inc's, in passes of up to 8 columns
// (4 for Q4_K and Q6_K).
// Same ISA flags and rules as avx512.cpp (see the SIGILL note in kernels/kernels.h).
// gcc 12 warns that _mm512_undefined_ps() inside the conversion intrinsics may be used
// uninitialized (a false positive: the mask is all ones).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstddef>

#include "kernels/kernels.h"
#include "kernels/x16.h"
#include "quant/blocks.h"

namespace looplm {

namespace {

#include "kernels/x16_gemm.inc"

constexpr int kCols = 8;  // columns per pass over a group

constexpr size_t kAhead = 32;  // group-blocks prefetched ahead

static inline __m512i bcast4(const int8_t * p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

// One group (16 rows, nb group-blocks at g, gbytes each) against NC activation columns x[c]
// (their per-block starts in st[c]); out[c * ldo + r] for r < 16. Q41: Q4_1 (minimum term,
// no offset). Inlined into one copy per (NC, type).
static inline __attribute__((always_inline)) void group(const uint8_t * g, int64_t nb, const block_q8_s * const * x,
                                                        const int32_t * const * st, float * out, size_t ldo,
                                                        const int NC, const bool Q41) {
    const size_t gbytes = Q41 ? sizeof(block_q4_1x16) : sizeof(block_q4_0x16);
    const size_t qoff = Q41 ? 64 : 32;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[kCols];
    for (int c = 0; c < NC; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t * p = g + b * gbytes;
        // Software prefetch kAhead group-blocks (~9 KB) ahead into L2 (T1): with 2-8 columns the
        // compute per byte grows and the hardware prefetcher alone leaves the loads stalling
        // (measured: 4 streams +30% with T0); into L2 rather than L1 also helps one stream
        // (1 thread decode +8% over T0 in a same-run A/B; docs/benchmarks.md "Several streams").
        for (size_t off = 0; off < gbytes; off += 64) {
            _mm_prefetch(reinterpret_cast<const char *>(p + kAhead * gbytes + off), _MM_HINT_T1);
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
        const __m512 mw =
            Q41 ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + 32))) : _mm512_setzero_ps();
        __m512i lo[4], hi[4];
        for (int k = 0; k < 4; k++) {
            const __m512i v = _mm512_loadu_si512(p + qoff + 64 * k);
            lo[k] = _mm512_and_si512(v, m4);
            hi[k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        for (int c = 0; c < NC; c++) {
            const block_q8_s & xb = x[c][b];
            __m512i s0 = Q41 ? _mm512_setzero_si512() : _mm512_set1_epi32(st[c][b]);
            __m512i s1 = _mm512_setzero_si512();
            s0 = _mm512_dpbusd_epi32(s0, lo[0], bcast4(xb.qs + 0));
            s1 = _mm512_dpbusd_epi32(s1, lo[1], bcast4(xb.qs + 4));
            s0 = _mm512_dpbusd_epi32(s0, lo[2], bcast4(xb.qs + 8));
            s1 = _mm512_dpbusd_epi32(s1, lo[3], bcast4(xb.qs + 12));
            s0 = _mm512_dpbusd_epi32(s0, hi[0], bcast4(xb.qs + 16));
            s1 = _mm512_dpbusd_epi32(s1, hi[1], bcast4(xb.qs + 20));
            s0 = _mm512_dpbusd_epi32(s0, hi[2], bcast4(xb.qs + 24));
            s1 = _mm512_dpbusd_epi32(s1, hi[3], bcast4(xb.qs + 28));
            const __m512 s = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
            acc[c] = _mm512_fmadd_ps(s, _mm512_mul_ps(dw, _mm512_set1_ps(xb.d)), acc[c]);
            if (Q41) acc[c] = _mm512_fmadd_ps(mw, _mm512_set1_ps(xb.ds), acc[c]);
        }
    }
    for (int c = 0; c < NC; c++) _mm512_storeu_ps(out + c * ldo, acc[c]);
}

LOOPLM_X16_GROUP_FNS(group, 1)
LOOPLM_X16_GROUP_FNS(group, 2)
LOOPLM_X16_GROUP_FNS(group, 3)
LOOPLM_X16_GROUP_FNS(group, 4)
LOOPLM_X16_GROUP_FNS(group, 5)
LOOPLM_X16_GROUP_FNS(group, 6)
LOOPLM_X16_GROUP_FNS(group, 7)
LOOPLM_X16_GROUP_FNS(group, 8)

static const X16GroupFn kGroupQ4_0[kCols + 1] = {nullptr,      group_q4_0_1, group_q4_0_2, group_q4_0_3, group_q4_0_4,
                                                 group_q4_0_5, group_q4_0_6, group_q4_0_7, group_q4_0_8};
static const X16GroupFn kGroupQ4_1[kCols + 1] = {nullptr,      group_q4_1_1, group_q4_1_2, group_q4_1_3, group_q4_1_4,
                                                 group_q4_1_5, group_q4_1_6, group_q4_1_7, group_q4_1_8};

constexpr int kColsK = 4;      // Q4_K: columns per pass over a group
constexpr size_t kAheadK = 4;  // Q4_K group-blocks prefetched ahead (~9 KB, as Q4_0's)
constexpr size_t kKBytes = sizeof(block_q4_Kx16);

// Byte k (0..3) of every int32 lane, zero-extended.
static inline __m512i byte_k(__m512i v, int k) {
    const __m512i ctrl = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(0x80808000u | static_cast<unsigned>(k))),
                                          _mm512_setr_epi32(0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12, 0, 4, 8, 12));
    return _mm512_shuffle_epi8(v, ctrl);
}

// One Q4_K group (16 rows, nb group-blocks at g) against NC columns x[c] with their min
// pairs mp[c]; out[c * ldo + r] for r < 16. One copy per NC.
static inline __attribute__((always_inline)) void kgroup(const uint8_t * g, int64_t nb, const block_q8_K * const * x,
                                                         const int32_t * const * mp, float * out, size_t ldo,
                                                         const int NC) {
    constexpr int kChains = 2;  // independent vpdpbusd chains per sub-block for a single column
    const int CH = NC == 1 ? kChains : 1;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i m6 = _mm512_set1_epi32(0x3f3f3f3f), n4 = _mm512_set1_epi32(0x0f0f0f0f);
    const __m512i m2 = _mm512_set1_epi32(0x03030303), even16 = _mm512_set1_epi32(0x00ff00ff);
    __m512 acc[kColsK];
    for (int c = 0; c < NC; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t * p = g + b * kKBytes;
        for (size_t off = 0; off < kKBytes; off += 64) {
            _mm_prefetch(reinterpret_cast<const char *>(p + kAheadK * kKBytes + off), _MM_HINT_T0);
        }
        // unpack_k4_scales (kernels/kscales.h) on the 16 rows' words u0, u1, u2 at once
        const __m512i u0 = _mm512_loadu_si512(p + 64), u2 = _mm512_loadu_si512(p + 192);
        const __m512i sc_lo = _mm512_and_si512(u0, m6);  // scales 0..3
        const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(u2, n4),
                                              _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u0, 6), m2), 4));
        const uint8_t * qs = p + offsetof(block_q4_Kx16, qs);
        __m512i isum[kColsK];
        for (int c = 0; c < NC; c++) isum[c] = _mm512_setzero_si512();
        for (int q = 0; q < 4; q++) {  // sub-blocks 2q (low nibbles) and 2q + 1 (high)
            __m512i de[kColsK][kChains], dd[kColsK][kChains];
            for (int c = 0; c < NC; c++) {
                for (int h = 0; h < CH; h++) de[c][h] = dd[c][h] = _mm512_setzero_si512();
            }
            for (int k = 0; k < 8; k++) {
                const __m512i v = _mm512_loadu_si512(qs + 64 * (8 * q + k));
                const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                const int h = k % CH;
                for (int c = 0; c < NC; c++) {
                    const int8_t * xq = x[c][b].qs + 64 * q + 4 * k;
                    de[c][h] = _mm512_dpbusd_epi32(de[c][h], lo, bcast4(xq));
                    dd[c][h] = _mm512_dpbusd_epi32(dd[c][h], hi, bcast4(xq + 32));
                }
            }
            const __m512i s = q < 2 ? sc_lo : sc_hi;
            const __m512i se = byte_k(s, (2 * q) % 4), so = byte_k(s, (2 * q + 1) % 4);
            for (int c = 0; c < NC; c++) {
                __m512i e = de[c][0], o = dd[c][0];
                for (int h = 1; h < CH; h++) {
                    e = _mm512_add_epi32(e, de[c][h]);
                    o = _mm512_add_epi32(o, dd[c][h]);
                }
                isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(e, se));
                isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(o, so));
            }
        }
        const __m512i u1 = _mm512_loadu_si512(p + 128);
        const __m512i mn_lo = _mm512_and_si512(u1, m6);  // mins 0..3
        const __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), n4),
                                              _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u1, 6), m2), 4));
        const __m512i mA = _mm512_and_si512(mn_lo, even16), mB = _mm512_and_si512(_mm512_srli_epi32(mn_lo, 8), even16);
        const __m512i mC = _mm512_and_si512(mn_hi, even16), mD = _mm512_and_si512(_mm512_srli_epi32(mn_hi, 8), even16);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
        const __m512 mw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + 32)));
        for (int c = 0; c < NC; c++) {
            const int32_t * pp = mp[c] + 4 * b;
            __m512i sm = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mA, _mm512_set1_epi32(pp[0]));
            sm = _mm512_dpwssd_epi32(sm, mB, _mm512_set1_epi32(pp[1]));
            sm = _mm512_dpwssd_epi32(sm, mC, _mm512_set1_epi32(pp[2]));
            sm = _mm512_dpwssd_epi32(sm, mD, _mm512_set1_epi32(pp[3]));
            const __m512 dx = _mm512_set1_ps(x[c][b].d);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dw, dx), acc[c]);
            acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(sm), _mm512_mul_ps(mw, dx), acc[c]);
        }
    }
    for (int c = 0; c < NC; c++) _mm512_storeu_ps(out + c * ldo, acc[c]);
}

LOOPLM_X16K_GROUP_FN(kgroup, 1)
LOOPLM_X16K_GROUP_FN(kgroup, 2)
LOOPLM_X16K_GROUP_FN(kgroup, 3)
LOOPLM_X16K_GROUP_FN(kgroup, 4)

static const X16KGroupFn kGroupQ4_K[kColsK + 1] = {nullptr, group_q4_K_1, group_q4_K_2, group_q4_K_3, group_q4_K_4};

constexpr int kColsK6 = 4;  // Q6_K: columns per pass over a group
// Q6_K group-blocks prefetched ahead (~10 KB) into L2 (T1): 1 thread decode 4.83 tok/s against
// 2.74 with T0 at the same distance, 4.32 / 4.15 at 8 / 16 ahead, 1.79 without (one run each,
// Ouro-1.4B Q6_K; the mapped layout's plain kernel 4.53)
constexpr size_t kAheadK6 = 3;
constexpr size_t kK6Bytes = sizeof(block_q6_Kx16);

// One Q6_K group (16 rows, nb group-blocks at g) against NC columns x[c]; out[c * ldo + r]
// for r < 16. Per half h and quarter-run u (elements l = 16 u .. 16 u + 15), the 4 chunks
// i = 4 u .. 4 u + 3 of qh and their two ql chunks make the quants of the 4 quarters (sub-blocks
// 8 h + 2 k + u): vpdpbusd of the unsigned quants against 4 activation bytes, each sub-block's sum
// times its int8 scale (vpmulld, exact); the -32 offset as 32 * sum_s scale_s bsums[s] by int16
// pair multiply-adds (vpdpwssd) of the scale pairs against adjacent bsums. One copy per NC.
static inline __attribute__((always_inline)) void k6group(const uint8_t * g, int64_t nb, const block_q8_K * const * x,
                                                          float * out, size_t ldo, const int NC) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    __m512 acc[kColsK6];
    for (int c = 0; c < NC; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t * p = g + b * kK6Bytes;
        for (size_t off = 0; off < kK6Bytes; off += 64) {
            _mm_prefetch(reinterpret_cast<const char *>(p + kAheadK6 * kK6Bytes + off), _MM_HINT_T1);
        }
        __m512i sp[QK_K / 32];  // lane r: row r's scales 2 j, 2 j + 1 as int16
        for (int j = 0; j < QK_K / 32; j++) {
            sp[j] = _mm512_cvtepi8_epi16(
                _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + offsetof(block_q6_Kx16, scales) + 32 * j)));
        }
        const uint8_t * ql = p + offsetof(block_q6_Kx16, ql);
        const uint8_t * qh = p + offsetof(block_q6_Kx16, qh);
        __m512i isum[kColsK6];
        for (int c = 0; c < NC; c++) isum[c] = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            for (int u = 0; u < 2; u++) {
                __m512i d[kColsK6][4];
                for (int c = 0; c < NC; c++) {
                    for (int k = 0; k < 4; k++) d[c][k] = _mm512_setzero_si512();
                }
                for (int i = 4 * u; i < 4 * u + 4; i++) {
                    const __m512i vh = _mm512_loadu_si512(qh + 64 * (8 * h + i));
                    const __m512i va = _mm512_loadu_si512(ql + 64 * (16 * h + i));
                    const __m512i vb = _mm512_loadu_si512(ql + 64 * (16 * h + 8 + i));
                    __m512i q[4];
                    q[0] = _mm512_or_si512(_mm512_and_si512(va, m4), _mm512_and_si512(_mm512_slli_epi16(vh, 4), m30));
                    q[1] = _mm512_or_si512(_mm512_and_si512(vb, m4), _mm512_and_si512(_mm512_slli_epi16(vh, 2), m30));
                    q[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(va, 4), m4), _mm512_and_si512(vh, m30));
                    q[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(vb, 4), m4),
                                           _mm512_and_si512(_mm512_srli_epi16(vh, 2), m30));
                    for (int c = 0; c < NC; c++) {
                        const int8_t * xq = x[c][b].qs + 128 * h + 4 * i;
                        for (int k = 0; k < 4; k++) d[c][k] = _mm512_dpbusd_epi32(d[c][k], q[k], bcast4(xq + 32 * k));
                    }
                }
                for (int k = 0; k < 4; k++) {
                    const int s = 8 * h + 2 * k + u;  // scale s: int16 half s % 2 of pair s / 2, sign-extended
                    const __m512i v = sp[s / 2];
                    const __m512i sc =
                        s % 2 ? _mm512_srai_epi32(v, 16) : _mm512_srai_epi32(_mm512_slli_epi32(v, 16), 16);
                    for (int c = 0; c < NC; c++) isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(d[c][k], sc));
                }
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
        for (int c = 0; c < NC; c++) {
            const int16_t * bs = x[c][b].bsums;
            __m512i sm = _mm512_setzero_si512();
            for (int j = 0; j < QK_K / 32; j++) {
                int32_t pair;
                __builtin_memcpy(&pair, bs + 2 * j, 4);
                sm = _mm512_dpwssd_epi32(sm, sp[j], _mm512_set1_epi32(pair));
            }
            isum[c] = _mm512_sub_epi32(isum[c], _mm512_slli_epi32(sm, 5));  // -32 sum_s scale_s bsums[s]
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dw, _mm512_set1_ps(x[c][b].d)), acc[c]);
        }
    }
    for (int c = 0; c < NC; c++) _mm512_storeu_ps(out + c * ldo, acc[c]);
}

LOOPLM_X16K6_GROUP_FN(k6group, 1)
LOOPLM_X16K6_GROUP_FN(k6group, 2)
LOOPLM_X16K6_GROUP_FN(k6group, 3)
LOOPLM_X16K6_GROUP_FN(k6group, 4)

static const X16KGroupFn kGroupQ6_K[kColsK6 + 1] = {nullptr, group_q6_K_1, group_q6_K_2, group_q6_K_3, group_q6_K_4};

}  // namespace

LOOPLM_X16_GEMMS(gemm_q4_0x16_avx512, gemm_q4_1x16_avx512, kGroupQ4_0, kGroupQ4_1, kCols, kernels_avx512.gemm_q4_0,
                 kernels_avx512.gemm_q4_1)
LOOPLM_X16K_GEMM(gemm_q4_Kx16_avx512, kGroupQ4_K, kColsK, kernels_avx512.gemm_q4_K)
LOOPLM_X16K6_GEMM(gemm_q6_Kx16_avx512, kGroupQ6_K, kColsK6, kernels_avx512.gemm_q6_K)

}  // namespace looplm
