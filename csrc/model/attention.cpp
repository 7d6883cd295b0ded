// model/attention.cpp - softmax attention per (token, head) over the pool. Cache rows of any
// KV type (F32, F16, Q8_0, Q4_0) are read in place, one kernel call per page run of rows: the
// scores of the run against the query head, then (after one softmax over all scores) the
// weighted sum of the run's value rows into the output head (no dequantized copy).
#include "model/attention.h"

#include <cmath>
#include <cstring>

#include "quant/quantize.h"

namespace looplm {

namespace {

KvScoresFn scores_fn(const Kernels & k, DType t) {
    switch (t) {
        case DType::F16: return k.scores_f16;
        case DType::Q8_0: return k.scores_q8_0;
        case DType::Q4_0: return k.scores_q4_0;
        default: return k.scores_f32;
    }
}

KvWsumFn wsum_fn(const Kernels & k, DType t) {
    switch (t) {
        case DType::F16: return k.wsum_f16;
        case DType::Q8_0: return k.wsum_q8_0;
        case DType::Q4_0: return k.wsum_q4_0;
        default: return k.wsum_f32;
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

// Calls f(i, row, count, next, next_count) for the runs of rows of indices [i0, i1) of one slot,
// one run per page: rows i .. i + count - 1 (counting from 0) start at row (the row's first
// byte), a row stride apart; next / next_count are the following run's (nullptr / 0 at the end).
template <typename F>
void for_runs(const KVCache & c, int slot, bool values, int64_t i0, int64_t i1, F && f) {
    const int64_t P = c.page_positions();
    const size_t stride = values ? c.row_bytes_v() : c.row_bytes_k();
    auto run = [&](int64_t t, int64_t & end) {
        const int64_t page = t / P;
        end = (page + 1) * P < i1 ? (page + 1) * P : i1;
        return (values ? c.v_page(slot, page) : c.k_page(slot, page)) + (t - page * P) * stride;
    };
    if (i0 >= i1) return;
    int64_t end = 0;
    const uint8_t * row = run(i0, end);
    for (int64_t t = i0; t < i1;) {
        int64_t next_end = end;
        const uint8_t * next = end < i1 ? run(end, next_end) : nullptr;
        f(t - i0, row, end - t, next, next_end - end);
        t = end;
        row = next;
        end = next_end;
    }
}

// Asks for the cache lines of `bytes` bytes at p, in each of count rows a stride apart (the
// rows of one head in the next page: fetched while this page is computed; the cache's pages
// are separate allocations, so the hardware prefetchers do not cross into them).
void prefetch_rows(const uint8_t * p, size_t stride, int64_t count, size_t bytes) {
    for (int64_t r = 0; r < count; r++, p += stride) {
        const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(63),
                        last = reinterpret_cast<uintptr_t>(p) + bytes;
        for (uintptr_t a = first; a < last; a += 64) __builtin_prefetch(reinterpret_cast<const void *>(a));
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
    // per thread: the scores of up to n_head heads of one query row, then their 1 / sums
    const size_t need = static_cast<size_t>(n_head) * static_cast<size_t>(max_pos + 2);
    for (auto & s : scratch_) {
        if (s.size() < need) s.resize(need);
    }
    const size_t s_stride = static_cast<size_t>(max_pos + 1);
    pool_.run([&](int ith, int nth) {
        const Range range = split_range(rows * n_head, ith, nth);
        // The thread's tasks grouped by query row: heads [h0, h1) of row r, read page by page
        // (every head's run of a page before the next page, so the rows are read near in time).
        for (int64_t task = range.begin; task < range.end;) {
            const int64_t r = task / n_head;
            const int h0 = static_cast<int>(task % n_head);
            const int64_t row_end = (r + 1) * n_head < range.end ? (r + 1) * n_head : range.end;
            const int h1 = h0 + static_cast<int>(row_end - task);
            task = row_end;
            const int64_t n_pos = pos[r] + 1;
            float * scores = scratch_[static_cast<size_t>(ith)].data();  // head h at (h - h0) * s_stride
            // g(h, i, rows, stride, count) for every run of a page of the slot's key (values
            // false) or value rows of index [i0, i1) and every head h of the group, the rows of
            // that head's kv head, the same head's rows of the next run asked for meanwhile
            auto head_runs = [&](const KVCache & c, int slot, bool values, int64_t i0, int64_t i1, auto && g) {
                const DType t = values ? c.type_v() : c.type_k();
                const size_t stride = values ? c.row_bytes_v() : c.row_bytes_k(), bytes = kv_row_bytes(t, head_dim);
                for_runs(c, slot, values, i0, i1,
                         [&](int64_t i, const uint8_t * row, int64_t count, const uint8_t * next, int64_t n_next) {
                             for (int h = h0; h < h1; h++) {
                                 const size_t off = kv_row_bytes(t, static_cast<int64_t>(h / group) * head_dim);
                                 if (next) prefetch_rows(next + off, stride, n_next, bytes);
                                 g(h, i, row + off, stride, count);
                             }
                         });
            };
            // scores[t] for t < n_hist from the history, the rest from the current slot
            auto scores_of = [&](const KVCache & c, int slot, int64_t i0, int64_t i1, int64_t first) {
                const KvScoresFn f = scores_fn(k_, c.type_k());
                head_runs(c, slot, false, i0, i1,
                          [&](int h, int64_t i, const uint8_t * rows, size_t stride, int64_t n) {
                              f(head_dim, rows, stride, n, q + (r * n_head + h) * head_dim, scale,
                                scores + (h - h0) * s_stride + first + i);
                          });
            };
            auto values_of = [&](const KVCache & c, int slot, int64_t i0, int64_t i1, int64_t first) {
                const KvWsumFn f = wsum_fn(k_, c.type_v());
                head_runs(c, slot, true, i0, i1, [&](int h, int64_t i, const uint8_t * rows, size_t stride, int64_t n) {
                    f(head_dim, rows, stride, n, scores + (h - h0) * s_stride + first + i,
                      out + (r * n_head + h) * head_dim);
                });
            };
            if (hist) scores_of(*hist, view.hist_slot, 0, n_hist, 0);
            scores_of(cur, view.slot, n_hist - view.base, n_pos - view.base, n_hist);
            float * inv = scores + static_cast<size_t>(n_head) * s_stride;
            for (int h = h0; h < h1; h++) {
                float * sh = scores + (h - h0) * s_stride;
                float max_s = -INFINITY;
                for (int64_t t = 0; t < n_pos; t++) max_s = sh[t] > max_s ? sh[t] : max_s;
                inv[h - h0] = 1.0f / k_.exp_sum(n_pos, sh, max_s);
                std::memset(out + (r * n_head + h) * head_dim, 0, static_cast<size_t>(head_dim) * sizeof(float));
            }
            if (hist) values_of(*hist, view.hist_slot, 0, n_hist, 0);
            values_of(cur, view.slot, n_hist - view.base, n_pos - view.base, n_hist);
            for (int h = h0; h < h1; h++) {
                float * o = out + (r * n_head + h) * head_dim;
                for (int d = 0; d < head_dim; d++) o[d] *= inv[h - h0];
            }
        }
    });
}

}  // namespace looplm
