// model/context.h - one conversation's state over a Model: the KV cache, the thread pool, the
// buffers of the forward pass and the exit loop of every position.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "model/attention.h"
#include "model/exit.h"
#include "model/kv_cache.h"
#include "model/layer.h"
#include "model/model.h"
#include "model/seq_kv.h"
#include "ops/ops.h"
#include "runtime/threads.h"

namespace looplm {

// Settings fixed for the life of a context.
struct ContextParams {
    int64_t n_ctx = 4096;                 // 0: the trained context
    int n_threads = 0;                    // 0: physical cores
    int n_loops = 0;                      // loops the KV cache has slots for; 0: the trained count
    int64_t n_batch = 256;                // tokens per forward micro-batch
    DType kv_type = DType::F16;           // keys and values, unless type_k / type_v say otherwise
    std::optional<DType> type_k, type_v;  // F32, F16, Q8_0, Q4_0
    KVShare kv_share = KVShare::None;
    const Kernels * kernels = nullptr;  // nullptr: active_kernels()
};

// The cache of one sequence under params (n_ctx 0: the trained context); throws
// std::invalid_argument naming type_k / type_v when a quantized type does not fit the heads.
SeqKVParams seq_kv_params(const Config & cfg, const ContextParams & params, int max_loops);

// What one evaluation runs with: the loops per token and the exit policy. Made by
// resolve_run (valid by construction); a context remembers what its positions were computed
// with, since their KV depends on it.
struct RunOptions {
    int loops = 1;
    ExitPolicy exit;

    bool operator==(const RunOptions & o) const { return loops == o.loops && exit == o.exit; }
    bool operator!=(const RunOptions & o) const { return !(*this == o); }
};

// A request for RunOptions; unset fields take their defaults (loops: the context's KV slots).
struct RunRequest {
    std::optional<int> loops;
    ExitRequest exit;

    RunRequest merged(const RunRequest & over) const;
};

// The options of request r for a context with max_loops KV slots of a model of config cfg (its
// exit threshold); throws std::invalid_argument naming the option at fault.
RunOptions resolve_run(const RunRequest & r, const Config & cfg, int max_loops);

class Context {
  public:
    Context(const Model & model, const ContextParams & params);

    // The options of a request against this context and its model (the file's exit threshold,
    // the cache's loop slots); throws std::invalid_argument naming the option at fault.
    RunOptions resolve(const RunRequest & r) const;

    // Appends tokens at positions n_past().. and writes logits: [n, n_vocab] when all_logits,
    // else [n_vocab] for the last token. Each token's logits come from its exit loop. The
    // tokens of one call are one chunk of the shared KV mode (docs/kv-cache.md).
    void eval(const int32_t * tokens, int64_t n, const RunOptions & opts, bool all_logits, float * logits);
    // Makes the context hold exactly tokens[0, n) and writes the last token's logits [n_vocab].
    // The longest common prefix with what the context holds is kept when its positions were
    // computed with opts (their KV is then what a fresh evaluation gives; in the shared KV
    // mode, what the earlier calls made of them); the rest is one chunk; at least the last
    // token is evaluated. The rest goes in chunks of n_batch; between chunks `stop()` may
    // return true to end early (Ctrl-C), leaving a consistent, shorter context, and prefill
    // returns false. reused() tells how many positions were kept.
    bool prefill(const int32_t * tokens, int64_t n, const RunOptions & opts, float * logits,
                 const std::function<bool()> & stop);
    int64_t reused() const { return reused_; }
    void reset();
    // Forgets the positions from n on (0 <= n <= n_past): the next eval continues at n. Their
    // KV rows are simply overwritten later, so a shared prompt prefix is kept and reused.
    void truncate(int64_t n);
    // Bench hook (looplm bench -d): resets, then makes the context hold n positions whose K/V
    // are KVCache::fill_synthetic's rows (every slot of the cache: the history in the shared
    // mode), with token ids -1 (never reused by prefill) and every loop run. The next eval
    // decodes at depth n as after a real prompt of n tokens, without computing one.
    void bench_fill(int64_t n, uint32_t seed);

    int64_t n_past() const { return n_past_; }
    // Loops the KV cache has slots for: the most an evaluation may run. Fewer loops leave the
    // later slots to the fill policy, so a later evaluation with more loops finds their KV.
    int max_loops() const { return max_loops_; }
    int64_t n_batch() const { return n_batch_; }
    int n_threads() const { return pool_.size(); }
    const Kernels & kernels() const { return k_; }
    // The cache of every position (kv_share none), or the shared history of one slot per
    // layer (last); chunk_kv() is the per-loop cache of the chunk being evaluated (last only).
    const KVCache & kv() const { return kv_.history(); }
    const KVCache * chunk_kv() const { return kv_.chunk(); }
    KVShare kv_share() const { return kv_.share(); }
    // Bytes the KV cache holds now (history and chunk).
    size_t kv_bytes() const { return kv_.bytes(); }
    // Bytes one more position costs once its chunk is done, and while it is in a chunk.
    size_t kv_bytes_per_position() const { return kv_.history().bytes_per_position(); }
    size_t kv_chunk_bytes_per_position() const { return kv_.chunk() ? kv_.chunk()->bytes_per_position() : 0; }
    // The 0-based exit loop of every token in the context.
    const std::vector<int8_t> & exit_steps() const { return exit_steps_; }
    // The token ids in the context, in order (n_past() of them).
    const std::vector<int32_t> & tokens() const { return tokens_; }

  private:
    // Positions [previous end, end) were computed with opts.
    struct Run {
        int64_t end;
        RunOptions opts;
    };

    void eval_part(const int32_t * tokens, int64_t n, const RunOptions & opts, bool all_logits, float * logits);
    void end_chunk();
    void forward(const int32_t * tokens, int64_t n, const RunOptions & opts, bool all_logits, float * logits);

    const Model & model_;
    const Config & cfg_;
    const Kernels & k_;
    ThreadPool pool_;
    Ops ops_;
    Attention attn_;
    Layer layer_;
    int max_loops_;
    int64_t n_batch_;
    SeqKV kv_;
    int64_t n_past_ = 0, reused_ = 0;
    std::vector<Run> runs_;  // what the positions [0, n_past) were computed with, in order
    std::vector<int8_t> exit_steps_;
    std::vector<int32_t> tokens_;

    // Buffers for one micro-batch of n active tokens (grown, never shrunk).
    std::vector<float> h_, out_h_, rope_;
    std::vector<int32_t> pos_;
    std::vector<int64_t> idx_;  // batch index of each active row
};

}  // namespace looplm
