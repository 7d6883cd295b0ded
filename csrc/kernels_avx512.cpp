// kernels_avx512.cpp - AVX-512 (F, BW, VL) + VNNI kernels. The integer dot products use
// vpdpbusd (u8 x s8 -> s32 in one step) on 256-bit vectors, as ggml's per-row kernels do;
// Q4_0/Q4_1 nibbles are used in place (see q4_bytes). Compiled with the AVX-512 flags only
// for this file; see the SIGILL note in kernels.h (static helpers, no STL, no templates).
#include <immintrin.h>

#include "kernels.h"
#include "quant.h"

namespace looplm {

namespace {

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline __m256i load256(const void * p) { return _mm256_loadu_si256(static_cast<const __m256i *>(p)); }

// Up to 4 activation columns share each unpacked weight block.
#define LOOPLM_TILE_COLS 4

// The column loop every quantized GEMM shares: `Row` computes the dots of one weight row
// with up to LOOPLM_TILE_COLS activation rows.
typedef void (*RowFn)(int64_t nb, const void * w, const block_q8_s * const * x, int64_t ncc, float * out, size_t ldo);

static void gemm_rows(RowFn row, int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs,
                      int64_t nc, float * out, size_t ldo) {
    for (int64_t c0 = 0; c0 < nc; c0 += LOOPLM_TILE_COLS) {
        const int64_t ncc = nc - c0 < LOOPLM_TILE_COLS ? nc - c0 : LOOPLM_TILE_COLS;
        const block_q8_s * xc[LOOPLM_TILE_COLS];
        for (int64_t c = 0; c < ncc; c++) {
            xc[c] = reinterpret_cast<const block_q8_s *>(static_cast<const char *>(x) + (c0 + c) * xs);
        }
        for (int64_t r = 0; r < nr; r++) {
            row(n / QK, static_cast<const char *>(w) + r * ws, xc, ncc, out + c0 * ldo + r, ldo);
        }
    }
}

// One block of one row against one activation block: the float contribution, 8 lanes.
// The 16 bytes of a Q4/Q4_1 block as 32 unsigned bytes without unpacking: the low lane holds
// the low nibbles (elements 0..15), the high lane the high nibbles in place, i.e. 16 x
// elements 16..31. Dot-product lanes 4..7 are therefore 16x too; block_q8_s::bias is stored
// to match, and each row's sum scales those lanes by 1/16 once (exact: a power of two).
static inline __m256i q4_bytes(const uint8_t * qs) {
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(qs)));
    return _mm256_and_si256(t, _mm256_setr_epi64x(0x0f0f0f0f0f0f0f0fll, 0x0f0f0f0f0f0f0f0fll,
                                                  static_cast<long long>(0xf0f0f0f0f0f0f0f0ull),
                                                  static_cast<long long>(0xf0f0f0f0f0f0f0f0ull)));
}

static inline __m256 lane_scale() { return _mm256_setr_ps(1, 1, 1, 1, 0.0625f, 0.0625f, 0.0625f, 0.0625f); }

static inline __m256 half_to_ps(uint16_t h) { return _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(h))); }

// -128 * (x lane sums): the offset of a Q8_0 weight flipped to unsigned (w ^ 0x80 = w + 128).
static inline __m256i bias128(const block_q8_s & x) {
    return _mm256_sllv_epi32(load256(x.bias), _mm256_setr_epi32(4, 4, 4, 4, 0, 0, 0, 0));
}

// One block of one row against one activation block: the dot product's float lanes, still to
// be multiplied by d_w * d_x.
static inline __m256 ilanes_q4_0(const block_q4_0 & w, const block_q8_s & x) {
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(load256(x.bias), q4_bytes(w.qs), load256(x.qs)));
}

static inline __m256 ilanes_q8_0(const block_q8_0 & w, const block_q8_s & x) {
    const __m256i q = _mm256_xor_si256(load256(w.qs), _mm256_set1_epi8(static_cast<char>(0x80)));
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(bias128(x), q, load256(x.qs)));
}

// The decode case (one activation column): four independent accumulators, so the FMA
// latency chain does not bound the loop. SCALE is the final per-lane factor.
#define LOOPLM_ROW1(NAME, WT, LANES, SCALE)                                                             \
    static float NAME(int64_t nb, const void * vw, const block_q8_s * x) {                             \
        const WT * w = static_cast<const WT *>(vw);                                                    \
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();                                    \
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();                                    \
        int64_t b = 0;                                                                                 \
        for (; b + 4 <= nb; b += 4) {                                                                  \
            a0 = _mm256_fmadd_ps(LANES(w[b], x[b]), _mm256_mul_ps(half_to_ps(w[b].d), _mm256_set1_ps(x[b].d)), a0); \
            a1 = _mm256_fmadd_ps(LANES(w[b + 1], x[b + 1]),                                            \
                                 _mm256_mul_ps(half_to_ps(w[b + 1].d), _mm256_set1_ps(x[b + 1].d)), a1); \
            a2 = _mm256_fmadd_ps(LANES(w[b + 2], x[b + 2]),                                            \
                                 _mm256_mul_ps(half_to_ps(w[b + 2].d), _mm256_set1_ps(x[b + 2].d)), a2); \
            a3 = _mm256_fmadd_ps(LANES(w[b + 3], x[b + 3]),                                            \
                                 _mm256_mul_ps(half_to_ps(w[b + 3].d), _mm256_set1_ps(x[b + 3].d)), a3); \
        }                                                                                              \
        for (; b < nb; b++) {                                                                          \
            a0 = _mm256_fmadd_ps(LANES(w[b], x[b]), _mm256_mul_ps(half_to_ps(w[b].d), _mm256_set1_ps(x[b].d)), a0); \
        }                                                                                              \
        const __m256 sum = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));              \
        return hsum_ps(_mm256_mul_ps(sum, SCALE));                                                     \
    }

LOOPLM_ROW1(row1_q4_0, block_q4_0, ilanes_q4_0, lane_scale())
LOOPLM_ROW1(row1_q8_0, block_q8_0, ilanes_q8_0, _mm256_set1_ps(1.0f))

// The decode case for Q4_0, four weight rows at a time: the activation block (quants, bias
// lanes, scale) is loaded once and shared by the rows, which cuts the loads and broadcasts per
// weight block by about a third; one accumulator per row keeps four FMA chains in flight.
static void rows4_q4_0(int64_t nb, const char * w0, size_t ws, const block_q8_s * x, float * out) {
    const block_q4_0 * w[4] = {reinterpret_cast<const block_q4_0 *>(w0),
                               reinterpret_cast<const block_q4_0 *>(w0 + ws),
                               reinterpret_cast<const block_q4_0 *>(w0 + 2 * ws),
                               reinterpret_cast<const block_q4_0 *>(w0 + 3 * ws)};
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    // Four short row streams defeat the hardware prefetcher, so fetch the next group of four
    // rows (contiguous in memory, 4 * ws bytes) while this one is computed: two lines a block.
    const char * next = w0 + 4 * ws;
    const size_t step = nb > 0 ? 4 * ws / static_cast<size_t>(nb) : 0;
    for (int64_t b = 0; b < nb; b++) {
        _mm_prefetch(next + b * step, _MM_HINT_T0);
        _mm_prefetch(next + b * step + 64, _MM_HINT_T0);
        const __m256i xq = load256(x[b].qs);
        const __m256i xb = load256(x[b].bias);
        const __m256 xd = _mm256_set1_ps(x[b].d);
        for (int r = 0; r < 4; r++) {
            const __m256i p = _mm256_dpbusd_epi32(xb, q4_bytes(w[r][b].qs), xq);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(half_to_ps(w[r][b].d), xd), acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) out[r] = hsum_ps(_mm256_mul_ps(acc[r], lane_scale()));
}

static void row_q4_0(int64_t nb, const void * vw, const block_q8_s * const * x, int64_t ncc, float * out, size_t ldo) {
    const block_q4_0 * w = static_cast<const block_q4_0 *>(vw);
    __m256 acc[LOOPLM_TILE_COLS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; b++) {
        const __m256i q = q4_bytes(w[b].qs);
        const __m256 dw = half_to_ps(w[b].d);
        for (int64_t c = 0; c < ncc; c++) {
            const block_q8_s & xb = x[c][b];
            const __m256i p = _mm256_dpbusd_epi32(load256(xb.bias), q, load256(xb.qs));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, _mm256_set1_ps(xb.d)), acc[c]);
        }
    }
    for (int64_t c = 0; c < ncc; c++) out[c * ldo] = hsum_ps(_mm256_mul_ps(acc[c], lane_scale()));
}

static void row_q4_1(int64_t nb, const void * vw, const block_q8_s * const * x, int64_t ncc, float * out, size_t ldo) {
    const block_q4_1 * w = static_cast<const block_q4_1 *>(vw);
    __m256 acc[LOOPLM_TILE_COLS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float accm[LOOPLM_TILE_COLS] = {0, 0, 0, 0};
    for (int64_t b = 0; b < nb; b++) {
        const __m256i q = q4_bytes(w[b].qs);
        const __m256 dw = half_to_ps(w[b].d);
        const float mw = h2f(w[b].m);
        for (int64_t c = 0; c < ncc; c++) {
            const block_q8_s & xb = x[c][b];
            const __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, load256(xb.qs));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, _mm256_set1_ps(xb.d)), acc[c]);
            accm[c] += mw * xb.ds;
        }
    }
    for (int64_t c = 0; c < ncc; c++) out[c * ldo] = hsum_ps(_mm256_mul_ps(acc[c], lane_scale())) + accm[c];
}

static void row_q8_0(int64_t nb, const void * vw, const block_q8_s * const * x, int64_t ncc, float * out, size_t ldo) {
    const block_q8_0 * w = static_cast<const block_q8_0 *>(vw);
    __m256 acc[LOOPLM_TILE_COLS] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    for (int64_t b = 0; b < nb; b++) {
        const __m256i q = _mm256_xor_si256(load256(w[b].qs), flip);
        const __m256 dw = half_to_ps(w[b].d);
        for (int64_t c = 0; c < ncc; c++) {
            const block_q8_s & xb = x[c][b];
            const __m256i p = _mm256_dpbusd_epi32(bias128(xb), q, load256(xb.qs));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, _mm256_set1_ps(xb.d)), acc[c]);
        }
    }
    for (int64_t c = 0; c < ncc; c++) out[c * ldo] = hsum_ps(acc[c]);
}

static void gemm_q4_0(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo) {
    if (nc == 1) {
        const block_q8_s * x0 = static_cast<const block_q8_s *>(x);
        int64_t r = 0;
        for (; r + 4 <= nr; r += 4) rows4_q4_0(n / QK, static_cast<const char *>(w) + r * ws, ws, x0, out + r);
        for (; r < nr; r++) out[r] = row1_q4_0(n / QK, static_cast<const char *>(w) + r * ws, x0);
        return;
    }
    gemm_rows(row_q4_0, n, w, ws, nr, x, xs, nc, out, ldo);
}

static void gemm_q4_1(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo) {
    gemm_rows(row_q4_1, n, w, ws, nr, x, xs, nc, out, ldo);
}

static void gemm_q8_0(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo) {
    if (nc == 1) {
        const block_q8_s * x0 = static_cast<const block_q8_s *>(x);
        for (int64_t r = 0; r < nr; r++) out[r] = row1_q8_0(n / QK, static_cast<const char *>(w) + r * ws, x0);
        return;
    }
    gemm_rows(row_q8_0, n, w, ws, nr, x, xs, nc, out, ldo);
}

}  // namespace

// kernels_avx512_gemm.cpp
void pack_x8_avx512(int64_t n, const void * x, size_t xs, void * out);
size_t packed_x8_bytes_avx512(int64_t n);
void gemm8_q4_0_avx512(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);
void gemm8_q4_1_avx512(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);
void gemm8_q8_0_avx512(int64_t, const void *, size_t, int64_t, const void *, size_t, int64_t, float *, size_t);

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
    kernels_avx2.axpy_f16,
    kernels_avx2.axpy_f32,
    kernels_avx2.f32_to_f16,
    kernels_avx2.silu_mul,
};

}  // namespace looplm
