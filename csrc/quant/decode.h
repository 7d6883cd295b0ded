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

}  // namespace looplm
