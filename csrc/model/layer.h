// model/layer.h - one transformer layer over rows of hidden state, the projections and the
// exit gate: the pieces of the looped forward pass that Context (one sequence) and
// BatchContext (rows of several) share. The rows may belong to several sequences; each span
// of rows attends over its own sequence's cache (model/seq_kv.h), everything else is
// matrix-matrix over all rows.
#pragma once

#include <cstdint>
#include <vector>

#include "model/attention.h"
#include "model/model.h"
#include "model/seq_kv.h"
#include "ops/ops.h"

namespace looplm {

// Rows [begin, end) of a step, the tokens of one sequence in position order.
struct RowSpan {
    SeqKV * kv = nullptr;
    int64_t begin = 0, end = 0;
};

// Where each row's rotary angles are: row r uses table row rope_pos[r] - rope_base.
struct RopeRows {
    const int32_t * pos = nullptr;
    const float * table = nullptr;
    int64_t base = 0;
};

class Layer {
  public:
    Layer(const Config & cfg, Ops & ops, Attention & attn) : cfg_(cfg), ops_(ops), attn_(attn) {}

    // h [n, n_embd] += the layer at slot (loop, layer): attention (each span over its own
    // cache, rows at positions pos[]) then the MLP, with Ouro's post-norms when present.
    void run(const LayerWeights & w, int loop, int layer, float * h, int64_t n, const int32_t * pos,
             const RopeRows & rope, const RowSpan * spans, int n_spans);
    // outs[i] [n, ws[i]->ne1] = x [n, ws[i]->ne0] . ws[i]^T; matrices whose kernels take the
    // same activation type share one quantization of x.
    void project(const float * x, int64_t n, const Tensor * const * ws, float * const * outs, int count);

  private:
    const Config & cfg_;
    Ops & ops_;
    Attention & attn_;
    // Buffers for n rows (grown, never shrunk).
    std::vector<float> xb_, q_, k_, v_, att_, o_, g_, u_;
    Activations act_;
};

// The exit gate's logit w . h + b of one row h [n_embd] (b alone when the model has no gate).
double gate_logit(const Config & cfg, const float * h);

}  // namespace looplm
