// model/attention.cpp - softmax attention per (token, head) over the pool. Cache rows of any
// KV type (F32, F16, Q8_0, Q4_0) are read in place, one kernel call per page run of rows: the
// scores of the run against the query head, then (after one softmax over all scores) the
// weighted sum of the run's value rows into the output head (no dequantized copy).
#include "model/attention.h"

#include <cmath>
#include <cstdlib>
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
    // per thread: the scores of up to n_head heads of one query row, then their maxima and sums
    const size_t need = static_cast<size_t>(n_head) * static_cast<size_t>(max_pos + 3);
    for (auto & s : scratch_) {
        if (s.size() < need) s.resize(need);
    }
    const size_t s_stride = static_cast<size_t>(max_pos + 1);
    // Heads [h0, h1) of query row r over the positions [p0, p1) of its n_pos (the history's
    // [0, n_hist) first, then the current slot's), with scores in `scores` (head h at
    // (h - h0) * s_stride, position p at p - p0): writes each head's max score to mx[h - h0],
    // its sum of exp(score - max) to sm[h - h0] and the unnormalized sum of exp-weighted value
    // rows to o + (h - h0) * o_stride. Every head's run of a page is read before the next page,
    // so the rows of a page are read near in time.
    auto partial = [&](int64_t r, int h0, int h1, int64_t p0, int64_t p1, float * scores, float * o, int64_t o_stride,
                       float * mx, float * sm) {
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
        // scores of positions [i0, i1) of a slot, written from index `first` of the head's scores
        auto scores_of = [&](const KVCache & c, int slot, int64_t i0, int64_t i1, int64_t first) {
            const KvScoresFn f = scores_fn(k_, c.type_k());
            head_runs(c, slot, false, i0, i1, [&](int h, int64_t i, const uint8_t * rows, size_t stride, int64_t n) {
                f(head_dim, rows, stride, n, q + (r * n_head + h) * head_dim, scale,
                  scores + (h - h0) * s_stride + first + i);
            });
        };
        auto values_of = [&](const KVCache & c, int slot, int64_t i0, int64_t i1, int64_t first) {
            const KvWsumFn f = wsum_fn(k_, c.type_v());
            head_runs(c, slot, true, i0, i1, [&](int h, int64_t i, const uint8_t * rows, size_t stride, int64_t n) {
                f(head_dim, rows, stride, n, scores + (h - h0) * s_stride + first + i, o + (h - h0) * o_stride);
            });
        };
        const int64_t hist_end = p1 < n_hist ? p1 : n_hist, cur_begin = p0 > n_hist ? p0 : n_hist;
        if (hist && p0 < hist_end) scores_of(*hist, view.hist_slot, p0, hist_end, 0);
        if (cur_begin < p1) scores_of(cur, view.slot, cur_begin - view.base, p1 - view.base, cur_begin - p0);
        for (int h = h0; h < h1; h++) {
            float * sh = scores + (h - h0) * s_stride;
            float max_s = -INFINITY;
            for (int64_t t = 0; t < p1 - p0; t++) max_s = sh[t] > max_s ? sh[t] : max_s;
            mx[h - h0] = max_s;
            sm[h - h0] = p1 > p0 ? k_.exp_sum(p1 - p0, sh, max_s) : 0.0f;
            std::memset(o + (h - h0) * o_stride, 0, static_cast<size_t>(head_dim) * sizeof(float));
        }
        if (hist && p0 < hist_end) values_of(*hist, view.hist_slot, p0, hist_end, 0);
        if (cur_begin < p1) values_of(cur, view.slot, cur_begin - view.base, p1 - view.base, cur_begin - p0);
    };
    const int nth = pool_.size();
    // LOOPLM_ATTN_SPLIT=positions (read per call, for same-process A/B runs): one query row
    // (decoding) splits its positions across the threads, each taking every head of its range
    // (flash-decoding); the partial max / sum / values are merged exactly below. Off by default:
    // no measured gain (docs/benchmarks.md), and the default split by (row, head) tasks keeps a
    // decoded token bit-equal to the batched engine's (tests/test_batch.py).
    const char * split_env = std::getenv("LOOPLM_ATTN_SPLIT");
    const bool by_heads = !(split_env && std::strcmp(split_env, "positions") == 0);
    const int64_t n_pos0 = rows == 1 ? pos[0] + 1 : 0;
    if (rows == 1 && nth > 1 && !by_heads && n_pos0 >= 2 * static_cast<int64_t>(nth)) {
        const size_t per = static_cast<size_t>(n_head) * static_cast<size_t>(head_dim + 2);
        if (part_.size() < per * static_cast<size_t>(nth)) part_.resize(per * static_cast<size_t>(nth));
        // ranges aligned to the cache's pages where the positions allow it
        const int64_t P = cur.page_positions();
        const int64_t n_pages = (n_pos0 + P - 1) / P;
        pool_.run([&](int ith, int nth_) {
            int64_t p0, p1;
            if (n_pages >= nth_) {
                const Range pr = split_range(n_pages, ith, nth_);
                p0 = pr.begin * P;
                p1 = pr.end * P < n_pos0 ? pr.end * P : n_pos0;
            } else {
                const Range pr = split_range(n_pos0, ith, nth_);
                p0 = pr.begin;
                p1 = pr.end;
            }
            float * base = part_.data() + per * static_cast<size_t>(ith);
            float * mx = base + static_cast<size_t>(n_head) * static_cast<size_t>(head_dim);
            partial(0, 0, n_head, p0, p1 > p0 ? p1 : p0, scratch_[static_cast<size_t>(ith)].data(), base, head_dim, mx,
                    mx + n_head);
        });
        for (int h = 0; h < n_head; h++) {
            float m = -INFINITY;
            for (int j = 0; j < nth; j++) {
                const float * mx = part_.data() + per * static_cast<size_t>(j) + static_cast<size_t>(n_head) * head_dim;
                if (mx[n_head + h] > 0.0f && mx[h] > m) m = mx[h];
            }
            float * o = out + h * head_dim;
            std::memset(o, 0, static_cast<size_t>(head_dim) * sizeof(float));
            float sum = 0.0f;
            for (int j = 0; j < nth; j++) {
                const float * b = part_.data() + per * static_cast<size_t>(j);
                const float * mx = b + static_cast<size_t>(n_head) * head_dim;
                if (!(mx[n_head + h] > 0.0f)) continue;  // an empty range
                const float w = std::exp(mx[h] - m);
                sum += w * mx[n_head + h];
                for (int d = 0; d < head_dim; d++) o[d] += w * b[h * head_dim + d];
            }
            const float inv = 1.0f / sum;
            for (int d = 0; d < head_dim; d++) o[d] *= inv;
        }
        return;
    }
    pool_.run([&](int ith, int nth_) {
        const Range range = split_range(rows * n_head, ith, nth_);
        // The thread's tasks grouped by query row: heads [h0, h1) of row r.
        for (int64_t task = range.begin; task < range.end;) {
            const int64_t r = task / n_head;
            const int h0 = static_cast<int>(task % n_head);
            const int64_t row_end = (r + 1) * n_head < range.end ? (r + 1) * n_head : range.end;
            const int h1 = h0 + static_cast<int>(row_end - task);
            task = row_end;
            float * scores = scratch_[static_cast<size_t>(ith)].data();
            float * mx = scores + static_cast<size_t>(n_head) * s_stride;
            float * o = out + (r * n_head + h0) * head_dim;
            partial(r, h0, h1, 0, pos[r] + 1, scores, o, head_dim, mx, mx + n_head);
            for (int h = h0; h < h1; h++) {
                const float inv = 1.0f / mx[n_head + h - h0];
                for (int d = 0; d < head_dim; d++) o[(h - h0) * head_dim + d] *= inv;
            }
        }
    });
}

}  // namespace looplm
