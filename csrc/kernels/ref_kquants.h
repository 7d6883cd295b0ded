// kernels/ref_kquants.h - the scalar reference dots of Q5_0, Q5_1 (block_q8_s activations) and
// of the K-quants Q4_K, Q5_K, Q6_K (block_q8_K activations), and the Q8_K activation quantizer
// (kernels/ref_kquants.cpp; kernels/ref.cpp puts them in kernels_ref). Each dot is one weight
// row of n elements against one activation row.
#pragma once

#include <cstddef>
#include <cstdint>

namespace looplm {

float dot_q5_0_ref(int64_t n, const void * w, const void * x);
float dot_q5_1_ref(int64_t n, const void * w, const void * x);
float dot_q4_K_ref(int64_t n, const void * w, const void * x);
float dot_q5_K_ref(int64_t n, const void * w, const void * x);
float dot_q6_K_ref(int64_t n, const void * w, const void * x);
// The scalar references of the K-quants' packed many-column GEMM: from groups packed by
// pack_x8k_ref (kernels/kpack.h; xs = bytes per group, nc a multiple of 8) what the plain
// GEMMs compute.
void gemm8_q4_K_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                    float * out, size_t ldo);
void gemm8_q5_K_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                    float * out, size_t ldo);
void gemm8_q6_K_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                    float * out, size_t ldo);
// f32 -> block_q8_K rows (n a multiple of 256), bit-exact with ggml's quantize_row_q8_K_ref.
void quantize_q8k_ref(const float * x, void * y, int64_t n);

}  // namespace looplm
