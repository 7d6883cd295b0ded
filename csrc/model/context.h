// model/context.h - one conversation's state over a Model: the KV cache, the thread pool, the
// buffers of the forward pass and the exit loop of every position.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "model/attention.h"
#include "model/exit.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "ops/ops.h"
#include "runtime/threads.h"

namespace looplm {

struct ContextParams {
    int64_t n_ctx = 4096;
    int n_threads = 0;   // 0: physical cores
    int n_loops = 0;     // 0: the trained count
    int64_t n_batch = 256;  // tokens per forward micro-batch
    DType kv_type = DType::F16;
    ExitPolicy exit;
    const Kernels * kernels = nullptr;  // nullptr: active_kernels()
};

class Context {
  public:
    Context(const Model & model, const ContextParams & params);

    // Appends tokens at positions n_past().. and writes logits: [n, n_vocab] when all_logits,
    // else [n_vocab] for the last token. Each token's logits come from its exit loop.
    void eval(const int32_t * tokens, int64_t n, bool all_logits, float * logits);
    void reset();
    // Forgets the positions from n on (0 <= n <= n_past): the next eval continues at n. Their
    // KV rows are simply overwritten later, so a shared prompt prefix is kept and reused.
    void truncate(int64_t n);

    int64_t n_past() const { return n_past_; }
    int n_loops() const { return n_loops_; }          // loops each token runs now
    int max_loops() const { return max_loops_; }      // loops the KV cache has slots for
    // Changes the loop count for the following evals (1..max_loops()). Fewer loops leave the
    // later slots to the fill policy, so a later eval with more loops still finds their KV.
    void set_loops(int n);
    int n_threads() const { return pool_.size(); }
    const Kernels & kernels() const { return k_; }
    const KVCache & kv() const { return kv_; }
    ExitPolicy & exit_policy() { return policy_; }
    // The 0-based exit loop of every token in the context.
    const std::vector<int8_t> & exit_steps() const { return exit_steps_; }
    // The token ids in the context, in order (n_past() of them).
    const std::vector<int32_t> & tokens() const { return tokens_; }

  private:
    void forward(const int32_t * tokens, int64_t n, bool all_logits, float * logits);
    void block(const LayerWeights & w, int slot, int64_t n);
    void project(const float * x, int64_t n, const Tensor * const * ws, float * const * outs, int count);
    void fill_skipped(int last_loop, int64_t pos);

    const Model & model_;
    const Config & cfg_;
    const Kernels & k_;
    ThreadPool pool_;
    Ops ops_;
    Attention attn_;
    int max_loops_, n_loops_;
    int64_t n_batch_;
    ExitPolicy policy_;
    KVCache kv_;
    int64_t n_past_ = 0;
    std::vector<int8_t> exit_steps_;
    std::vector<int32_t> tokens_;

    // Buffers for one micro-batch of n active tokens (grown, never shrunk).
    std::vector<float> h_, xb_, q_, k_buf_, v_, att_, o_, g_, u_, out_h_, rope_;
    std::vector<int32_t> pos_;
    std::vector<int64_t> idx_;  // batch index of each active row
    Activations act_;
};

}  // namespace looplm
