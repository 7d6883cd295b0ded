// decode.cpp - the scalar row decoders the traits table points at: each turns n elements
// (a whole number of blocks) of one type into f32, exactly as ggml's dequantizers do.
#include "quant/decode.h"

#include <cstring>

#include "quant/blocks.h"
#include "quant/fp16.h"

namespace looplm {

void decode_f32(const void * src, float * dst, int64_t n) { std::memcpy(dst, src, static_cast<size_t>(n) * 4); }

void decode_f16(const void * src, float * dst, int64_t n) {
    const uint16_t * s = static_cast<const uint16_t *>(src);
    for (int64_t i = 0; i < n; i++) dst[i] = fp16_to_fp32(s[i]);
}

void decode_bf16(const void * src, float * dst, int64_t n) {
    const uint16_t * s = static_cast<const uint16_t *>(src);
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_fp32(s[i]);
}

void decode_q4_0(const void * src, float * dst, int64_t n) {
    const block_q4_0 * b = static_cast<const block_q4_0 *>(src);
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = d * static_cast<float>((b[i].qs[j] & 0x0f) - 8);
            dst[j + QK / 2] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
        }
    }
}

void decode_q4_1(const void * src, float * dst, int64_t n) {
    const block_q4_1 * b = static_cast<const block_q4_1 *>(src);
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        const float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = d * static_cast<float>(b[i].qs[j] & 0x0f) + m;
            dst[j + QK / 2] = d * static_cast<float>(b[i].qs[j] >> 4) + m;
        }
    }
}

void decode_q8_0(const void * src, float * dst, int64_t n) {
    const block_q8_0 * b = static_cast<const block_q8_0 *>(src);
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK; j++) dst[j] = d * static_cast<float>(b[i].qs[j]);
    }
}

}  // namespace looplm
