// kernels/ref.cpp - the scalar reference kernel table: plain loops that define what every
// SIMD table must compute. Integer block sums are exact; only the order of the float
// accumulation may differ in the fast versions.
#include <cmath>

#include "kernels/kernels.h"
#include "kernels/kpack.h"
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

void axpy_f16(int64_t n, float a, const uint16_t * x, float * y) {
    for (int64_t i = 0; i < n; i++) y[i] += a * fp16_to_fp32(x[i]);
}

void axpy_f32(int64_t n, float a, const float * x, float * y) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void f32_to_f16(int64_t n, const float * x, uint16_t * y) {
    for (int64_t i = 0; i < n; i++) y[i] = fp32_to_fp16(x[i]);
}

void silu_mul(int64_t n, float * g, const float * u) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// Attention over quantized KV rows: sum_b d sum_j q_j x_j with the query x in f32, and
// y += a d q_j. Q4_0 nibbles: byte j holds element j (low) and j + 16 (high), offset 8.
float dot_q8_0_f32(int64_t n, const void * vk, const float * x) {
    const block_q8_0 * k = static_cast<const block_q8_0 *>(vk);
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        float s = 0.0f;
        for (int j = 0; j < QK; j++) s += static_cast<float>(k[b].qs[j]) * x[b * QK + j];
        sum += fp16_to_fp32(k[b].d) * s;
    }
    return sum;
}

float dot_q4_0_f32(int64_t n, const void * vk, const float * x) {
    const block_q4_0 * k = static_cast<const block_q4_0 *>(vk);
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        float s = 0.0f;
        for (int j = 0; j < QK / 2; j++) {
            s += static_cast<float>((k[b].qs[j] & 0x0f) - 8) * x[b * QK + j];
            s += static_cast<float>((k[b].qs[j] >> 4) - 8) * x[b * QK + j + QK / 2];
        }
        sum += fp16_to_fp32(k[b].d) * s;
    }
    return sum;
}

void axpy_q8_0(int64_t n, float a, const void * vx, float * y) {
    const block_q8_0 * x = static_cast<const block_q8_0 *>(vx);
    for (int64_t b = 0; b < n / QK; b++) {
        const float ad = a * fp16_to_fp32(x[b].d);
        for (int j = 0; j < QK; j++) y[b * QK + j] += ad * static_cast<float>(x[b].qs[j]);
    }
}

void axpy_q4_0(int64_t n, float a, const void * vx, float * y) {
    const block_q4_0 * x = static_cast<const block_q4_0 *>(vx);
    for (int64_t b = 0; b < n / QK; b++) {
        const float ad = a * fp16_to_fp32(x[b].d);
        for (int j = 0; j < QK / 2; j++) {
            y[b * QK + j] += ad * static_cast<float>((x[b].qs[j] & 0x0f) - 8);
            y[b * QK + j + QK / 2] += ad * static_cast<float>((x[b].qs[j] >> 4) - 8);
        }
    }
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
    "ref",       quantize_q8, gemm_q4_0, gemm_q4_1,    gemm_q8_0,    gemm_f16,  gemm_bf16, gemm_f32,  nullptr,
    nullptr,     nullptr,     nullptr,   nullptr,  // no packed GEMM: the plain one is the spec
    dot_f16_f32, dot_f32,     axpy_f16,  axpy_f32,     f32_to_f16,   silu_mul,  gemm_q5_0, gemm_q5_1, quantize_q8k_ref,
    gemm_q4_K,   gemm_q5_K,   gemm_q6_K, dot_q8_0_f32, dot_q4_0_f32, axpy_q8_0, axpy_q4_0,  // quantized KV rows
    gemm_q4_0x16_ref, gemm_q4_1x16_ref,  // the x16 layout (kernels/ref_x16.cpp)
    pack_x8k_ref,
    packed_x8k_bytes_ref,
    gemm8_q4_K_ref,
    gemm8_q5_K_ref,
    gemm8_q6_K_ref,  // the packed K layout's spec
};

}  // namespace looplm
