// exercise.h - what the robustness tools do with a file that loads: a short evaluation in
// both exit modes and a tokenizer round trip, so sanitizers and the fuzzer also cover the
// forward pass over whatever shapes and types a (possibly hostile) file declares.
#pragma once

#include <string>
#include <vector>

#include "model/context.h"

namespace looplm {

inline void exercise_model(const Model & m) {
    const int64_t n_vocab = m.config().n_vocab;
    const int32_t last = static_cast<int32_t>(n_vocab - 1);
    const std::vector<int32_t> ids = {0, last, static_cast<int32_t>(n_vocab / 2)};
    std::vector<float> logits(static_cast<size_t>(ids.size() * n_vocab));
    for (ExitMode mode : {ExitMode::Exact, ExitMode::Skip}) {
        ContextParams p;
        p.n_ctx = 8;
        p.n_threads = 1;
        p.n_batch = 2;  // two micro-batches
        Context ctx(m, p);
        RunOptions o;
        o.loops = ctx.max_loops();
        o.exit.mode = mode;
        o.exit.threshold = mode == ExitMode::Skip ? 0.5 : 1.0;
        ctx.eval(ids.data(), static_cast<int64_t>(ids.size()), o, true, logits.data());
        ctx.eval(ids.data(), 1, o, false, logits.data());  // one decode step after the prompt
        ctx.truncate(1);
        ctx.eval(ids.data() + 1, 1, o, false, logits.data());
    }
    if (m.vocab.tokenizer) {
        const Tokenizer & t = *m.vocab.tokenizer;
        const std::vector<int32_t> enc = t.encode("ab a\xc3\xa9 12 <|im_end|>\xff", true);
        (void)t.decode(enc);
        (void)t.encode("ab", false);
    }
}

}  // namespace looplm
