// kernels/kv_rows.h - the quantized KV-row kernels of each instruction set (Kernels::dot_q8_0_f32,
// dot_q4_0_f32, axpy_q8_0, axpy_q4_0), each set's in its own file (x86/kv_avx2.cpp,
// x86/kv_avx512.cpp, arm/kv_neon.cpp) with that file's ISA flags; the tables take them from here.
#pragma once

#include <cstdint>

namespace looplm {

#if defined(__x86_64__) || defined(_M_X64)
float kv_dot_q8_0_avx2(int64_t n, const void * k, const float * q);
float kv_dot_q4_0_avx2(int64_t n, const void * k, const float * q);
void kv_axpy_q8_0_avx2(int64_t n, float a, const void * x, float * y);
void kv_axpy_q4_0_avx2(int64_t n, float a, const void * x, float * y);
float kv_dot_q8_0_avx512(int64_t n, const void * k, const float * q);
float kv_dot_q4_0_avx512(int64_t n, const void * k, const float * q);
void kv_axpy_q8_0_avx512(int64_t n, float a, const void * x, float * y);
void kv_axpy_q4_0_avx512(int64_t n, float a, const void * x, float * y);
#endif
#if defined(__aarch64__)
float kv_dot_q8_0_neon(int64_t n, const void * k, const float * q);
float kv_dot_q4_0_neon(int64_t n, const void * k, const float * q);
void kv_axpy_q8_0_neon(int64_t n, float a, const void * x, float * y);
void kv_axpy_q4_0_neon(int64_t n, float a, const void * x, float * y);
#endif

}  // namespace looplm
