// exit.h - Ouro's learned exit gate: from the gate logit after each loop to the exit step.
//
// After loop s the gate gives lambda_s = sigmoid(w . h_s + b). The exit distribution is
// p_s = lambda_s * prod_{j<s} (1 - lambda_j) for s < last, and the last loop takes the rest.
// A token exits at the first loop whose CDF sum_{j<=s} p_j reaches the threshold, else at
// the last loop; a fixed exit_at_step overrides the gate. Computed in double precision.
#pragma once

namespace looplm {

enum class ExitMode {
    Exact,  // run every loop for every token, fill every KV slot; the exit only picks the logits
    Skip,   // stop at the exit loop; the skipped loops' KV slots are filled by the KVFill policy
};

enum class KVFill {
    ExitLoop,   // skipped loops reuse the exit loop's keys/values (default)
    FirstLoop,  // skipped loops reuse loop 0's keys/values (the paper's weaker variant)
};

struct ExitPolicy {
    double threshold = 1.0;
    ExitMode mode = ExitMode::Exact;
    KVFill fill = KVFill::ExitLoop;
    int exit_at_step = -1;  // >= 0: always exit at this loop (clamped to the last)
};

// The running exit distribution of one token.
struct ExitState {
    double survive = 1.0;  // prod_{j<s} (1 - lambda_j)
    double cdf = 0.0;
    int step = -1;         // chosen exit loop, -1 while undecided
};

// Folds loop s (of n_loops) into the state; gate_logit is ignored when has_gate is false.
// Returns true when s is the token's exit loop (only once per token).
bool exit_update(ExitState & st, int s, int n_loops, bool has_gate, double gate_logit,
                 const ExitPolicy & policy);

}  // namespace looplm
