// test_kernels - every kernel set this CPU can run against the scalar reference kernels_ref,
// on seeded random data: the C++ twin of tests/test_kernels.py, for machines and emulators
// without the Python package (scripts/ci_arm.sh runs it under qemu-aarch64).
//
//   quantize_q8   bit-exact with quantize_row_q8_s_ref (ties, zero and tiny blocks included)
//   quantize_q8k  bit-exact with the reference's (which tests/test_kernels.py checks against
//                 ggml's quantize_row_q8_K_ref written in NumPy)
//   gemm_*        within 1e-5 of the reference, relative to the largest output of the tile
//                 (only the order of the float sums may differ), for several n, rows and
//                 columns (1, the 4-column tile and tails); nothing written outside the tile;
//                 the reference itself checked against a double-precision product
//   gemm_q5_*, gemm_q*_K  on random blocks (every quant, scale and min value): within 2e-6 of
//                 the reference (relative to the tile's largest sum |w x|), the reference
//                 within 1e-6 (of each sum |w x|) of a double product of the decoded weights
//                 (tests/test_kernels.py: of gguf-py's dequantization)
//   float dots    dot_f16_f32, dot_f32 against double sums
//   kv runs       scores_* against double sums over dequantized rows, wsum_* against the reference,
//                 exp_sum against double exp
//   f32_to_f16    bit-exact (round to nearest even, subnormals, overflow to inf)
//   silu_mul      within 2e-6 relative of a double-precision silu(g) * u
//
// Usage: test_kernels          run all checks, exit status 1 on any failure
//        test_kernels --list   print the CPU features and the kernel sets only
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "kernels/kernels.h"
#include "kernels/ref_kquants.h"
#include "kernels/x16.h"
#include "quant/blocks.h"
#include "quant/fp16.h"
#include "quant/quantize.h"
#include "quant/repack.h"
#include "quant/traits.h"
#include "quant/types.h"
#include "runtime/cpu_features.h"

using namespace looplm;

namespace {

std::mt19937 g_rng(7);

// The Q5/K-quant checks draw from their own generator, so that the older checks see the same
// data as before they were added.
std::mt19937 g_rng_new(11);

std::vector<float> randn(size_t n, float scale = 1.0f, std::mt19937 & rng = g_rng) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float & x : v) x = scale * nd(rng);
    return v;
}

uint16_t to_bf16(float f) {  // round to nearest even (finite inputs)
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

// ---- activation quantization

void test_quantize(const Kernels & k) {
    const int64_t nb = 12, n = nb * QK;
    for (int row = 0; row < 6; row++) {
        const float scales[] = {1.0f, 1e-3f, 1e4f, 1e-7f, 3.0f, 0.5f};
        std::vector<float> x = randn(static_cast<size_t>(n) + 1, scales[row]);
        float * b = x.data() + 1;  // deliberately not 16-byte aligned
        if (row == 0) {
            for (int j = 0; j < QK; j++) b[j] = 0.0f;  // an all-zero block
            b[QK] = 127.0f;                            // d = 1: x * id = j - 15.5 are exact ties
            for (int j = 1; j < QK; j++) b[QK + j] = static_cast<float>(j) - 15.5f;
            for (int j = 0; j < QK; j++) b[2 * QK + j] = 0.5f * static_cast<float>(j) / 127.0f;
            for (int j = 0; j < QK; j++) b[3 * QK + j] = j == 7 ? -3.0f : 0.0f;     // one negative extreme
            for (int j = 0; j < QK; j++) b[4 * QK + j] = j % 2 ? 1e-30f : -2e-38f;  // denormal-range d
        }
        std::vector<block_q8_s> got(static_cast<size_t>(nb)), ref(static_cast<size_t>(nb));
        std::memset(got.data(), 0xAB, got.size() * sizeof(block_q8_s));
        k.quantize_q8(b, got.data(), n);
        quantize_row_q8_s_ref(b, ref.data(), n);
        for (int64_t i = 0; i < nb; i++) {
            const block_q8_s & g = got[static_cast<size_t>(i)];
            const block_q8_s & r = ref[static_cast<size_t>(i)];
            CHECK(std::memcmp(&g, &r, sizeof(block_q8_s)) == 0, "%s: row %d block %lld: d %a/%a ds %a/%a qs %s bias %s",
                  k.name, row, static_cast<long long>(i), static_cast<double>(g.d), static_cast<double>(r.d),
                  static_cast<double>(g.ds), static_cast<double>(r.ds),
                  std::memcmp(g.qs, r.qs, QK) ? "differ" : "equal",
                  std::memcmp(g.bias, r.bias, sizeof(r.bias)) ? "differ" : "equal");
        }
    }
}

// ---- GEMM

struct Matrix {
    std::vector<uint8_t> raw;  // rows of row_bytes(t, n), `stride` bytes apart
    size_t stride = 0;
    std::vector<float> values;  // what the rows decode to, [rows][n]
};

Matrix make_weights(DType t, int64_t n, int64_t rows) {
    Matrix m;
    const size_t rb = static_cast<size_t>(row_bytes(t, n));
    m.stride = rb + 6;  // a stride that is not a whole number of rows or blocks
    m.raw.assign(m.stride * static_cast<size_t>(rows), 0);
    m.values.resize(static_cast<size_t>(rows * n));
    for (int64_t r = 0; r < rows; r++) {
        const std::vector<float> w = randn(static_cast<size_t>(n));
        uint8_t * dst = m.raw.data() + static_cast<size_t>(r) * m.stride;
        switch (t) {
            case DType::F32: std::memcpy(dst, w.data(), rb); break;
            case DType::F16:
            case DType::BF16:
                for (int64_t i = 0; i < n; i++) {
                    const uint16_t h = t == DType::F16 ? fp32_to_fp16(w[i]) : to_bf16(w[i]);
                    std::memcpy(dst + 2 * i, &h, 2);
                }
                break;
            case DType::Q4_0: quantize_row_q4_0_ref(w.data(), reinterpret_cast<block_q4_0 *>(dst), n); break;
            case DType::Q4_1: quantize_row_q4_1_ref(w.data(), reinterpret_cast<block_q4_1 *>(dst), n); break;
            case DType::Q8_0: {
                block_q8_0 * q = reinterpret_cast<block_q8_0 *>(dst);
                quantize_row_q8_0_ref(w.data(), q, n);
                // -128 never comes from the reference quantizer but is valid in a file: the
                // largest products a kernel must sum without overflow.
                if (r == 0) std::memset(q[0].qs, 0x80, QK);
                if (r == 1) q[n / QK - 1].qs[3] = -128;
                break;
            }
            default: break;
        }
        dequantize_row(t, dst, m.values.data() + r * n, n);
    }
    return m;
}

// Activation rows for weight type t: block_q8_s for the integer kernels, f32 otherwise, each
// row followed by padding; `values` holds what the kernels multiply (the decoded quants).
Matrix make_activations(DType t, int64_t n, int64_t cols) {
    Matrix m;
    const bool quant = t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q8_0;
    m.stride = quant ? static_cast<size_t>(n / QK + 1) * sizeof(block_q8_s) : static_cast<size_t>(n + 4) * 4;
    m.raw.assign(m.stride * static_cast<size_t>(cols), 0);
    m.values.resize(static_cast<size_t>(cols * n));
    for (int64_t c = 0; c < cols; c++) {
        const std::vector<float> x = randn(static_cast<size_t>(n));
        uint8_t * dst = m.raw.data() + static_cast<size_t>(c) * m.stride;
        float * v = m.values.data() + c * n;
        if (quant) {
            block_q8_s * q = reinterpret_cast<block_q8_s *>(dst);
            quantize_row_q8_s_ref(x.data(), q, n);
            for (int64_t i = 0; i < n; i++) v[i] = q[i / QK].d * static_cast<float>(q[i / QK].qs[i % QK]);
        } else {
            std::memcpy(dst, x.data(), static_cast<size_t>(n) * 4);
            std::memcpy(v, x.data(), static_cast<size_t>(n) * 4);
        }
    }
    return m;
}

void test_gemm(const Kernels & k, DType t, int64_t n, int64_t nr, int64_t nc) {
    const Matrix w = make_weights(t, n, nr);
    const Matrix x = make_activations(t, n, nc);
    const size_t ldo = static_cast<size_t>(nr + 3);
    const float canary = 12345.0f;
    std::vector<float> ref(ldo * static_cast<size_t>(nc), canary), got(ref);
    gemm_for(kernels_ref, t)(n, w.raw.data(), w.stride, nr, x.raw.data(), x.stride, nc, ref.data(), ldo);
    gemm_for(k, t)(n, w.raw.data(), w.stride, nr, x.raw.data(), x.stride, nc, got.data(), ldo);
    double scale = 0.0;
    std::vector<double> expect(static_cast<size_t>(nr * nc));
    for (int64_t c = 0; c < nc; c++) {
        for (int64_t r = 0; r < nr; r++) {
            double s = 0.0;
            for (int64_t i = 0; i < n; i++) s += static_cast<double>(w.values[r * n + i]) * x.values[c * n + i];
            expect[c * nr + r] = s;
            scale = std::fmax(scale, std::fabs(s));
        }
    }
    double ref_err = 0.0, err = 0.0;
    bool outside_ok = true, finite = true;
    for (int64_t c = 0; c < nc; c++) {
        for (size_t r = 0; r < ldo; r++) {
            const size_t o = c * ldo + r;
            if (r >= static_cast<size_t>(nr)) {
                outside_ok = outside_ok && got[o] == canary;
                continue;
            }
            finite = finite && std::isfinite(got[o]);
            ref_err = std::fmax(ref_err, std::fabs(ref[o] - expect[c * nr + r]));
            err = std::fmax(err, std::fabs(static_cast<double>(got[o]) - ref[o]));
        }
    }
    const char * tn = type_name(t);
    const long long ln = n, lr = nr, lc = nc;
    CHECK(ref_err <= 1e-5 * scale * std::sqrt(static_cast<double>(n)),
          "ref %s n=%lld nr=%lld nc=%lld: err %.3g scale %.3g", tn, ln, lr, lc, ref_err, scale);
    CHECK(finite && err <= 1e-5 * scale, "%s %s n=%lld nr=%lld nc=%lld: max err %.3g (scale %.3g)", k.name, tn, ln, lr,
          lc, err, scale);
    CHECK(outside_ok, "%s %s n=%lld nr=%lld nc=%lld: wrote outside the tile", k.name, tn, ln, lr, lc);
}

// ---- the x16 layout of Q4_0 / Q4_1 / Q4_K / Q6_K (kernels/x16.h)

std::mt19937 g_rng_x16(23);  // its own data, so the checks above see what they saw before

std::vector<uint8_t> random_blocks(DType t, int64_t n, int64_t rows, size_t stride, std::mt19937 & rng = g_rng_new);

// x16 GEMM of a set (or the reference's, where it has none) on repacked weights against the
// plain reference GEMM on the plain rows: the reference x16 GEMM bit-identical, the others within
// 1e-5 of the tile's largest output; unpack_x16 restores the plain rows; nothing written
// outside the tile. Rows 0 and 1 hold the extreme nibbles 15 and 0 (the largest integer sums;
// Q4_K's row 0 also the largest scales and mins, its other rows random blocks as test_gemm_new's;
// Q6_K's rows 0 and 1 the quants 63 and 0 with the scales 127 and -128).
void test_gemm_x16(const Kernels & k, DType t, int64_t n, int64_t nr, int64_t nc) {
    const size_t rs = static_cast<size_t>(row_bytes(t, n));
    std::vector<uint8_t> plain(rs * static_cast<size_t>(nr)), packed(plain.size()), back(plain.size());
    const bool kq = t == DType::Q4_K || t == DType::Q6_K;
    if (kq) plain = random_blocks(t, n, nr, rs, g_rng_x16);
    for (int64_t r = 0; r < nr && t == DType::Q6_K; r++) {  // rows 0, 1: quants 63, scales 127; 0, -128
        for (int64_t b = 0; b < n / QK_K && r < 2; b++) {
            uint8_t * blk = plain.data() + r * rs + b * sizeof(block_q6_K);
            std::memset(blk, r == 0 ? 0xff : 0x00, QK_K / 2 + QK_K / 4);  // ql, qh
            std::memset(blk + offsetof(block_q6_K, scales), r == 0 ? 0x7f : 0x80, QK_K / 16);
        }
    }
    for (int64_t r = 0; r < nr && t == DType::Q4_K; r++) {  // rows 0, 1: quants 15 and scales, mins 63; quants 0
        for (int64_t b = 0; b < n / QK_K; b++) {
            uint8_t * blk = plain.data() + r * rs + b * sizeof(block_q4_K);
            if (r == 0) std::memset(blk + 4, 0xff, K_SCALE_SIZE);
            if (r < 2) std::memset(blk + offsetof(block_q4_K, qs), r == 0 ? 0xff : 0x00, QK_K / 2);
        }
    }
    for (int64_t r = 0; r < nr && !kq; r++) {
        const std::vector<float> w = randn(static_cast<size_t>(n), 1.0f, g_rng_x16);
        uint8_t * dst = plain.data() + r * rs;
        if (t == DType::Q4_0) {
            quantize_row_q4_0_ref(w.data(), reinterpret_cast<block_q4_0 *>(dst), n);
        } else {
            quantize_row_q4_1_ref(w.data(), reinterpret_cast<block_q4_1 *>(dst), n);
        }
        if (r < 2) {
            const size_t bs = t == DType::Q4_0 ? sizeof(block_q4_0) : sizeof(block_q4_1);
            for (int64_t b = 0; b < n / QK; b++) std::memset(dst + b * bs + bs - QK / 2, r == 0 ? 0xff : 0x00, QK / 2);
        }
    }
    repack_x16(t, plain.data(), packed.data(), n, nr);
    unpack_x16(t, packed.data(), back.data(), n, nr);
    const size_t xs = kq ? static_cast<size_t>(n / QK_K + 1) * sizeof(block_q8_K)
                         : static_cast<size_t>(n / QK + 1) * sizeof(block_q8_s);
    std::vector<uint8_t> x(xs * static_cast<size_t>(nc));
    for (int64_t c = 0; c < nc; c++) {
        const std::vector<float> v = randn(static_cast<size_t>(n), 1.0f, g_rng_x16);
        if (kq) {
            quantize_q8k_ref(v.data(), x.data() + c * xs, n);
        } else {
            quantize_row_q8_s_ref(v.data(), reinterpret_cast<block_q8_s *>(x.data() + c * xs), n);
        }
    }
    const size_t ldo = static_cast<size_t>(nr + 3);
    const float canary = 12345.0f;
    std::vector<float> ref(ldo * static_cast<size_t>(nc), canary), refx(ref), got(ref);
    gemm_for(kernels_ref, t)(n, plain.data(), rs, nr, x.data(), xs, nc, ref.data(), ldo);
    gemm_x16_for(kernels_ref, t)(n, packed.data(), rs, nr, x.data(), xs, nc, refx.data(), ldo);
    gemm_x16_for(k, t)(n, packed.data(), rs, nr, x.data(), xs, nc, got.data(), ldo);
    double scale = 0.0, err = 0.0;
    bool outside_ok = true, finite = true;
    for (size_t o = 0; o < ref.size(); o++) {
        if (o % ldo >= static_cast<size_t>(nr)) {
            outside_ok = outside_ok && got[o] == canary && refx[o] == canary;
            continue;
        }
        scale = std::fmax(scale, std::fabs(ref[o]));
        finite = finite && std::isfinite(got[o]);
        err = std::fmax(err, std::fabs(static_cast<double>(got[o]) - ref[o]));
    }
    const char * tn = type_name(t);
    const long long ln = n, lr = nr, lc = nc;
    CHECK(back == plain, "%s n=%lld nr=%lld: unpack_x16(repack_x16(w)) != w", tn, ln, lr);
    CHECK(std::memcmp(ref.data(), refx.data(), ref.size() * sizeof(float)) == 0,
          "ref x16 %s n=%lld nr=%lld nc=%lld: differs from the plain reference", tn, ln, lr, lc);
    CHECK(finite && err <= 1e-5 * scale, "%s x16 %s n=%lld nr=%lld nc=%lld: max err %.3g (scale %.3g)", k.name, tn, ln,
          lr, lc, err, scale);
    CHECK(outside_ok, "%s x16 %s n=%lld nr=%lld nc=%lld: wrote outside the tile", k.name, tn, ln, lr, lc);
}

// ---- Q5_0, Q5_1 and the K-quants

void test_quantize_q8k(const Kernels & k) {
    const int64_t nb = 8, n = nb * QK_K;
    for (int row = 0; row < 5; row++) {
        const float scales[] = {1.0f, 1e-4f, 3e4f, 1e-30f, 0.5f};
        std::vector<float> x = randn(static_cast<size_t>(n) + 1, scales[row], g_rng_new);
        float * b = x.data() + 1;  // deliberately not 16-byte aligned
        if (row == 0) {
            for (int j = 0; j < QK_K; j++) b[j] = 0.0f;  // an all-zero block
            float * t = b + QK_K;                        // max = -127: iscale = 1, exact ties
            for (int j = 0; j < QK_K; j++) t[j] = static_cast<float>(j % 100) - 49.5f;
            t[3] = -127.0f;
            t = b + 2 * QK_K;  // one positive extreme, the rest zero
            for (int j = 0; j < QK_K; j++) t[j] = j == 200 ? 2.0f : 0.0f;
            t = b + 3 * QK_K;  // equal |x| of both signs: the first is the max
            t[10] = -40.0f;
            t[20] = 40.0f;
        }
        std::vector<block_q8_K> got(static_cast<size_t>(nb)), ref(static_cast<size_t>(nb));
        std::memset(got.data(), 0xAB, got.size() * sizeof(block_q8_K));
        k.quantize_q8k(b, got.data(), n);
        quantize_q8k_ref(b, ref.data(), n);
        for (int64_t i = 0; i < nb; i++) {
            const block_q8_K & g = got[static_cast<size_t>(i)];
            const block_q8_K & r = ref[static_cast<size_t>(i)];
            CHECK(std::memcmp(&g, &r, sizeof(block_q8_K)) == 0,
                  "%s quantize_q8k: row %d block %lld: d %a/%a qs %s bsums %s", k.name, row, static_cast<long long>(i),
                  static_cast<double>(g.d), static_cast<double>(r.d),
                  std::memcmp(g.qs, r.qs, QK_K) ? "differ" : "equal",
                  std::memcmp(g.bsums, r.bsums, sizeof(r.bsums)) ? "differ" : "equal");
        }
    }
}

// Random blocks of a Q5 or K-quant type: random bytes with sane fp16 super-block scales at
// the block's scale offsets, so that every quant, six-bit scale and min (and Q6_K's int8
// scales) occurs.
std::vector<uint8_t> random_blocks(DType t, int64_t n, int64_t rows, size_t stride, std::mt19937 & rng) {
    const TypeTraits & tr = traits(t);
    std::vector<int> offsets = {0};
    if (t == DType::Q5_1 || t == DType::Q4_K || t == DType::Q5_K) offsets.push_back(2);
    if (t == DType::Q6_K) offsets = {static_cast<int>(offsetof(block_q6_K, d))};
    std::uniform_int_distribution<int> byte(0, 255);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    std::vector<uint8_t> raw(stride * static_cast<size_t>(rows), 0);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t b = 0; b < n / tr.block_elems; b++) {
            uint8_t * blk = raw.data() + r * stride + b * tr.block_bytes;
            for (int64_t i = 0; i < tr.block_bytes; i++) blk[i] = static_cast<uint8_t>(byte(rng));
            for (int off : offsets) {
                const uint16_t h = fp32_to_fp16(nd(rng));
                std::memcpy(blk + off, &h, 2);
            }
        }
    }
    return raw;
}

GemmFn new_gemm(const Kernels & k, DType t) {
    switch (t) {
        case DType::Q5_0: return k.gemm_q5_0;
        case DType::Q5_1: return k.gemm_q5_1;
        case DType::Q4_K: return k.gemm_q4_K;
        case DType::Q5_K: return k.gemm_q5_K;
        default: return k.gemm_q6_K;
    }
}

void test_gemm_new(const Kernels & k, DType t, int64_t n, int64_t nr, int64_t nc) {
    const bool q8k = t != DType::Q5_0 && t != DType::Q5_1;
    const size_t ws = static_cast<size_t>(row_bytes(t, n)) + 6;  // not a whole number of blocks
    const std::vector<uint8_t> w = random_blocks(t, n, nr, ws);
    const size_t xs = q8k ? static_cast<size_t>(n / QK_K + 1) * sizeof(block_q8_K)
                          : static_cast<size_t>(n / QK + 1) * sizeof(block_q8_s);
    std::vector<uint8_t> x(xs * static_cast<size_t>(nc));
    std::vector<double> xv(static_cast<size_t>(nc * n));  // the activation quants' values
    for (int64_t c = 0; c < nc; c++) {
        const std::vector<float> v = randn(static_cast<size_t>(n), 1.0f, g_rng_new);
        uint8_t * dst = x.data() + c * xs;
        if (q8k) {
            quantize_q8k_ref(v.data(), dst, n);
            const block_q8_K * q = reinterpret_cast<const block_q8_K *>(dst);
            for (int64_t i = 0; i < n; i++)
                xv[c * n + i] = static_cast<double>(q[i / QK_K].d) * q[i / QK_K].qs[i % QK_K];
        } else {
            quantize_row_q8_s_ref(v.data(), reinterpret_cast<block_q8_s *>(dst), n);
            const block_q8_s * q = reinterpret_cast<const block_q8_s *>(dst);
            for (int64_t i = 0; i < n; i++) xv[c * n + i] = static_cast<double>(q[i / QK].d) * q[i / QK].qs[i % QK];
        }
    }
    const size_t ldo = static_cast<size_t>(nr + 3);
    const float canary = 12345.0f;
    std::vector<float> ref(ldo * static_cast<size_t>(nc), canary), got(ref);
    new_gemm(kernels_ref, t)(n, w.data(), ws, nr, x.data(), xs, nc, ref.data(), ldo);
    new_gemm(k, t)(n, w.data(), ws, nr, x.data(), xs, nc, got.data(), ldo);
    // The reference against a double product of the decoded weights (quant/decode.cpp, which
    // tests/test_quant_types.py checks bit-exact against gguf-py).
    std::vector<float> wv(static_cast<size_t>(n));
    std::vector<double> expect(static_cast<size_t>(nr * nc)), mag(expect.size());  // sum |w x| per output
    double scale = 0.0, err = 0.0, ref_err = 0.0;
    for (int64_t r = 0; r < nr; r++) {
        dequantize_row(t, w.data() + r * ws, wv.data(), n);
        for (int64_t c = 0; c < nc; c++) {
            double e = 0.0, a = 0.0;
            for (int64_t i = 0; i < n; i++) {
                e += static_cast<double>(wv[i]) * xv[c * n + i];
                a += std::fabs(static_cast<double>(wv[i]) * xv[c * n + i]);
            }
            expect[c * nr + r] = e;
            mag[c * nr + r] = a + 1e-30;
            scale = std::fmax(scale, a);
        }
    }
    bool outside_ok = true, finite = true;
    for (int64_t c = 0; c < nc; c++) {
        for (size_t r = 0; r < ldo; r++) {
            const size_t o = c * ldo + r;
            if (r >= static_cast<size_t>(nr)) {
                outside_ok = outside_ok && got[o] == canary;
                continue;
            }
            finite = finite && std::isfinite(got[o]);
            ref_err = std::fmax(ref_err, std::fabs(ref[o] - expect[c * nr + r]) / mag[c * nr + r]);
            err = std::fmax(err, std::fabs(static_cast<double>(got[o]) - ref[o]));
        }
    }
    CHECK(ref_err <= 1e-6, "ref %s n=%lld nr=%lld nc=%lld: err %.3g of sum |w x|", type_name(t),
          static_cast<long long>(n), static_cast<long long>(nr), static_cast<long long>(nc), ref_err);
    const long long ln = n, lr = nr, lc = nc;
    // Against the largest sum |w x| of the tile: one output may be a near-cancelling sum.
    CHECK(finite && err <= 2e-6 * scale, "%s %s n=%lld nr=%lld nc=%lld: max err %.3g (sum |w x| %.3g)", k.name,
          type_name(t), ln, lr, lc, err, scale);
    CHECK(outside_ok, "%s %s n=%lld nr=%lld nc=%lld: wrote outside the tile", k.name, type_name(t), ln, lr, lc);
}

// ---- attention helpers and f32 -> f16

// max |a - b| / (1 + |b|). (An if, not std::fmax: GCC 12's aarch64 vectorizer crashes on that
// float-to-double max reduction, internal compiler error in vect_transform_reduction.)
double max_rel_diff(const std::vector<float> & a, const std::vector<float> & b) {
    double m = 0.0;
    for (size_t i = 0; i < a.size(); i++) {
        const double e = std::fabs(static_cast<double>(a[i]) - b[i]) / (1.0 + std::fabs(static_cast<double>(b[i])));
        if (e > m) m = e;
    }
    return m;
}

void test_vectors(const Kernels & k) {
    for (int64_t n : {1, 3, 4, 7, 8, 15, 16, 17, 64, 133, 1000}) {
        const std::vector<float> a = randn(static_cast<size_t>(n)), b = randn(static_cast<size_t>(n));
        std::vector<uint16_t> a16(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; i++) a16[i] = fp32_to_fp16(a[i]);
        double e16 = 0.0, e32 = 0.0, m16 = 0.0, m32 = 0.0;
        for (int64_t i = 0; i < n; i++) {
            e16 += static_cast<double>(fp16_to_fp32(a16[i])) * b[i];
            e32 += static_cast<double>(a[i]) * b[i];
            m16 += std::fabs(static_cast<double>(fp16_to_fp32(a16[i])) * b[i]);
            m32 += std::fabs(static_cast<double>(a[i]) * b[i]);
        }
        const double d16 = k.dot_f16_f32(n, a16.data(), b.data()), d32 = k.dot_f32(n, a.data(), b.data());
        CHECK(std::fabs(d16 - e16) <= 1e-5 * m16 + 1e-6, "%s dot_f16_f32 n=%lld: %.9g vs %.9g", k.name,
              static_cast<long long>(n), d16, e16);
        CHECK(std::fabs(d32 - e32) <= 1e-5 * m32 + 1e-6, "%s dot_f32 n=%lld: %.9g vs %.9g", k.name,
              static_cast<long long>(n), d32, e32);
    }

    // f32 -> f16: random values over the half range plus the rounding corner cases.
    std::vector<float> v = randn(200, 1000.0f);
    const std::vector<float> small = randn(100, 1e-5f);
    v.insert(v.end(), small.begin(), small.end());
    const float specials[] = {65504.0f,
                              65519.996f,
                              65520.0f,
                              -65520.0f,
                              1e10f,
                              INFINITY,
                              -INFINITY,
                              0.0f,
                              -0.0f,
                              1e-8f,
                              6e-5f,
                              3e-8f,
                              std::ldexp(1.0f, -14),
                              std::ldexp(1.0f, -24),
                              std::ldexp(1.0f, -25),
                              std::ldexp(3.0f, -25),
                              std::ldexp(5.0f, -26),
                              1.0f + std::ldexp(1.0f, -11),
                              1.0f + std::ldexp(3.0f, -11),
                              -(1.0f + std::ldexp(1.0f, -11)),
                              2049.0f,
                              2051.0f,
                              -2051.0f,
                              0.1f,
                              1.0f / 3.0f};
    v.insert(v.end(), std::begin(specials), std::end(specials));
    for (size_t off : {size_t(0), size_t(1), size_t(3)}) {
        const int64_t n = static_cast<int64_t>(v.size() - off);
        std::vector<uint16_t> got(v.size()), ref(v.size());
        k.f32_to_f16(n, v.data() + off, got.data());
        for (int64_t i = 0; i < n; i++) ref[i] = fp32_to_fp16(v[off + i]);
        int64_t bad = -1;
        for (int64_t i = 0; i < n && bad < 0; i++) {
            if (got[i] != ref[i]) bad = i;
        }
        CHECK(bad < 0, "%s f32_to_f16: %a -> 0x%04x, expected 0x%04x", k.name,
              static_cast<double>(bad < 0 ? 0.0f : v[off + bad]), bad < 0 ? 0 : got[bad], bad < 0 ? 0 : ref[bad]);
    }
}

// Runs of KV rows (every KV type, rows a stride apart with garbage between): scores against a
// double sum over the dequantized rows, weighted sums against the reference set; run lengths
// around the 8-rows-per-pass kernels' block, row lengths around their column blocks.
void test_kv_runs(const Kernels & k) {
    for (DType t : {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0}) {
        const bool quant = t == DType::Q8_0 || t == DType::Q4_0;
        for (int64_t n : {8, 13, 32, 64, 96, 128, 160, 256}) {
            if (quant && n % QK != 0) continue;
            for (int64_t nrows : {1, 5, 8, 9, 17, 32}) {
                const size_t rb = static_cast<size_t>(row_bytes(t, n)), stride = rb + 24;
                std::vector<uint8_t> raw(stride * static_cast<size_t>(nrows), 0xA5);
                std::vector<float> deq(static_cast<size_t>(n * nrows));
                for (int64_t r = 0; r < nrows; r++) {
                    const std::vector<float> x = randn(static_cast<size_t>(n), 3.0f);
                    uint8_t * dst = raw.data() + r * stride;
                    if (t == DType::F32) std::memcpy(dst, x.data(), rb);
                    if (t == DType::F16) {
                        for (int64_t j = 0; j < n; j++) reinterpret_cast<uint16_t *>(dst)[j] = fp32_to_fp16(x[j]);
                    }
                    if (t == DType::Q8_0) quantize_row_q8_0_ref(x.data(), reinterpret_cast<block_q8_0 *>(dst), n);
                    if (t == DType::Q4_0) quantize_row_q4_0_ref(x.data(), reinterpret_cast<block_q4_0 *>(dst), n);
                    dequantize_row(t, dst, deq.data() + r * n, n);
                }
                const std::vector<float> q = randn(static_cast<size_t>(n)), w = randn(static_cast<size_t>(nrows));
                KvScoresFn sf = t == DType::F32    ? k.scores_f32
                                : t == DType::F16  ? k.scores_f16
                                : t == DType::Q8_0 ? k.scores_q8_0
                                                   : k.scores_q4_0;
                KvWsumFn wf = t == DType::F32    ? k.wsum_f32
                              : t == DType::F16  ? k.wsum_f16
                              : t == DType::Q8_0 ? k.wsum_q8_0
                                                 : k.wsum_q4_0;
                KvWsumFn wr = t == DType::F32    ? kernels_ref.wsum_f32
                              : t == DType::F16  ? kernels_ref.wsum_f16
                              : t == DType::Q8_0 ? kernels_ref.wsum_q8_0
                                                 : kernels_ref.wsum_q4_0;
                std::vector<float> s(static_cast<size_t>(nrows), -1.0f);
                sf(n, raw.data(), stride, nrows, q.data(), 0.25f, s.data());
                int64_t bad = -1;
                for (int64_t r = 0; r < nrows && bad < 0; r++) {
                    double e = 0.0, m = 0.0;
                    for (int64_t j = 0; j < n; j++) {
                        e += static_cast<double>(deq[r * n + j]) * q[j];
                        m += std::fabs(static_cast<double>(deq[r * n + j]) * q[j]);
                    }
                    if (!(std::fabs(s[r] - 0.25 * e) <= 0.25 * (1e-5 * m + 1e-6))) bad = r;
                }
                CHECK(bad < 0, "%s scores_%s n=%lld rows=%lld: row %lld off", k.name, type_name(t),
                      static_cast<long long>(n), static_cast<long long>(nrows), static_cast<long long>(bad));
                std::vector<float> y = randn(static_cast<size_t>(n)), yr = y;
                wf(n, raw.data(), stride, nrows, w.data(), y.data());
                wr(n, raw.data(), stride, nrows, w.data(), yr.data());
                const double err = max_rel_diff(y, yr);
                CHECK(err <= 2e-5, "%s wsum_%s n=%lld rows=%lld: err %.3g", k.name, type_name(t),
                      static_cast<long long>(n), static_cast<long long>(nrows), err);
            }
        }
    }
    // exp_sum against double exp, down to far below the max
    for (int64_t n : {1, 5, 8, 31, 1000}) {
        std::vector<float> x = randn(static_cast<size_t>(n), 10.0f);
        x[0] = -200.0f;
        float m = x[0];
        for (float v : x) m = v > m ? v : m;
        std::vector<float> e = x;
        const double sum = k.exp_sum(n, e.data(), m);
        double expect_sum = 0.0;
        int64_t bad = -1;
        for (int64_t i = 0; i < n; i++) {
            const double ex = std::exp(static_cast<double>(x[i] - m));  // of the f32 difference
            expect_sum += ex;
            if (!(std::fabs(e[i] - ex) <= 2.5e-7 * ex + 1e-37) && bad < 0) bad = i;
        }
        CHECK(bad < 0, "%s exp_sum n=%lld: exp(%.9g) = %.9g", k.name, static_cast<long long>(n),
              bad < 0 ? 0.0 : x[bad] - m, bad < 0 ? 0.0 : e[bad]);
        CHECK(std::fabs(sum - expect_sum) <= 1e-6 * expect_sum, "%s exp_sum n=%lld: sum %.9g vs %.9g", k.name,
              static_cast<long long>(n), sum, expect_sum);
    }
}

void test_silu_mul(const Kernels & k) {
    for (int64_t n : {1, 9, 64, 5632}) {
        std::vector<float> g = randn(static_cast<size_t>(n), 8.0f);
        const std::vector<float> u = randn(static_cast<size_t>(n));
        const float extremes[] = {-100.0f, 100.0f, 0.0f};
        for (int64_t i = 0; i < n && i < 3; i++) g[i] = extremes[i];
        std::vector<float> got = g;
        k.silu_mul(n, got.data(), u.data());
        int64_t bad = -1;
        for (int64_t i = 0; i < n && bad < 0; i++) {
            const double x = g[i], expect = x / (1.0 + std::exp(-x)) * u[i];
            if (!(std::fabs(got[i] - expect) <= 2e-6 * std::fabs(expect) + 1e-30)) bad = i;
        }
        CHECK(bad < 0, "%s silu_mul n=%lld: silu(%.9g) * %.9g = %.9g", k.name, static_cast<long long>(n),
              bad < 0 ? 0.0 : g[bad], bad < 0 ? 0.0 : u[bad], bad < 0 ? 0.0 : got[bad]);
    }
}

std::string set_names(const Kernels * const * sets, int n) {
    std::string s;
    for (int i = 0; i < n; i++) s += std::string(i ? " " : "") + sets[i]->name;
    return s;
}

}  // namespace

int main(int argc, char ** argv) {
    const Kernels * sets[8];
    const int nsets = available_kernels(sets, 8);
    const char * active = nullptr;
    try {
        active = active_kernels().name;  // LOOPLM_KERNELS may force one (or name a missing one)
    } catch (const std::exception & e) {
        std::printf("test_kernels: %s\n", e.what());
        return 2;
    }
    std::printf("test_kernels: active kernel set: %s (available: %s; cpu features: %s)\n", active,
                set_names(sets, nsets).c_str(), *cpu_features() ? cpu_features() : "none");
    if (argc > 1 && std::strcmp(argv[1], "--list") == 0) return 0;

    const DType types[] = {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::F16, DType::BF16, DType::F32};
    for (int s = 0; s < nsets; s++) {
        const Kernels & k = *sets[s];
        const int before = g_failures, checks = g_checks;
        test_quantize(k);
        for (DType t : types) {
            for (int64_t n : {32, 64, 288, 1024}) {
                for (int64_t nr : {1, 5, 37}) {
                    for (int64_t nc : {1, 2, 3, 4, 5, 8, 9}) test_gemm(k, t, n, nr, nc);
                }
            }
        }
        test_quantize_q8k(k);
        for (DType t : {DType::Q5_0, DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
            for (int64_t n : {256, 512, 2816}) {
                for (int64_t nr : {1, 4, 5, 37}) {
                    for (int64_t nc : {1, 2, 4, 5, 9}) test_gemm_new(k, t, n, nr, nc);
                }
            }
        }
        test_vectors(k);
        test_kv_runs(k);
        test_silu_mul(k);
        for (DType t : {DType::Q4_0, DType::Q4_1}) {
            for (int64_t n : {32, 288, 2048}) {
                for (int64_t nr : {5, 16, 37, 64}) {
                    for (int64_t nc : {1, 2, 3, 4, 5, 8, 9, 70}) test_gemm_x16(k, t, n, nr, nc);
                }
            }
        }
        for (int64_t n : {256, 768, 4096, 16640}) {  // 16640: longer than the kernels' buffers
            for (int64_t nr : {5, 16, 37, 64}) {
                for (int64_t nc : {1, 2, 3, 4, 5, 8, 9, 70}) {
                    if (n <= 4096 || (nr == 37 && nc < 4)) test_gemm_x16(k, DType::Q4_K, n, nr, nc);
                }
            }
        }
        for (int64_t n : {256, 768, 4096, 16640}) {  // Q6_K, as Q4_K
            for (int64_t nr : {5, 16, 37, 64}) {
                for (int64_t nc : {1, 2, 3, 4, 5, 8, 9, 70}) {
                    if (n <= 4096 || (nr == 37 && nc < 4)) test_gemm_x16(k, DType::Q6_K, n, nr, nc);
                }
            }
        }
        std::printf("test_kernels: %-8s %s (%d checks)\n", k.name, g_failures == before ? "ok" : "FAILED",
                    g_checks - checks);
    }
    return check_summary("test_kernels");
}
