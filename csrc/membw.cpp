// membw.cpp - a plain streaming read: eight independent accumulators so the loop is bound by
// loads, not by a dependency chain (the compiler vectorizes it at the baseline ISA).
#include "membw.h"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

namespace looplm {

double read_bandwidth(ThreadPool & pool, size_t bytes, int reps) {
    const size_t n = bytes / sizeof(uint64_t) / 8 * 8;
    std::vector<uint64_t> buf(n);
    pool.run([&](int ith, int nth) {  // first touch by the thread that will read it
        const Range r = split_range(static_cast<int64_t>(n), ith, nth, 8);
        for (int64_t i = r.begin; i < r.end; i++) buf[static_cast<size_t>(i)] = static_cast<uint64_t>(i);
    });
    std::vector<uint64_t> sink(static_cast<size_t>(pool.size()) * 8);
    double best = 0.0;
    for (int rep = 0; rep < reps; rep++) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.run([&](int ith, int nth) {
            const Range r = split_range(static_cast<int64_t>(n), ith, nth, 8);
            uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            const uint64_t * p = buf.data();
            for (int64_t i = r.begin; i < r.end; i += 8) {
                for (int j = 0; j < 8; j++) acc[j] ^= p[i + j];
            }
            std::memcpy(&sink[static_cast<size_t>(ith) * 8], acc, sizeof(acc));
        });
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double bw = static_cast<double>(n * sizeof(uint64_t)) / dt;
        best = bw > best ? bw : best;
    }
    return best;
}

}  // namespace looplm
