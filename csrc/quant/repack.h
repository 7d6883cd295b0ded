// quant/repack.h - plain GGUF rows of Q4_0 / Q4_1 / Q4_K / Q6_K to the kernels' interleaved x16 layout
// (kernels/x16.h) and back. The layout keeps every byte count: a group of 16 rows fills the
// bytes of those rows, the rows after the last whole group are copied unchanged.
#pragma once

#include <cstdint>

#include "quant/types.h"

namespace looplm {

// Q4_0, Q4_1, Q4_K and Q6_K have an x16 layout.
bool has_x16_layout(DType t);

// rows plain rows of n elements (src) -> the x16 layout (dst); src and dst do not overlap and
// hold rows * row_bytes(t, n) bytes.
void repack_x16(DType t, const void * src, void * dst, int64_t n, int64_t rows);

// The inverse: x16 layout (src) -> plain rows (dst).
void unpack_x16(DType t, const void * src, void * dst, int64_t n, int64_t rows);

}  // namespace looplm
