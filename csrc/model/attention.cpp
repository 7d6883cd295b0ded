// model/attention.cpp - softmax attention per (token, head) over the pool. Cache rows of any
// KV type are read in place, page by page: F32/F16 by the float kernels, Q8_0/Q4_0 by the
// quantized-row kernels (no dequantized copy).
#include "model/attention.h"

#include <cmath>
#include <cstring>

#include "quant/quantize.h"

namespace looplm {

namespace {

float dot_row(const Kernels & k, DType t, int64_t n, const uint8_t * row, const float * q) {
    switch (t) {
        case DType::F16: return k.dot_f16_f32(n, reinterpret_cast<const uint16_t *>(row), q);
        case DType::Q8_0: return k.dot_q8_0_f32(n, row, q);
        case DType::Q4_0: return k.dot_q4_0_f32(n, row, q);
        default: return k.dot_f32(n, reinterpret_cast<const float *>(row), q);
    }
}

void axpy_row(const Kernels & k, DType t, int64_t n, float a, const uint8_t * row, float * y) {
    switch (t) {
        case DType::F16: k.axpy_f16(n, a, reinterpret_cast<const uint16_t *>(row), y); break;
        case DType::Q8_0: k.axpy_q8_0(n, a, row, y); break;
        case DType::Q4_0: k.axpy_q4_0(n, a, row, y); break;
        default: k.axpy_f32(n, a, reinterpret_cast<const float *>(row), y); break;
    }
}

void store_row(const Kernels & k, DType t, int64_t n, const float * x, void * dst) {
    switch (t) {
        case DType::F16: k.f32_to_f16(n, x, static_cast<uint16_t *>(dst)); break;
        case DType::Q8_0: quantize_row_q8_0_ref(x, static_cast<block_q8_0 *>(dst), n); break;
        case DType::Q4_0: quantize_row_q4_0_ref(x, static_cast<block_q4_0 *>(dst), n); break;
        default: std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float)); break;
    }
}

// Calls f(i, row) for the rows of indices [i0, i1) of one slot, page by page; i counts from 0.
template <typename F>
void for_rows(const KVCache & c, int slot, bool values, int64_t i0, int64_t i1, size_t offset, F && f) {
    const int64_t P = c.page_positions();
    const size_t stride = values ? c.row_bytes_v() : c.row_bytes_k();
    int64_t i = 0;
    for (int64_t t = i0; t < i1;) {
        const int64_t page = t / P, end = (page + 1) * P < i1 ? (page + 1) * P : i1;
        const uint8_t * row = (values ? c.v_page(slot, page) : c.k_page(slot, page)) + (t - page * P) * stride + offset;
        for (; t < end; t++, i++, row += stride) f(i, row);
    }
}

}  // namespace

void Attention::store_kv(KVCache & kv, int slot, const float * kr, const float * vr, const int32_t * pos, int64_t rows,
                         int64_t base) {
    const int64_t d = kv.kv_dim();
    pool_.for_rows(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
            store_row(k_, kv.type_k(), d, kr + r * d, kv.k(slot, pos[r] - base));
            store_row(k_, kv.type_v(), d, vr + r * d, kv.v(slot, pos[r] - base));
        }
    });
}

void Attention::attend(const float * q, const KVCache & kv, int slot, const int32_t * pos, int64_t rows, int n_head,
                       int n_head_kv, int head_dim, float * out) {
    KVView view;
    view.kv = &kv;
    view.slot = slot;
    attend(q, view, pos, rows, n_head, n_head_kv, head_dim, out);
}

void Attention::attend(const float * q, const KVView & view, const int32_t * pos, int64_t rows, int n_head,
                       int n_head_kv, int head_dim, float * out) {
    const int group = n_head / n_head_kv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    const KVCache & cur = *view.kv;
    const KVCache * hist = view.hist_len > 0 ? view.hist : nullptr;
    const int64_t n_hist = hist ? view.hist_len : 0;
    int64_t max_pos = 0;
    for (int64_t r = 0; r < rows; r++) max_pos = pos[r] > max_pos ? pos[r] : max_pos;
    for (auto & s : scratch_) {
        if (static_cast<int64_t>(s.size()) < max_pos + 1) s.resize(static_cast<size_t>(max_pos + 1));
    }
    pool_.run([&](int ith, int nth) {
        float * scores = scratch_[static_cast<size_t>(ith)].data();
        const Range range = split_range(rows * n_head, ith, nth);
        for (int64_t task = range.begin; task < range.end; task++) {
            const int64_t r = task / n_head;
            const int h = static_cast<int>(task % n_head);
            const int64_t off = static_cast<int64_t>(h / group) * head_dim;  // kv head offset, elements
            const float * qh = q + (r * n_head + h) * head_dim;
            const int64_t n_pos = pos[r] + 1;
            // scores[t] for t < n_hist from the history, the rest from the current slot
            float max_s = -INFINITY;
            auto score = [&](const KVCache & c, int64_t first, int64_t i, const uint8_t * row) {
                const float s = dot_row(k_, c.type_k(), head_dim, row, qh) * scale;
                scores[first + i] = s;
                max_s = s > max_s ? s : max_s;
            };
            if (hist) {
                for_rows(*hist, view.hist_slot, false, 0, n_hist, kv_row_bytes(hist->type_k(), off),
                         [&](int64_t i, const uint8_t * row) { score(*hist, 0, i, row); });
            }
            for_rows(cur, view.slot, false, n_hist - view.base, n_pos - view.base, kv_row_bytes(cur.type_k(), off),
                     [&](int64_t i, const uint8_t * row) { score(cur, n_hist, i, row); });
            float sum = 0.0f;
            for (int64_t t = 0; t < n_pos; t++) {
                scores[t] = std::exp(scores[t] - max_s);
                sum += scores[t];
            }
            float * o = out + (r * n_head + h) * head_dim;
            std::memset(o, 0, static_cast<size_t>(head_dim) * sizeof(float));
            const float inv = 1.0f / sum;
            if (hist) {
                for_rows(*hist, view.hist_slot, true, 0, n_hist, kv_row_bytes(hist->type_v(), off),
                         [&](int64_t i, const uint8_t * row) {
                             axpy_row(k_, hist->type_v(), head_dim, scores[i] * inv, row, o);
                         });
            }
            for_rows(cur, view.slot, true, n_hist - view.base, n_pos - view.base, kv_row_bytes(cur.type_v(), off),
                     [&](int64_t i, const uint8_t * row) {
                         axpy_row(k_, cur.type_v(), head_dim, scores[n_hist + i] * inv, row, o);
                     });
        }
    });
}

}  // namespace looplm
