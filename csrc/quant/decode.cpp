// decode.cpp - the scalar row decoders the traits table points at: each turns n elements
// (a whole number of blocks) of one type into f32, exactly as ggml's dequantizers do (and
// gguf-py's: the same f32 products in the same order, so built with -ffp-contract=off).
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

namespace {

// Bit 4 of the 5-bit quant of element j of a Q5_0/Q5_1 block (qh is little-endian).
inline int q5_high(const uint8_t qh[4], int j) { return ((qh[j / 8] >> (j % 8)) & 1) << 4; }

}  // namespace

void decode_q5_0(const void * src, float * dst, int64_t n) {
    const block_q5_0 * b = static_cast<const block_q5_0 *>(src);
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        const float d = fp16_to_fp32(b[i].d);
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = d * static_cast<float>(((b[i].qs[j] & 0x0f) | q5_high(b[i].qh, j)) - 16);
            dst[j + QK / 2] = d * static_cast<float>(((b[i].qs[j] >> 4) | q5_high(b[i].qh, j + QK / 2)) - 16);
        }
    }
}

void decode_q5_1(const void * src, float * dst, int64_t n) {
    const block_q5_1 * b = static_cast<const block_q5_1 *>(src);
    for (int64_t i = 0; i < n / QK; i++, dst += QK) {
        const float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
        for (int j = 0; j < QK / 2; j++) {
            dst[j] = d * static_cast<float>((b[i].qs[j] & 0x0f) | q5_high(b[i].qh, j)) + m;
            dst[j + QK / 2] = d * static_cast<float>((b[i].qs[j] >> 4) | q5_high(b[i].qh, j + QK / 2)) + m;
        }
    }
}

void kquant_scale_min(int j, const uint8_t * q, uint8_t * sc, uint8_t * mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = static_cast<uint8_t>((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *mn = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

void decode_q4_K(const void * src, float * dst, int64_t n) {
    const block_q4_K * b = static_cast<const block_q4_K *>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        const uint8_t * q = b[i].qs;
        for (int j = 0; j < QK_K / 64; j++, q += 32, dst += 64) {  // two sub-blocks per 32 bytes
            uint8_t sc0, mn0, sc1, mn1;
            kquant_scale_min(2 * j, b[i].scales, &sc0, &mn0);
            kquant_scale_min(2 * j + 1, b[i].scales, &sc1, &mn1);
            const float d0 = d * sc0, m0 = dmin * mn0, d1 = d * sc1, m1 = dmin * mn1;
            for (int l = 0; l < 32; l++) dst[l] = d0 * static_cast<float>(q[l] & 0x0f) - m0;
            for (int l = 0; l < 32; l++) dst[l + 32] = d1 * static_cast<float>(q[l] >> 4) - m1;
        }
    }
}

void decode_q5_K(const void * src, float * dst, int64_t n) {
    const block_q5_K * b = static_cast<const block_q5_K *>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
        const uint8_t * q = b[i].qs;
        for (int j = 0; j < QK_K / 64; j++, q += 32, dst += 64) {
            uint8_t sc0, mn0, sc1, mn1;
            kquant_scale_min(2 * j, b[i].scales, &sc0, &mn0);
            kquant_scale_min(2 * j + 1, b[i].scales, &sc1, &mn1);
            const float d0 = d * sc0, m0 = dmin * mn0, d1 = d * sc1, m1 = dmin * mn1;
            for (int l = 0; l < 32; l++) {
                const int hi = (b[i].qh[l] >> (2 * j)) & 1;
                dst[l] = d0 * static_cast<float>((q[l] & 0x0f) + 16 * hi) - m0;
            }
            for (int l = 0; l < 32; l++) {
                const int hi = (b[i].qh[l] >> (2 * j + 1)) & 1;
                dst[l + 32] = d1 * static_cast<float>((q[l] >> 4) + 16 * hi) - m1;
            }
        }
    }
}

void decode_q6_K(const void * src, float * dst, int64_t n) {
    const block_q6_K * b = static_cast<const block_q6_K *>(src);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = fp16_to_fp32(b[i].d);
        // Each half of 128 elements: 64 bytes of ql, 32 of qh, 8 scales (one per 16 elements).
        for (int h = 0; h < 2; h++, dst += 128) {
            const uint8_t * ql = b[i].ql + 64 * h;
            const uint8_t * qh = b[i].qh + 32 * h;
            const int8_t * sc = b[i].scales + 8 * h;
            for (int l = 0; l < 32; l++) {
                const int s = l / 16;
                const int q0 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
                const int q1 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                dst[l] = d * static_cast<float>(sc[s]) * static_cast<float>(q0);
                dst[l + 32] = d * static_cast<float>(sc[s + 2]) * static_cast<float>(q1);
                dst[l + 64] = d * static_cast<float>(sc[s + 4]) * static_cast<float>(q2);
                dst[l + 96] = d * static_cast<float>(sc[s + 6]) * static_cast<float>(q3);
            }
        }
    }
}

}  // namespace looplm
