// kernels/ref_x16.cpp - the scalar reference GEMMs over the x16 layout of Q4_0 / Q4_1 weights
// (kernels/x16.h): plain loops, the same integer block sums and the same order of float sums
// as the plain reference dots in kernels/ref.cpp, so the results are identical to theirs.
#include "kernels/kernels.h"
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

// One row r of a Q4_0 group (nb group-blocks) against one activation row.
float dot_q4_0x16(int64_t nb, const block_q4_0x16 * g, int r, const block_q8_s * x) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; j++) {
            sumi += (nibble(g[b].qs, r, j) - 8) * x[b].qs[j];
            sumi += (nibble(g[b].qs, r, j + QK / 2) - 8) * x[b].qs[j + QK / 2];
        }
        sum += fp16_to_fp32(g[b].d[r]) * x[b].d * static_cast<float>(sumi);
    }
    return sum;
}

float dot_q4_1x16(int64_t nb, const block_q4_1x16 * g, int r, const block_q8_s * x) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; j++) {
            sumi += nibble(g[b].qs, r, j) * x[b].qs[j];
            sumi += nibble(g[b].qs, r, j + QK / 2) * x[b].qs[j + QK / 2];
        }
        sum += fp16_to_fp32(g[b].d[r]) * x[b].d * static_cast<float>(sumi) + fp16_to_fp32(g[b].m[r]) * x[b].ds;
    }
    return sum;
}

}  // namespace

void gemm_q4_0x16_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo) {
    const int64_t nb = n / QK, ng = nr / kX16Rows;
    const char * wb = static_cast<const char *>(w);
    for (int64_t c = 0; c < nc; c++) {
        const block_q8_s * xc = reinterpret_cast<const block_q8_s *>(static_cast<const char *>(x) + c * xs);
        for (int64_t g = 0; g < ng; g++) {
            const block_q4_0x16 * gb = reinterpret_cast<const block_q4_0x16 *>(wb + g * kX16Rows * ws);
            for (int r = 0; r < kX16Rows; r++) out[c * ldo + g * kX16Rows + r] = dot_q4_0x16(nb, gb, r, xc);
        }
    }
    const int64_t done = ng * kX16Rows;  // the plain tail rows
    kernels_ref.gemm_q4_0(n, wb + done * ws, ws, nr - done, x, xs, nc, out + done, ldo);
}

void gemm_q4_1x16_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo) {
    const int64_t nb = n / QK, ng = nr / kX16Rows;
    const char * wb = static_cast<const char *>(w);
    for (int64_t c = 0; c < nc; c++) {
        const block_q8_s * xc = reinterpret_cast<const block_q8_s *>(static_cast<const char *>(x) + c * xs);
        for (int64_t g = 0; g < ng; g++) {
            const block_q4_1x16 * gb = reinterpret_cast<const block_q4_1x16 *>(wb + g * kX16Rows * ws);
            for (int r = 0; r < kX16Rows; r++) out[c * ldo + g * kX16Rows + r] = dot_q4_1x16(nb, gb, r, xc);
        }
    }
    const int64_t done = ng * kX16Rows;
    kernels_ref.gemm_q4_1(n, wb + done * ws, ws, nr - done, x, xs, nc, out + done, ldo);
}

}  // namespace looplm
