// kernels/ref_x16.cpp - the scalar reference GEMMs over the x16 layout of Q4_0 / Q4_1 / Q4_K
// weights (kernels/x16.h): plain loops, the same integer block sums and the same order of float
// sums as the plain reference dots in kernels/ref.cpp, so the results are identical to theirs.
// Q4_K reads each row's super-block back out of its group-block by the layout's definition and
// takes the plain reference dot of that one block (kernels/ref_kquants.cpp): the float sum over
// super-blocks is then the plain one's, term by term.
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/ref_kquants.h"
#include "kernels/x16.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace looplm {

namespace {

// Element j (0..31) of row r's block in a group-block's quants.
inline int nibble(const uint8_t (&qs)[4][kX16Rows][4], int r, int j) {
    const int k = j % 16;
    const uint8_t byte = qs[k / 4][r][k % 4];
    return j < 16 ? (byte & 0x0f) : (byte >> 4);
}

// One row r of a group (nb group-blocks of type G) against one activation row: Q4_0's nibbles
// offset by -8, Q4_1's plain plus the minimum term.
template <typename G>
float dot_x16(int64_t nb, const G * g, int r, const block_q8_s * x) {
    constexpr bool kQ41 = sizeof(G) == sizeof(block_q4_1x16);
    constexpr int off = kQ41 ? 0 : 8;
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; j++) {
            sumi += (nibble(g[b].qs, r, j) - off) * x[b].qs[j];
            sumi += (nibble(g[b].qs, r, j + QK / 2) - off) * x[b].qs[j + QK / 2];
        }
        if constexpr (kQ41) {
            sum += fp16_to_fp32(g[b].d[r]) * x[b].d * static_cast<float>(sumi) + fp16_to_fp32(g[b].m[r]) * x[b].ds;
        } else {
            sum += fp16_to_fp32(g[b].d[r]) * x[b].d * static_cast<float>(sumi);
        }
    }
    return sum;
}

// Row r's plain block b of a Q4_K group-block, gathered field by field (kernels/x16.h).
block_q4_K gather_q4_K(const block_q4_Kx16 & g, int r) {
    block_q4_K w;
    w.d = g.d[r];
    w.dmin = g.dmin[r];
    for (int k = 0; k < K_SCALE_SIZE / 4; k++) std::memcpy(w.scales + 4 * k, g.scales[k][r], 4);
    for (int c = 0; c < QK_K / 8; c++) std::memcpy(w.qs + 4 * c, g.qs[c][r], 4);
    return w;
}

float dot_x16(int64_t nb, const block_q4_Kx16 * g, int r, const block_q8_K * x) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const block_q4_K w = gather_q4_K(g[b], r);
        sum += dot_q4_K_ref(QK_K, &w, &x[b]);  // 0 + (d dx sumi - dmin dx summ): the plain term
    }
    return sum;
}

// Row r's plain block b of a Q6_K group-block, gathered field by field (kernels/x16.h).
block_q6_K gather_q6_K(const block_q6_Kx16 & g, int r) {
    block_q6_K w;
    w.d = g.d[r];
    for (int k = 0; k < QK_K / 16 / 2; k++) std::memcpy(w.scales + 2 * k, g.scales[k][r], 2);
    for (int c = 0; c < QK_K / 2 / 4; c++) std::memcpy(w.ql + 4 * c, g.ql[c][r], 4);
    for (int c = 0; c < QK_K / 4 / 4; c++) std::memcpy(w.qh + 4 * c, g.qh[c][r], 4);
    return w;
}

float dot_x16(int64_t nb, const block_q6_Kx16 * g, int r, const block_q8_K * x) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const block_q6_K w = gather_q6_K(g[b], r);
        sum += dot_q6_K_ref(QK_K, &w, &x[b]);  // 0 + d dx sumi: the plain term
    }
    return sum;
}

// The groups as dot_x16 (activation rows of X, kBlock elements per block), then the plain tail
// rows by the plain reference GEMM.
template <typename G, typename X, int64_t kBlock>
void gemm_x16(GemmFn plain, int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
              float * out, size_t ldo) {
    const int64_t nb = n / kBlock, ng = nr / kX16Rows;
    const char * wb = static_cast<const char *>(w);
    for (int64_t c = 0; c < nc; c++) {
        const X * xc = reinterpret_cast<const X *>(static_cast<const char *>(x) + c * xs);
        for (int64_t g = 0; g < ng; g++) {
            const G * gb = reinterpret_cast<const G *>(wb + g * kX16Rows * ws);
            for (int r = 0; r < kX16Rows; r++) out[c * ldo + g * kX16Rows + r] = dot_x16(nb, gb, r, xc);
        }
    }
    const int64_t done = ng * kX16Rows;
    plain(n, wb + done * ws, ws, nr - done, x, xs, nc, out + done, ldo);
}

}  // namespace

void gemm_q4_Kx16_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo) {
    gemm_x16<block_q4_Kx16, block_q8_K, QK_K>(kernels_ref.gemm_q4_K, n, w, ws, nr, x, xs, nc, out, ldo);
}

void gemm_q6_Kx16_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo) {
    gemm_x16<block_q6_Kx16, block_q8_K, QK_K>(kernels_ref.gemm_q6_K, n, w, ws, nr, x, xs, nc, out, ldo);
}

void gemm_q4_0x16_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo) {
    gemm_x16<block_q4_0x16, block_q8_s, QK>(kernels_ref.gemm_q4_0, n, w, ws, nr, x, xs, nc, out, ldo);
}

void gemm_q4_1x16_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo) {
    gemm_x16<block_q4_1x16, block_q8_s, QK>(kernels_ref.gemm_q4_1, n, w, ws, nr, x, xs, nc, out, ldo);
}

}  // namespace looplm
