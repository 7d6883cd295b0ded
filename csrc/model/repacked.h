// model/repacked.h - a Model's Q4_0 / Q4_1 / Q4_K matrices rewritten once at load into the kernels'
// interleaved x16 layout (kernels/x16.h), for decoding at the memory wall.
//
// The file on disk stays standard GGUF. The repacked matrices live in one anonymous mapping
// (transparent huge pages where the system gives them, which also spares the TLB); the file's
// pages of those matrices are dropped from this process as each one is repacked, so the resident
// memory stays about the file's size instead of doubling (the page cache may keep a clean,
// reclaimable copy of the file). LOOPLM_REPACK=0 keeps the plain mapped layout.
#pragma once

#include <cstddef>
#include <vector>

#include "ops/ops.h"

namespace looplm {

class RepackedWeights {
  public:
    // Repacks each tensor of `ts` that has an x16 layout (Q4_0 / Q4_1 / Q4_K, rows of at most
    // kMaxPackedN) for which the active kernel set has its own x16 GEMM, and points it at its
    // copy (Tensor::x16 set); use_mlock locks the copy.
    RepackedWeights(const std::vector<Tensor *> & ts, bool use_mlock);
    ~RepackedWeights();
    RepackedWeights(const RepackedWeights &) = delete;
    RepackedWeights & operator=(const RepackedWeights &) = delete;

    size_t bytes() const { return size_; }  // bytes repacked
    double seconds() const { return seconds_; }

  private:
    void * base_ = nullptr;
    size_t size_ = 0, mapped_ = 0;
    double seconds_ = 0.0;
};

// Whether a Model repacks: LOOPLM_REPACK is not "0" and the active kernel set has an x16 GEMM
// of its own for some type (sets without one would run the layout through the scalar
// reference); each matrix then repacks only if the set has its type's.
bool repack_wanted();

}  // namespace looplm
