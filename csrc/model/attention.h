// model/attention.h - causal attention over the KV cache, and the stores that fill it. Knows
// the cache layout, not the model: the forward pass picks the slots (docs/kv-cache.md).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "model/kv_cache.h"
#include "runtime/threads.h"

namespace looplm {

// What one layer's query rows attend to: positions [0, hist_len) in slot hist_slot of *hist
// (the shared history; none when hist is null or hist_len is 0), then positions
// [hist_len, pos] in slot `slot` of *kv, position t stored there at index t - base.
struct KVView {
    const KVCache * hist = nullptr;
    int hist_slot = 0;
    int64_t hist_len = 0;
    const KVCache * kv = nullptr;
    int slot = 0;
    int64_t base = 0;
};

class Attention {
  public:
    Attention(const Kernels & k, ThreadPool & pool) : k_(k), pool_(pool), scratch_(static_cast<size_t>(pool.size())) {}

    // Writes the key and value rows [rows, kv_dim] of positions pos[] into one cache slot, at
    // index pos[r] - base, converted to the cache's types (quantized rows by the reference
    // quantizers).
    void store_kv(KVCache & kv, int slot, const float * k, const float * v, const int32_t * pos, int64_t rows,
                  int64_t base = 0);
    // out [rows, n_head * head_dim]: causal softmax attention of q (already roped) over cache
    // slot `slot`, row r seeing positions [0, pos[r]]. Query head h reads kv head
    // h / (n_head / n_head_kv); scores are scaled by head_dim^-0.5.
    void attend(const float * q, const KVCache & kv, int slot, const int32_t * pos, int64_t rows, int n_head,
                int n_head_kv, int head_dim, float * out);
    // The same over a view: a shared history followed by the slot of the current chunk.
    void attend(const float * q, const KVView & view, const int32_t * pos, int64_t rows, int n_head, int n_head_kv,
                int head_dim, float * out);

  private:
    const Kernels & k_;
    ThreadPool & pool_;
    std::vector<std::vector<float>> scratch_;  // per thread: attention scores
    std::vector<float> part_;                  // per thread, one query row split by positions: partial values, max, sum
};

}  // namespace looplm
