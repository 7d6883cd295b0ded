// cpu.cpp - CPU feature detection and the choice of kernel table, made once.
//
// LOOPLM_KERNELS=<name> forces a set (e.g. "ref") for debugging; naming a set this machine
// cannot run is an error, not a silent fallback.
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace looplm {

namespace {

struct Features {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false;
    bool neon = false, dotprod = false;  // aarch64: Advanced SIMD, SDOT/UDOT (ARMv8.2 dotprod)
    std::string text;
};

#if defined(__x86_64__) || defined(_M_X64)
uint64_t xgetbv0() {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

Features detect() {
    Features f;
#if defined(__x86_64__) || defined(_M_X64)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    f.fma = (c >> 12) & 1;
    f.f16c = (c >> 29) & 1;
    // The OS must save YMM (XCR0 bits 1-2) and, for AVX-512, opmask/ZMM state (bits 5-7).
    const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const bool ymm = avx && (xcr0 & 0x6) == 0x6;
    const bool zmm = ymm && (xcr0 & 0xe0) == 0xe0;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.avx2 = ymm && ((b >> 5) & 1);
        f.avx512f = zmm && ((b >> 16) & 1);
        f.avx512bw = zmm && ((b >> 30) & 1);
        f.avx512vl = zmm && ((b >> 31) & 1);
        f.avx512vnni = zmm && ((c >> 11) & 1);
    }
    f.fma = f.fma && ymm;
    f.f16c = f.f16c && ymm;
    const struct {
        bool on;
        const char * name;
    } all[] = {{f.avx2, "avx2"},         {f.fma, "fma"},           {f.f16c, "f16c"},
               {f.avx512f, "avx512f"},   {f.avx512bw, "avx512bw"}, {f.avx512vl, "avx512vl"},
               {f.avx512vnni, "avx512vnni"}};
    for (const auto & e : all) {
        if (e.on) f.text += std::string(f.text.empty() ? "" : " ") + e.name;
    }
#elif defined(__aarch64__)
#if defined(__linux__)
    // The kernel reports what userspace may use: the ID registers filtered by the OS.
    const unsigned long hw = getauxval(AT_HWCAP);
    f.neon = (hw & HWCAP_ASIMD) != 0;
    f.dotprod = f.neon && (hw & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
    // Untested: Apple silicon reports FEAT_DotProd through sysctl (every M-series chip has it).
    int dp = 0;
    size_t len = sizeof(dp);
    f.neon = true;
    f.dotprod = sysctlbyname("hw.optional.arm.FEAT_DotProd", &dp, &len, nullptr, 0) == 0 && dp != 0;
#else
    f.neon = true;  // Advanced SIMD is part of the aarch64 base ISA
#endif
    if (f.neon) f.text = "neon";
    if (f.dotprod) f.text += " dotprod";
#endif
    return f;
}

const Features & features() {
    static const Features f = detect();
    return f;
}

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
                                    "(available: " + names + ")");
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
    const Features & f = features();
    if (f.avx2 && f.fma && f.f16c && n < max) out[n++] = &kernels_avx2;
    if (f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni &&
        n < max) {
        out[n++] = &kernels_avx512;
    }
#elif defined(__aarch64__)
    const Features & f = features();
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

const char * cpu_features() { return features().text.c_str(); }

GemmFn gemm_for(const Kernels & k, DType t) {
    switch (t) {
        case DType::Q4_0: return k.gemm_q4_0;
        case DType::Q4_1: return k.gemm_q4_1;
        case DType::Q8_0: return k.gemm_q8_0;
        case DType::F16: return k.gemm_f16;
        case DType::BF16: return k.gemm_bf16;
        case DType::F32: return k.gemm_f32;
        default: return nullptr;  // Model refuses other types at load
    }
}

GemmFn gemm8_for(const Kernels & k, DType t) {
    switch (t) {
        case DType::Q4_0: return k.gemm8_q4_0;
        case DType::Q4_1: return k.gemm8_q4_1;
        case DType::Q8_0: return k.gemm8_q8_0;
        default: return nullptr;
    }
}

}  // namespace looplm
