// kernels/kernels.h - the table of compute kernels, one table per instruction set.
//
// Kernels know blocks and pointers, nothing about models. kernels/ref.cpp is the scalar
// specification; every other table must agree with it (tests/test_kernels.py and the C++
// csrc/tests/test_kernels.cpp run each set the machine has against it).
//
// SIGILL hazard: an inline function, template or STL member instantiated inside an ISA
// file (compiled with -mavx2, -march=armv8.2-a+dotprod etc.) becomes a weak symbol the
// linker may pick for generic code too, which then dies with "Illegal instruction" on an
// older CPU. So ISA files include only this header, quant/blocks.h and quant/fp16.h (POD
// structs, out-of-line functions) and intrinsics headers, keep every helper `static`, use no STL, and export one
// `const Kernels`.
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/blocks.h"
#include "quant/traits.h"
#include "quant/types.h"

namespace looplm {

// A tile of dot products: for r < nr and c < nc,
//     out[c * ldo + r] = dot(row r of W, row c of X)
// W holds rows of n elements of the weight type, wstride bytes apart; X holds rows of n
// elements of the paired activation type (block_q8_s for Q4_0/Q4_1/Q8_0 weights, f32 for
// F16/BF16/F32), xstride bytes apart. n is a multiple of 32.
// (GemmFn is declared in quant/traits.h, whose rows point at a set's GEMM members.)

// A run of nrows KV cache rows, `stride` bytes apart, of n elements each:
//   KvScoresFn: out[r] = scale * sum_j row_r[j] * q[j]          for r < nrows
//   KvWsumFn:   acc[j] += sum_r w[r] * row_r[j]                  for j < n
// (quantized rows as their dequantized values; only the float summation order may differ
// from kernels/ref.cpp).
typedef void (*KvScoresFn)(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q, float scale,
                           float * out);
typedef void (*KvWsumFn)(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w, float * acc);

struct Kernels {
    const char * name;
    // f32 activations -> block_q8_s (n a multiple of 32); bit-exact with
    // quantize_row_q8_s_ref (ties round away from zero, as ggml's reference does).
    void (*quantize_q8)(const float * x, void * y, int64_t n);

    GemmFn gemm_q4_0;
    GemmFn gemm_q4_1;
    GemmFn gemm_q8_0;
    GemmFn gemm_f16;
    GemmFn gemm_bf16;
    GemmFn gemm_f32;

    // Many-column GEMM for prompts, optional (nullptr where a set has none): pack_x8 packs 8
    // activation rows (block_q8_s, xs bytes apart) into one group of packed_x8_bytes(n)
    // bytes; gemm8_* take such groups (xstride = bytes per group, nc a multiple of 8,
    // n <= kMaxPackedN) and compute what the plain GEMM computes.
    void (*pack_x8)(int64_t n, const void * x, size_t xs, void * out);
    size_t (*packed_x8_bytes)(int64_t n);
    GemmFn gemm8_q4_0;
    GemmFn gemm8_q4_1;
    GemmFn gemm8_q8_0;

    // Dots of 16-bit / f32 rows with f32 (the float GEMMs' tiles); any n.
    float (*dot_f16_f32)(int64_t n, const uint16_t * a, const float * b);
    float (*dot_f32)(int64_t n, const float * a, const float * b);
    void (*f32_to_f16)(int64_t n, const float * x, uint16_t * y);  // round to nearest even
    // The MLP's gate: g = silu(g) * u = g * u / (1 + exp(-g)); exp within ~2 ulp.
    void (*silu_mul)(int64_t n, float * g, const float * u);

    // Q5_0/Q5_1 weights take block_q8_s rows like Q4_0/Q4_1. The K-quants (Q4_K, Q5_K, Q6_K)
    // take block_q8_K rows (n a multiple of 256), made by quantize_q8k: bit-exact with
    // quantize_row_q8_K_ref.
    GemmFn gemm_q5_0;
    GemmFn gemm_q5_1;
    void (*quantize_q8k)(const float * x, void * y, int64_t n);
    GemmFn gemm_q4_K;
    GemmFn gemm_q5_K;
    GemmFn gemm_q6_K;

    // Q4_0 / Q4_1 / Q4_K weights in the interleaved x16 layout made at load (kernels/x16.h);
    // nullptr where a set has none (gemm_x16_for then gives the scalar reference's, and a Model
    // keeps such matrices plain: model/repacked.h). Q4_K takes block_q8_K rows.
    GemmFn gemm_q4_0x16;
    GemmFn gemm_q4_1x16;
    GemmFn gemm_q4_Kx16;
    GemmFn gemm_q6_Kx16;  // Q6_K in the x16 layout, block_q8_K rows
    // The K-quants' many-column GEMM for prompts, optional (nullptr where a set has none):
    // pack_x8k packs 8 block_q8_K rows into one group of packed_x8k_bytes(n) bytes
    // (kernels/kpack.h); gemm8_q*_K take such groups (xstride = bytes per group, nc a multiple
    // of 8) and compute what the plain K-quant GEMMs compute.
    void (*pack_x8k)(int64_t n, const void * x, size_t xs, void * out);
    size_t (*packed_x8k_bytes)(int64_t n);
    GemmFn gemm8_q4_K;
    GemmFn gemm8_q5_K;
    GemmFn gemm8_q6_K;

    // Attention over a run of KV cache rows (model/attention.cpp), one member per row type
    // (KvScoresFn / KvWsumFn above; the SIMD ones in kernels/kv_rows.h): scores_* gives out[r] = scale * dot(row r, q),
    // wsum_* adds sum_r w[r] * row r into acc. Rows hold n elements (any n for F32/F16, a
    // multiple of 32 for Q8_0/Q4_0) and lie `stride` bytes apart.
    KvScoresFn scores_f32;
    KvScoresFn scores_f16;
    KvScoresFn scores_q8_0;
    KvScoresFn scores_q4_0;
    KvWsumFn wsum_f32;
    KvWsumFn wsum_f16;
    KvWsumFn wsum_q8_0;
    KvWsumFn wsum_q4_0;
    // Softmax numerator: x[i] = exp(x[i] - m) for i < n, returns their sum; exp within ~2 ulp
    // for x[i] - m in [-87, 0] (below that the result may be a tiny normal instead of 0).
    float (*exp_sum)(int64_t n, float * x, float m);
};

constexpr int64_t kMaxPackedN = 16384;

// The float GEMMs' tile, one dot per (row, column), for any set's dot kernel: 16-bit weights
// (F16, BF16) or F32 weights against f32 activations. Weights are streamed once per column,
// which is fine for these paths (tests, small models); the quantized GEMMs are the fast ones.
// Defined in kernels/ref.cpp, built without ISA flags, so every set's file may call it.
typedef float (*Dot16Fn)(int64_t n, const uint16_t * a, const float * b);
typedef float (*Dot32Fn)(int64_t n, const float * a, const float * b);
void gemm_by_dot16(Dot16Fn dot, int64_t n, const void * w, size_t wstride, int64_t nr, const void * x, size_t xstride,
                   int64_t nc, float * out, size_t ldo);
void gemm_by_dot32(Dot32Fn dot, int64_t n, const void * w, size_t wstride, int64_t nr, const void * x, size_t xstride,
                   int64_t nc, float * out, size_t ldo);

// Defines a set's gemm_f16, gemm_bf16 and gemm_f32 (static, for its table) from the dots its
// file defines: dot_f16_f32, dot_bf16_f32 and dot_f32.
#define LOOPLM_FLOAT_GEMMS                                                                                         \
    static void gemm_f16(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,  \
                         float * out, size_t ldo) {                                                                \
        gemm_by_dot16(dot_f16_f32, n, w, ws, nr, x, xs, nc, out, ldo);                                             \
    }                                                                                                              \
    static void gemm_bf16(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc, \
                          float * out, size_t ldo) {                                                               \
        gemm_by_dot16(dot_bf16_f32, n, w, ws, nr, x, xs, nc, out, ldo);                                            \
    }                                                                                                              \
    static void gemm_f32(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,  \
                         float * out, size_t ldo) {                                                                \
        gemm_by_dot32(dot_f32, n, w, ws, nr, x, xs, nc, out, ldo);                                                 \
    }

extern const Kernels kernels_ref;
#if defined(__x86_64__) || defined(_M_X64)
extern const Kernels kernels_avx2;    // AVX2 + FMA + F16C
extern const Kernels kernels_avx512;  // AVX-512 F/BW/VL + VNNI
#endif
#if defined(__aarch64__)
extern const Kernels kernels_neon;     // ARMv8.0 Advanced SIMD (every aarch64 CPU)
extern const Kernels kernels_dotprod;  // ARMv8.2 + dotprod (SDOT): Cortex-A76 / Raspberry Pi 5
#endif

// kernels/dispatch.cpp: the active set, chosen once (LOOPLM_KERNELS overrides).
const Kernels & active_kernels();
// Sets this machine can run, scalar reference first. Returns the count written (<= max).
int available_kernels(const Kernels ** out, int max);
// The set with that name if this machine can run it, else nullptr.
const Kernels * find_kernels(const char * name);
// The table's GEMM for weights of type t (nullptr for a type no GEMM takes), and its packed
// many-column GEMM (nullptr where the set has none or the type has no packed path).
GemmFn gemm_for(const Kernels & k, DType t);
GemmFn gemm8_for(const Kernels & k, DType t);
// The set's GEMM over the x16 layout of Q4_0 / Q4_1 / Q4_K / Q6_K (the reference's where the set has
// none); nullptr for other types. has_own_x16_gemm: the set has its own (not the reference's).
GemmFn gemm_x16_for(const Kernels & k, DType t);
bool has_own_x16_gemm(const Kernels & k, DType t);

}  // namespace looplm
