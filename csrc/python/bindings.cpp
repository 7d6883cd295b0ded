// python/bindings.cpp - the pybind11 module looplm._core. Translation only: argument
// conversion, GIL release around compute, C++ exceptions to Python ones. The model and its
// options are bound in py_model.cpp, GGUF metadata in gguf_values.cpp, the kernel test hooks
// and the bandwidth probe in kernel_hooks.cpp.
#include "python/bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "model/limits.h"
#include "python/gguf_values.h"
#include "runtime/cpu_features.h"
#include "runtime/threads.h"
#include "text/sampler.h"

namespace py = pybind11;
using namespace looplm;

#ifndef LOOPLM_VERSION
#define LOOPLM_VERSION "dev"
#endif
#ifndef LOOPLM_BUILD_TYPE
#define LOOPLM_BUILD_TYPE "unknown"
#endif
#ifndef LOOPLM_NATIVE_BUILD
#define LOOPLM_NATIVE_BUILD 0
#endif

PYBIND11_MODULE(_core, m) {
    m.doc() = "looplm native runtime (private; use the looplm package)";
    m.attr("__version__") = LOOPLM_VERSION;
    py::register_exception<GGUFError>(m, "GGUFError", PyExc_ValueError);

    m.def("kernels", [] { return std::string(active_kernels().name); }, "Name of the kernel set this process uses.");
    m.def("kernels_available", [] {
        const Kernels * k[8];
        const int n = available_kernels(k, 8);
        std::vector<std::string> names;
        for (int i = 0; i < n; i++) names.emplace_back(k[i]->name);
        return names;
    });
    m.def(
        "config_limits",
        [] {
            py::dict d;
            d["n_embd"] = limits::kEmbd;
            d["n_layer"] = limits::kLayers;
            d["n_ff"] = limits::kFF;
            d["n_head"] = limits::kHeads;
            d["head_dim"] = limits::kHeadDim;
            d["n_ctx_train"] = limits::kCtx;
            d["n_loops"] = limits::kLoops;
            d["n_vocab"] = limits::kVocab;
            return d;
        },
        "Upper bounds of the hyper-parameters the loader accepts (model/limits.h).");
    m.def("cpu_features", [] { return std::string(cpu_features()); });
    m.def(
        "build_info",
        [] {
            py::dict d;
#if defined(__clang__)
            d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
            d["compiler"] = std::string("gcc ") + __VERSION__;
#else
            d["compiler"] = "unknown";
#endif
            d["build_type"] = LOOPLM_BUILD_TYPE;
            d["native"] = LOOPLM_NATIVE_BUILD != 0;
            return d;
        },
        "How the extension was built: compiler, CMake build type, -march=native or portable.");
    m.def("physical_cores", &physical_cores);
    m.def("file_info", &file_info, py::arg("path"), py::arg("max_array") = 64,
          "Validates a GGUF file and returns its header, metadata and tensor table.");
    bind_kernels(m);  // bindings_kernels.cpp: kernel test hooks, read bandwidth
    bind_quant(m);    // quant_bind.cpp: block formats (decoders, quantizers)

    py::class_<Sampler>(m, "Sampler")
        .def(py::init([](float temperature, int top_k, float top_p, float min_p, float repeat_penalty,
                         float presence_penalty, float frequency_penalty, int penalty_last_n, uint64_t seed) {
                 SamplerParams p;
                 p.temperature = temperature;
                 p.top_k = top_k;
                 p.top_p = top_p;
                 p.min_p = min_p;
                 p.repeat_penalty = repeat_penalty;
                 p.presence_penalty = presence_penalty;
                 p.frequency_penalty = frequency_penalty;
                 p.penalty_last_n = penalty_last_n;
                 p.seed = seed;
                 return new Sampler(p);
             }),
             py::arg("temperature"), py::arg("top_k"), py::arg("top_p"), py::arg("min_p"), py::arg("repeat_penalty"),
             py::arg("presence_penalty"), py::arg("frequency_penalty"), py::arg("penalty_last_n"), py::arg("seed"))
        .def("sample", [](Sampler & s, py::array_t<float, py::array::c_style | py::array::forcecast> logits,
                          py::array_t<int32_t, py::array::c_style | py::array::forcecast> history) {
            if (logits.ndim() != 1 || logits.size() == 0)
                throw std::invalid_argument("logits must be a non-empty 1-D array");
            return s.sample(logits.data(), logits.size(), history.data(), history.size());
        });

    bind_model(m);  // py_model.cpp: Model (a loaded model with its context) and RunOptions
    bind_batch(m);  // py_batch.cpp: BatchModel (several sequences stepped together)
}
