// kernels/x86/x16_avx2.cpp - GEMMs over the x16 layout of Q4_0 / Q4_1 weights
// (kernels/x16.h), AVX2.
//
// A 256-bit register holds 4 consecutive nibbles of 8 rows (half a group); maddubs against
// the 4 activation bytes broadcast gives each row's pair sums in int16. The 8 products of a
// block (4 chunks, low and high nibbles) are summed in int16 before one madd widens them: each
// is at most 2 * 15 * 128 = 3840 in magnitude, so the sum of 8 (30720) cannot overflow. Q4_0's
// -8 offset is exact in integers: each (column, block) starts from -8 * sum(x).
//
// Half-groups (8 rows) pass against up to 4 columns at a time; the weights stream once per
// kColBlock columns, as in x16_avx512.cpp.
// Same ISA flags and rules as avx2.cpp (see the SIGILL note in kernels/kernels.h).
#include <immintrin.h>

#include "kernels/kernels.h"
#include "kernels/x16.h"
#include "quant/blocks.h"

namespace looplm {

namespace {

constexpr int kCols = 4;
constexpr int64_t kColBlock = 64;
constexpr int64_t kMaxBlocks = kMaxPackedN / QK;

static inline int32_t bias_total(const block_q8_s & x) {
    const __m256i b = _mm256_srav_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.bias)),
                                        _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

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

typedef void (*HalfFn)(const uint8_t *, int, int64_t, const block_q8_s * const *, const int32_t * const *, float *,
                       size_t);

#define LOOPLM_X16_HALF(NC)                                                                                      \
    static void half_q4_0_##NC(const uint8_t * g, int h, int64_t nb, const block_q8_s * const * x,               \
                               const int32_t * const * st, float * out, size_t ldo) {                            \
        half(g, h, nb, x, st, out, ldo, NC, false);                                                              \
    }                                                                                                            \
    static void half_q4_1_##NC(const uint8_t * g, int h, int64_t nb, const block_q8_s * const * x,               \
                               const int32_t * const * st, float * out, size_t ldo) {                            \
        half(g, h, nb, x, st, out, ldo, NC, true);                                                               \
    }
LOOPLM_X16_HALF(1)
LOOPLM_X16_HALF(2)
LOOPLM_X16_HALF(3)
LOOPLM_X16_HALF(4)
#undef LOOPLM_X16_HALF

static const HalfFn kHalfQ4_0[kCols + 1] = {nullptr, half_q4_0_1, half_q4_0_2, half_q4_0_3, half_q4_0_4};
static const HalfFn kHalfQ4_1[kCols + 1] = {nullptr, half_q4_1_1, half_q4_1_2, half_q4_1_3, half_q4_1_4};

static void gemm_x16(bool q41, int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs,
                     int64_t nc, float * out, size_t ldo) {
    const int64_t nb = n / QK, ng = nr / kX16Rows;
    const char * wb = static_cast<const char *>(w);
    const HalfFn * fns = q41 ? kHalfQ4_1 : kHalfQ4_0;
    static thread_local int32_t starts[kColBlock * kMaxBlocks];
    for (int64_t c0 = 0; c0 < nc; c0 += kColBlock) {
        const int64_t cb = nc - c0 < kColBlock ? nc - c0 : kColBlock;
        const block_q8_s * xc[kColBlock];
        const int32_t * sc[kColBlock];
        for (int64_t c = 0; c < cb; c++) {
            xc[c] = reinterpret_cast<const block_q8_s *>(static_cast<const char *>(x) + (c0 + c) * xs);
            sc[c] = starts + c * nb;
            if (!q41) {
                for (int64_t b = 0; b < nb; b++) starts[c * nb + b] = bias_total(xc[c][b]);
            }
        }
        for (int64_t gi = 0; gi < ng; gi++) {
            const uint8_t * g = reinterpret_cast<const uint8_t *>(wb + gi * kX16Rows * ws);
            for (int h = 0; h < 2; h++) {
                for (int64_t c = 0; c < cb; c += kCols) {
                    const int64_t k = cb - c < kCols ? cb - c : kCols;
                    fns[k](g, h, nb, xc + c, sc + c, out + (c0 + c) * ldo + gi * kX16Rows, ldo);
                }
            }
        }
    }
    const int64_t done = ng * kX16Rows;
    if (done < nr) {
        (q41 ? kernels_avx2.gemm_q4_1 : kernels_avx2.gemm_q4_0)(n, wb + done * ws, ws, nr - done, x, xs, nc,
                                                                out + done, ldo);
    }
}

}  // namespace

void gemm_q4_0x16_avx2(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                       float * out, size_t ldo) {
    if (n / QK > kMaxBlocks) return gemm_q4_0x16_ref(n, w, ws, nr, x, xs, nc, out, ldo);
    gemm_x16(false, n, w, ws, nr, x, xs, nc, out, ldo);
}

void gemm_q4_1x16_avx2(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                       float * out, size_t ldo) {
    if (n / QK > kMaxBlocks) return gemm_q4_1x16_ref(n, w, ws, nr, x, xs, nc, out, ldo);
    gemm_x16(true, n, w, ws, nr, x, xs, nc, out, ldo);
}

}  // namespace looplm
