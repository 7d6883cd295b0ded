// model/layer.cpp - the transformer layer of docs/ouro-model.md over rows:
//
//   x = attn_norm(h);  q, k, v = wq x, wk x, wv x;  rope(q), rope(k)
//   h += post_attention_norm(wo . attn(q, k, v))     # per span, over its sequence's cache
//   x = ffn_norm(h);   h += post_ffw_norm(down(silu(gate x) * up x))
#include "model/layer.h"

#include "quant/traits.h"
#include "runtime/buffers.h"
#include "runtime/fault.h"

namespace looplm {

void Layer::run(const LayerWeights & w, int loop, int layer, float * h, int64_t n, const int32_t * pos,
                const RopeRows & rope, const RowSpan * spans, int n_spans) {
    const int64_t E = cfg_.n_embd, F = cfg_.n_ff;
    const int64_t qd = static_cast<int64_t>(cfg_.n_head) * cfg_.head_dim;
    const int64_t kvd = static_cast<int64_t>(cfg_.n_head_kv) * cfg_.head_dim;
    float * xb = grow(xb_, n * E);
    float * q = grow(q_, n * qd);
    float * k = grow(k_, n * kvd);
    float * v = grow(v_, n * kvd);
    float * att = grow(att_, n * qd);
    float * o = grow(o_, n * E);
    float * g = grow(g_, n * F);
    float * u = grow(u_, n * F);
    fault::point("forward.block");

    // attention: h += post_attention_norm(wo . attn(rope(wq x), rope(wk x), wv x)), x = attn_norm(h)
    ops_.rmsnorm(h, w.attn_norm.data(), xb, n, E, cfg_.rms_eps);
    const Tensor * qkv[3] = {&w.wq, &w.wk, &w.wv};
    float * qkv_out[3] = {q, k, v};
    project(xb, n, qkv, qkv_out, 3);
    ops_.rope(q, rope.pos, n, cfg_.n_head, cfg_.head_dim, rope.table, rope.base);
    ops_.rope(k, rope.pos, n, cfg_.n_head_kv, cfg_.head_dim, rope.table, rope.base);
    for (int i = 0; i < n_spans; i++) {  // each sequence over its own cache
        const RowSpan & s = spans[i];
        const int64_t b = s.begin, m = s.end - s.begin;
        s.kv->store(attn_, loop, layer, k + b * kvd, v + b * kvd, pos + b, m);
        attn_.attend(q + b * qd, s.kv->view(loop, layer), pos + b, m, cfg_.n_head, cfg_.n_head_kv, cfg_.head_dim,
                     att + b * qd);
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

void Layer::project(const float * x, int64_t n, const Tensor * const * ws, float * const * outs, int count) {
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

double gate_logit(const Config & cfg, const float * h) {
    double gate = cfg.gate_b;
    if (cfg.has_gate) {
        for (int64_t j = 0; j < cfg.n_embd; j++) gate += static_cast<double>(cfg.gate_w[j]) * h[j];
    }
    return gate;
}

}  // namespace looplm
