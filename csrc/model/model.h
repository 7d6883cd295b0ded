// model/model.h - a looped transformer's configuration and weights: Model, immutable, views
// into the mmapped GGUF (one conversation's state is model/context.h).
//
// One engine runs `ouro` files (N loops over shared layers, sandwich norms, exit gate),
// `llama` files (the one-loop case without post-norms or gate) and `nanbeige` files
// (llama.cpp's generic looped llama block: loops, no post-norms, no gate).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/exit.h"
#include "model/kv_cache.h"
#include "model/repacked.h"
#include "ops/ops.h"
#include "runtime/threads.h"
#include "text/tokenizer.h"

namespace looplm {

struct Config {
    std::string arch;  // "ouro", "llama" or "nanbeige"
    int64_t n_vocab = 0, n_embd = 0, n_ff = 0, n_ctx_train = 0;
    int n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
    float rms_eps = 1e-6f, rope_theta = 10000.0f;
    int n_loops = 1;            // trained loop count ({arch}.num_loops)
    bool post_norms = false;    // Ouro's norms of the attention and MLP outputs
    bool has_gate = false;      // exit gate present (ouro.exit_gate.*)
    std::vector<float> gate_w;  // [n_embd]
    float gate_b = 0.0f;
    double exit_threshold = 1.0;  // the file's default (ouro.exit_threshold)
};

struct LayerWeights {
    std::vector<float> attn_norm, post_attention_norm, ffn_norm, post_ffw_norm;  // [n_embd]
    Tensor wq, wk, wv, wo;              // [n_embd -> n_head*hd | n_head_kv*hd], wo: [n_head*hd -> n_embd]
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

    // The matrices rewritten into the kernels' x16 layout at load (null when none was).
    const RepackedWeights * repacked() const { return repacked_.get(); }

  private:
    std::unique_ptr<GGUFFile> file_;
    Config config_;
    std::unique_ptr<RepackedWeights> repacked_;
};

}  // namespace looplm
