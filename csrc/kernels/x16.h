// kernels/x16.h - the interleaved "x16" layout of Q4_0, Q4_1 and Q4_K weights, made at load time
// (quant/repack.h) so that one pass over a weight block computes 16 output rows against one
// activation block, with the row index in the vector lanes and no horizontal sums.
//
// A group is 16 consecutive rows of a matrix whose rows hold nb = n / 32 blocks (n / 256 for Q4_K). It occupies
// exactly the bytes of those 16 rows (16 * nb * sizeof(block)), so the layout fits in the place
// of the plain rows: group g starts where row 16 g started. Inside a group, the nb group-blocks
// follow each other; group-block b gathers block b of the 16 rows:
//
//   block_q4_0x16 (288 bytes):  d[16]          fp16 scale of row r's block b
//                               qs[4][16][4]   qs[c][r][j] = row r's block b qs[4c + j]
//   block_q4_1x16 (320 bytes):  d[16], m[16]   fp16 scale and minimum of row r's block b
//                               qs[4][16][4]   as Q4_0
//   block_q4_Kx16 (2304 bytes): d[16], dmin[16] fp16 super-block scales of row r's block b
//                               scales[3][16][4] scales[w][r][j] = row r's block b scales[4w + j]
//                               qs[32][16][4]  qs[c][r][j] = row r's block b qs[4c + j]
//   block_q6_Kx16 (3360 bytes): d[16]          fp16 super-block scale of row r's block b
//                               scales[8][16][2] scales[p][r][j] = row r's block b scales[2p + j] (int8)
//                               ql[32][16][4]  ql[c][r][j] = row r's block b ql[4c + j]
//                               qh[16][16][4]  qh[c][r][j] = row r's block b qh[4c + j]
//
// Every field is gathered the same way: chunk c of the field of the 16 rows, row after row
// (chunks of 2 bytes for the fp16 scales and Q6_K's int8 scales, 4 bytes otherwise).
//
// So the low nibble of qs[c][r][j] is element 4c + j of row r's block, the high nibble element
// 16 + 4c + j (GGUF's pairing of elements j and j + 16 in one byte is kept). A 64-byte chunk
// qs[c] read as 16 int32 lanes holds, in lane r, 4 consecutive elements of row r: an integer
// dot product instruction (vpdpbusd, sdot by lane, maddubs + madd) against the 4 activation
// bytes x[4c..4c+3] broadcast to all lanes (and x[16+4c..] for the high nibbles) advances all
// 16 rows at once. The -8 offset of Q4_0 is exact in integers: sum (q - 8) x = sum q x - 8 sum x,
// the second term one integer per activation block, the same for all 16 rows.
//
// Q4_K: the twelve bytes of six-bit scales and mins of a row are three 32-bit words u[0..2]
// (kernels/kscales.h); scales[w] read as 16 int32 lanes holds word w of every row, so
// unpack_k4_scales' shifts and masks unpack all 16 rows' scales and mins at once. Chunk c of qs
// holds bytes 4c..4c+3 of each row's 128: the low nibbles are elements 64 (c / 8) + 4 (c % 8) + j
// of sub-block 2 (c / 8), the high nibbles the same + 32 of sub-block 2 (c / 8) + 1. The weights
// are unsigned (0..15), the mins come from the activation's bsums as in the plain kernels.
//
// Q6_K: scales[p] (32 bytes) sign-extended to int16 (vpmovsxbw, vmovl) holds in int32 lane r
// the pair of int8 scales 2p, 2p + 1 of row r: the pair of all 16 rows unpacks at once, and one
// int16 pair multiply-add against the activation's bsums[2p], bsums[2p + 1] (adjacent int16 in
// block_q8_K, one 32-bit broadcast) gives each row's sum of scale times sub-block sum. GGUF's element e = 128 h + 32 k + l (h half,
// k quarter, l < 32) has its low 4 bits in ql[64 h + 32 (k % 2) + l] (low nibble for k < 2,
// high for k >= 2) and its top 2 bits at bit 2 k of qh[32 h + l]; so the qh chunk
// c = 8 h + i (i < 8) pairs with the ql chunks 16 h + i (quarters 0 and 2) and 16 h + 8 + i
// (quarters 1 and 3): the three 64-byte loads hold 4 consecutive elements l = 4 i + j of all
// four quarters of half h of all 16 rows, sub-block 8 h + 2 k + i / 4. The quants are taken
// unsigned (0..63); the -32 offset is exact in integers through the activation's bsums (one per
// 16-element sub-block): sum (q - 32) x = sum q x - 32 bsums[s].
//
// Rows after the last whole group (rows % 16 of them) stay in the plain GGUF layout in their
// places. A GEMM over the x16 layout (Kernels::gemm_q4_0x16 / gemm_q4_1x16 / gemm_q4_Kx16 / gemm_q6_Kx16) takes w pointing at
// the start of a group, wstride the plain row size, and nr rows: floor(nr / 16) groups, then
// nr % 16 plain rows (which happens only at a matrix's end). Everything else is as GemmFn.
//
// Plain data only: ISA files may include this header (see the SIGILL note in kernels.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/blocks.h"

namespace looplm {

constexpr int kX16Rows = 16;

struct block_q4_0x16 {
    uint16_t d[kX16Rows];
    uint8_t qs[4][kX16Rows][4];
};
static_assert(sizeof(block_q4_0x16) == kX16Rows * sizeof(block_q4_0), "x16 Q4_0 fits in place");

struct block_q4_1x16 {
    uint16_t d[kX16Rows];
    uint16_t m[kX16Rows];
    uint8_t qs[4][kX16Rows][4];
};
static_assert(sizeof(block_q4_1x16) == kX16Rows * sizeof(block_q4_1), "x16 Q4_1 fits in place");

struct block_q4_Kx16 {
    uint16_t d[kX16Rows];
    uint16_t dmin[kX16Rows];
    uint8_t scales[K_SCALE_SIZE / 4][kX16Rows][4];
    uint8_t qs[QK_K / 8][kX16Rows][4];
};
static_assert(sizeof(block_q4_Kx16) == kX16Rows * sizeof(block_q4_K), "x16 Q4_K fits in place");

struct block_q6_Kx16 {
    uint16_t d[kX16Rows];
    int8_t scales[QK_K / 16 / 2][kX16Rows][2];
    uint8_t ql[QK_K / 2 / 4][kX16Rows][4];
    uint8_t qh[QK_K / 4 / 4][kX16Rows][4];
};
static_assert(sizeof(block_q6_Kx16) == kX16Rows * sizeof(block_q6_K), "x16 Q6_K fits in place");

// The scalar reference GEMMs over the x16 layout (kernels/ref_x16.cpp, no ISA flags): per row
// and block the same integer sums and the same order of float sums as kernels_ref's plain
// gemm_q4_0 / gemm_q4_1 / gemm_q4_K / gemm_q6_K, so their results are identical to the plain
// reference's (Q4_K and Q6_K take block_q8_K activations, as the plain K-quant GEMMs).
void gemm_q4_0x16_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo);
void gemm_q4_1x16_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo);
void gemm_q4_Kx16_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo);
void gemm_q6_Kx16_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                      float * out, size_t ldo);

}  // namespace looplm
