// kernels/x86/avx512_gemm.cpp - the many-column GEMM of prompt processing, AVX-512 VNNI.
//
// Layout: 8 activation columns are packed together (pack_x8) so that one 256-bit vector holds
// 4 consecutive elements of each of the 8 columns as unsigned bytes (q ^ 0x80 = q + 128). A
// weight row's 4 elements are broadcast as signed bytes (the embedded {1to8} operand of
// vpdpbusd), so each vpdpbusd advances 8 columns by 4 elements: lanes are columns, not
// partial sums, and a block's 8 x 8 tile needs 64 vpdpbusd and one scale per row.
//   sum (x + 128) w = sum x w + 128 sum w: each (row, block) starts from -128 sum w.
// Weights are unpacked per 8-row tile into a stack buffer (signed bytes, f32 scales, the
// -128 sum w start values); the tile is then reused against every column group.
// Same ISA flags and rules as avx512.cpp (see the SIGILL note in kernels/kernels.h).
#include <immintrin.h>

#include <cstring>

#include "kernels/kernels.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace looplm {

namespace {

constexpr int kRows = 8;         // weight rows per register tile
constexpr int kMaxBlocks = 512;  // row length up to 16384 elements

// One block of a packed activation group (8 columns).
struct PackedBlock {
    uint8_t qs[QK / 4][8][4];  // [element group g][column][4]: quants + 128
    float d[8];                // per-column scale
    float ds[8];               // per-column d * sum(q) (Q4_1's m term)
};
static_assert(sizeof(PackedBlock) == 320, "PackedBlock is 320 bytes");

// An 8-row weight tile unpacked to signed bytes.
struct WeightTile {
    int8_t q[kRows][kMaxBlocks][QK];
    float d[kRows][kMaxBlocks];
    float m[kRows][kMaxBlocks];        // Q4_1's minimum (0 for the others)
    int32_t start[kRows][kMaxBlocks];  // -128 * sum(q)
};

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline int32_t sum_bytes(__m256i v) {  // sum of 32 signed bytes
    const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), v), _mm256_set1_epi16(1));
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    return _mm_cvtsi128_si32(t);
}

// Unpacks rows [0, nr) of a weight type into the tile (rows >= nr repeat the last row).
static void unpack_q4_0(const void * w, size_t ws, int nr, int64_t nb, WeightTile * t) {
    for (int r = 0; r < kRows; r++) {
        const block_q4_0 * row =
            reinterpret_cast<const block_q4_0 *>(static_cast<const char *>(w) + (r < nr ? r : nr - 1) * ws);
        for (int64_t b = 0; b < nb; b++) {
            const __m128i p = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row[b].qs));
            __m256i q = _mm256_set_m128i(_mm_srli_epi16(p, 4), p);
            q = _mm256_sub_epi8(_mm256_and_si256(q, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(t->q[r][b]), q);
            t->d[r][b] = h2f(row[b].d);
            t->m[r][b] = 0.0f;
            t->start[r][b] = -128 * sum_bytes(q);
        }
    }
}

static void unpack_q4_1(const void * w, size_t ws, int nr, int64_t nb, WeightTile * t) {
    for (int r = 0; r < kRows; r++) {
        const block_q4_1 * row =
            reinterpret_cast<const block_q4_1 *>(static_cast<const char *>(w) + (r < nr ? r : nr - 1) * ws);
        for (int64_t b = 0; b < nb; b++) {
            const __m128i p = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row[b].qs));
            const __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(p, 4), p), _mm256_set1_epi8(0x0f));
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(t->q[r][b]), q);
            t->d[r][b] = h2f(row[b].d);
            t->m[r][b] = h2f(row[b].m);
            t->start[r][b] = -128 * sum_bytes(q);
        }
    }
}

static void unpack_q8_0(const void * w, size_t ws, int nr, int64_t nb, WeightTile * t) {
    for (int r = 0; r < kRows; r++) {
        const block_q8_0 * row =
            reinterpret_cast<const block_q8_0 *>(static_cast<const char *>(w) + (r < nr ? r : nr - 1) * ws);
        for (int64_t b = 0; b < nb; b++) {
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(row[b].qs));
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(t->q[r][b]), q);
            t->d[r][b] = h2f(row[b].d);
            t->m[r][b] = 0.0f;
            t->start[r][b] = -128 * sum_bytes(q);
        }
    }
}

static inline __m256i bcast4(const int8_t * p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// out[c * ldo + r] for the 8 x 8 tile of rows [0, nr) and the group's 8 columns.
static void tile_8x8(const WeightTile * t, int nr, int64_t nb, const PackedBlock * x, bool with_m, float * out,
                     size_t ldo) {
    __m256 acc[kRows];
    for (int r = 0; r < kRows; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const PackedBlock & xb = x[b];
        __m256i ai[kRows];
        for (int r = 0; r < kRows; r++) ai[r] = _mm256_set1_epi32(t->start[r][b]);
        for (int g = 0; g < QK / 4; g++) {
            const __m256i xg = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(xb.qs[g]));
            for (int r = 0; r < kRows; r++) ai[r] = _mm256_dpbusd_epi32(ai[r], xg, bcast4(&t->q[r][b][4 * g]));
        }
        const __m256 dx = _mm256_loadu_ps(xb.d);
        for (int r = 0; r < kRows; r++) {
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ai[r]), _mm256_mul_ps(dx, _mm256_set1_ps(t->d[r][b])), acc[r]);
        }
        if (with_m) {
            const __m256 ds = _mm256_loadu_ps(xb.ds);
            for (int r = 0; r < kRows; r++) acc[r] = _mm256_fmadd_ps(ds, _mm256_set1_ps(t->m[r][b]), acc[r]);
        }
    }
    float tmp[kRows][8];
    for (int r = 0; r < kRows; r++) _mm256_storeu_ps(tmp[r], acc[r]);
    for (int c = 0; c < 8; c++) {
        for (int r = 0; r < nr; r++) out[c * ldo + r] = tmp[r][c];
    }
}

typedef void (*UnpackFn)(const void * w, size_t ws, int nr, int64_t nb, WeightTile * t);

static void gemm8(UnpackFn unpack, bool with_m, int64_t n, const void * w, size_t ws, int64_t nr, const void * x,
                  size_t xs, int64_t nc, float * out, size_t ldo) {
    const int64_t nb = n / QK;
    static thread_local WeightTile tile;  // 8 rows x up to 16384 elements, reused
    for (int64_t r0 = 0; r0 < nr; r0 += kRows) {
        const int rows = nr - r0 < kRows ? static_cast<int>(nr - r0) : kRows;
        unpack(static_cast<const char *>(w) + r0 * ws, ws, rows, nb, &tile);
        for (int64_t c0 = 0; c0 < nc; c0 += 8) {
            const PackedBlock * xg =
                reinterpret_cast<const PackedBlock *>(static_cast<const char *>(x) + (c0 / 8) * xs);
            tile_8x8(&tile, rows, nb, xg, with_m, out + c0 * ldo + r0, ldo);
        }
    }
}

}  // namespace

// 8 rows of block_q8_s activations (xs bytes apart) -> one packed group of n / 32 blocks.
void pack_x8_avx512(int64_t n, const void * x, size_t xs, void * out) {
    PackedBlock * p = static_cast<PackedBlock *>(out);
    for (int64_t b = 0; b < n / QK; b++) {
        for (int c = 0; c < 8; c++) {
            const block_q8_s & xb = reinterpret_cast<const block_q8_s *>(static_cast<const char *>(x) + c * xs)[b];
            for (int g = 0; g < QK / 4; g++) {
                for (int j = 0; j < 4; j++) p[b].qs[g][c][j] = static_cast<uint8_t>(xb.qs[4 * g + j] ^ 0x80);
            }
            p[b].d[c] = xb.d;
            p[b].ds[c] = xb.ds;
        }
    }
}

size_t packed_x8_bytes_avx512(int64_t n) { return static_cast<size_t>(n / QK) * sizeof(PackedBlock); }

void gemm8_q4_0_avx512(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                       float * out, size_t ldo) {
    gemm8(unpack_q4_0, false, n, w, ws, nr, x, xs, nc, out, ldo);
}

void gemm8_q4_1_avx512(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                       float * out, size_t ldo) {
    gemm8(unpack_q4_1, true, n, w, ws, nr, x, xs, nc, out, ldo);
}

void gemm8_q8_0_avx512(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                       float * out, size_t ldo) {
    gemm8(unpack_q8_0, false, n, w, ws, nr, x, xs, nc, out, ldo);
}

}  // namespace looplm
