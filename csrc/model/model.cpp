// model/model.cpp - Model: hyper-parameters from the GGUF keys and weight views, every
// shape and type checked against them (llama.cpp's key and tensor names).
#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "model/limits.h"
#include "quant/blocks.h"
#include "quant/quantize.h"
#include "quant/traits.h"

namespace looplm {

namespace {

class Loader {
  public:
    Loader(const GGUFFile & f, const std::string & arch) : f_(f), arch_(arch) {}

    std::string key(const char * name) const { return arch_ + "." + name; }

    // A positive integer hyper-parameter no larger than `max`.
    int64_t count(const char * name, int64_t max) const {
        const uint64_t v = f_.get_uint(key(name));
        if (v == 0 || v > static_cast<uint64_t>(max)) {
            f_.fail("key '" + key(name) + "' = " + std::to_string(v) + " is out of range (1.." + std::to_string(max) +
                    ")");
        }
        return static_cast<int64_t>(v);
    }

    const GGUFTensor & tensor(const std::string & name) {
        const GGUFTensor * t = f_.tensor(name);
        if (!t) f_.fail("missing tensor '" + name + "'");
        used_.insert(name);
        return *t;
    }

    // A weight matrix of shape [ne0, ne1] (GGUF order: row length first).
    Tensor matrix(const std::string & name, int64_t ne0, int64_t ne1) {
        const GGUFTensor & t = tensor(name);
        // The type first: a K-quant's 256-element rows may not even fit the expected shape.
        const TypeTraits & tr = traits(t.type);
        if (!tr.runnable) {
            f_.fail("tensor '" + name + "' has type " + tr.name + ", which looplm cannot run (" +
                    runnable_type_names() + ")");
        }
        if (t.n_dims > 2 || t.ne[0] != ne0 || t.ne[1] != ne1) {
            f_.fail("tensor '" + name + "' has shape " + t.shape_str() + ", expected [" + std::to_string(ne0) + ", " +
                    std::to_string(ne1) + "]");
        }
        if (ne0 % tr.block_elems != 0 || (tr.act == ActFormat::Q8 && ne0 % QK != 0)) {
            f_.fail("tensor '" + name + "': row length " + std::to_string(ne0) + " is not a multiple of the " +
                    tr.name + " block size " + std::to_string(tr.block_elems));
        }
        Tensor w;
        w.name = name;
        w.type = t.type;
        w.ne0 = ne0;
        w.ne1 = ne1;
        w.row_bytes = static_cast<size_t>(row_bytes(t.type, ne0));
        w.data = t.data;
        return w;
    }

    // A 1-D weight (norm) decoded to f32.
    std::vector<float> vector(const std::string & name, int64_t n) {
        const GGUFTensor & t = tensor(name);
        if (t.nelements() != n || t.ne[0] != n) {
            f_.fail("tensor '" + name + "' has shape " + t.shape_str() + ", expected [" + std::to_string(n) + "]");
        }
        if (t.type != DType::F32 && t.type != DType::F16 && t.type != DType::BF16) {
            f_.fail("tensor '" + name + "' has type " + type_name(t.type) + ", expected F32");
        }
        std::vector<float> v(static_cast<size_t>(n));
        dequantize_row(t.type, t.data, v.data(), n);
        return v;
    }

    void refuse_unused() const {
        std::string extra;
        int n = 0;
        for (const GGUFTensor & t : f_.tensors()) {
            if (used_.count(t.name)) continue;
            if (n++ < 5) extra += (extra.empty() ? "'" : ", '") + t.name + "'";
        }
        if (n) f_.fail("unexpected tensor(s) for architecture '" + arch_ + "': " + extra + (n > 5 ? ", ..." : ""));
    }

  private:
    const GGUFFile & f_;
    std::string arch_;
    std::set<std::string> used_;
};

// tokenizer.ggml.* -> Vocab; unsupported tokenizers are refused here, at load.
Vocab load_vocab(const GGUFFile & f, int64_t n_vocab) {
    Vocab v;
    const std::string model = f.get_string("tokenizer.ggml.model", "no_vocab");
    if (model == "no_vocab") return v;  // llama.cpp's marker for a file without a vocabulary
    const std::string pre = f.get_string("tokenizer.ggml.pre", "default");
    std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
    // One token per embedding row, as llama.cpp requires: a row without a token could be
    // sampled and then has no text, one without a row could be fed to the model.
    if (static_cast<int64_t>(tokens.size()) != n_vocab) {
        f.fail("tokenizer.ggml.tokens holds " + std::to_string(tokens.size()) + " tokens, but token_embd.weight has " +
               std::to_string(n_vocab) + " rows");
    }
    std::vector<int32_t> types(tokens.size(), TOKEN_NORMAL);
    if (f.has("tokenizer.ggml.token_type")) {
        const std::vector<int64_t> t = f.get_int_array("tokenizer.ggml.token_type");
        if (t.size() != tokens.size()) f.fail("tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in length");
        for (size_t i = 0; i < t.size(); i++) types[i] = static_cast<int32_t>(t[i]);
    }
    std::vector<std::string> merges;
    if (f.has("tokenizer.ggml.merges")) merges = f.get_string_array("tokenizer.ggml.merges");
    try {
        v.tokenizer.reset(new Tokenizer(model, pre, std::move(tokens), std::move(types), merges));
    } catch (const std::invalid_argument & e) {
        f.fail(e.what());
    }
    const int32_t n = v.tokenizer->n_vocab();
    auto special = [&](const char * key) -> int32_t {
        if (!f.has(key)) return -1;
        const uint64_t id = f.get_uint(key);
        if (id >= static_cast<uint64_t>(n))
            f.fail(std::string("key '") + key + "' = " + std::to_string(id) + " is not a token id");
        return static_cast<int32_t>(id);
    };
    v.bos = special("tokenizer.ggml.bos_token_id");
    v.eos = special("tokenizer.ggml.eos_token_id");
    v.eot = special("tokenizer.ggml.eot_token_id");
    v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", false);
    // Ouro's configs disagree on eos across revisions: always stop at both ChatML ends.
    for (int32_t id : {v.eos, v.eot, v.tokenizer->find("<|im_end|>"), v.tokenizer->find("<|endoftext|>")}) {
        if (id >= 0 && std::find(v.stop_ids.begin(), v.stop_ids.end(), id) == v.stop_ids.end())
            v.stop_ids.push_back(id);
    }
    v.chat_template = f.get_string("tokenizer.chat_template", "");
    return v;
}

}  // namespace

Model::Model(const std::string & path, bool use_mmap, bool use_mlock) : file_(new GGUFFile(path, use_mmap, use_mlock)) {
    const GGUFFile & f = *file_;
    Config & c = config_;
    c.arch = f.get_string("general.architecture");
    if (c.arch != "ouro" && c.arch != "llama" && c.arch != "nanbeige") {
        f.fail("architecture " + GGUFFile::quote(c.arch) +
               " is not supported (looplm runs 'ouro', 'llama' and 'nanbeige')");
    }
    Loader ld(f, c.arch);
    c.n_embd = ld.count("embedding_length", limits::kEmbd);
    c.n_layer = static_cast<int>(ld.count("block_count", limits::kLayers));
    c.n_ff = ld.count("feed_forward_length", limits::kFF);
    c.n_head = static_cast<int>(ld.count("attention.head_count", limits::kHeads));
    c.n_head_kv = f.has(ld.key("attention.head_count_kv"))
                      ? static_cast<int>(ld.count("attention.head_count_kv", c.n_head))
                      : c.n_head;
    c.n_ctx_train = ld.count("context_length", limits::kCtx);
    if (c.n_head % c.n_head_kv != 0) {
        f.fail("head_count " + std::to_string(c.n_head) + " is not a multiple of head_count_kv " +
               std::to_string(c.n_head_kv));
    }
    c.head_dim = f.has(ld.key("attention.key_length"))
                     ? static_cast<int>(ld.count("attention.key_length", limits::kHeadDim))
                     : static_cast<int>(c.n_embd / c.n_head);
    if (f.has(ld.key("attention.value_length")) && ld.count("attention.value_length", limits::kHeadDim) != c.head_dim) {
        f.fail("attention.value_length differs from key_length (not supported)");
    }
    if (c.head_dim % 2 != 0 || (!f.has(ld.key("attention.key_length")) && c.n_embd % c.n_head != 0)) {
        f.fail("head dimension " + std::to_string(c.head_dim) + " is invalid");
    }
    if (f.has(ld.key("rope.dimension_count")) && ld.count("rope.dimension_count", limits::kHeadDim) != c.head_dim) {
        f.fail("partial rotary embeddings (rope.dimension_count != head dim) are not supported");
    }
    const std::string scaling = f.get_string(ld.key("rope.scaling.type"), "none");
    if (scaling != "none") f.fail("rope scaling " + GGUFFile::quote(scaling) + " is not supported");
    c.rms_eps = static_cast<float>(f.get_float(ld.key("attention.layer_norm_rms_epsilon")));
    c.rope_theta = static_cast<float>(f.get_float(ld.key("rope.freq_base"), 10000.0));
    if (!(c.rms_eps > 0.0f) || !(c.rope_theta > 0.0f) || !std::isfinite(c.rms_eps) || !std::isfinite(c.rope_theta)) {
        f.fail("rms epsilon and rope.freq_base must be positive and finite");
    }
    const uint64_t n_loops = f.get_uint(ld.key("num_loops"), 1);  // range-checked before the cast
    if (n_loops < 1 || n_loops > static_cast<uint64_t>(limits::kLoops)) {
        f.fail("key '" + ld.key("num_loops") + "' = " + std::to_string(n_loops) + " must be in 1.." +
               std::to_string(limits::kLoops));
    }
    c.n_loops = static_cast<int>(n_loops);
    if (f.get_bool(ld.key("skip_loop_final_norm"), false)) {
        f.fail("skip_loop_final_norm = true is not supported (Ouro norms between loops)");
    }
    c.post_norms = c.arch == "ouro";

    // The exit gate lives in metadata so that llama.cpp, which refuses unknown tensors, can
    // load the same file.
    const bool gw = f.has("ouro.exit_gate.weight"), gb = f.has("ouro.exit_gate.bias");
    if (gw != gb) f.fail("the exit gate needs both 'ouro.exit_gate.weight' and 'ouro.exit_gate.bias'");
    if (gw) {
        c.gate_w = f.get_float_array("ouro.exit_gate.weight");
        const std::vector<float> b = f.get_float_array("ouro.exit_gate.bias");
        if (static_cast<int64_t>(c.gate_w.size()) != c.n_embd || b.size() != 1) {
            f.fail("'ouro.exit_gate.weight' must hold n_embd = " + std::to_string(c.n_embd) +
                   " values and 'ouro.exit_gate.bias' one");
        }
        c.gate_b = b[0];
        c.has_gate = true;
    }
    c.exit_threshold = f.get_float("ouro.exit_gate.threshold", 1.0);
    if (!(c.exit_threshold >= 0.0) || !std::isfinite(c.exit_threshold)) {
        f.fail("key 'ouro.exit_gate.threshold' = " + std::to_string(c.exit_threshold) +
               " must be a finite number >= 0");
    }

    const GGUFTensor * embd = f.tensor("token_embd.weight");
    if (!embd) f.fail("missing tensor 'token_embd.weight'");
    c.n_vocab = embd->ne[1];
    if (c.n_vocab > limits::kVocab)
        f.fail("token_embd.weight has " + std::to_string(c.n_vocab) + " rows, above 2^31 - 1");
    if (f.has(ld.key("vocab_size")) && static_cast<int64_t>(f.get_uint(ld.key("vocab_size"))) != c.n_vocab) {
        f.fail("'" + ld.key("vocab_size") + "' disagrees with token_embd.weight");
    }
    token_embd = ld.matrix("token_embd.weight", c.n_embd, c.n_vocab);
    output = f.tensor("output.weight") ? ld.matrix("output.weight", c.n_embd, c.n_vocab) : token_embd;
    output_norm = ld.vector("output_norm.weight", c.n_embd);

    const int64_t q_dim = static_cast<int64_t>(c.n_head) * c.head_dim;
    const int64_t kv_dim = static_cast<int64_t>(c.n_head_kv) * c.head_dim;
    layers.resize(static_cast<size_t>(c.n_layer));
    for (int i = 0; i < c.n_layer; i++) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeights & l = layers[static_cast<size_t>(i)];
        l.attn_norm = ld.vector(p + "attn_norm.weight", c.n_embd);
        l.wq = ld.matrix(p + "attn_q.weight", c.n_embd, q_dim);
        l.wk = ld.matrix(p + "attn_k.weight", c.n_embd, kv_dim);
        l.wv = ld.matrix(p + "attn_v.weight", c.n_embd, kv_dim);
        l.wo = ld.matrix(p + "attn_output.weight", q_dim, c.n_embd);
        l.ffn_norm = ld.vector(p + "ffn_norm.weight", c.n_embd);
        l.ffn_gate = ld.matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff);
        l.ffn_up = ld.matrix(p + "ffn_up.weight", c.n_embd, c.n_ff);
        l.ffn_down = ld.matrix(p + "ffn_down.weight", c.n_ff, c.n_embd);
        if (c.post_norms) {
            l.post_attention_norm = ld.vector(p + "post_attention_norm.weight", c.n_embd);
            l.post_ffw_norm = ld.vector(p + "post_ffw_norm.weight", c.n_embd);
        }
    }
    ld.refuse_unused();
    vocab = load_vocab(f, c.n_vocab);
    if (repack_wanted()) {  // after every check: a refused file costs no repacking
        std::vector<Tensor *> ts;
        for (LayerWeights & l : layers) {
            for (Tensor * t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) ts.push_back(t);
        }
        if (output.data != token_embd.data) ts.push_back(&output);  // token_embd's rows are read as rows
        repacked_.reset(new RepackedWeights(ts, use_mlock));
    }
}

}  // namespace looplm
