// exit.cpp - the exit rule of ouro-architecture.md ("Choosing the exit step").
#include "model/exit.h"

#include <cmath>

namespace looplm {

bool exit_update(ExitState & st, int s, int n_loops, bool has_gate, double gate_logit,
                 const ExitPolicy & policy) {
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

}  // namespace looplm
