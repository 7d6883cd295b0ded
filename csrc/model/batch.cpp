// model/batch.cpp - the looped forward pass of context.cpp over the rows of several sequences:
//
//   h = embed(tokens of every item)
//   for step in 0 .. max loops of the items - 1:
//       for layer: h = layer(h)        # model/layer.h; attention per item over its sequence's cache
//       h = rmsnorm(h, output_norm)
//       per row: the exit check of its item's policy; rows whose item ran out of loops, or
//       that exited in skip mode, leave the batch (the later loops never compute them)
//   logits = lm_head(h at the exit step) of each item's last token
//
// The arithmetic of one row is the single-sequence context's: the same layer routine, the same
// cache rules (model/seq_kv.h: kv_share, the KV types, the fill), rows of other sequences only
// share the weight reads.
#include "model/batch.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "model/limits.h"
#include "quant/quantize.h"
#include "runtime/buffers.h"

namespace looplm {

BatchContext::BatchContext(const Model & model, const ContextParams & p, int n_seq)
    : model_(model),
      cfg_(model.config()),
      k_(p.kernels ? *p.kernels : active_kernels()),
      pool_(p.n_threads > 0 ? p.n_threads : physical_cores()),
      ops_(k_, pool_),
      attn_(k_, pool_),
      layer_(cfg_, ops_, attn_),
      max_loops_(p.n_loops > 0 ? p.n_loops : cfg_.n_loops) {
    if (p.n_ctx < 0) throw std::invalid_argument("n_ctx must be >= 0 (0: the trained context)");
    if (max_loops_ > limits::kLoops)
        throw std::invalid_argument("loops must be in 1.." + std::to_string(limits::kLoops));
    if (n_seq < 1 || n_seq > 4096) throw std::invalid_argument("n_seq must be in 1..4096");
    const SeqKVParams kv = seq_kv_params(cfg_, p, max_loops_);
    n_ctx_ = kv.n_ctx;
    seqs_.resize(static_cast<size_t>(n_seq));
    for (Seq & s : seqs_) s.kv.reset(new SeqKV(kv));
}

RunOptions BatchContext::resolve(const RunRequest & r) const { return resolve_run(r, cfg_, max_loops_); }

void BatchContext::reset(int seq) {
    Seq & s = seqs_.at(static_cast<size_t>(seq));
    s.n_past = 0;
    s.kv->clear();
}

void BatchContext::check(const BatchItem * items, int n_items) {
    if (n_items < 1) throw std::invalid_argument("a step needs at least one item");
    std::vector<char> & seen = seen_;
    seen.assign(seqs_.size(), 0);
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
    }
}

void BatchContext::step(const BatchItem * items, int n_items, float * logits, int * exit_steps) {
    check(items, n_items);
    int64_t n = 0;
    for (int i = 0; i < n_items; i++) {
        Seq & s = seqs_[static_cast<size_t>(items[i].seq)];
        s.kv->ensure(s.n_past + items[i].n);
        n += items[i].n;
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
    int64_t * row_id = grow(row_id_, n);
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
    for (int64_t j = 0; j < n; j++) {
        iota[j] = static_cast<int32_t>(j);
        row_id[j] = j;
    }
    float * out_h = grow(out_h_, static_cast<int64_t>(n_items) * E);
    exits_.assign(static_cast<size_t>(n), ExitState{});
    int max_run = 0;
    for (int i = 0; i < n_items; i++) max_run = std::max(max_run, items[i].opts.loops);
    const RopeRows rope_rows{iota, rope, 0};  // row r: its own angles

    const int nl = cfg_.n_layer;
    int64_t na = n;
    for (int s = 0; s < max_run && na > 0; s++) {
        regroup(na);
        for (int l = 0; l < nl; l++) {
            layer_.run(model_.layers[static_cast<size_t>(l)], s, l, h, na, pos, rope_rows, spans_.data(),
                       static_cast<int>(spans_.size()));
        }
        ops_.rmsnorm(h, model_.output_norm.data(), h, na, E, cfg_.rms_eps);

        int64_t keep = 0;
        for (int64_t j = 0; j < na; j++) {
            const BatchItem & it = items[item[j]];
            SeqKV & kv = *seqs_[static_cast<size_t>(it.seq)].kv;
            const ExitPolicy & policy = it.opts.exit;
            const double gate = gate_logit(cfg_, h + j * E);
            ExitState & st = exits_[static_cast<size_t>(row_id[j])];
            bool leave = false;
            if (exit_update(st, s, it.opts.loops, cfg_.has_gate, gate, policy)) {
                if (out_row[j] >= 0) {
                    std::memcpy(out_h + out_row[j] * E, h + j * E, E * sizeof(float));
                    exit_steps[out_row[j]] = s;
                }
                if (policy.mode == ExitMode::Skip) {
                    kv.finish_position(policy, s, pos[j]);
                    leave = true;
                }
            }
            if (!leave && s == it.opts.loops - 1) {  // ran every loop of its item
                kv.finish_position(policy, s, pos[j]);
                leave = true;
            }
            if (leave) continue;
            if (keep != j) {
                std::memmove(h + keep * E, h + j * E, E * sizeof(float));
                std::memmove(rope + keep * hd, rope + j * hd, hd * sizeof(float));
                pos[keep] = pos[j];
                item[keep] = item[j];
                out_row[keep] = out_row[j];
                row_id[keep] = row_id[j];
            }
            keep++;
        }
        na = keep;
    }
    for (int i = 0; i < n_items; i++) {
        Seq & s = seqs_[static_cast<size_t>(items[i].seq)];
        s.n_past += items[i].n;
        if (items[i].end_chunk) s.kv->end_chunk(s.n_past);
    }
    items_ = nullptr;

    const Tensor * head[1] = {&model_.output};
    layer_.project(out_h, n_items, head, &logits, 1);
}

void BatchContext::regroup(int64_t n) {
    spans_.clear();
    const int * item = item_.data();
    for (int64_t j = 0; j < n; j++) {
        if (j == 0 || item[j - 1] != item[j]) {
            spans_.push_back({seqs_[static_cast<size_t>(items_[item[j]].seq)].kv.get(), j, j + 1});
        } else {
            spans_.back().end = j + 1;
        }
    }
}

}  // namespace looplm
