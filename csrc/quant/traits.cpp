// traits.cpp - the type table. Sizes from ggml-common.h; types the runtime cannot run are
// listed too, so that files holding them parse and `looplm info` can name them.
#include "quant/traits.h"

#include <stdexcept>
#include <string>

#include "kernels/kernels.h"
#include "quant/decode.h"

namespace looplm {

namespace {

// A type the runtime does not run: known for parsing and naming only.
constexpr TypeTraits known(DType t, const char * name, int64_t elems, int64_t bytes) {
    return {t, name, elems, bytes, false, ActFormat::F32, nullptr, nullptr, nullptr};
}

// clang-format off
const TypeTraits kTraits[] = {
    // type       name    block bytes runnable act              decoder      tile GEMM            packed GEMM
    {DType::F32,  "F32",  1,    4,    true,    ActFormat::F32,  decode_f32,  &Kernels::gemm_f32,  nullptr},
    {DType::F16,  "F16",  1,    2,    true,    ActFormat::F32,  decode_f16,  &Kernels::gemm_f16,  nullptr},
    {DType::BF16, "BF16", 1,    2,    true,    ActFormat::F32,  decode_bf16, &Kernels::gemm_bf16, nullptr},
    {DType::Q4_0, "Q4_0", 32,   18,   true,    ActFormat::Q8,   decode_q4_0, &Kernels::gemm_q4_0, &Kernels::gemm8_q4_0},
    {DType::Q4_1, "Q4_1", 32,   20,   true,    ActFormat::Q8,   decode_q4_1, &Kernels::gemm_q4_1, &Kernels::gemm8_q4_1},
    {DType::Q8_0, "Q8_0", 32,   34,   true,    ActFormat::Q8,   decode_q8_0, &Kernels::gemm_q8_0, &Kernels::gemm8_q8_0},
    {DType::Q5_0, "Q5_0", 32,   22,   true,    ActFormat::Q8,   decode_q5_0, &Kernels::gemm_q5_0, nullptr},
    {DType::Q5_1, "Q5_1", 32,   24,   true,    ActFormat::Q8,   decode_q5_1, &Kernels::gemm_q5_1, nullptr},
    {DType::Q4_K, "Q4_K", 256,  144,  true,    ActFormat::Q8K,  decode_q4_K, &Kernels::gemm_q4_K, &Kernels::gemm8_q4_K},
    {DType::Q5_K, "Q5_K", 256,  176,  true,    ActFormat::Q8K,  decode_q5_K, &Kernels::gemm_q5_K, &Kernels::gemm8_q5_K},
    {DType::Q6_K, "Q6_K", 256,  210,  true,    ActFormat::Q8K,  decode_q6_K, &Kernels::gemm_q6_K, &Kernels::gemm8_q6_K},
    known(DType::Q8_1, "Q8_1", 32, 36),
    known(DType::Q2_K, "Q2_K", 256, 84),
    known(DType::Q3_K, "Q3_K", 256, 110),
    known(DType::Q8_K, "Q8_K", 256, 292),
    known(DType::I8,   "I8",   1, 1),
    known(DType::I16,  "I16",  1, 2),
    known(DType::I32,  "I32",  1, 4),
    known(DType::I64,  "I64",  1, 8),
    known(DType::F64,  "F64",  1, 8),
};
// clang-format on

}  // namespace

const TypeTraits * find_traits(uint32_t type_id) {
    for (const TypeTraits & t : kTraits) {
        if (static_cast<uint32_t>(t.type) == type_id) return &t;
    }
    return nullptr;
}

const TypeTraits & traits(DType t) {
    const TypeTraits * tr = find_traits(static_cast<uint32_t>(t));
    if (!tr) throw std::invalid_argument("unknown tensor type id " + std::to_string(static_cast<uint32_t>(t)));
    return *tr;
}

const char * type_name(DType t) {
    const TypeTraits * tr = find_traits(static_cast<uint32_t>(t));
    return tr ? tr->name : "unknown";
}

std::string runnable_type_names() {
    std::string s;
    for (const TypeTraits & t : kTraits) {
        if (t.runnable) s += std::string(s.empty() ? "" : ", ") + t.name;
    }
    return s;
}

int64_t row_bytes(DType t, int64_t n) {
    const TypeTraits & tr = traits(t);
    return n / tr.block_elems * tr.block_bytes;
}

}  // namespace looplm
