// model/seq_kv.cpp - the slots a sequence's rows use in each sharing mode, the fill of the
// loops a position skipped and the kept K/V of the shared mode.
#include "model/seq_kv.h"

#include <stdexcept>

namespace looplm {

KVShare parse_kv_share(const std::string & s) {
    if (s == "none") return KVShare::None;
    if (s == "last") return KVShare::Last;
    throw std::invalid_argument("kv_share must be one of ('none', 'last'), got '" + s + "'");
}

const char * kv_share_name(KVShare s) { return s == KVShare::Last ? "last" : "none"; }

SeqKV::SeqKV(const SeqKVParams & p)
    : n_layer_(p.n_layer),
      max_loops_(p.max_loops),
      share_(p.share),
      kv_((p.share == KVShare::Last ? 1 : p.max_loops) * p.n_layer, p.kv_dim, p.n_ctx, p.type_k, p.type_v) {
    if (share_ == KVShare::Last) {
        // Pages of 8 positions: a decoded token's chunk keeps one page between tokens.
        chunk_.reset(new KVCache(max_loops_ * n_layer_, p.kv_dim, p.n_ctx, p.type_k, p.type_v, 8));
    }
}

void SeqKV::ensure(int64_t end) {
    kv_.ensure(end);
    if (chunk_) chunk_->ensure(end - chunk_start_);
}

void SeqKV::store(Attention & attn, int loop, int layer, const float * k, const float * v, const int32_t * pos,
                  int64_t rows) {
    attn.store_kv(loop_kv(), loop * n_layer_ + layer, k, v, pos, rows, loop_base());
}

KVView SeqKV::view(int loop, int layer) const {
    KVView view;
    view.kv = chunk_ ? chunk_.get() : &kv_;
    view.slot = loop * n_layer_ + layer;
    view.base = loop_base();
    if (chunk_) {
        view.hist = &kv_;
        view.hist_slot = layer;
        view.hist_len = chunk_start_;
    }
    return view;
}

void SeqKV::finish_position(const ExitPolicy & p, int last_loop, int64_t pos) {
    const int nl = n_layer_;
    const int src_loop = p.fill == KVFill::ExitLoop ? last_loop : 0;
    KVCache & c = loop_kv();
    const int64_t i = pos - loop_base();
    for (int s = last_loop + 1; s < max_loops_; s++) {
        for (int l = 0; l < nl; l++) c.copy_position(src_loop * nl + l, s * nl + l, i);
    }
    if (!chunk_) return;
    for (int l = 0; l < nl; l++) kv_.copy_from(*chunk_, (max_loops_ - 1) * nl + l, i, l, pos);
}

void SeqKV::end_chunk(int64_t n_past) {
    if (!chunk_) return;
    chunk_start_ = n_past;  // the chunk's kept K/V is in the history already (finish_position)
    chunk_->shrink(1);
}

void SeqKV::fill_synthetic(int64_t n, uint32_t seed) {
    kv_.fill_synthetic(n, seed);
    end_chunk(n);
}

void SeqKV::clear() {
    kv_.clear();
    if (chunk_) chunk_->clear();
    chunk_start_ = 0;
}

void SeqKV::truncate(int64_t n) {
    if (chunk_start_ > n) chunk_start_ = n;
}

}  // namespace looplm
