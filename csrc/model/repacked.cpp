// model/repacked.cpp - the x16 copy of a Model's Q4_0 / Q4_1 / Q4_K matrices (see repacked.h).
#include "model/repacked.h"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "kernels/kernels.h"
#include "quant/repack.h"

namespace looplm {

namespace {

constexpr size_t kAlign = 64;

// A matrix repacks when the active set has its own GEMM over the type's x16 layout (a set
// without one keeps the type plain: the layout would run through the scalar reference).
bool eligible(const Tensor & t) {
    return has_x16_layout(t.type) && has_own_x16_gemm(active_kernels(), t.type) && t.ne0 <= kMaxPackedN && !t.x16;
}

// Drops the whole pages inside [p, p + n) from this process (file pages stay in the cache).
void drop_pages(const void * p, size_t n) {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
    const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
    if (e > b) madvise(reinterpret_cast<void *>(b), e - b, MADV_DONTNEED);  // advisory: errors are harmless
}

}  // namespace

bool repack_wanted() {
    const char * env = std::getenv("LOOPLM_REPACK");
    if (env && std::strcmp(env, "0") == 0) return false;
    const Kernels & k = active_kernels();
    for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q6_K}) {
        if (has_own_x16_gemm(k, t)) return true;
    }
    return false;
}

RepackedWeights::RepackedWeights(const std::vector<Tensor *> & ts, bool use_mlock) {
    const auto t0 = std::chrono::steady_clock::now();
    for (const Tensor * t : ts) {
        if (eligible(*t)) size_ += (t->row_bytes * static_cast<size_t>(t->ne1) + kAlign - 1) / kAlign * kAlign;
    }
    if (size_ == 0) return;
    const size_t huge = size_t(2) << 20;
    mapped_ = (size_ + huge - 1) / huge * huge;
    void * p = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    base_ = p;
#ifdef MADV_HUGEPAGE
    madvise(base_, mapped_, MADV_HUGEPAGE);
#endif
    char * dst = static_cast<char *>(base_);
    for (Tensor * t : ts) {
        if (!eligible(*t)) continue;
        const size_t bytes = t->row_bytes * static_cast<size_t>(t->ne1);
        repack_x16(t->type, t->data, dst, t->ne0, t->ne1);
        drop_pages(t->data, bytes);
        t->data = dst;
        t->x16 = true;
        dst += (bytes + kAlign - 1) / kAlign * kAlign;
    }
    if (use_mlock) mlock(base_, size_);  // best effort, as the file's own lock
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

RepackedWeights::~RepackedWeights() {
    if (base_) munmap(base_, mapped_);
}

}  // namespace looplm
