// kernels/ref.cpp - the scalar reference kernel table: plain loops that define what every
// SIMD table must compute. Integer block sums are exact; only the order of the float
// accumulation may differ in the fast versions.
#include <cmath>

#include "kernels/kernels.h"
#include "kernels/kpack.h"
#include "kernels/kv_rows.h"
#include "kernels/ref_kquants.h"
#include "kernels/x16.h"
#include "quant/blocks.h"
#include "quant/fp16.h"
#include "quant/quantize.h"

namespace looplm {

namespace {

void quantize_q8(const float * x, void * y, int64_t n) { quantize_row_q8_s_ref(x, static_cast<block_q8_s *>(y), n); }

// sum_b d_w d_x sum_j (q_w - 8) q_x
float dot_q4_0(int64_t n, const void * vw, const void * vx) {
    const block_q4_0 * w = static_cast<const block_q4_0 *>(vw);
    const block_q8_s * x = static_cast<const block_q8_s *>(vx);
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; j++) {
            sumi += ((w[b].qs[j] & 0x0f) - 8) * x[b].qs[j];
            sumi += ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + QK / 2];
        }
        sum += fp16_to_fp32(w[b].d) * x[b].d * static_cast<float>(sumi);
    }
    return sum;
}

// sum_b (d_w d_x sum_j q_w q_x + m_w d_x sum_j q_x), the last term precomputed as ds
float dot_q4_1(int64_t n, const void * vw, const void * vx) {
    const block_q4_1 * w = static_cast<const block_q4_1 *>(vw);
    const block_q8_s * x = static_cast<const block_q8_s *>(vx);
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; j++) {
            sumi += (w[b].qs[j] & 0x0f) * x[b].qs[j];
            sumi += (w[b].qs[j] >> 4) * x[b].qs[j + QK / 2];
        }
        sum += fp16_to_fp32(w[b].d) * x[b].d * static_cast<float>(sumi) + fp16_to_fp32(w[b].m) * x[b].ds;
    }
    return sum;
}

float dot_q8_0(int64_t n, const void * vw, const void * vx) {
    const block_q8_0 * w = static_cast<const block_q8_0 *>(vw);
    const block_q8_s * x = static_cast<const block_q8_s *>(vx);
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        int sumi = 0;
        for (int j = 0; j < QK; j++) sumi += w[b].qs[j] * x[b].qs[j];
        sum += fp16_to_fp32(w[b].d) * x[b].d * static_cast<float>(sumi);
    }
    return sum;
}

float dot_f16_f32(int64_t n, const uint16_t * a, const float * b) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += fp16_to_fp32(a[i]) * b[i];
    return sum;
}

float dot_bf16_f32(int64_t n, const uint16_t * a, const float * b) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += bf16_to_fp32(a[i]) * b[i];
    return sum;
}

float dot_f32(int64_t n, const float * a, const float * b) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

void f32_to_f16(int64_t n, const float * x, uint16_t * y) {
    for (int64_t i = 0; i < n; i++) y[i] = fp32_to_fp16(x[i]);
}

void silu_mul(int64_t n, float * g, const float * u) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// Attention over runs of KV rows: each score a float sum over the row in element order (per
// block d * sum_j q_j x_j for the quantized rows), each weighted sum row by row in order.
// Q4_0 nibbles: byte j holds element j (low) and j + 16 (high), offset 8.
float row_f32(const void * r, int64_t j) { return static_cast<const float *>(r)[j]; }
float row_f16(const void * r, int64_t j) { return fp16_to_fp32(static_cast<const uint16_t *>(r)[j]); }
float row_q8_0(const void * r, int64_t j) {
    return static_cast<float>(static_cast<const block_q8_0 *>(r)[j / QK].qs[j % QK]);
}
float row_q4_0(const void * r, int64_t j) {
    const uint8_t b = static_cast<const block_q4_0 *>(r)[j / QK].qs[j % (QK / 2)];
    return static_cast<float>((j % QK < QK / 2 ? (b & 0x0f) : (b >> 4)) - 8);
}
float scale_none(const void *, int64_t) { return 1.0f; }
float scale_q8_0(const void * r, int64_t b) { return fp16_to_fp32(static_cast<const block_q8_0 *>(r)[b].d); }
float scale_q4_0(const void * r, int64_t b) { return fp16_to_fp32(static_cast<const block_q4_0 *>(r)[b].d); }

// blk: elements per scale (n for the float rows, whose scale is 1).
template <typename Elem, typename Scale>
void scores(Elem elem, Scale sc, int64_t blk, int64_t n, const void * rows, size_t stride, int64_t nrows,
            const float * q, float scale, float * out) {
    for (int64_t r = 0; r < nrows; r++) {
        const void * row = static_cast<const uint8_t *>(rows) + r * stride;
        float sum = 0.0f;
        for (int64_t b = 0; b < n / blk; b++) {
            float s = 0.0f;
            for (int64_t j = b * blk; j < (b + 1) * blk; j++) s += elem(row, j) * q[j];
            sum += sc(row, b) * s;
        }
        out[r] = scale * sum;
    }
}

template <typename Elem, typename Scale>
void wsum(Elem elem, Scale sc, int64_t blk, int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w,
          float * acc) {
    for (int64_t r = 0; r < nrows; r++) {
        const void * row = static_cast<const uint8_t *>(rows) + r * stride;
        for (int64_t b = 0; b < n / blk; b++) {
            const float a = w[r] * sc(row, b);
            for (int64_t j = b * blk; j < (b + 1) * blk; j++) acc[j] += a * elem(row, j);
        }
    }
}

void scores_f32(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q, float scale, float * out) {
    scores(row_f32, scale_none, n > 0 ? n : 1, n, rows, stride, nrows, q, scale, out);
}
void scores_f16(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q, float scale, float * out) {
    scores(row_f16, scale_none, n > 0 ? n : 1, n, rows, stride, nrows, q, scale, out);
}
void scores_q8_0(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q, float scale,
                 float * out) {
    scores(row_q8_0, scale_q8_0, QK, n, rows, stride, nrows, q, scale, out);
}
void scores_q4_0(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q, float scale,
                 float * out) {
    scores(row_q4_0, scale_q4_0, QK, n, rows, stride, nrows, q, scale, out);
}
void wsum_f32(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w, float * acc) {
    wsum(row_f32, scale_none, n > 0 ? n : 1, n, rows, stride, nrows, w, acc);
}
void wsum_f16(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w, float * acc) {
    wsum(row_f16, scale_none, n > 0 ? n : 1, n, rows, stride, nrows, w, acc);
}
void wsum_q8_0(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w, float * acc) {
    wsum(row_q8_0, scale_q8_0, QK, n, rows, stride, nrows, w, acc);
}
void wsum_q4_0(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w, float * acc) {
    wsum(row_q4_0, scale_q4_0, QK, n, rows, stride, nrows, w, acc);
}

float exp_sum(int64_t n, float * x, float m) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = std::exp(x[i] - m);
        sum += x[i];
    }
    return sum;
}

// The tile loop shared by every reference GEMM: one dot per (row, column).
template <typename Dot>
void tile(Dot dot, int64_t n, const void * w, size_t wstride, int64_t nr, const void * x, size_t xstride, int64_t nc,
          float * out, size_t ldo) {
    const char * wb = static_cast<const char *>(w);
    const char * xb = static_cast<const char *>(x);
    for (int64_t c = 0; c < nc; c++) {
        for (int64_t r = 0; r < nr; r++) {
            out[c * ldo + r] = dot(n, wb + r * wstride, xb + c * xstride);
        }
    }
}

void gemm_q4_0(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc, float * out,
               size_t ldo) {
    tile(dot_q4_0, n, w, ws, nr, x, xs, nc, out, ldo);
}

void gemm_q4_1(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc, float * out,
               size_t ldo) {
    tile(dot_q4_1, n, w, ws, nr, x, xs, nc, out, ldo);
}

void gemm_q8_0(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc, float * out,
               size_t ldo) {
    tile(dot_q8_0, n, w, ws, nr, x, xs, nc, out, ldo);
}

// The newer types' tiles, of the dots in kernels/ref_kquants.cpp.
#define LOOPLM_REF_GEMM(T)                                                                                 \
    void gemm_##T(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc, \
                  float * out, size_t ldo) {                                                               \
        tile(dot_##T##_ref, n, w, ws, nr, x, xs, nc, out, ldo);                                            \
    }
LOOPLM_REF_GEMM(q5_0)
LOOPLM_REF_GEMM(q5_1)
LOOPLM_REF_GEMM(q4_K)
LOOPLM_REF_GEMM(q5_K)
LOOPLM_REF_GEMM(q6_K)
#undef LOOPLM_REF_GEMM

LOOPLM_FLOAT_GEMMS

}  // namespace

void gemm_by_dot16(Dot16Fn dot, int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                   float * out, size_t ldo) {
    tile([dot](int64_t k, const void * a,
               const void * b) { return dot(k, static_cast<const uint16_t *>(a), static_cast<const float *>(b)); },
         n, w, ws, nr, x, xs, nc, out, ldo);
}

void gemm_by_dot32(Dot32Fn dot, int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                   float * out, size_t ldo) {
    tile([dot](int64_t k, const void * a,
               const void * b) { return dot(k, static_cast<const float *>(a), static_cast<const float *>(b)); },
         n, w, ws, nr, x, xs, nc, out, ldo);
}

extern const Kernels kernels_ref = {
    "ref",
    quantize_q8,
    gemm_q4_0,
    gemm_q4_1,
    gemm_q8_0,
    gemm_f16,
    gemm_bf16,
    gemm_f32,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,  // no packed GEMM: the plain one is the spec
    dot_f16_f32,
    dot_f32,
    f32_to_f16,
    silu_mul,
    gemm_q5_0,
    gemm_q5_1,
    quantize_q8k_ref,
    gemm_q4_K,
    gemm_q5_K,
    gemm_q6_K,
    gemm_q4_0x16_ref,
    gemm_q4_1x16_ref,
    gemm_q4_Kx16_ref,
    gemm_q6_Kx16_ref,  // the x16 layout (kernels/ref_x16.cpp)
    pack_x8k_ref,
    packed_x8k_bytes_ref,
    gemm8_q4_K_ref,
    gemm8_q5_K_ref,
    gemm8_q6_K_ref,         // the packed K layout's spec
    LOOPLM_KV_ENTRIES(, ),  // attention over runs of KV rows
};

}  // namespace looplm
