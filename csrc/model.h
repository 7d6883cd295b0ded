// model.h - a looped transformer: its configuration and weights (Model, immutable, views
// into the mmapped GGUF) and one conversation's state (Context: KV cache, threads, buffers).
//
// One engine runs `ouro` files (N loops over shared layers, sandwich norms, exit gate),
// `llama` files (the one-loop case without post-norms or gate) and `nanbeige` files
// (llama.cpp's generic looped llama block: loops, no post-norms, no gate).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "exit.h"
#include "gguf.h"
#include "kernels.h"
#include "kv_cache.h"
#include "ops.h"
#include "threads.h"
#include "tokenizer.h"

namespace looplm {

struct Config {
    std::string arch;  // "ouro", "llama" or "nanbeige"
    int64_t n_vocab = 0, n_embd = 0, n_ff = 0, n_ctx_train = 0;
    int n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
    float rms_eps = 1e-6f, rope_theta = 10000.0f;
    int n_loops = 1;          // trained loop count ({arch}.num_loops)
    bool post_norms = false;  // Ouro's norms of the attention and MLP outputs
    bool has_gate = false;    // exit gate present (ouro.exit_gate.*)
    std::vector<float> gate_w;  // [n_embd]
    float gate_b = 0.0f;
    double exit_threshold = 1.0;  // the file's default (ouro.exit_threshold)
};

struct LayerWeights {
    std::vector<float> attn_norm, post_attention_norm, ffn_norm, post_ffw_norm;  // [n_embd]
    Tensor wq, wk, wv, wo;             // [n_embd -> n_head*hd | n_head_kv*hd], wo: [n_head*hd -> n_embd]
    Tensor ffn_gate, ffn_up, ffn_down;  // [n_embd -> n_ff], down: [n_ff -> n_embd]
};

// The tokenizer and the special tokens of a GGUF (tokenizer.ggml.*).
struct Vocab {
    std::unique_ptr<Tokenizer> tokenizer;  // null when the file carries no vocabulary
    int32_t bos = -1, eos = -1, eot = -1;
    bool add_bos = false;
    std::vector<int32_t> stop_ids;  // eos, eot, <|im_end|> and <|endoftext|>: generation stops
    std::string chat_template;      // tokenizer.chat_template, may be empty
};

// The weight types the runtime has kernels for (F32, F16, BF16, Q8_0, Q4_0, Q4_1).
bool runnable_type(DType t);

class Model {
  public:
    // Maps (or, use_mmap = false, reads) and validates the file; throws GGUFError naming the
    // file and key/tensor at fault. use_mlock: see GGUFFile.
    explicit Model(const std::string & path, bool use_mmap = true, bool use_mlock = false);

    const GGUFFile & file() const { return *file_; }
    const Config & config() const { return config_; }

    Tensor token_embd;               // [n_embd, n_vocab]
    Tensor output;                   // [n_embd, n_vocab]; token_embd when tied
    std::vector<float> output_norm;  // [n_embd]
    std::vector<LayerWeights> layers;
    Vocab vocab;

  private:
    std::unique_ptr<GGUFFile> file_;
    Config config_;
};

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
