// model/attention.h - causal attention over one slot of the KV cache, and the stores that fill
// it. Knows the cache layout, not the model: the forward pass picks the slot.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "model/kv_cache.h"
#include "runtime/threads.h"

namespace looplm {

class Attention {
  public:
    Attention(const Kernels & k, ThreadPool & pool) : k_(k), pool_(pool), scratch_(static_cast<size_t>(pool.size())) {}

    // Writes the key and value rows [rows, kv_dim] of positions pos[] into one cache slot.
    void store_kv(KVCache & kv, int slot, const float * k, const float * v, const int32_t * pos,
                  int64_t rows);
    // out [rows, n_head * head_dim]: causal softmax attention of q (already roped) over cache
    // slot `slot`, row r seeing positions [0, pos[r]]. Query head h reads kv head
    // h / (n_head / n_head_kv); scores are scaled by head_dim^-0.5.
    void attend(const float * q, const KVCache & kv, int slot, const int32_t * pos, int64_t rows,
                   int n_head, int n_head_kv, int head_dim, float * out);

  private:
    const Kernels & k_;
    ThreadPool & pool_;
    std::vector<std::vector<float>> scratch_;  // per thread: attention scores
};

}  // namespace looplm
