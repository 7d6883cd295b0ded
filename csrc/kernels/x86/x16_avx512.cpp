// kernels/x86/x16_avx512.cpp - GEMMs over the x16 layout of Q4_0 / Q4_1 weights
// (kernels/x16.h), AVX-512 VNNI.
//
// One 512-bit register holds 4 consecutive nibbles of each of a group's 16 rows; vpdpbusd
// against the 4 activation bytes broadcast to all lanes advances all 16 rows, so one group-block
// (16 rows x 32 elements) is 4 loads, 8 masks/shifts, then per activation column 8 vpdpbusd,
// one conversion and one FMA: no horizontal sums, and the 16 output rows land in one register.
// Q4_0's -8 offset is exact in integers: each (column, block) starts from -8 * sum(x), the
// same for all 16 rows (computed once per call from block_q8_s::bias).
//
// The tiling over columns and groups is kernels/x16_gemm.inc's, in passes of up to 8 columns.
// Same ISA flags and rules as avx512.cpp (see the SIGILL note in kernels/kernels.h).
// gcc 12 warns that _mm512_undefined_ps() inside the conversion intrinsics may be used
// uninitialized (a false positive: the mask is all ones).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

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

}  // namespace

LOOPLM_X16_GEMMS(gemm_q4_0x16_avx512, gemm_q4_1x16_avx512, kGroupQ4_0, kGroupQ4_1, kCols, kernels_avx512.gemm_q4_0,
                 kernels_avx512.gemm_q4_1)

}  // namespace looplm
