// kernels/kv_rows.h - each instruction set's kernels of runs of KV cache rows (Kernels::scores_*,
// wsum_*, exp_sum; KvScoresFn / KvWsumFn in kernels/kernels.h), each set's in its own file
// (x86/kv_avx2.cpp, x86/kv_avx512.cpp, arm/kv_neon.cpp) with that file's ISA flags; the tables
// take them from here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace looplm {

#define LOOPLM_KV_DECLS(ISA)                                                                                           \
    void kv_scores_f32_##ISA(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q, float scale, \
                             float * out);                                                                             \
    void kv_scores_f16_##ISA(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q, float scale, \
                             float * out);                                                                             \
    void kv_scores_q8_0_##ISA(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q,             \
                              float scale, float * out);                                                               \
    void kv_scores_q4_0_##ISA(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * q,             \
                              float scale, float * out);                                                               \
    void kv_wsum_f32_##ISA(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w, float * acc);  \
    void kv_wsum_f16_##ISA(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w, float * acc);  \
    void kv_wsum_q8_0_##ISA(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w, float * acc); \
    void kv_wsum_q4_0_##ISA(int64_t n, const void * rows, size_t stride, int64_t nrows, const float * w, float * acc); \
    float kv_exp_sum_##ISA(int64_t n, float * x, float m);

#if defined(__x86_64__) || defined(_M_X64)
LOOPLM_KV_DECLS(avx2)
LOOPLM_KV_DECLS(avx512)
#endif
#if defined(__aarch64__)
LOOPLM_KV_DECLS(neon)
#endif

#undef LOOPLM_KV_DECLS

// A table's members scores_f32 .. exp_sum, from functions named PRE<member>SUF.
#define LOOPLM_KV_ENTRIES(PRE, SUF)                                                                               \
    PRE##scores_f32##SUF, PRE##scores_f16##SUF, PRE##scores_q8_0##SUF, PRE##scores_q4_0##SUF, PRE##wsum_f32##SUF, \
        PRE##wsum_f16##SUF, PRE##wsum_q8_0##SUF, PRE##wsum_q4_0##SUF, PRE##exp_sum##SUF

}  // namespace looplm
