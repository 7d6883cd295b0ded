// kv_cache.cpp - page allocation and the position copies of the fill policy and of the kept
// K/V of the shared mode.
#include "model/kv_cache.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "quant/fp16.h"
#include "quant/quantize.h"
#include "quant/traits.h"

namespace looplm {

namespace {

void check_type(DType t, int64_t kv_dim, const char * what) {
    if (t != DType::F32 && t != DType::F16 && t != DType::Q8_0 && t != DType::Q4_0) {
        throw std::invalid_argument(std::string(what) + " must be one of f32, f16, q8_0, q4_0, got " + type_name(t));
    }
    if ((t == DType::Q8_0 || t == DType::Q4_0) && kv_dim % 32 != 0) {
        throw std::invalid_argument(std::string(what) + "=" + type_name(t) +
                                    " needs a KV row that is a multiple of 32 (it is " + std::to_string(kv_dim) + ")");
    }
}

}  // namespace

size_t kv_row_bytes(DType t, int64_t kv_dim) { return static_cast<size_t>(row_bytes(t, kv_dim)); }

KVCache::KVCache(int n_slots, int64_t kv_dim, int64_t n_ctx, DType type_k, DType type_v, int64_t page_positions)
    : n_slots_(n_slots), kv_dim_(kv_dim), n_ctx_(n_ctx), page_pos_(page_positions), type_k_(type_k), type_v_(type_v) {
    check_type(type_k, kv_dim, "type_k");
    check_type(type_v, kv_dim, "type_v");
    if (page_positions < 1) throw std::invalid_argument("page_positions must be >= 1");
    row_k_ = kv_row_bytes(type_k, kv_dim);
    row_v_ = kv_row_bytes(type_v, kv_dim);
    slot_bytes_ = (row_k_ + row_v_) * static_cast<size_t>(page_pos_);
    page_bytes_ = slot_bytes_ * static_cast<size_t>(n_slots);
}

void KVCache::ensure(int64_t n) {
    if (n > n_ctx_) {
        throw std::length_error("context overflow: " + std::to_string(n) + " positions, n_ctx is " +
                                std::to_string(n_ctx_));
    }
    const size_t need = static_cast<size_t>((n + page_pos_ - 1) / page_pos_);
    while (pages_.size() < need) pages_.emplace_back(new uint8_t[page_bytes_]);
}

void KVCache::clear() { pages_.clear(); }

void KVCache::shrink(size_t keep) {
    if (pages_.size() > keep) pages_.resize(keep);
}

void KVCache::copy_position(int src, int dst, int64_t pos) {
    std::memcpy(k(dst, pos), k(src, pos), row_k_);
    std::memcpy(v(dst, pos), v(src, pos), row_v_);
}

void KVCache::copy_from(const KVCache & from, int src_slot, int64_t src_pos, int dst_slot, int64_t dst_pos) {
    std::memcpy(k(dst_slot, dst_pos), from.k(src_slot, src_pos), row_k_);
    std::memcpy(v(dst_slot, dst_pos), from.v(src_slot, src_pos), row_v_);
}

namespace {

constexpr uint32_t kPoolRows = 251;

// Pool row r of the bench fill in type t (see fill_synthetic), into dst (kv_row_bytes(t, d)).
void pool_row(DType t, int64_t d, uint32_t r, uint32_t seed, float * x, uint8_t * dst) {
    for (int64_t j = 0; j < d; j++) {
        const uint32_t h = r * 2654435761u + static_cast<uint32_t>(j) * 40503u + seed * 2246822519u + 12345u;
        x[j] = static_cast<float>(static_cast<int32_t>(h % 2001u) - 1000) / 1000.0f;
    }
    switch (t) {
        case DType::F16: {
            uint16_t * y = reinterpret_cast<uint16_t *>(dst);
            for (int64_t j = 0; j < d; j++) y[j] = fp32_to_fp16(x[j]);
            break;
        }
        case DType::Q8_0: quantize_row_q8_0_ref(x, reinterpret_cast<block_q8_0 *>(dst), d); break;
        case DType::Q4_0: quantize_row_q4_0_ref(x, reinterpret_cast<block_q4_0 *>(dst), d); break;
        default: std::memcpy(dst, x, static_cast<size_t>(d) * sizeof(float)); break;
    }
}

}  // namespace

void KVCache::fill_synthetic(int64_t n, uint32_t seed) {
    ensure(n);
    std::vector<float> x(static_cast<size_t>(kv_dim_));
    std::vector<uint8_t> pk(row_k_ * kPoolRows), pv(row_v_ * kPoolRows);
    for (uint32_t r = 0; r < kPoolRows; r++) {
        pool_row(type_k_, kv_dim_, r, seed, x.data(), pk.data() + r * row_k_);
        pool_row(type_v_, kv_dim_, r, seed, x.data(), pv.data() + r * row_v_);
    }
    for (int64_t pos = 0; pos < n; pos++) {
        for (int s = 0; s < n_slots_; s++) {
            const uint64_t base = static_cast<uint64_t>(pos) * 131u + static_cast<uint64_t>(s) * 31u;
            std::memcpy(k(s, pos), pk.data() + (base % kPoolRows) * row_k_, row_k_);
            std::memcpy(v(s, pos), pv.data() + ((base + 17u) % kPoolRows) * row_v_, row_v_);
        }
    }
}

}  // namespace looplm
