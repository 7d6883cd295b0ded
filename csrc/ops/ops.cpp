// ops/ops.cpp - forward-pass math over the thread pool. Every op splits its work by output
// rows (matmul) or tokens (norms, rope, SwiGLU).
#include "ops/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/x16.h"
#include "quant/blocks.h"
#include "quant/traits.h"

namespace looplm {

namespace {

// Rows per work unit of a matmul: a multiple of the kernels' tiles (the x16 layout's 16-row
// groups), small enough to balance.
constexpr int64_t kRowAlign = 16;
static_assert(kRowAlign % kX16Rows == 0, "work units keep x16 groups whole");
// Cache blocks of a many-column matmul (see matmul_many).
constexpr int64_t kRowBlock = 32;
constexpr int64_t kColBlock = 64;

}  // namespace

void Ops::prepare(DType weight, const float * x, int64_t rows, int64_t n, Activations & a) {
    const ActFormat fmt = traits(weight).act;
    a.quantized = fmt != ActFormat::F32;
    a.n = n;
    a.rows = rows;
    a.packed_rows = 0;
    if (!a.quantized) {
        a.stride = static_cast<size_t>(n) * sizeof(float);
        a.data = x;
        return;
    }
    // Q8: block_q8_s rows of 32 (Q4_0/Q4_1/Q5_0/Q5_1/Q8_0); Q8K: block_q8_K rows of 256 (K-quants).
    const bool k_quant = fmt == ActFormat::Q8K;
    const int64_t block = k_quant ? QK_K : QK;
    void (*quantize)(const float *, void *, int64_t) = k_quant ? k.quantize_q8k : k.quantize_q8;
    if (n % block != 0 || !quantize) {
        throw std::invalid_argument(std::string("cannot quantize activations of length ") + std::to_string(n) +
                                    " for " + type_name(weight) + " weights");
    }
    a.stride = static_cast<size_t>(n / block) * (k_quant ? sizeof(block_q8_K) : sizeof(block_q8_s));
    if (a.buffer.size() < a.stride * static_cast<size_t>(rows)) a.buffer.resize(a.stride * static_cast<size_t>(rows));
    uint8_t * dst = a.buffer.data();
    const size_t stride = a.stride;
    a.data = dst;
    if (rows == 1) {
        quantize(x, dst, n);  // too little work to share
        return;
    }
    // Prompts: groups of 8 rows packed for the many-column GEMM (block_q8_s or block_q8_K layout).
    void (*pack_x8)(int64_t, const void *, size_t, void *) = k_quant ? k.pack_x8k : k.pack_x8;
    const bool pack = pack_x8 && rows >= 8 && (k_quant || n <= kMaxPackedN);
    if (pack) {
        a.packed_rows = rows / 8 * 8;
        a.group_bytes = (k_quant ? k.packed_x8k_bytes : k.packed_x8_bytes)(n);
        if (a.packed.size() < a.group_bytes * static_cast<size_t>(rows / 8))
            a.packed.resize(a.group_bytes * static_cast<size_t>(rows / 8));
    }
    pool.run([&](int ith, int nth) {
        const Range r = split_range(rows, ith, nth);
        for (int64_t i = r.begin; i < r.end; i++) quantize(x + i * n, dst + i * stride, n);
    });
    if (pack) {
        pool.run([&](int ith, int nth) {
            const Range g = split_range(rows / 8, ith, nth);
            for (int64_t i = g.begin; i < g.end; i++)
                pack_x8(n, dst + i * 8 * stride, stride, a.packed.data() + i * a.group_bytes);
        });
    }
}

void Ops::matmul(const Tensor & w, const Activations & a, float * out) {
    const Tensor * ws[1] = {&w};
    float * outs[1] = {out};
    matmul_many(ws, outs, 1, a);
}

void Ops::matmul_many(const Tensor * const * ws, float * const * outs, int count, const Activations & a) {
    // The matrices' rows form one index space of kRowAlign-row units (a matrix's last unit may
    // be short), split evenly over the threads; units keep the x16 layout's groups whole.
    int64_t total = 0;
    for (int m = 0; m < count; m++) total += (ws[m]->ne1 + kRowAlign - 1) / kRowAlign;
    pool.run([&](int ith, int nth) {
        const Range r = split_range(total, ith, nth);
        int64_t base = 0;
        for (int m = 0; m < count && base < r.end; m++) {
            const Tensor & w = *ws[m];
            const int64_t units = (w.ne1 + kRowAlign - 1) / kRowAlign;
            const int64_t ub = std::max<int64_t>(r.begin - base, 0), ue = std::min(r.end - base, units);
            base += units;
            if (ub >= ue) continue;
            const int64_t b = ub * kRowAlign, e = std::min(ue * kRowAlign, w.ne1);
            const GemmFn gemm = gemm_for(k, w.type);
            const GemmFn gemm8 = a.packed_rows > 0 ? gemm8_for(k, w.type) : nullptr;
            const size_t ldo = static_cast<size_t>(w.ne1);
            if (w.x16) {  // whole groups (b and e are multiples of 16 or the end); the kernel tiles
                gemm_x16_for(k, w.type)(w.ne0, w.row(b), w.row_bytes, e - b, a.data, a.stride, a.rows, outs[m] + b,
                                        ldo);
                continue;
            }
            // Cache blocking for many columns (prompts): a block of kColBlock activation rows
            // stays in L2 while blocks of kRowBlock weight rows pass through L1 against it.
            for (int64_t c0 = 0; c0 < a.rows; c0 += kColBlock) {
                const int64_t c1 = std::min(c0 + kColBlock, a.rows);
                const int64_t p1 = gemm8 ? std::min(c1, a.packed_rows) : c0;  // [c0, p1): packed groups
                for (int64_t r0 = b; r0 < e; r0 += kRowBlock) {
                    const int64_t nr = std::min(kRowBlock, e - r0);
                    float * o = outs[m] + r0;
                    if (p1 > c0) {
                        gemm8(w.ne0, w.row(r0), w.row_bytes, nr, a.packed.data() + (c0 / 8) * a.group_bytes,
                              a.group_bytes, p1 - c0, o + c0 * ldo, ldo);
                    }
                    if (c1 > p1) {
                        gemm(w.ne0, w.row(r0), w.row_bytes, nr, static_cast<const char *>(a.data) + p1 * a.stride,
                             a.stride, c1 - p1, o + p1 * ldo, ldo);
                    }
                }
            }
        }
    });
}

void Ops::rmsnorm(const float * x, const float * w, float * out, int64_t rows, int64_t n, float eps) {
    pool.for_rows(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
            const float * xr = x + r * n;
            float * o = out + r * n;
            double ss = 0.0;
            for (int64_t i = 0; i < n; i++) ss += static_cast<double>(xr[i]) * xr[i];
            const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
            for (int64_t i = 0; i < n; i++) o[i] = xr[i] * scale * w[i];
        }
    });
}

void Ops::rope_table(int64_t pos0, int64_t n, int head_dim, float theta, float * table) {
    const int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        const double freq = std::pow(static_cast<double>(theta), -2.0 * i / head_dim);
        for (int64_t t = 0; t < n; t++) {
            const double angle = static_cast<double>(pos0 + t) * freq;
            table[t * head_dim + 2 * i] = static_cast<float>(std::cos(angle));
            table[t * head_dim + 2 * i + 1] = static_cast<float>(std::sin(angle));
        }
    }
}

void Ops::rope(float * x, const int32_t * pos, int64_t rows, int n_heads, int head_dim, const float * table,
               int64_t pos0) {
    pool.for_rows(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
            const float * cs = table + (pos[r] - pos0) * head_dim;
            for (int h = 0; h < n_heads; h++) {
                float * p = x + (r * n_heads + h) * head_dim;
                for (int i = 0; i < head_dim; i += 2) {
                    const float x0 = p[i], x1 = p[i + 1];
                    p[i] = x0 * cs[i] - x1 * cs[i + 1];
                    p[i + 1] = x0 * cs[i + 1] + x1 * cs[i];
                }
            }
        }
    });
}

void Ops::swiglu(float * g, const float * u, int64_t rows, int64_t n) {
    pool.for_rows(rows, [&](int64_t r0, int64_t r1) { k.silu_mul((r1 - r0) * n, g + r0 * n, u + r0 * n); });
}

void Ops::add(float * x, const float * y, int64_t rows, int64_t n) {
    pool.for_rows(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0 * n; i < r1 * n; i++) x[i] += y[i];
    });
}

}  // namespace looplm
