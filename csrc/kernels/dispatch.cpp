// kernels/dispatch.cpp - the kernel sets this CPU can run, the choice of one (made once), and
// the lookup of a set's GEMM for a weight type through the traits table.
//
// LOOPLM_KERNELS=<name> forces a set (e.g. "ref") for debugging; naming a set this machine
// cannot run is an error, not a silent fallback.
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/kernels.h"
#include "runtime/cpu_features.h"

namespace looplm {

namespace {

const Kernels * choose() {
    const char * forced = std::getenv("LOOPLM_KERNELS");
    if (forced && *forced) {
        if (const Kernels * k = find_kernels(forced)) return k;
        const Kernels * avail[8];
        const int n = available_kernels(avail, 8);
        std::string names;
        for (int i = 0; i < n; i++) names += std::string(i ? ", " : "") + avail[i]->name;
        throw std::invalid_argument(std::string("LOOPLM_KERNELS=") + forced +
                                    ": unknown kernel set or not supported by this CPU "
                                    "(available: " +
                                    names + ")");
    }
    const Kernels * avail[8];
    const int n = available_kernels(avail, 8);
    return avail[n - 1];  // the last is the fastest
}

}  // namespace

int available_kernels(const Kernels ** out, int max) {
    int n = 0;
    if (n < max) out[n++] = &kernels_ref;
#if defined(__x86_64__) || defined(_M_X64)
    const CpuFeatures & f = cpu_feature_set();
    if (f.avx2 && f.fma && f.f16c && n < max) out[n++] = &kernels_avx2;
    if (f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni && n < max) {
        out[n++] = &kernels_avx512;
    }
#elif defined(__aarch64__)
    const CpuFeatures & f = cpu_feature_set();
    if (f.neon && n < max) out[n++] = &kernels_neon;
    if (f.neon && f.dotprod && n < max) out[n++] = &kernels_dotprod;
#endif
    return n;
}

const Kernels * find_kernels(const char * name) {
    const Kernels * avail[8];
    const int n = available_kernels(avail, 8);
    for (int i = 0; i < n; i++) {
        if (std::strcmp(avail[i]->name, name) == 0) return avail[i];
    }
    return nullptr;
}

const Kernels & active_kernels() {
    static const Kernels * k = choose();
    return *k;
}

GemmFn gemm_for(const Kernels & k, DType t) {
    const TypeTraits * tr = find_traits(static_cast<uint32_t>(t));
    return tr && tr->gemm ? k.*(tr->gemm) : nullptr;
}

GemmFn gemm8_for(const Kernels & k, DType t) {
    const TypeTraits * tr = find_traits(static_cast<uint32_t>(t));
    return tr && tr->gemm8 ? k.*(tr->gemm8) : nullptr;
}

GemmFn gemm_x16_for(const Kernels & k, DType t) {
    if (t == DType::Q4_0) return k.gemm_q4_0x16 ? k.gemm_q4_0x16 : kernels_ref.gemm_q4_0x16;
    if (t == DType::Q4_1) return k.gemm_q4_1x16 ? k.gemm_q4_1x16 : kernels_ref.gemm_q4_1x16;
    if (t == DType::Q4_K) return k.gemm_q4_Kx16 ? k.gemm_q4_Kx16 : kernels_ref.gemm_q4_Kx16;
    if (t == DType::Q6_K) return k.gemm_q6_Kx16 ? k.gemm_q6_Kx16 : kernels_ref.gemm_q6_Kx16;
    return nullptr;
}

bool has_own_x16_gemm(const Kernels & k, DType t) {
    const GemmFn f = gemm_x16_for(k, t);
    return f != nullptr && f != gemm_x16_for(kernels_ref, t);
}

}  // namespace looplm
