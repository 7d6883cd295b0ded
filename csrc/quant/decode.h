// decode.h - scalar row decoders, one per type (the traits table's `dequantize` column).
#pragma once

#include <cstdint>

namespace looplm {

void decode_f32(const void * src, float * dst, int64_t n);
void decode_f16(const void * src, float * dst, int64_t n);
void decode_bf16(const void * src, float * dst, int64_t n);
void decode_q4_0(const void * src, float * dst, int64_t n);
void decode_q4_1(const void * src, float * dst, int64_t n);
void decode_q8_0(const void * src, float * dst, int64_t n);
void decode_q5_0(const void * src, float * dst, int64_t n);
void decode_q5_1(const void * src, float * dst, int64_t n);
void decode_q4_K(const void * src, float * dst, int64_t n);
void decode_q5_K(const void * src, float * dst, int64_t n);
void decode_q6_K(const void * src, float * dst, int64_t n);

// Q4_K/Q5_K: the 6-bit scale and min of sub-block j (0..7) from a block's packed scales[12]
// (ggml's get_scale_min_k4).
void kquant_scale_min(int j, const uint8_t * scales, uint8_t * sc, uint8_t * mn);

}  // namespace looplm
