// model/exit.cpp - the exit rule (docs/early-exit.md) and the resolution of the exit options.
#include "model/exit.h"

#include <cmath>
#include <stdexcept>

namespace looplm {

bool exit_update(ExitState & st, int s, int n_loops, bool has_gate, double gate_logit, const ExitPolicy & policy) {
    if (st.step >= 0) return false;
    const int last = n_loops - 1;
    bool stop = s == last;
    if (policy.exit_at_step >= 0) {
        stop = stop || s == policy.exit_at_step;
    } else if (has_gate) {
        const double lambda = 1.0 / (1.0 + std::exp(-gate_logit));
        const double p = s < last ? lambda * st.survive : st.survive;
        st.cdf += p;
        st.survive *= 1.0 - lambda;
        stop = stop || st.cdf >= policy.threshold;
    }
    if (stop) st.step = s;
    return stop;
}

ExitRequest ExitRequest::merged(const ExitRequest & over) const {
    ExitRequest r = *this;
    if (over.threshold) r.threshold = over.threshold;
    if (over.mode) r.mode = over.mode;
    if (over.exit_at_step) r.exit_at_step = over.exit_at_step;
    if (over.fill) r.fill = over.fill;
    return r;
}

ExitPolicy resolve_exit(const ExitRequest & r, double file_threshold, int n_loops) {
    ExitPolicy p;
    p.threshold = r.threshold.value_or(file_threshold);
    if (std::isnan(p.threshold) || p.threshold < 0.0) {
        throw std::invalid_argument("exit_threshold must be a number >= 0, got " + std::to_string(p.threshold));
    }
    if (r.exit_at_step) {
        const int s = *r.exit_at_step;
        if (s < 0 || s >= n_loops) {
            throw std::invalid_argument("exit_at_step must be an integer in 0.." + std::to_string(n_loops - 1) +
                                        ", got " + std::to_string(s));
        }
        p.exit_at_step = s;
    }
    p.mode = r.mode.value_or(p.threshold < 1.0 || r.exit_at_step ? ExitMode::Skip : ExitMode::Exact);
    p.fill = r.fill.value_or(KVFill::ExitLoop);
    return p;
}

ExitMode parse_exit_mode(const std::string & s) {
    if (s == "exact") return ExitMode::Exact;
    if (s == "skip") return ExitMode::Skip;
    throw std::invalid_argument("exit_mode must be one of ('exact', 'skip'), got '" + s + "'");
}

KVFill parse_kv_fill(const std::string & s) {
    if (s == "exit") return KVFill::ExitLoop;
    if (s == "first") return KVFill::FirstLoop;
    throw std::invalid_argument("kv_fill must be one of ('exit', 'first'), got '" + s + "'");
}

const char * exit_mode_name(ExitMode m) { return m == ExitMode::Skip ? "skip" : "exact"; }
const char * kv_fill_name(KVFill f) { return f == KVFill::ExitLoop ? "exit" : "first"; }

}  // namespace looplm
