// python/gguf_values.cpp - GGUF metadata values and the tensor table as Python objects.
#include "python/gguf_values.h"

#include <cstring>

#include "quant/traits.h"

namespace looplm {

namespace py = pybind11;

static py::object value_to_py(const GGUFValue & v) {
    auto scalar = [](GGUFType t, const uint8_t * p) -> py::object {
        switch (t) {
            case GGUFType::U8: return py::int_(*p);
            case GGUFType::I8: return py::int_(static_cast<int8_t>(*p));
            case GGUFType::U16: {
                uint16_t x;
                std::memcpy(&x, p, 2);
                return py::int_(x);
            }
            case GGUFType::I16: {
                int16_t x;
                std::memcpy(&x, p, 2);
                return py::int_(x);
            }
            case GGUFType::U32: {
                uint32_t x;
                std::memcpy(&x, p, 4);
                return py::int_(x);
            }
            case GGUFType::I32: {
                int32_t x;
                std::memcpy(&x, p, 4);
                return py::int_(x);
            }
            case GGUFType::U64: {
                uint64_t x;
                std::memcpy(&x, p, 8);
                return py::int_(x);
            }
            case GGUFType::I64: {
                int64_t x;
                std::memcpy(&x, p, 8);
                return py::int_(x);
            }
            case GGUFType::F32: {
                float x;
                std::memcpy(&x, p, 4);
                return py::float_(x);
            }
            case GGUFType::F64: {
                double x;
                std::memcpy(&x, p, 8);
                return py::float_(x);
            }
            case GGUFType::BOOL: return py::bool_(*p != 0);
            default: return py::none();
        }
    };
    if (v.type == GGUFType::STRING) {
        const std::string s = GGUFFile::string_at(v, 0);
        return py::reinterpret_steal<py::object>(
            PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
    }
    if (v.type != GGUFType::ARRAY) return scalar(v.type, v.data);
    py::list out;
    if (v.elem_type == GGUFType::STRING) {
        for (uint64_t i = 0; i < v.count; i++) {
            const std::string s = GGUFFile::string_at(v, i);
            out.append(py::reinterpret_steal<py::object>(
                PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace")));
        }
        return std::move(out);
    }
    const size_t es = v.elem_type == GGUFType::U8 || v.elem_type == GGUFType::I8 || v.elem_type == GGUFType::BOOL ? 1
                      : v.elem_type == GGUFType::U16 || v.elem_type == GGUFType::I16                              ? 2
                      : v.elem_type == GGUFType::U64 || v.elem_type == GGUFType::I64 || v.elem_type == GGUFType::F64
                          ? 8
                          : 4;
    for (uint64_t i = 0; i < v.count; i++) out.append(scalar(v.elem_type, v.data + i * es));
    return std::move(out);
}

// Metadata as a dict; arrays longer than max_array elements (the vocabulary) are left out.
py::dict metadata_dict(const GGUFFile & f, uint64_t max_array) {
    py::dict d;
    for (const std::string & key : f.keys()) {
        const GGUFValue & v = *f.find(key);
        if (v.type == GGUFType::ARRAY && v.count > max_array) continue;
        d[py::str(key)] = value_to_py(v);
    }
    return d;
}

py::dict file_info(const std::string & path, uint64_t max_array) {
    GGUFFile f(path);
    py::dict d;
    d["version"] = f.version();
    d["file_size"] = f.file_size();
    d["alignment"] = f.alignment();
    d["data_offset"] = f.data_offset();
    d["metadata"] = metadata_dict(f, max_array);
    py::list tensors;
    py::dict runnable;
    for (const GGUFTensor & t : f.tensors()) {
        py::list shape;
        for (int i = 0; i < t.n_dims; i++) shape.append(t.ne[i]);
        tensors.append(py::make_tuple(t.name, type_name(t.type), shape, t.offset, t.nbytes));
        const TypeTraits * tr = find_traits(static_cast<uint32_t>(t.type));
        runnable[py::str(type_name(t.type))] = tr != nullptr && tr->runnable;
    }
    d["tensors"] = tensors;
    d["runnable"] = runnable;  // type name -> whether looplm has kernels for it
    return d;
}

// A request from the API's keyword options (None: unset).
}  // namespace looplm
