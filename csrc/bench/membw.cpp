// membw.cpp - a streaming read: each thread sums its own part of the buffer with several
// independent accumulators, so the loop is bound by loads, not by a dependency chain. On x86
// the widest loads the CPU has (AVX2 or AVX-512, chosen at run time) are used: narrow loads
// under-report the bandwidth a SIMD decode reaches.
#include "bench/membw.h"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace looplm {

namespace {

uint64_t sum_generic(const uint64_t * p, int64_t n) {
    uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) acc[j] ^= p[i + j];
    }
    return acc[0] ^ acc[1] ^ acc[2] ^ acc[3] ^ acc[4] ^ acc[5] ^ acc[6] ^ acc[7];
}

#if defined(__x86_64__)
// Called only when the CPU has AVX2 (checked at run time).
__attribute__((target("avx2"))) uint64_t sum_avx2(const uint64_t * p, int64_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i + 16 <= n; i += 16) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i *>(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i *>(p + i + 4)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i *>(p + i + 8)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i *>(p + i + 12)));
    }
    const __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return static_cast<uint64_t>(_mm256_extract_epi64(a, 0) ^ _mm256_extract_epi64(a, 3));
}
#endif

uint64_t sum(const uint64_t * p, int64_t n) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) return sum_avx2(p, n);
#endif
    return sum_generic(p, n);
}

}  // namespace

double read_bandwidth(ThreadPool & pool, size_t bytes, int reps) {
    const int64_t n = static_cast<int64_t>(bytes / sizeof(uint64_t)) / 64 * 64;
    // 64-byte aligned storage, first touched by the thread that will read each part.
    std::vector<uint64_t> storage(static_cast<size_t>(n + 8));
    uint64_t * buf = storage.data() + (8 - reinterpret_cast<uintptr_t>(storage.data()) / 8 % 8) % 8;
    pool.run([&](int ith, int nth) {
        const Range r = split_range(n, ith, nth, 64);
        for (int64_t i = r.begin; i < r.end; i++) buf[i] = static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ull;
    });
    std::vector<uint64_t> sink(static_cast<size_t>(pool.size()));
    double best = 0.0;
    for (int rep = 0; rep < reps; rep++) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.run([&](int ith, int nth) {
            const Range r = split_range(n, ith, nth, 64);
            sink[static_cast<size_t>(ith)] = sum(buf + r.begin, r.end - r.begin);
        });
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double bw = static_cast<double>(n * sizeof(uint64_t)) / dt;
        best = bw > best ? bw : best;
    }
    return best;
}

}  // namespace looplm
