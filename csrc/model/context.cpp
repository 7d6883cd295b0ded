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
#include "runtime/buffers.h"
#include "runtime/fault.h"

namespace looplm {

SeqKVParams seq_kv_params(const Config & cfg, const ContextParams & p, int max_loops) {
    SeqKVParams s;
    s.n_layer = cfg.n_layer;
    s.max_loops = max_loops;
    s.kv_dim = static_cast<int64_t>(cfg.n_head_kv) * cfg.head_dim;
    s.n_ctx = p.n_ctx > 0 ? p.n_ctx : cfg.n_ctx_train;
    s.type_k = p.type_k.value_or(p.kv_type);
    s.type_v = p.type_v.value_or(p.kv_type);
    s.share = p.kv_share;
    for (DType t : {s.type_k, s.type_v}) {
        if ((t == DType::Q8_0 || t == DType::Q4_0) && cfg.head_dim % 32 != 0) {
            throw std::invalid_argument(
                std::string(t == s.type_k ? "type_k" : "type_v") + "=" + (t == DType::Q8_0 ? "q8_0" : "q4_0") +
                " needs a head size that is a multiple of 32 (this model's is " + std::to_string(cfg.head_dim) + ")");
        }
    }
    return s;
}

namespace {

int checked_loops(const Config & cfg, const ContextParams & p) {
    const int loops = p.n_loops > 0 ? p.n_loops : cfg.n_loops;
    if (p.n_ctx < 0) throw std::invalid_argument("n_ctx must be >= 0 (0: the trained context)");
    if (loops > limits::kLoops) throw std::invalid_argument("loops must be in 1.." + std::to_string(limits::kLoops));
    return loops;
}

}  // namespace

Context::Context(const Model & model, const ContextParams & p)
    : model_(model),
      cfg_(model.config()),
      k_(p.kernels ? *p.kernels : active_kernels()),
      pool_(p.n_threads > 0 ? p.n_threads : physical_cores()),
      ops_(k_, pool_),
      attn_(k_, pool_),
      layer_(cfg_, ops_, attn_),
      max_loops_(checked_loops(cfg_, p)),
      n_batch_(p.n_batch),
      kv_(seq_kv_params(cfg_, p, max_loops_)) {
    if (n_batch_ < 1) throw std::invalid_argument("n_batch must be >= 1");
}

RunRequest RunRequest::merged(const RunRequest & over) const {
    RunRequest r;
    r.loops = over.loops ? over.loops : loops;
    r.exit = exit.merged(over.exit);
    return r;
}

RunOptions resolve_run(const RunRequest & r, const Config & cfg, int max_loops) {
    RunOptions o;
    o.loops = r.loops.value_or(max_loops);
    if (o.loops < 1 || o.loops > max_loops) {
        throw std::invalid_argument("loops=" + std::to_string(o.loops) + " is outside 1.." + std::to_string(max_loops) +
                                    " (the KV cache has slots for " + std::to_string(max_loops) +
                                    " loops; load the model with more loops)");
    }
    o.exit = resolve_exit(r.exit, cfg.exit_threshold, o.loops);
    return o;
}

RunOptions Context::resolve(const RunRequest & r) const { return resolve_run(r, cfg_, max_loops_); }

void Context::reset() {
    n_past_ = 0;
    reused_ = 0;
    exit_steps_.clear();
    tokens_.clear();
    runs_.clear();
    kv_.clear();
}

void Context::truncate(int64_t n) {
    if (n < 0 || n > n_past_) {
        throw std::invalid_argument("truncate(" + std::to_string(n) + "): the context holds " +
                                    std::to_string(n_past_) + " tokens");
    }
    n_past_ = n;
    kv_.truncate(n);
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
    n_past_ = n;
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

void Context::end_chunk() { kv_.end_chunk(n_past_); }

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
    const RopeRows rope{pos, rope_.data(), n_past_};

    int64_t na = n;  // active rows: h, pos and idx are compacted to them
    for (int s = 0; s < n_loops && na > 0; s++) {
        const RowSpan span{&kv_, 0, na};
        for (int l = 0; l < nl; l++)
            layer_.run(model_.layers[static_cast<size_t>(l)], s, l, h, na, pos, rope, &span, 1);
        ops_.rmsnorm(h, model_.output_norm.data(), h, na, E, cfg_.rms_eps);

        int64_t keep = 0;
        for (int64_t r = 0; r < na; r++) {
            const double gate = gate_logit(cfg_, h + r * E);
            const int64_t i = idx[r];
            if (exit_update(exits[static_cast<size_t>(i)], s, n_loops, cfg_.has_gate, gate, policy)) {
                exit_steps_[static_cast<size_t>(pos[r])] = static_cast<int8_t>(s);
                const int64_t out_row = all_logits ? i : (i == n - 1 ? 0 : -1);
                if (n_out > 0 && out_row >= 0) std::memcpy(out_h + out_row * E, h + r * E, E * sizeof(float));
                if (policy.mode == ExitMode::Skip) {
                    kv_.finish_position(policy, s, pos[r]);
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
    for (int64_t r = 0; r < na; r++) kv_.finish_position(policy, n_loops - 1, pos[r]);
    n_past_ += n;
    runs_.back().end = n_past_;
    fault::point("forward.logits");  // the batch is in the context, its logits not yet computed

    if (n_out > 0) {  // logits = lm_head(h at each token's exit step)
        const Tensor * head[1] = {&model_.output};
        layer_.project(out_h, n_out, head, &logits, 1);
    }
}

}  // namespace looplm
