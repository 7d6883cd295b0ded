// sampler.cpp - penalties, truncation (top-k, top-p, min-p), temperature and the draw.
#include "text/sampler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace looplm {

namespace {

uint64_t splitmix64(uint64_t & x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Sampler::Sampler(const SamplerParams & p) : p_(p) {
    auto bad = [](const std::string & what) { throw std::invalid_argument(what); };
    if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) bad("temperature must be >= 0");
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) bad("top_p must be in (0, 1]");
    if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) bad("min_p must be in [0, 1]");
    if (!(p.repeat_penalty > 0.0f) || !std::isfinite(p.repeat_penalty)) bad("repeat_penalty must be > 0");
    if (!std::isfinite(p.presence_penalty) || !std::isfinite(p.frequency_penalty)) bad("penalties must be finite");
    if (p.penalty_last_n < -1) bad("penalty_last_n must be >= -1");
    uint64_t s = p.seed;
    for (uint64_t & w : state_) w = splitmix64(s);
}

double Sampler::uniform() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return static_cast<double>(result >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(const float * in, int64_t n, const int32_t * history, int64_t n_history) {
    logits_.assign(in, in + n);
    float * logits = logits_.data();

    // Penalties over the last penalty_last_n tokens (llama.cpp's definition).
    const int64_t window = p_.penalty_last_n < 0 ? n_history : std::min<int64_t>(p_.penalty_last_n, n_history);
    if (window > 0 && (p_.repeat_penalty != 1.0f || p_.presence_penalty != 0.0f || p_.frequency_penalty != 0.0f)) {
        std::unordered_map<int32_t, int> count;
        for (int64_t i = n_history - window; i < n_history; i++) count[history[i]]++;
        for (const auto & [tok, c] : count) {
            if (tok < 0 || tok >= n) continue;
            float & l = logits[tok];
            l = l > 0.0f ? l / p_.repeat_penalty : l * p_.repeat_penalty;
            l -= static_cast<float>(c) * p_.frequency_penalty + p_.presence_penalty;
        }
    }

    if (p_.temperature <= 0.0f) {  // greedy; ties go to the lowest id
        return static_cast<int32_t>(std::max_element(logits, logits + n) - logits);
    }

    // Candidates sorted by logit, descending (ties by id), cut to top_k.
    ids_.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) ids_[static_cast<size_t>(i)] = static_cast<int32_t>(i);
    auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    int64_t k = p_.top_k > 0 ? std::min<int64_t>(p_.top_k, n) : n;
    std::partial_sort(ids_.begin(), ids_.begin() + k, ids_.end(), better);
    ids_.resize(static_cast<size_t>(k));

    // Softmax at temperature 1 for top-p and min-p (they come before temperature, as in llama.cpp).
    probs_.resize(static_cast<size_t>(k));
    const double top = logits[ids_[0]];
    double sum = 0.0;
    for (int64_t i = 0; i < k; i++) sum += probs_[i] = std::exp(static_cast<double>(logits[ids_[i]]) - top);
    if (p_.top_p < 1.0f) {
        double cum = 0.0;
        int64_t keep = k;
        for (int64_t i = 0; i < k; i++) {
            cum += probs_[i] / sum;
            if (cum >= p_.top_p) {
                keep = i + 1;
                break;
            }
        }
        k = keep;
    }
    if (p_.min_p > 0.0f) {  // keep tokens with p >= min_p * p_max (p_max's relative weight is 1)
        int64_t keep = 1;
        while (keep < k && probs_[keep] >= p_.min_p) keep++;
        k = keep;
    }

    // Temperature, then one draw.
    sum = 0.0;
    for (int64_t i = 0; i < k; i++) {
        sum += probs_[i] = std::exp((static_cast<double>(logits[ids_[i]]) - top) / p_.temperature);
    }
    const double r = uniform() * sum;
    double cum = 0.0;
    for (int64_t i = 0; i < k; i++) {
        cum += probs_[i];
        if (r < cum) return ids_[i];
    }
    return ids_[k - 1];
}

}  // namespace looplm
