// kernels/kpack.h - the packed activation layout of the K-quants' many-column GEMM (prompts):
// 8 block_q8_K rows interleaved per super-block, so that one 256-bit vector holds 4
// consecutive elements of each of the 8 columns (lanes are columns). A POD struct only, so
// ISA files may include it (see the SIGILL note in kernels/kernels.h). pack_x8k_ref
// (kernels/ref_kquants.cpp) writes it for every set.
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/blocks.h"

namespace looplm {

struct block_q8_Kx8 {
    uint8_t qs[QK_K / 4][8][4];      // [group g of 4 elements][column][4]: the quants + 128
    float d[8];                      // the columns' scales
    int16_t bsums[QK_K / 64][8][2];  // [pair p][column][k]: the sum of the 32 quants of sub-block 2 p + k
};
static_assert(sizeof(block_q8_Kx8) == 2208, "block_q8_Kx8 is 2208 bytes");

// 8 block_q8_K rows of n elements (xs bytes apart) -> one group of n / 256 block_q8_Kx8, for
// every set (plain data movement, defined out of line in kernels/ref_kquants.cpp); and the
// group's size in bytes.
void pack_x8k_ref(int64_t n, const void * x, size_t xs, void * out);
size_t packed_x8k_bytes_ref(int64_t n);

}  // namespace looplm
