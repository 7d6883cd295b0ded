// runtime/cpu_features.cpp - CPUID/XGETBV on x86-64, HWCAP (Linux) or sysctl (macOS) on aarch64.
#include "runtime/cpu_features.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>

#include <cstdint>
#elif defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace looplm {

namespace {

#if defined(__x86_64__) || defined(_M_X64)
uint64_t xgetbv0() {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
    CpuFeatures f;
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
    } all[] = {{f.avx2, "avx2"},
               {f.fma, "fma"},
               {f.f16c, "f16c"},
               {f.avx512f, "avx512f"},
               {f.avx512bw, "avx512bw"},
               {f.avx512vl, "avx512vl"},
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

}  // namespace

const CpuFeatures & cpu_feature_set() {
    static const CpuFeatures f = detect();
    return f;
}

const char * cpu_features() { return cpu_feature_set().text.c_str(); }

}  // namespace looplm
