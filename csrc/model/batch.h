// model/batch.h - several independent sequences over one Model, stepped together: each step
// runs the next tokens of every sequence given (a prompt chunk or one decoded token) through the
// layers as one batch of rows, so every weight matrix is read once for all of them.
//
// Each sequence has its own KV cache and positions; its rows carry their own loops and exit
// policy, leave the loop at their own exit (skip mode) and attend only over their own cache.
// Everything else (embedding, norms, projections, the MLP, lm_head) is matrix-matrix over the
// rows of all sequences.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/context.h"

namespace looplm {

// One sequence's part of a step: tokens[0, n) appended at its next positions. The tokens
// continue the sequence's current chunk (docs/kv-cache.md; it matters with kv_share "last"):
// end_chunk false keeps the chunk open for the sequence's next item, so a prompt fed in
// parts over several steps is one chunk, as Context::prefill makes it.
struct BatchItem {
    int seq = 0;
    const int32_t * tokens = nullptr;
    int64_t n = 0;
    RunOptions opts;
    bool end_chunk = true;
};

class BatchContext {
  public:
    BatchContext(const Model & model, const ContextParams & params, int n_seq);

    // As Context::resolve (the same cache slots and file defaults).
    RunOptions resolve(const RunRequest & r) const;

    // Runs every item (each sequence at most once per step) and writes, per item i, the
    // logits of its last token to logits + i * n_vocab and that token's 0-based exit loop to
    // exit_steps[i]. Throws before any work on a bad item (sequence, token id, overflow).
    void step(const BatchItem * items, int n_items, float * logits, int * exit_steps);
    // Empties one sequence (its KV pages are freed).
    void reset(int seq);
    // The sequence's cache (its history, and in the shared mode its chunk).
    const SeqKV & kv(int seq) const { return *seqs_.at(static_cast<size_t>(seq)).kv; }

    int n_seq() const { return static_cast<int>(seqs_.size()); }
    int64_t n_past(int seq) const { return seqs_.at(static_cast<size_t>(seq)).n_past; }
    int64_t n_ctx() const { return n_ctx_; }
    int max_loops() const { return max_loops_; }
    int n_threads() const { return pool_.size(); }

  private:
    struct Seq {
        std::unique_ptr<SeqKV> kv;
        int64_t n_past = 0;
    };
    void check(const BatchItem * items, int n_items);  // throws before any work on a bad item
    void regroup(int64_t n);                           // spans_ of the n active rows (an item's rows stay contiguous)

    const Model & model_;
    const Config & cfg_;
    const Kernels & k_;
    ThreadPool pool_;
    Ops ops_;
    Attention attn_;
    Layer layer_;
    int max_loops_;
    int64_t n_ctx_;
    std::vector<Seq> seqs_;
    const BatchItem * items_ = nullptr;

    // Per active row (compacted together as rows leave): hidden state, position, item, rope angles.
    std::vector<float> h_, rope_;
    std::vector<int32_t> pos_, iota_;
    std::vector<int> item_;
    std::vector<int64_t> out_row_;  // the logits row of an item's last token, else -1
    std::vector<int64_t> row_id_;   // the step's row index of each active row
    std::vector<ExitState> exits_;
    std::vector<char> seen_;
    std::vector<RowSpan> spans_;
    std::vector<float> out_h_;
};

}  // namespace looplm
