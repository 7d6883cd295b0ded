// python/bindings.h - the parts of the looplm._core module, each bound in its own file.
#pragma once

#include <pybind11/pybind11.h>

#include <optional>
#include <string>

#include "kernels/kernels.h"
#include "model/context.h"

namespace looplm {

// kernel_hooks.cpp: the kernel set of that name this machine can run (ValueError otherwise),
// and the kernel test hooks and read-bandwidth probe.
const Kernels & kernel_set(const std::string & name);
void bind_kernels(pybind11::module_ & m);
// py_model.cpp: the cache settings of a load (kv_type for both, type_k / type_v over it, the
// sharing), checked into ContextParams (ValueError naming the keyword); and the bindings.
struct KVSettings {
    std::string kv_type = "f16";
    std::optional<std::string> type_k, type_v;
    std::string kv_share = "none";

    void apply(ContextParams & p) const;
};
void bind_model(pybind11::module_ & m);
// quant_bind.cpp: row decoders and quantizers of the block formats
void bind_quant(pybind11::module_ & m);
// py_batch.cpp
void bind_batch(pybind11::module_ & m);

}  // namespace looplm
