// model/batch.cpp - the looped forward pass of context.cpp over the rows of several sequences:
//
//   h = embed(tokens of every item)
//   for step in 0 .. max loops of the items - 1:
//       for layer: h = block(h)        # attention per item over its own sequence's KV slot
//       h = rmsnorm(h, output_norm)
//       per row: the exit check of its item's policy; rows whose item ran out of loops, or
//       that exited in skip mode, leave the batch (the later loops never compute them)
//   logits = lm_head(h at the exit step) of each item's last token
//
// The arithmetic of one row is the single-sequence context's: the same ops and kernels, rows of
// other sequences only share the weight reads.
#include "model/batch.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "quant/quantize.h"
#include "quant/traits.h"

namespace looplm {

namespace {

template <typename T>
T * grow(std::vector<T> & v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
    return v.data();
}

}  // namespace

BatchContext::BatchContext(const Model & model, const ContextParams & p, int n_seq)
    : model_(model),
      cfg_(model.config()),
      k_(p.kernels ? *p.kernels : active_kernels()),
      pool_(p.n_threads > 0 ? p.n_threads : physical_cores()),
      ops_(k_, pool_),
      attn_(k_, pool_),
      max_loops_(p.n_loops > 0 ? p.n_loops : cfg_.n_loops),
      n_ctx_(p.n_ctx) {
    if (p.n_ctx < 1) throw std::invalid_argument("n_ctx must be >= 1");
    if (max_loops_ > 64) throw std::invalid_argument("loops must be in 1..64");
    if (n_seq < 1 || n_seq > 4096) throw std::invalid_argument("n_seq must be in 1..4096");
    const int64_t kv_dim = static_cast<int64_t>(cfg_.n_head_kv) * cfg_.head_dim;
    seqs_.resize(static_cast<size_t>(n_seq));
    for (Seq & s : seqs_) s.kv.reset(new KVCache(max_loops_ * cfg_.n_layer, kv_dim, p.n_ctx, p.kv_type));
}

RunOptions BatchContext::resolve(const RunRequest & r) const {
    RunOptions o;
    o.loops = r.loops.value_or(max_loops_);
    if (o.loops < 1 || o.loops > max_loops_) {
        throw std::invalid_argument("loops=" + std::to_string(o.loops) + " is outside 1.." +
                                    std::to_string(max_loops_) + " (the KV cache has slots for " +
                                    std::to_string(max_loops_) + " loops)");
    }
    o.exit = resolve_exit(r.exit, cfg_.exit_threshold, o.loops);
    return o;
}

void BatchContext::reset(int seq) {
    Seq & s = seqs_.at(static_cast<size_t>(seq));
    s.n_past = 0;
    s.kv->clear();
}

void BatchContext::step(const BatchItem * items, int n_items, float * logits, int * exit_steps) {
    if (n_items < 1) throw std::invalid_argument("a step needs at least one item");
    std::vector<char> seen(seqs_.size(), 0);
    int64_t n = 0;
    for (int i = 0; i < n_items; i++) {
        const BatchItem & it = items[i];
        if (it.seq < 0 || it.seq >= n_seq()) throw std::invalid_argument("no sequence " + std::to_string(it.seq));
        if (seen[static_cast<size_t>(it.seq)]++) {
            throw std::invalid_argument("sequence " + std::to_string(it.seq) + " appears twice in one step");
        }
        if (it.n < 1) throw std::invalid_argument("item " + std::to_string(i) + " has no tokens");
        if (it.opts.loops < 1 || it.opts.loops > max_loops_)
            throw std::invalid_argument("loops outside the KV cache's slots");
        for (int64_t t = 0; t < it.n; t++) {
            if (it.tokens[t] < 0 || it.tokens[t] >= cfg_.n_vocab) {
                throw std::invalid_argument("token id " + std::to_string(it.tokens[t]) +
                                            " is out of range (vocabulary of " + std::to_string(cfg_.n_vocab) + ")");
            }
        }
        const Seq & s = seqs_[static_cast<size_t>(it.seq)];
        if (s.n_past + it.n > n_ctx_) {
            throw std::length_error("context overflow: sequence " + std::to_string(it.seq) + " holds " +
                                    std::to_string(s.n_past) + " tokens + " + std::to_string(it.n) + " new > n_ctx " +
                                    std::to_string(n_ctx_));
        }
        n += it.n;
    }
    for (int i = 0; i < n_items; i++) {
        Seq & s = seqs_[static_cast<size_t>(items[i].seq)];
        s.kv->ensure(s.n_past + items[i].n);
    }
    items_ = items;

    // Rows: every item's tokens in order, with their positions and rope angles.
    const int64_t E = cfg_.n_embd, hd = cfg_.head_dim;
    float * h = grow(h_, n * E);
    int32_t * pos = grow(pos_, n);
    int * item = grow(item_, n);
    int64_t * out_row = grow(out_row_, n);
    float * rope = grow(rope_, n * hd);
    int32_t * iota = grow(iota_, n);
    int64_t r = 0;
    for (int i = 0; i < n_items; i++) {
        const BatchItem & it = items[i];
        const int64_t p0 = seqs_[static_cast<size_t>(it.seq)].n_past;
        for (int64_t t = 0; t < it.n; t++, r++) {
            dequantize_row(model_.token_embd.type, model_.token_embd.row(it.tokens[t]), h + r * E, E);
            pos[r] = static_cast<int32_t>(p0 + t);
            item[r] = i;
            out_row[r] = t == it.n - 1 ? i : -1;
            Ops::rope_table(p0 + t, 1, cfg_.head_dim, cfg_.rope_theta, rope + r * hd);
        }
    }
    for (int64_t j = 0; j < n; j++) iota[j] = static_cast<int32_t>(j);
    float * out_h = grow(out_h_, static_cast<int64_t>(n_items) * E);
    std::vector<ExitState> exits(static_cast<size_t>(n));
    std::vector<int64_t> row_id(static_cast<size_t>(n));  // original row of each active row
    for (int64_t j = 0; j < n; j++) row_id[static_cast<size_t>(j)] = j;
    int max_run = 0;
    for (int i = 0; i < n_items; i++) max_run = std::max(max_run, items[i].opts.loops);

    const int nl = cfg_.n_layer;
    int64_t na = n;
    for (int s = 0; s < max_run && na > 0; s++) {
        regroup(na);
        for (int l = 0; l < nl; l++) layer(model_.layers[static_cast<size_t>(l)], s * nl + l, na);
        ops_.rmsnorm(h, model_.output_norm.data(), h, na, E, cfg_.rms_eps);

        int64_t keep = 0;
        for (int64_t j = 0; j < na; j++) {
            const BatchItem & it = items[item[j]];
            KVCache & kv = *seqs_[static_cast<size_t>(it.seq)].kv;
            const ExitPolicy & policy = it.opts.exit;
            double gate = cfg_.gate_b;
            if (cfg_.has_gate) {
                for (int64_t e = 0; e < E; e++) gate += static_cast<double>(cfg_.gate_w[e]) * h[j * E + e];
            }
            ExitState & st = exits[static_cast<size_t>(row_id[static_cast<size_t>(j)])];
            bool leave = false;
            if (exit_update(st, s, it.opts.loops, cfg_.has_gate, gate, policy)) {
                if (out_row[j] >= 0) {
                    std::memcpy(out_h + out_row[j] * E, h + j * E, E * sizeof(float));
                    exit_steps[out_row[j]] = s;
                }
                if (policy.mode == ExitMode::Skip) {
                    fill_skipped(kv, policy, s, pos[j]);
                    leave = true;
                }
            }
            if (!leave && s == it.opts.loops - 1) {  // ran every loop of its item
                fill_skipped(kv, policy, s, pos[j]);
                leave = true;
            }
            if (leave) continue;
            if (keep != j) {
                std::memmove(h + keep * E, h + j * E, E * sizeof(float));
                std::memmove(rope + keep * hd, rope + j * hd, hd * sizeof(float));
                pos[keep] = pos[j];
                item[keep] = item[j];
                out_row[keep] = out_row[j];
                row_id[static_cast<size_t>(keep)] = row_id[static_cast<size_t>(j)];
            }
            keep++;
        }
        na = keep;
    }
    for (int i = 0; i < n_items; i++) seqs_[static_cast<size_t>(items[i].seq)].n_past += items[i].n;
    items_ = nullptr;

    ops_.prepare(model_.output.type, out_h, n_items, E, act_);
    ops_.matmul(model_.output, act_, logits);
}

void BatchContext::regroup(int64_t n) {
    groups_.clear();
    const int * item = item_.data();
    for (int64_t j = 0; j < n; j++) {
        if (groups_.empty() || groups_.back().item != item[j])
            groups_.push_back({item[j], j, j + 1});
        else
            groups_.back().end = j + 1;
    }
}

void BatchContext::layer(const LayerWeights & w, int slot, int64_t n) {
    const int64_t E = cfg_.n_embd, F = cfg_.n_ff;
    const int64_t qd = static_cast<int64_t>(cfg_.n_head) * cfg_.head_dim;
    const int64_t kvd = static_cast<int64_t>(cfg_.n_head_kv) * cfg_.head_dim;
    float * h = h_.data();
    float * xb = grow(xb_, n * E);
    float * q = grow(q_, n * qd);
    float * k = grow(k_buf_, n * kvd);
    float * v = grow(v_, n * kvd);
    float * att = grow(att_, n * qd);
    float * o = grow(o_, n * E);
    float * g = grow(g_, n * F);
    float * u = grow(u_, n * F);
    const int32_t * pos = pos_.data();

    // attention: h += post_attention_norm(wo . attn(rope(wq x), rope(wk x), wv x)), x = attn_norm(h)
    ops_.rmsnorm(h, w.attn_norm.data(), xb, n, E, cfg_.rms_eps);
    const Tensor * qkv[3] = {&w.wq, &w.wk, &w.wv};
    float * qkv_out[3] = {q, k, v};
    project(xb, n, qkv, qkv_out, 3);
    ops_.rope(q, iota_.data(), n, cfg_.n_head, cfg_.head_dim, rope_.data(), 0);  // row r: its own angles
    ops_.rope(k, iota_.data(), n, cfg_.n_head_kv, cfg_.head_dim, rope_.data(), 0);
    for (const Group & gr : groups_) {  // each sequence over its own cache
        KVCache & kv = *seqs_[static_cast<size_t>(items_[gr.item].seq)].kv;
        const int64_t b = gr.begin, m = gr.end - gr.begin;
        attn_.store_kv(kv, slot, k + b * kvd, v + b * kvd, pos + b, m);
        attn_.attend(q + b * qd, kv, slot, pos + b, m, cfg_.n_head, cfg_.n_head_kv, cfg_.head_dim, att + b * qd);
    }
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

void BatchContext::project(const float * x, int64_t n, const Tensor * const * ws, float * const * outs, int count) {
    int start = 0;
    while (start < count) {  // matrices taking the same activation type share one quantization of x
        int end = start + 1;
        const ActFormat act = traits(ws[start]->type).act;
        while (end < count && traits(ws[end]->type).act == act) end++;
        ops_.prepare(ws[start]->type, x, n, ws[start]->ne0, act_);
        ops_.matmul_many(ws + start, outs + start, end - start, act_);
        start = end;
    }
}

void BatchContext::fill_skipped(KVCache & kv, const ExitPolicy & p, int last_loop, int64_t pos) {
    const int nl = cfg_.n_layer;
    const int src_loop = p.fill == KVFill::ExitLoop ? last_loop : 0;
    for (int s = last_loop + 1; s < max_loops_; s++) {
        for (int l = 0; l < nl; l++) kv.copy_position(src_loop * nl + l, s * nl + l, pos);
    }
}

}  // namespace looplm
