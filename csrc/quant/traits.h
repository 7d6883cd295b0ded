// traits.h - one row per ggml tensor type: everything the loader, the ops and the kernel
// lookup need to know about it. Adding a weight type means adding its row here (traits.cpp),
// its block struct (blocks.h), its decoder (quantize.cpp) and its kernels in every set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "quant/types.h"

namespace looplm {

struct Kernels;  // kernels/kernels.h
typedef void (*GemmFn)(int64_t n, const void * w, size_t wstride, int64_t nr, const void * x, size_t xstride,
                       int64_t nc, float * out, size_t ldo);

// The activation format a weight type's dot products take.
enum class ActFormat {
    F32,  // plain f32 rows (F32, F16, BF16 weights)
    Q8,   // block_q8_s rows: Q8_0 quants plus precomputed sums (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights)
    Q8K,  // block_q8_K rows of 256 (Q4_K, Q5_K, Q6_K weights)
};

struct TypeTraits {
    DType type;
    const char * name;    // ggml's spelling, e.g. "Q4_0"
    int64_t block_elems;  // a row must be a whole number of blocks
    int64_t block_bytes;
    // The weight-type columns below are set only for types the runtime runs.
    bool runnable;
    ActFormat act;
    void (*dequantize)(const void * src, float * dst, int64_t n);  // n a multiple of block_elems
    GemmFn Kernels::*gemm;                                         // the set's tile GEMM for this weight type
    GemmFn Kernels::*gemm8;  // its packed many-column GEMM (nullptr: the type has none)
};

// The row of a type id read from a file; nullptr for an id this build does not know.
const TypeTraits * find_traits(uint32_t type_id);
// The row of a known type.
const TypeTraits & traits(DType t);
const char * type_name(DType t);
// The names of the runnable types, "F32, F16, ..." (for error messages).
std::string runnable_type_names();
// Bytes of one row of n elements; n must be a multiple of the block size.
int64_t row_bytes(DType t, int64_t n);

}  // namespace looplm
