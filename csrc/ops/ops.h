// ops/ops.h - the math of one forward pass on f32 activations: matmul against quantized
// weights, RMSNorm, RoPE, SwiGLU (attention over the KV cache is model/attention.h). Ops know tensors and
// shapes, not models; they parallelise over the pool and call the kernel table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "quant/types.h"
#include "runtime/threads.h"

namespace looplm {

// A 2-D weight matrix viewed in the mmap: ne0 = row length (inputs), ne1 = rows (outputs).
struct Tensor {
    std::string name;
    DType type = DType::F32;
    int64_t ne0 = 0, ne1 = 0;
    size_t row_bytes = 0;
    const void * data = nullptr;
    // Q4_0 / Q4_1 / Q4_K rows repacked at load into the kernels' x16 layout (kernels/x16.h): groups of
    // 16 rows, the rows % 16 after the last group plain. row(i) is then a group's start only
    // for i % 16 == 0.
    bool x16 = false;

    const void * row(int64_t i) const { return static_cast<const char *>(data) + i * row_bytes; }
};

// Activations prepared for one weight type: f32 rows as given, or quantized to the weight type's
// partner (block_q8_s rows, or block_q8_K rows for the K-quants; traits' ActFormat).
struct Activations {
    bool quantized = false;
    int64_t n = 0, rows = 0;  // row length, number of rows (tokens)
    size_t stride = 0;        // bytes between rows
    const void * data = nullptr;
    std::vector<uint8_t> buffer;  // storage when quantized
    // Rows [0, packed_rows) also packed in groups of 8 for the kernels' many-column GEMM.
    int64_t packed_rows = 0;
    size_t group_bytes = 0;
    std::vector<uint8_t> packed;
};

class Ops {
  public:
    Ops(const Kernels & k, ThreadPool & pool) : k(k), pool(pool) {}

    const Kernels & k;
    ThreadPool & pool;

    // Prepares x [rows, n] (row stride n) for matmuls against weights of type `weight`; n must be
    // a whole number of the activation blocks (32, or 256 for the K-quants).
    void prepare(DType weight, const float * x, int64_t rows, int64_t n, Activations & a);
    // out [rows, w.ne1] = a [rows, w.ne0] . w^T
    void matmul(const Tensor & w, const Activations & a, float * out);
    // Three matmuls with the same input in one parallel region (q, k, v or gate, up).
    void matmul_many(const Tensor * const * ws, float * const * outs, int count, const Activations & a);

    // out[i] = x[i] * rsqrt(mean(x^2) + eps) * w[i], per row of n.
    void rmsnorm(const float * x, const float * w, float * out, int64_t rows, int64_t n, float eps);
    // table [n, head_dim]: (cos, sin) of (pos0 + t) * theta^(-2i/head_dim) for pairs i.
    static void rope_table(int64_t pos0, int64_t n, int head_dim, float theta, float * table);
    // x [rows, n_heads * head_dim]: rotates adjacent pairs (2i, 2i+1) by the angles of pos[r],
    // the layout of llama.cpp's permuted q/k rows ("NORM" rope). table from rope_table(pos0).
    void rope(float * x, const int32_t * pos, int64_t rows, int n_heads, int head_dim, const float * table,
              int64_t pos0);
    // g [rows, n] <- silu(g) * u
    void swiglu(float * g, const float * u, int64_t rows, int64_t n);
    // x += y, rows of n
    void add(float * x, const float * y, int64_t rows, int64_t n);
};

}  // namespace looplm
