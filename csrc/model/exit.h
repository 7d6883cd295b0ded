// exit.h - Ouro's learned exit gate: from the gate logit after each loop to the exit step.
//
// After loop s the gate gives lambda_s = sigmoid(w . h_s + b). The exit distribution is
// p_s = lambda_s * prod_{j<s} (1 - lambda_j) for s < last, and the last loop takes the rest.
// A token exits at the first loop whose CDF sum_{j<=s} p_j reaches the threshold, else at
// the last loop; a fixed exit_at_step overrides the gate. Computed in double precision.
#pragma once

#include <optional>
#include <string>

namespace looplm {

enum class ExitMode {
    Exact,  // run every loop for every token, fill every KV slot; the exit only picks the logits
    Skip,   // stop at the exit loop; the skipped loops' KV slots are filled by the KVFill policy
};

enum class KVFill {
    ExitLoop,   // skipped loops reuse the exit loop's keys/values (default)
    FirstLoop,  // skipped loops reuse loop 0's keys/values (the paper's weaker variant)
};

// The policy a forward pass runs under: complete and valid (see resolve_exit).
struct ExitPolicy {
    double threshold = 1.0;
    ExitMode mode = ExitMode::Exact;
    KVFill fill = KVFill::ExitLoop;
    int exit_at_step = -1;  // >= 0: always exit at this loop

    bool operator==(const ExitPolicy & o) const {
        return threshold == o.threshold && mode == o.mode && fill == o.fill && exit_at_step == o.exit_at_step;
    }
    bool operator!=(const ExitPolicy & o) const { return !(*this == o); }
};

// What a caller asked for; an unset field takes its default. Option names in errors are the
// API's keywords (exit_threshold, exit_mode, exit_at_step, kv_fill, loops); front ends
// translate them to their own spelling (the CLI's flags).
struct ExitRequest {
    std::optional<double> threshold;
    std::optional<ExitMode> mode;
    std::optional<int> exit_at_step;
    std::optional<KVFill> fill;

    // This request with the fields `over` sets taken from `over`.
    ExitRequest merged(const ExitRequest & over) const;
};

// The one place the exit options get their meaning: the threshold defaults to the file's
// (file_threshold); the mode defaults to skip when the threshold is below 1 or a fixed
// exit_at_step is asked for, else exact; exit_at_step must name one of the n_loops loops.
// Without a gate a threshold has nothing to act on (every token runs all loops); front ends
// say so. Throws std::invalid_argument naming the option.
ExitPolicy resolve_exit(const ExitRequest & r, double file_threshold, int n_loops);

// The spellings of the enums, as the API takes them ("exact"/"skip", "exit"/"first").
ExitMode parse_exit_mode(const std::string & s);
KVFill parse_kv_fill(const std::string & s);
const char * exit_mode_name(ExitMode m);
const char * kv_fill_name(KVFill f);

// The running exit distribution of one token.
struct ExitState {
    double survive = 1.0;  // prod_{j<s} (1 - lambda_j)
    double cdf = 0.0;
    int step = -1;  // chosen exit loop, -1 while undecided
};

// Folds loop s (of n_loops) into the state; gate_logit is ignored when has_gate is false.
// Returns true when s is the token's exit loop (only once per token).
bool exit_update(ExitState & st, int s, int n_loops, bool has_gate, double gate_logit, const ExitPolicy & policy);

}  // namespace looplm
