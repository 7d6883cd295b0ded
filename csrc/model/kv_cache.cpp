// kv_cache.cpp - page allocation and the position copy used by the skipped-loop fill policy.
#include "model/kv_cache.h"

#include <cstring>
#include <stdexcept>
#include <string>

namespace looplm {

KVCache::KVCache(int n_slots, int64_t kv_dim, int64_t n_ctx, DType type)
    : n_slots_(n_slots), kv_dim_(kv_dim), n_ctx_(n_ctx), type_(type) {
    if (type != DType::F16 && type != DType::F32) {
        throw std::invalid_argument("kv_type must be f16 or f32");
    }
    row_bytes_ = static_cast<size_t>(kv_dim) * elem_bytes();
    page_bytes_ = row_bytes_ * 2 * static_cast<size_t>(n_slots) * kPagePositions;
}

void KVCache::ensure(int64_t n) {
    if (n > n_ctx_) {
        throw std::length_error("context overflow: " + std::to_string(n) + " positions, n_ctx is " +
                                std::to_string(n_ctx_));
    }
    const size_t need = static_cast<size_t>((n + kPagePositions - 1) / kPagePositions);
    while (pages_.size() < need) pages_.emplace_back(new uint8_t[page_bytes_]);
}

void KVCache::clear() { pages_.clear(); }

void KVCache::copy_position(int src, int dst, int64_t pos) {
    std::memcpy(k(dst, pos), k(src, pos), row_bytes_);
    std::memcpy(v(dst, pos), v(src, pos), row_bytes_);
}

}  // namespace looplm
