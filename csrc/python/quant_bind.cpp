// python/quant_bind.cpp - looplm._core's block-format functions: decoding rows of any type
// the type table decodes (tested against gguf-py's dequantizers) and the quantizers of
// quant/kquant.h. Translation only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "python/bindings.h"
#include "quant/kquant.h"
#include "quant/quantize.h"
#include "runtime/threads.h"
#include "quant/traits.h"

namespace py = pybind11;

namespace looplm {

namespace {

const TypeTraits & type_row(uint32_t type_id) {
    const TypeTraits * t = find_traits(type_id);
    if (!t) throw std::invalid_argument("unknown tensor type id " + std::to_string(type_id));
    return *t;
}

// raw [rows, row_bytes] uint8 of type type_id, rows of n elements -> f32 [rows, n].
py::array_t<float> dequantize(uint32_t type_id, py::array_t<uint8_t, py::array::c_style> raw, int64_t n) {
    const TypeTraits & t = type_row(type_id);
    if (!t.dequantize) throw std::invalid_argument(std::string("cannot decode tensor type ") + t.name);
    if (n <= 0 || n % t.block_elems != 0) {
        throw std::invalid_argument("row length " + std::to_string(n) + " is not a multiple of the " + t.name +
                                    " block size " + std::to_string(t.block_elems));
    }
    const int64_t rb = row_bytes(t.type, n);
    if (raw.ndim() != 2 || raw.shape(1) != rb) {
        throw std::invalid_argument("expected raw rows of " + std::to_string(rb) + " bytes");
    }
    const int64_t rows = raw.shape(0);
    py::array_t<float> out({rows, n});
    const uint8_t * src = raw.data();
    float * dst = out.mutable_data();
    {
        py::gil_scoped_release release;
        for (int64_t r = 0; r < rows; r++) t.dequantize(src + r * rb, dst + r * n, n);
    }
    return out;
}

// x f32 [rows, n] -> raw rows [rows, row_bytes] of type type_id, rows split over n_threads.
py::array_t<uint8_t> quantize(uint32_t type_id, py::array_t<float, py::array::c_style | py::array::forcecast> x,
                              int n_threads) {
    const TypeTraits & t = type_row(type_id);
    if (x.ndim() != 2) throw std::invalid_argument("expected a 2-D array of rows");
    if (n_threads < 1) throw std::invalid_argument("n_threads must be >= 1");
    const int64_t rows = x.shape(0), n = x.shape(1);
    if (n % t.block_elems != 0) {
        throw std::invalid_argument("row length " + std::to_string(n) + " is not a multiple of the " + t.name +
                                    " block size " + std::to_string(t.block_elems));
    }
    const int64_t rb = row_bytes(t.type, n);
    py::array_t<uint8_t> out({rows, rb});
    const float * src = x.data();
    uint8_t * dst = out.mutable_data();
    if (rows > 0) quantize_row(t.type, src, dst, 0);  // throws for a type without a quantizer
    {
        py::gil_scoped_release release;
        ThreadPool pool(n_threads);
        pool.for_rows(rows, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; r++) quantize_row(t.type, src + r * n, dst + r * rb, n);
        });
    }
    return out;
}

}  // namespace

void bind_quant(py::module_ & m) {
    m.def("dequantize", &dequantize, py::arg("type_id"), py::arg("raw"), py::arg("n"),
          "Decodes raw GGUF rows [rows, row_bytes] of a ggml type to f32 [rows, n].");
    m.def("quantize", &quantize, py::arg("type_id"), py::arg("x"), py::arg("n_threads") = 1,
          "Quantizes f32 rows [rows, n] to raw GGUF rows of a ggml type (Q4_K, Q5_K, Q6_K, Q8_0, Q4_0, Q4_1).");
}

}  // namespace looplm
