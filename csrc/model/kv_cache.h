// kv_cache.h - key/value rows of a set of slots (one per (loop, layer), or one per layer for
// the shared history of docs/kv-cache.md), keys and values each in F32, F16, Q8_0 or Q4_0,
// growing page by page with the positions actually used.
//
// A page holds page_positions() positions of every slot, laid out [slot][k rows | v rows],
// so the rows one attention head reads are contiguous within a page.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "quant/types.h"

namespace looplm {

class KVCache {
  public:
    static constexpr int64_t kPagePositions = 32;

    // Keys and values of one type (the F16/F32 cache as before).
    KVCache(int n_slots, int64_t kv_dim, int64_t n_ctx, DType type) : KVCache(n_slots, kv_dim, n_ctx, type, type) {}
    // type_k / type_v: F32, F16, Q8_0 or Q4_0 (the quantized ones need kv_dim % 32 == 0);
    // throws std::invalid_argument naming type_k or type_v otherwise.
    KVCache(int n_slots, int64_t kv_dim, int64_t n_ctx, DType type_k, DType type_v,
            int64_t page_positions = kPagePositions);

    DType type() const { return type_k_; }  // the key type (== type_v() unless set apart)
    DType type_k() const { return type_k_; }
    DType type_v() const { return type_v_; }
    int n_slots() const { return n_slots_; }
    int64_t kv_dim() const { return kv_dim_; }
    int64_t n_ctx() const { return n_ctx_; }
    int64_t page_positions() const { return page_pos_; }
    size_t row_bytes_k() const { return row_k_; }
    size_t row_bytes_v() const { return row_v_; }
    // Bytes one position takes in every slot (keys and values).
    size_t bytes_per_position() const { return (row_k_ + row_v_) * static_cast<size_t>(n_slots_); }

    // Makes positions [0, n) addressable (n <= n_ctx); allocates whole pages.
    void ensure(int64_t n);
    // Frees every page (reset of the context).
    void clear();
    // Frees the pages beyond the first `keep` ones.
    void shrink(size_t keep);
    // Bytes currently allocated.
    size_t allocated_bytes() const { return pages_.size() * page_bytes_; }

    void * k(int slot, int64_t pos) { return row(slot, 0, pos); }
    void * v(int slot, int64_t pos) { return row(slot, 1, pos); }
    const void * k(int slot, int64_t pos) const { return const_cast<KVCache *>(this)->row(slot, 0, pos); }
    const void * v(int slot, int64_t pos) const { return const_cast<KVCache *>(this)->row(slot, 1, pos); }
    // The first key / value row of a slot in page `page` (positions page * page_positions()..);
    // the page's rows follow row_bytes_k() / row_bytes_v() apart.
    const uint8_t * k_page(int slot, int64_t page) const { return page_row(slot, 0, page); }
    const uint8_t * v_page(int slot, int64_t page) const { return page_row(slot, 1, page); }

    // Copies the keys and values of one position from slot src to slot dst.
    void copy_position(int src, int dst, int64_t pos);
    // Copies the keys and values of (src_slot, src_pos) of `from` (same types and kv_dim)
    // to (dst_slot, dst_pos) of this cache.
    void copy_from(const KVCache & from, int src_slot, int64_t src_pos, int dst_slot, int64_t dst_pos);

    // Bench hook (looplm bench -d, benchmarks/kv_memory.py): makes positions [0, n) of every
    // slot addressable and writes deterministic rows there in the cache's own types, without a
    // model. Pool row r (0..250), element j: (h mod 2001 - 1000) / 1000 in f32, h = r *
    // 2654435761 + j * 40503 + seed * 2246822519 + 12345 mod 2^32; the key (kind 0) or value
    // (kind 1) row of (slot, pos) is pool row (pos * 131 + slot * 31 + kind * 17) mod 251,
    // stored as store_kv stores rows (f16 round to nearest even; Q8_0 / Q4_0 by the reference
    // quantizers). n > n_ctx throws std::length_error.
    void fill_synthetic(int64_t n, uint32_t seed);

  private:
    const uint8_t * page_row(int slot, int kv, int64_t page) const {
        const uint8_t * p = pages_[static_cast<size_t>(page)].get();
        return p + static_cast<size_t>(slot) * slot_bytes_ + (kv ? static_cast<size_t>(page_pos_) * row_k_ : 0);
    }
    void * row(int slot, int kv, int64_t pos) {
        const uint8_t * base = page_row(slot, kv, pos / page_pos_);
        return const_cast<uint8_t *>(base) + static_cast<size_t>(pos % page_pos_) * (kv ? row_v_ : row_k_);
    }

    int n_slots_;
    int64_t kv_dim_, n_ctx_, page_pos_;
    DType type_k_, type_v_;
    size_t row_k_, row_v_, slot_bytes_, page_bytes_;
    std::vector<std::unique_ptr<uint8_t[]>> pages_;
};

// Bytes of one cache row of kv_dim elements of type t (F32, F16, Q8_0, Q4_0).
size_t kv_row_bytes(DType t, int64_t kv_dim);

}  // namespace looplm
