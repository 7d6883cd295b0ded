// kv_cache.h - the key/value cache of a looped model: one slot per (loop, layer), stored
// in F16 (default) or F32, growing page by page with the positions actually used.
//
// A page holds kPagePositions positions of every slot, laid out [slot][k|v][pos][kv_dim],
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

    KVCache(int n_slots, int64_t kv_dim, int64_t n_ctx, DType type);

    DType type() const { return type_; }
    int n_slots() const { return n_slots_; }
    int64_t kv_dim() const { return kv_dim_; }
    int64_t n_ctx() const { return n_ctx_; }
    size_t elem_bytes() const { return type_ == DType::F16 ? 2 : 4; }

    // Makes positions [0, n) addressable (n <= n_ctx); allocates whole pages.
    void ensure(int64_t n);
    // Frees every page (reset of the context).
    void clear();
    // Bytes currently allocated.
    size_t allocated_bytes() const { return pages_.size() * page_bytes_; }

    void * k(int slot, int64_t pos) { return row(slot, 0, pos); }
    void * v(int slot, int64_t pos) { return row(slot, 1, pos); }
    const void * k(int slot, int64_t pos) const { return const_cast<KVCache *>(this)->row(slot, 0, pos); }
    const void * v(int slot, int64_t pos) const { return const_cast<KVCache *>(this)->row(slot, 1, pos); }

    // Copies the keys and values of one position from slot src to slot dst.
    void copy_position(int src, int dst, int64_t pos);

  private:
    void * row(int slot, int kv, int64_t pos) {
        uint8_t * page = pages_[static_cast<size_t>(pos / kPagePositions)].get();
        const int64_t i = (static_cast<int64_t>(slot) * 2 + kv) * kPagePositions + pos % kPagePositions;
        return page + i * row_bytes_;
    }

    int n_slots_;
    int64_t kv_dim_, n_ctx_;
    DType type_;
    size_t row_bytes_, page_bytes_;
    std::vector<std::unique_ptr<uint8_t[]>> pages_;
};

}  // namespace looplm
