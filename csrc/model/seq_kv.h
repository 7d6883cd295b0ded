// model/seq_kv.h - one sequence's KV cache under its sharing mode (docs/kv-cache.md): where a
// row's keys and values go, what a query row attends to, and what a position keeps once its
// last loop ran and its chunk ends. The single-sequence Context holds one, the BatchContext
// one per sequence, so both read and write the cache by the same rules.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "model/attention.h"
#include "model/exit.h"
#include "model/kv_cache.h"

namespace looplm {

// How the KV cache is kept (docs/kv-cache.md): one slot per (loop, layer) for every position
// (upstream's), or one per layer once a position's chunk is done ("last").
enum class KVShare { None, Last };
KVShare parse_kv_share(const std::string & s);  // "none" / "last"; std::invalid_argument naming kv_share
const char * kv_share_name(KVShare s);

// The shape and types of one sequence's cache, fixed for its life.
struct SeqKVParams {
    int n_layer = 0;
    int max_loops = 1;  // loop slots
    int64_t kv_dim = 0;
    int64_t n_ctx = 0;
    DType type_k = DType::F16, type_v = DType::F16;
    KVShare share = KVShare::None;
};

class SeqKV {
  public:
    explicit SeqKV(const SeqKVParams & p);

    // Makes positions [0, end) addressable: the history, and the current chunk's part of them.
    void ensure(int64_t end);
    // Writes the (roped) keys and values of rows at positions pos[] into slot (loop, layer).
    void store(Attention & attn, int loop, int layer, const float * k, const float * v, const int32_t * pos,
               int64_t rows);
    // What a query row at (loop, layer) attends to: every position of its slot (none), or the
    // history's layer slot followed by the chunk's (loop, layer) slot (last).
    KVView view(int loop, int layer) const;
    // Position pos ran its last loop (last_loop): the loop slots after it follow the fill
    // policy, and in the shared mode the history keeps what the last loop slot then holds.
    void finish_position(const ExitPolicy & p, int last_loop, int64_t pos);
    // The current chunk ends with the positions [0, n_past): they are history from now on.
    void end_chunk(int64_t n_past);
    // Bench hook (Context::bench_fill): positions [0, n) hold KVCache::fill_synthetic's rows in
    // every slot of the history, and the next chunk starts at n.
    void fill_synthetic(int64_t n, uint32_t seed);
    // Forgets every position (and frees the pages).
    void clear();
    // Forgets the positions from n on.
    void truncate(int64_t n);

    KVShare share() const { return share_; }
    int max_loops() const { return max_loops_; }
    int64_t n_ctx() const { return kv_.n_ctx(); }
    // The cache of every position (none), or the shared history of one slot per layer (last);
    // chunk() is the per-loop cache of the chunk being evaluated (last only).
    const KVCache & history() const { return kv_; }
    const KVCache * chunk() const { return chunk_.get(); }
    size_t bytes() const { return kv_.allocated_bytes() + (chunk_ ? chunk_->allocated_bytes() : 0); }

  private:
    KVCache & loop_kv() { return chunk_ ? *chunk_ : kv_; }           // the cache of (loop, layer) slots
    int64_t loop_base() const { return chunk_ ? chunk_start_ : 0; }  // its index of position 0

    int n_layer_, max_loops_;
    KVShare share_;
    KVCache kv_;
    std::unique_ptr<KVCache> chunk_;  // last: the chunk's (loop, layer) slots
    int64_t chunk_start_ = 0;         // last: the first position of the current chunk
};

}  // namespace looplm
