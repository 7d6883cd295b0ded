// python/gguf_values.h - GGUF metadata and the tensor table as Python dicts (translation only).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "gguf/gguf.h"

namespace looplm {

// Metadata as a dict; arrays longer than max_array elements (the vocabulary) are left out.
pybind11::dict metadata_dict(const GGUFFile & f, uint64_t max_array);
// Validates a GGUF file and returns its header, metadata and tensor table.
pybind11::dict file_info(const std::string & path, uint64_t max_array);

}  // namespace looplm
