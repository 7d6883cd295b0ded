// model/context.cpp - the looped forward pass, read top to bottom against docs/ouro-model.md:
//
//   h = embed(tokens)
//   for step in 0 .. loops-1:                      # the same layer weights every step
//       for layer: h = block(h, kv slot = step * n_layer + layer)
//       h = rmsnorm(h, output_norm)                # after EVERY step
//       exit check on the gate; exited tokens keep this h for lm_head
//   logits = lm_head(h at the exit step)
//
// In skip mode a token that exits stops computing, and the KV slots of the loops it skipped
// are filled by the KVFill policy, so later tokens read what one-by-one decoding would give.
#include "model/context.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "model/limits.h"
#include "quant/quantize.h"
#include "quant/traits.h"
#include "runtime/fault.h"

namespace looplm {

namespace {

template <typename T>
T * grow(std::vector<T> & v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
    return v.data();
}

}  // namespace

Context::Context(const Model & model, const ContextParams & p)
    : model_(model),
      cfg_(model.config()),
      k_(p.kernels ? *p.kernels : active_kernels()),
      pool_(p.n_threads > 0 ? p.n_threads : physical_cores()),
      ops_(k_, pool_),
      attn_(k_, pool_),
      max_loops_(p.n_loops > 0 ? p.n_loops : cfg_.n_loops),
      n_batch_(p.n_batch),
      share_(p.kv_share),
      kv_((share_ == KVShare::Last ? 1 : max_loops_) * cfg_.n_layer,
          static_cast<int64_t>(cfg_.n_head_kv) * cfg_.head_dim, p.n_ctx > 0 ? p.n_ctx : cfg_.n_ctx_train,
          p.type_k.value_or(p.kv_type), p.type_v.value_or(p.kv_type)) {
    if (p.n_ctx < 0) throw std::invalid_argument("n_ctx must be >= 0 (0: the trained context)");
    if (max_loops_ > limits::kLoops)
        throw std::invalid_argument("loops must be in 1.." + std::to_string(limits::kLoops));
    if (n_batch_ < 1) throw std::invalid_argument("n_batch must be >= 1");
    for (DType t : {kv_.type_k(), kv_.type_v()}) {
        if ((t == DType::Q8_0 || t == DType::Q4_0) && cfg_.head_dim % 32 != 0) {
            throw std::invalid_argument(
                std::string(t == kv_.type_k() ? "type_k" : "type_v") + "=" + (t == DType::Q8_0 ? "q8_0" : "q4_0") +
                " needs a head size that is a multiple of 32 (this model's is " + std::to_string(cfg_.head_dim) + ")");
        }
    }
    if (share_ == KVShare::Last) {
        // Pages of 8 positions: a decoded token's chunk keeps one page between tokens.
        chunk_.reset(new KVCache(max_loops_ * cfg_.n_layer, kv_.kv_dim(), kv_.n_ctx(), kv_.type_k(), kv_.type_v(), 8));
    }
}

KVShare parse_kv_share(const std::string & s) {
    if (s == "none") return KVShare::None;
    if (s == "last") return KVShare::Last;
    throw std::invalid_argument("kv_share must be one of ('none', 'last'), got '" + s + "'");
}

const char * kv_share_name(KVShare s) { return s == KVShare::Last ? "last" : "none"; }

RunRequest RunRequest::merged(const RunRequest & over) const {
    RunRequest r;
    r.loops = over.loops ? over.loops : loops;
    r.exit = exit.merged(over.exit);
    return r;
}

RunOptions Context::resolve(const RunRequest & r) const {
    RunOptions o;
    o.loops = r.loops.value_or(max_loops_);
    if (o.loops < 1 || o.loops > max_loops_) {
        throw std::invalid_argument("loops=" + std::to_string(o.loops) + " is outside 1.." +
                                    std::to_string(max_loops_) + " (the KV cache has slots for " +
                                    std::to_string(max_loops_) + " loops; load the model with more loops)");
    }
    o.exit = resolve_exit(r.exit, cfg_.exit_threshold, o.loops);
    return o;
}

void Context::reset() {
    n_past_ = 0;
    reused_ = 0;
    exit_steps_.clear();
    tokens_.clear();
    runs_.clear();
    kv_.clear();
    if (chunk_) chunk_->clear();
    chunk_start_ = 0;
}

void Context::truncate(int64_t n) {
    if (n < 0 || n > n_past_) {
        throw std::invalid_argument("truncate(" + std::to_string(n) + "): the context holds " +
                                    std::to_string(n_past_) + " tokens");
    }
    n_past_ = n;
    if (chunk_start_ > n) chunk_start_ = n;
    exit_steps_.resize(static_cast<size_t>(n));
    tokens_.resize(static_cast<size_t>(n));
    while (!runs_.empty() && (runs_.size() > 1 ? runs_[runs_.size() - 2].end : 0) >= n) runs_.pop_back();
    if (!runs_.empty()) runs_.back().end = n;
}

void Context::bench_fill(int64_t n, uint32_t seed) {
    if (n < 0 || n > kv_.n_ctx()) {
        throw std::invalid_argument("bench fill of " + std::to_string(n) + " positions: n_ctx is " +
                                    std::to_string(kv_.n_ctx()));
    }
    reset();
    kv_.fill_synthetic(n, seed);
    n_past_ = chunk_start_ = n;
    tokens_.assign(static_cast<size_t>(n), -1);
    exit_steps_.assign(static_cast<size_t>(n), static_cast<int8_t>(max_loops_ - 1));
}

void Context::eval(const int32_t * tokens, int64_t n, const RunOptions & opts, bool all_logits, float * logits) {
    try {
        eval_part(tokens, n, opts, all_logits, logits);
    } catch (...) {
        end_chunk();
        throw;
    }
    end_chunk();
}

void Context::end_chunk() {
    if (!chunk_) return;
    chunk_start_ = n_past_;  // the chunk's kept K/V is in the history already (finish_position)
    chunk_->shrink(1);
}

// One part of the current chunk: positions n_past().. of it; the chunk goes on until end_chunk.
void Context::eval_part(const int32_t * tokens, int64_t n, const RunOptions & opts, bool all_logits, float * logits) {
    if (n < 1) throw std::invalid_argument("eval needs at least one token");
    if (opts.loops < 1 || opts.loops > max_loops_) throw std::invalid_argument("loops outside the KV cache's slots");
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= cfg_.n_vocab) {
            throw std::invalid_argument("token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                        " is out of range (vocabulary of " + std::to_string(cfg_.n_vocab) + ")");
        }
    }
    if (n_past_ + n > kv_.n_ctx()) {
        throw std::length_error("context overflow: " + std::to_string(n_past_) + " tokens in the context + " +
                                std::to_string(n) + " new > n_ctx " + std::to_string(kv_.n_ctx()));
    }
    // A failure anywhere below (an allocation) leaves the context as it was: the positions
    // of this call are forgotten, and their KV rows are overwritten by a later call.
    const int64_t n0 = n_past_;
    try {
        kv_.ensure(n_past_ + n);
        if (chunk_) chunk_->ensure(n_past_ + n - chunk_start_);
        fault::point("eval.kv");
        for (int64_t done = 0; done < n; done += n_batch_) {
            const int64_t m = std::min(n_batch_, n - done);
            const bool last = done + m == n;
            float * out = all_logits ? logits + done * cfg_.n_vocab : (last ? logits : nullptr);
            forward(tokens + done, m, opts, all_logits, out);
        }
    } catch (...) {
        truncate(n0);
        throw;
    }
}

bool Context::prefill(const int32_t * tokens, int64_t n, const RunOptions & opts, float * logits,
                      const std::function<bool()> & stop) {
    if (n < 1) throw std::invalid_argument("cannot prefill an empty prompt");
    // Positions computed with opts form the first run; only they can be reused.
    const int64_t valid = !runs_.empty() && runs_.front().opts == opts ? runs_.front().end : 0;
    int64_t p = 0;
    while (p < valid && p < n - 1 && tokens_[static_cast<size_t>(p)] == tokens[p]) p++;
    truncate(p);
    reused_ = p;
    // The whole rest is one chunk (docs/kv-cache.md), however many micro-batches it takes.
    try {
        for (int64_t i = p; i < n; i += n_batch_) {
            if (i > p && stop && stop()) {
                end_chunk();
                return false;
            }
            const int64_t m = std::min(n_batch_, n - i);
            eval_part(tokens + i, m, opts, false, logits);
        }
    } catch (...) {
        end_chunk();
        throw;
    }
    end_chunk();
    return true;
}

void Context::forward(const int32_t * tokens, int64_t n, const RunOptions & opts, bool all_logits, float * logits) {
    const int64_t E = cfg_.n_embd;
    const int nl = cfg_.n_layer;
    const int64_t n_out = all_logits ? n : (logits ? 1 : 0);  // rows of logits wanted

    // h [n, E] = embed(tokens)
    float * h = grow(h_, n * E);
    for (int64_t i = 0; i < n; i++) {
        dequantize_row(model_.token_embd.type, model_.token_embd.row(tokens[i]), h + i * E, E);
    }
    fault::point("forward.embed");
    int32_t * pos = grow(pos_, n);
    int64_t * idx = grow(idx_, n);
    for (int64_t i = 0; i < n; i++) {
        pos[i] = static_cast<int32_t>(n_past_ + i);
        idx[i] = i;
    }
    Ops::rope_table(n_past_, n, cfg_.head_dim, cfg_.rope_theta, grow(rope_, n * cfg_.head_dim));
    float * out_h = grow(out_h_, std::max<int64_t>(n_out, 1) * E);  // exit-step h of logit rows
    std::vector<ExitState> exits(static_cast<size_t>(n));
    exit_steps_.resize(static_cast<size_t>(n_past_ + n));
    tokens_.insert(tokens_.end(), tokens, tokens + n);
    if (runs_.empty() || runs_.back().opts != opts) runs_.push_back({n_past_, opts});
    fault::point("forward.commit");  // the context's lists already hold this batch
    const int n_loops = opts.loops;
    const ExitPolicy & policy = opts.exit;

    int64_t na = n;  // active rows: h, pos and idx are compacted to them
    for (int s = 0; s < n_loops && na > 0; s++) {
        for (int l = 0; l < nl; l++) block(model_.layers[static_cast<size_t>(l)], s, l, na);
        ops_.rmsnorm(h, model_.output_norm.data(), h, na, E, cfg_.rms_eps);

        int64_t keep = 0;
        for (int64_t r = 0; r < na; r++) {
            double gate = cfg_.gate_b;
            if (cfg_.has_gate) {
                for (int64_t j = 0; j < E; j++) gate += static_cast<double>(cfg_.gate_w[j]) * h[r * E + j];
            }
            const int64_t i = idx[r];
            if (exit_update(exits[static_cast<size_t>(i)], s, n_loops, cfg_.has_gate, gate, policy)) {
                exit_steps_[static_cast<size_t>(pos[r])] = static_cast<int8_t>(s);
                const int64_t out_row = all_logits ? i : (i == n - 1 ? 0 : -1);
                if (n_out > 0 && out_row >= 0) std::memcpy(out_h + out_row * E, h + r * E, E * sizeof(float));
                if (policy.mode == ExitMode::Skip) {
                    finish_position(policy, s, pos[r]);
                    continue;  // drop the row: it runs no further loops
                }
            }
            if (keep != r) {
                std::memmove(h + keep * E, h + r * E, E * sizeof(float));
                pos[keep] = pos[r];
                idx[keep] = idx[r];
            }
            keep++;
        }
        na = keep;
    }
    // Rows that ran every active loop: when fewer loops run than the cache has slots for,
    // the remaining slots follow the fill policy too.
    for (int64_t r = 0; r < na; r++) finish_position(policy, n_loops - 1, pos[r]);
    n_past_ += n;
    runs_.back().end = n_past_;
    fault::point("forward.logits");  // the batch is in the context, its logits not yet computed

    if (n_out > 0) {  // logits = lm_head(h at each token's exit step)
        ops_.prepare(model_.output.type, out_h, n_out, E, act_);
        ops_.matmul(model_.output, act_, logits);
    }
}

void Context::block(const LayerWeights & w, int loop, int layer, int64_t n) {
    const int64_t E = cfg_.n_embd, F = cfg_.n_ff;
    const int64_t qd = static_cast<int64_t>(cfg_.n_head) * cfg_.head_dim;
    float * h = h_.data();
    float * xb = grow(xb_, n * E);
    float * q = grow(q_, n * qd);
    float * k = grow(k_buf_, n * kv_.kv_dim());
    float * v = grow(v_, n * kv_.kv_dim());
    float * att = grow(att_, n * qd);
    float * o = grow(o_, n * E);
    float * g = grow(g_, n * F);
    float * u = grow(u_, n * F);
    const int32_t * pos = pos_.data();
    fault::point("forward.block");

    // attention: h += post_attention_norm(wo . attn(rope(wq x), rope(wk x), wv x)), x = attn_norm(h)
    ops_.rmsnorm(h, w.attn_norm.data(), xb, n, E, cfg_.rms_eps);
    const Tensor * qkv[3] = {&w.wq, &w.wk, &w.wv};
    float * qkv_out[3] = {q, k, v};
    project(xb, n, qkv, qkv_out, 3);
    ops_.rope(q, pos, n, cfg_.n_head, cfg_.head_dim, rope_.data(), n_past_);
    ops_.rope(k, pos, n, cfg_.n_head_kv, cfg_.head_dim, rope_.data(), n_past_);
    // kv_share none: slot (loop, layer) of every position; last: the history's layer slot,
    // then the chunk's (loop, layer) slot (docs/kv-cache.md).
    KVView view;
    view.kv = &loop_kv();
    view.slot = loop * cfg_.n_layer + layer;
    view.base = loop_base();
    if (chunk_) {
        view.hist = &kv_;
        view.hist_slot = layer;
        view.hist_len = chunk_start_;
    }
    attn_.store_kv(loop_kv(), view.slot, k, v, pos, n, view.base);
    attn_.attend(q, view, pos, n, cfg_.n_head, cfg_.n_head_kv, cfg_.head_dim, att);
    const Tensor * wo[1] = {&w.wo};
    project(att, n, wo, &o, 1);
    if (cfg_.post_norms) ops_.rmsnorm(o, w.post_attention_norm.data(), o, n, E, cfg_.rms_eps);
    ops_.add(h, o, n, E);

    // MLP: h += post_ffw_norm(down(silu(gate x) * up x)), x = ffn_norm(h)
    ops_.rmsnorm(h, w.ffn_norm.data(), xb, n, E, cfg_.rms_eps);
    const Tensor * gu[2] = {&w.ffn_gate, &w.ffn_up};
    float * gu_out[2] = {g, u};
    project(xb, n, gu, gu_out, 2);
    ops_.swiglu(g, u, n, F);
    const Tensor * down[1] = {&w.ffn_down};
    project(g, n, down, &o, 1);
    if (cfg_.post_norms) ops_.rmsnorm(o, w.post_ffw_norm.data(), o, n, E, cfg_.rms_eps);
    ops_.add(h, o, n, E);
}

void Context::project(const float * x, int64_t n, const Tensor * const * ws, float * const * outs, int count) {
    // Matrices whose kernels take the same activation type share one quantization of x.
    int start = 0;
    while (start < count) {
        int end = start + 1;
        const ActFormat act = traits(ws[start]->type).act;
        while (end < count && traits(ws[end]->type).act == act) end++;
        ops_.prepare(ws[start]->type, x, n, ws[start]->ne0, act_);
        ops_.matmul_many(ws + start, outs + start, end - start, act_);
        start = end;
    }
}

void Context::fill_skipped(const ExitPolicy & p, int last_loop, int64_t pos) {
    const int nl = cfg_.n_layer;
    const int src_loop = p.fill == KVFill::ExitLoop ? last_loop : 0;
    KVCache & c = loop_kv();
    const int64_t i = pos - loop_base();
    for (int s = last_loop + 1; s < max_loops_; s++) {
        for (int l = 0; l < nl; l++) c.copy_position(src_loop * nl + l, s * nl + l, i);
    }
}

// A position whose last loop ran: the loops after it follow the fill policy, and in the shared
// mode the history keeps what its last loop slot then holds.
void Context::finish_position(const ExitPolicy & p, int last_loop, int64_t pos) {
    fill_skipped(p, last_loop, pos);
    if (!chunk_) return;
    const int nl = cfg_.n_layer;
    for (int l = 0; l < nl; l++) kv_.copy_from(*chunk_, (max_loops_ - 1) * nl + l, pos - chunk_start_, l, pos);
}

}  // namespace looplm
