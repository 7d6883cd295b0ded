// model/limits.h - the ranges of the hyper-parameters looplm runs: the loader (model.cpp)
// refuses a file outside them, and the converter checks config.json against the same numbers
// (exposed as looplm._core.config_limits(), used by convert/ouro_arch.py), so the two cannot
// drift apart. Each is an inclusive upper bound; every count is at least 1.
#pragma once

#include <cstdint>

namespace looplm::limits {

constexpr int64_t kEmbd = 1 << 16;     // {arch}.embedding_length
constexpr int64_t kLayers = 4096;      // {arch}.block_count
constexpr int64_t kFF = 1 << 20;       // {arch}.feed_forward_length
constexpr int64_t kHeads = 4096;       // {arch}.attention.head_count (head_count_kv: at most head_count)
constexpr int64_t kHeadDim = 1024;     // {arch}.attention.key_length (even, for RoPE)
constexpr int64_t kCtx = INT32_MAX;    // {arch}.context_length: positions are int32
constexpr int64_t kLoops = 64;         // {arch}.num_loops: the KV cache's loop slots
constexpr int64_t kVocab = INT32_MAX;  // rows of token_embd: token ids are int32
// Floats: rms epsilon and rope.freq_base positive and finite as f32 (how they are stored and
// used); ouro.exit_gate.threshold finite and >= 0.

}  // namespace looplm::limits
