// sampler.h - next-token sampling from logits, in llama.cpp's order: repetition / presence /
// frequency penalties, then top-k, top-p, min-p, temperature, and a draw from a seeded RNG
// (greedy when temperature <= 0). Knows nothing about models.
#pragma once

#include <cstdint>
#include <vector>

namespace looplm {

struct SamplerParams {
    float temperature = 0.8f;        // <= 0: greedy (argmax)
    int top_k = 40;                  // <= 0: off
    float top_p = 0.95f;             // >= 1: off
    float min_p = 0.05f;             // <= 0: off
    float repeat_penalty = 1.0f;     // 1: off; divides positive logits, multiplies negative
    float presence_penalty = 0.0f;   // subtracted once from every token seen
    float frequency_penalty = 0.0f;  // subtracted per occurrence
    int penalty_last_n = 64;         // how many recent tokens the penalties look at (-1: all)
    uint64_t seed = 0;
};

class Sampler {
  public:
    explicit Sampler(const SamplerParams & p);  // throws std::invalid_argument for bad values

    // Picks a token. history: the tokens so far (the penalties look at its tail).
    int32_t sample(const float * logits, int64_t n_vocab, const int32_t * history, int64_t n_history);

  private:
    double uniform();  // [0, 1), 53 random bits; the same on every platform

    SamplerParams p_;
    uint64_t state_[4];  // xoshiro256** state
    std::vector<float> logits_;
    std::vector<int32_t> ids_;
    std::vector<double> probs_;
};

}  // namespace looplm
