// runtime/cpu_features.h - what this CPU (and the OS) lets user space run, detected once.
#pragma once

#include <string>

namespace looplm {

struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false;
    bool neon = false, dotprod = false;  // aarch64: Advanced SIMD, SDOT/UDOT (ARMv8.2 dotprod)
    std::string text;
};

const CpuFeatures & cpu_feature_set();
// Human-readable list of the features detected, e.g. "avx2 fma f16c avx512f ..." or
// "neon dotprod".
const char * cpu_features();

}  // namespace looplm
