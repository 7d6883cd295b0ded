// python/kernel_hooks.cpp - looplm._core's kernel-level functions: each kernel set run on numpy
// data (the hooks tests/test_kernels.py checks against gguf-py and NumPy) and the memory
// read bandwidth probe of `looplm bench`; the fault injection switch of the robustness tests.
// Translation only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <string>
#include <vector>

#include "bench/membw.h"
#include "kernels/kernels.h"
#include "ops/ops.h"
#include "python/bindings.h"
#include "quant/blocks.h"
#include "quant/fp16.h"
#include "quant/quantize.h"
#include "quant/repack.h"
#include "quant/traits.h"
#include "quant/types.h"
#include "runtime/fault.h"

namespace py = pybind11;

namespace looplm {

const Kernels & kernel_set(const std::string & name) {
    const Kernels * k = find_kernels(name.c_str());
    if (!k) throw std::invalid_argument("kernel set '" + name + "' is unknown or not supported by this CPU");
    return *k;
}

namespace {

// Kernel test hooks: run one kernel set on numpy data.
// The activation blocks of x as (Q8_0 bytes, ds [n/32], bias [n/32, 8]): Q8_0 bytes to compare
// with gguf-py, the precomputed terms to check on their own.
py::tuple kernel_quantize(const std::string & set, py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    const Kernels & k = kernel_set(set);
    const int64_t n = x.size();
    if (n % QK != 0) throw std::invalid_argument("length must be a multiple of 32");
    std::vector<block_q8_s> blocks(static_cast<size_t>(n / QK));
    k.quantize_q8(x.data(), blocks.data(), n);
    std::string q8(static_cast<size_t>(row_bytes(DType::Q8_0, n)), '\0');
    py::array_t<float> ds(static_cast<py::ssize_t>(blocks.size()));
    py::array_t<int32_t> bias({static_cast<py::ssize_t>(blocks.size()), static_cast<py::ssize_t>(QK / 4)});
    for (size_t i = 0; i < blocks.size(); i++) {
        block_q8_0 b;
        b.d = fp32_to_fp16(blocks[i].d);
        std::memcpy(b.qs, blocks[i].qs, QK);
        std::memcpy(&q8[i * sizeof(block_q8_0)], &b, sizeof(b));
        ds.mutable_data()[i] = blocks[i].ds;
        std::memcpy(bias.mutable_data() + i * (QK / 4), blocks[i].bias, sizeof(blocks[i].bias));
    }
    return py::make_tuple(py::bytes(q8), ds, bias);
}

// out [nc, rows] = x [nc, n] . W^T, W given as raw rows [rows, row_bytes] of ggml type type_id.
py::array_t<float> kernel_matmul(const std::string & set, uint32_t type_id, py::array_t<uint8_t, py::array::c_style> w,
                                 int64_t n, py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    const Kernels & k = kernel_set(set);
    const TypeTraits * ti = find_traits(type_id);
    if (!ti || !ti->runnable) throw std::invalid_argument("unsupported type id " + std::to_string(type_id));
    const DType t = static_cast<DType>(type_id);
    if (n % ti->block_elems != 0 || w.ndim() != 2 || w.shape(1) != row_bytes(t, n) || x.ndim() != 2 ||
        x.shape(1) != n) {
        throw std::invalid_argument("shape mismatch");
    }
    ThreadPool pool(1);
    Ops ops(k, pool);
    Tensor wt;
    wt.type = t;
    wt.ne0 = n;
    wt.ne1 = w.shape(0);
    wt.row_bytes = static_cast<size_t>(row_bytes(t, n));
    wt.data = w.data();
    Activations a;
    ops.prepare(t, x.data(), x.shape(0), n, a);
    py::array_t<float> out({static_cast<int64_t>(x.shape(0)), wt.ne1});
    ops.matmul(wt, a, out.mutable_data());
    return out;
}

// The Q8_K activation rows of x (n a multiple of 256) as raw block_q8_K bytes.
py::bytes kernel_quantize_q8k(const std::string & set,
                              py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    const Kernels & k = kernel_set(set);
    if (x.size() % QK_K != 0) throw std::invalid_argument("length must be a multiple of 256");
    if (!k.quantize_q8k) throw std::invalid_argument(set + " has no quantize_q8k");
    std::string out(static_cast<size_t>(x.size() / QK_K) * sizeof(block_q8_K), '\0');
    k.quantize_q8k(x.data(), out.data(), x.size());
    return py::bytes(out);
}

// One tile GEMM of a set for a quantized weight type, called directly rather than through ops
// (the type need not be runnable yet): out [nc, rows] = x [nc, n] . W^T, x quantized by the
// set's own activation quantizer for the type (block_q8_s or block_q8_K rows).
// With x16, the rows are repacked to the x16 layout (kernels/x16.h) first and the set's x16
// GEMM (the reference's where it has none) runs on them.
py::array_t<float> run_gemm(const std::string & set, uint32_t type_id, py::array_t<uint8_t, py::array::c_style> w,
                            int64_t n, py::array_t<float, py::array::c_style | py::array::forcecast> x, bool x16) {
    const Kernels & k = kernel_set(set);
    const TypeTraits * ti = find_traits(type_id);
    if (!ti || !ti->gemm || ti->act == ActFormat::F32) {
        throw std::invalid_argument("kernel_gemm: type id " + std::to_string(type_id) + " has no quantized GEMM");
    }
    const DType t = ti->type;
    if (x16 && !has_x16_layout(t)) throw std::invalid_argument(std::string("no x16 layout for ") + type_name(t));
    const GemmFn gemm = x16 ? gemm_x16_for(k, t) : k.*(ti->gemm);
    const bool q8k = ti->act == ActFormat::Q8K;
    if (!gemm || !(q8k ? k.quantize_q8k : k.quantize_q8)) {
        throw std::invalid_argument(set + " has no kernel for " + type_name(t));
    }
    const int64_t blk = q8k ? QK_K : QK;
    if (n % blk != 0 || w.ndim() != 2 || w.shape(1) != row_bytes(t, n) || x.ndim() != 2 || x.shape(1) != n) {
        throw std::invalid_argument("shape mismatch");
    }
    const int64_t nc = x.shape(0), nr = w.shape(0);
    const size_t xs = static_cast<size_t>(n / blk) * (q8k ? sizeof(block_q8_K) : sizeof(block_q8_s));
    std::vector<uint8_t> xq(xs * static_cast<size_t>(nc));
    for (int64_t c = 0; c < nc; c++) (q8k ? k.quantize_q8k : k.quantize_q8)(x.data() + c * n, xq.data() + c * xs, n);
    std::vector<uint8_t> packed;
    if (x16) {
        packed.resize(static_cast<size_t>(w.shape(1)) * static_cast<size_t>(nr));
        repack_x16(t, w.data(), packed.data(), n, nr);
    }
    py::array_t<float> out({nc, nr});
    gemm(n, x16 ? packed.data() : w.data(), static_cast<size_t>(w.shape(1)), nr, xq.data(), xs, nc, out.mutable_data(),
         static_cast<size_t>(nr));
    return out;
}

py::array_t<float> kernel_gemm(const std::string & set, uint32_t type_id, py::array_t<uint8_t, py::array::c_style> w,
                               int64_t n, py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    return run_gemm(set, type_id, w, n, x, false);
}

py::array_t<float> kernel_gemm_x16(const std::string & set, uint32_t type_id,
                                   py::array_t<uint8_t, py::array::c_style> w, int64_t n,
                                   py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    return run_gemm(set, type_id, w, n, x, true);
}

// The vector helpers: ("dot_f16", a_f16_bits, b) / ("dot_f32", a, b) / ("silu_mul", g, u) / ...
py::object kernel_vec(const std::string & set, const std::string & op, py::array a, py::array b, float alpha) {
    const Kernels & k = kernel_set(set);
    if (op == "dot_f16") {
        auto x = py::array_t<uint16_t, py::array::c_style>::ensure(a);
        auto y = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(b);
        if (x.size() != y.size()) throw std::invalid_argument("length mismatch");
        return py::float_(k.dot_f16_f32(x.size(), x.data(), y.data()));
    }
    if (op == "dot_f32") {
        auto x = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
        auto y = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(b);
        if (x.size() != y.size()) throw std::invalid_argument("length mismatch");
        return py::float_(k.dot_f32(x.size(), x.data(), y.data()));
    }
    if (op == "silu_mul") {
        auto g = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
        auto u = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(b);
        if (g.size() != u.size()) throw std::invalid_argument("length mismatch");
        py::array_t<float> out(g.size());
        std::memcpy(out.mutable_data(), g.data(), static_cast<size_t>(g.size()) * 4);
        k.silu_mul(g.size(), out.mutable_data(), u.data());
        return std::move(out);
    }
    if (op == "f32_to_f16") {
        auto x = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
        py::array_t<uint16_t> out(x.size());
        k.f32_to_f16(x.size(), x.data(), out.mutable_data());
        return std::move(out);
    }
    throw std::invalid_argument("unknown kernel op '" + op + "'");
}

// A run of KV rows of type type_id as uint8 [nrows, stride] (each row's first row_bytes(n)
// bytes hold it; stride >= that), the set's kernel for that type.
struct KvRun {
    const uint8_t * data;
    size_t stride;
    int64_t nrows;
};

KvRun kv_run(uint32_t type_id, const py::array_t<uint8_t, py::array::c_style> & rows, int64_t n) {
    const DType t = static_cast<DType>(type_id);
    if (t != DType::F32 && t != DType::F16 && t != DType::Q8_0 && t != DType::Q4_0) {
        throw std::invalid_argument("KV rows of type id " + std::to_string(type_id) + " are not supported");
    }
    if (n < 0 || (t != DType::F32 && t != DType::F16 && n % QK != 0)) throw std::invalid_argument("bad row length");
    if (rows.ndim() != 2 || rows.shape(1) < row_bytes(t, n)) throw std::invalid_argument("rows shape mismatch");
    return {rows.data(), static_cast<size_t>(rows.shape(1)), static_cast<int64_t>(rows.shape(0))};
}

// out [nrows] = scale * rows . q
py::array_t<float> kernel_kv_scores(const std::string & set, uint32_t type_id,
                                    py::array_t<uint8_t, py::array::c_style> rows, int64_t n,
                                    py::array_t<float, py::array::c_style | py::array::forcecast> q, float scale) {
    const Kernels & k = kernel_set(set);
    const KvRun run = kv_run(type_id, rows, n);
    if (q.size() != n) throw std::invalid_argument("query length mismatch");
    const DType t = static_cast<DType>(type_id);
    const KvScoresFn f = t == DType::F16    ? k.scores_f16
                         : t == DType::Q8_0 ? k.scores_q8_0
                         : t == DType::Q4_0 ? k.scores_q4_0
                                            : k.scores_f32;
    py::array_t<float> out(run.nrows);
    f(n, run.data, run.stride, run.nrows, q.data(), scale, out.mutable_data());
    return out;
}

// acc + w . rows, acc [n], w [nrows]
py::array_t<float> kernel_kv_wsum(const std::string & set, uint32_t type_id,
                                  py::array_t<uint8_t, py::array::c_style> rows, int64_t n,
                                  py::array_t<float, py::array::c_style | py::array::forcecast> w,
                                  py::array_t<float, py::array::c_style | py::array::forcecast> acc) {
    const Kernels & k = kernel_set(set);
    const KvRun run = kv_run(type_id, rows, n);
    if (w.size() != run.nrows || acc.size() != n) throw std::invalid_argument("weights / output length mismatch");
    const DType t = static_cast<DType>(type_id);
    const KvWsumFn f = t == DType::F16    ? k.wsum_f16
                       : t == DType::Q8_0 ? k.wsum_q8_0
                       : t == DType::Q4_0 ? k.wsum_q4_0
                                          : k.wsum_f32;
    py::array_t<float> out(n);
    std::memcpy(out.mutable_data(), acc.data(), static_cast<size_t>(n) * sizeof(float));
    f(n, run.data, run.stride, run.nrows, w.data(), out.mutable_data());
    return out;
}

// (exp(x - m), its sum)
py::tuple kernel_exp_sum(const std::string & set, py::array_t<float, py::array::c_style | py::array::forcecast> x,
                         float m) {
    const Kernels & k = kernel_set(set);
    py::array_t<float> out(x.size());
    std::memcpy(out.mutable_data(), x.data(), static_cast<size_t>(x.size()) * sizeof(float));
    const float sum = k.exp_sum(x.size(), out.mutable_data(), m);
    return py::make_tuple(out, sum);
}

}  // namespace

void bind_kernels(py::module_ & m) {
    m.def("_arm_fault", &fault::arm, py::arg("stage"), py::arg("nth"),
          "Tests only: the nth pass through the named stage raises MemoryError (runtime/fault.h).");
    m.def(
        "read_bandwidth",
        [](int n_threads, size_t bytes, int reps) {
            if (n_threads < 1 || reps < 1 || bytes < (1u << 20)) throw std::invalid_argument("bad membw arguments");
            py::gil_scoped_release release;
            ThreadPool pool(n_threads);
            return read_bandwidth(pool, bytes, reps);
        },
        py::arg("n_threads"), py::arg("bytes") = size_t(1) << 30, py::arg("reps") = 5,
        "Best-of-reps memory read bandwidth in bytes/s with n_threads threads.");
    m.def("kernel_quantize", &kernel_quantize);
    m.def("kernel_matmul", &kernel_matmul);
    m.def("kernel_quantize_q8k", &kernel_quantize_q8k);
    m.def("kernel_gemm", &kernel_gemm);
    m.def("kernel_gemm_x16", &kernel_gemm_x16);
    m.def("kernel_vec", &kernel_vec, py::arg("set"), py::arg("op"), py::arg("a"), py::arg("b"),
          py::arg("alpha") = 0.0f);
    m.def("kernel_kv_scores", &kernel_kv_scores, py::arg("set"), py::arg("type_id"), py::arg("rows"), py::arg("n"),
          py::arg("q"), py::arg("scale") = 1.0f);
    m.def("kernel_kv_wsum", &kernel_kv_wsum, py::arg("set"), py::arg("type_id"), py::arg("rows"), py::arg("n"),
          py::arg("w"), py::arg("acc"));
    m.def("kernel_exp_sum", &kernel_exp_sum, py::arg("set"), py::arg("x"), py::arg("m"));
}

}  // namespace looplm
