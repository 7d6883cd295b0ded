// python/bindings.h - the parts of the looplm._core module, each bound in its own file.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "kernels/kernels.h"

namespace looplm {

// kernel_hooks.cpp: the kernel set of that name this machine can run (ValueError otherwise),
// and the kernel test hooks and read-bandwidth probe.
const Kernels & kernel_set(const std::string & name);
void bind_kernels(pybind11::module_ & m);
// py_model.cpp
void bind_model(pybind11::module_ & m);
// quant_bind.cpp: row decoders and quantizers of the block formats
void bind_quant(pybind11::module_ & m);
// py_batch.cpp
void bind_batch(pybind11::module_ & m);

}  // namespace looplm
