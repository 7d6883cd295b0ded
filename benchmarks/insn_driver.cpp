// benchmarks/insn_driver.cpp - calls one kernel of one kernel set ITERS times on a fixed
// matrix, for benchmarks/arm_insn_count.py, which counts the instructions the process retires
// (qemu-aarch64's per-instruction exec log on aarch64, valgrind on x86) at ITERS and at 0 and
// divides the difference by ITERS times the weight bytes: the kernel's instructions per weight
// byte. The data are a fixed pseudo-random pattern (the kernels have no data-dependent
// branches, so the count does not depend on the values); the activations are quantized once,
// outside the counted loop, as a decode step does before its GEMMs.
//
// Usage: insn_driver SET KERNEL N ROWS ITERS [NC]
//   SET     a kernel set this CPU runs (ref, neon, dotprod, avx2, ...)
//   KERNEL  q4_0 q4_1 q8_0 q5_0 q5_1 q4_K q5_K q6_K f16 bf16   the decode GEMM (one column)
//           q4_0x16 q4_1x16 q4_Kx16  the same over the x16 layout made at load (kernels/x16.h;
//                                  the set's own x16 GEMM, or the reference's where it has none)
//           kv_dot_q8_0 kv_dot_q4_0   attention scores over ROWS cached rows of N (scores_*)
//           kv_axpy_q8_0 kv_axpy_q4_0 the weighted sum of ROWS cached rows (wsum_*), one call each
//   NC      activation columns of a GEMM call (default 1, decoding; more: a prompt's tile)
// Prints "weight_bytes=<bytes of one iteration>" and a checksum of the outputs.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "quant/blocks.h"
#include "quant/traits.h"
#include "quant/types.h"

using namespace looplm;

namespace {

struct Gemm {
    const char * name;
    DType type;
    bool x16;  // the x16 layout (the pattern's bytes read as such: the count does not depend on them)
};

const Gemm kGemms[] = {{"q4_0", DType::Q4_0, false},  {"q4_1", DType::Q4_1, false},   {"q8_0", DType::Q8_0, false},
                       {"q5_0", DType::Q5_0, false},  {"q5_1", DType::Q5_1, false},   {"q4_K", DType::Q4_K, false},
                       {"q5_K", DType::Q5_K, false},  {"q6_K", DType::Q6_K, false},   {"f16", DType::F16, false},
                       {"bf16", DType::BF16, false},  {"q4_0x16", DType::Q4_0, true}, {"q4_1x16", DType::Q4_1, true},
                       {"q4_Kx16", DType::Q4_K, true}};

// Bytes of a pseudo-random pattern with every 16-bit pair a finite, moderate fp16/bf16 value
// (so that no float path sees NaN or infinity; the integer quants take any byte).
void fill(std::vector<uint8_t> & v, uint32_t seed) {
    uint32_t s = seed;
    for (size_t i = 0; i + 1 < v.size(); i += 2) {
        s = s * 1664525u + 1013904223u;
        v[i] = static_cast<uint8_t>(s >> 24);
        v[i + 1] = static_cast<uint8_t>(0x30 + ((s >> 16) & 0x07));  // exponent bits of a value near 0.1
    }
}

int usage() {
    std::fprintf(stderr, "usage: insn_driver SET KERNEL N ROWS ITERS [NC]\n");
    return 2;
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc != 6 && argc != 7) return usage();
    const Kernels * k = find_kernels(argv[1]);
    if (!k) {
        std::fprintf(stderr, "insn_driver: kernel set %s is not available here\n", argv[1]);
        return 2;
    }
    const std::string kernel = argv[2];
    const int64_t n = std::atoll(argv[3]), rows = std::atoll(argv[4]), iters = std::atoll(argv[5]);
    const int64_t nc = argc == 7 ? std::atoll(argv[6]) : 1;
    if (n <= 0 || n % QK_K != 0 || rows <= 0 || iters < 0 || nc <= 0) return usage();
    std::vector<float> act(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) act[i] = static_cast<float>((i * 37) % 101 - 50) / 25.0f;
    std::vector<float> out(static_cast<size_t>(rows * nc) + static_cast<size_t>(n));
    double check = 0.0;

    if (kernel.compare(0, 3, "kv_") == 0) {
        const bool q8 = kernel.find("q8_0") != std::string::npos;
        const bool dot = kernel.compare(0, 6, "kv_dot") == 0;
        if (kernel != "kv_dot_q8_0" && kernel != "kv_dot_q4_0" && kernel != "kv_axpy_q8_0" && kernel != "kv_axpy_q4_0")
            return usage();
        const size_t rb = static_cast<size_t>(row_bytes(q8 ? DType::Q8_0 : DType::Q4_0, n));
        std::vector<uint8_t> cache(rb * static_cast<size_t>(rows));
        fill(cache, 5);
        std::printf("weight_bytes=%zu\n", cache.size());
        std::vector<float> w(static_cast<size_t>(rows), 0.01f);  // attention weights for wsum
        for (int64_t it = 0; it < iters; it++) {
            if (dot) {
                (q8 ? k->scores_q8_0 : k->scores_q4_0)(n, cache.data(), rb, rows, act.data(), 0.125f, out.data());
            } else {
                (q8 ? k->wsum_q8_0 : k->wsum_q4_0)(n, cache.data(), rb, rows, w.data(), out.data());
            }
        }
        for (float v : out) check += v;
        std::printf("checksum=%.6g\n", check);
        return 0;
    }

    const Gemm * g = nullptr;
    for (const Gemm & c : kGemms) {
        if (kernel == c.name) g = &c;
    }
    if (!g) return usage();
    const TypeTraits & tr = traits(g->type);
    const size_t rb = static_cast<size_t>(row_bytes(g->type, n));
    std::vector<uint8_t> w(rb * static_cast<size_t>(rows));
    fill(w, 3);
    // The activation row in the type's paired format.
    std::vector<uint8_t> x;
    if (g->type == DType::F16 || g->type == DType::BF16) {
        x.resize(static_cast<size_t>(n) * 4);
        std::memcpy(x.data(), act.data(), x.size());
    } else if (g->type == DType::Q4_K || g->type == DType::Q5_K || g->type == DType::Q6_K) {
        x.resize(static_cast<size_t>(n / QK_K) * sizeof(block_q8_K));
        k->quantize_q8k(act.data(), x.data(), n);
    } else {
        x.resize(static_cast<size_t>(n / QK) * sizeof(block_q8_s));
        k->quantize_q8(act.data(), x.data(), n);
    }
    const GemmFn fn = g->x16 ? gemm_x16_for(*k, g->type) : gemm_for(*k, g->type);
    if (!fn) {
        std::fprintf(stderr, "insn_driver: set %s has no GEMM for %s (%s)\n", k->name, g->name, tr.name);
        return 2;
    }
    std::printf("weight_bytes=%zu\n", w.size());
    // nc copies of the activation row (the count does not depend on the values).
    const size_t xs = x.size();
    for (int64_t c = 1; c < nc; c++) x.insert(x.end(), x.begin(), x.begin() + static_cast<std::ptrdiff_t>(xs));
    for (int64_t it = 0; it < iters; it++) {
        fn(n, w.data(), rb, rows, x.data(), xs, nc, out.data(), static_cast<size_t>(rows));
    }
    for (int64_t r = 0; r < rows * nc; r++) check += out[r];
    std::printf("checksum=%.6g\n", check);
    return 0;
}
