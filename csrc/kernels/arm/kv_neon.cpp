// kernels/arm/kv_neon.cpp - ARMv8.0 NEON kernels of quantized KV rows (kernels/kv_rows.h), for
// the neon and dotprod tables: int8 quants widened to f32 (vmovl) and fused-multiplied with the
// f32 query / into the f32 output, 4 lanes at a time. Baseline aarch64, no extra flag; see the
// SIGILL note in kernels/kernels.h (static helpers, no STL, no templates).
#include <arm_neon.h>

#include "kernels/kv_rows.h"
#include "quant/blocks.h"

namespace looplm {

namespace {

static inline float h2f(uint16_t h) {
    __fp16 f;
    __builtin_memcpy(&f, &h, sizeof(f));
    return static_cast<float>(f);
}

// 16 int8 -> 4 x float32x4
static inline void cvt16(int8x16_t q, float32x4_t * f) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
    f[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    f[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
    f[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    f[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
}

// The 32 quants of a block as floats in element order.
static inline void q8_floats(const block_q8_0 & b, float32x4_t * f) {
    cvt16(vld1q_s8(b.qs), f);
    cvt16(vld1q_s8(b.qs + 16), f + 4);
}

static inline void q4_floats(const block_q4_0 & b, float32x4_t * f) {
    const uint8x16_t raw = vld1q_u8(b.qs);
    const int8x16_t eight = vdupq_n_s8(8);
    cvt16(vsubq_s8(vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f))), eight), f);
    cvt16(vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), eight), f + 4);
}

static inline float32x4_t dot32(const float32x4_t * f, const float * x) {
    float32x4_t s = vmulq_f32(f[0], vld1q_f32(x));
    for (int i = 1; i < 8; i++) s = vfmaq_f32(s, f[i], vld1q_f32(x + 4 * i));
    return s;
}

static inline void axpy32(const float32x4_t * f, float ad, float * y) {
    for (int i = 0; i < 8; i++) vst1q_f32(y + 4 * i, vfmaq_n_f32(vld1q_f32(y + 4 * i), f[i], ad));
}

}  // namespace

float kv_dot_q8_0_neon(int64_t n, const void * vk, const float * x) {
    const block_q8_0 * k = static_cast<const block_q8_0 *>(vk);
    float32x4_t acc = vdupq_n_f32(0.0f), f[8];
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        q8_floats(k[b], f);
        acc = vfmaq_n_f32(acc, dot32(f, x), h2f(k[b].d));
    }
    return vaddvq_f32(acc);
}

float kv_dot_q4_0_neon(int64_t n, const void * vk, const float * x) {
    const block_q4_0 * k = static_cast<const block_q4_0 *>(vk);
    float32x4_t acc = vdupq_n_f32(0.0f), f[8];
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        q4_floats(k[b], f);
        acc = vfmaq_n_f32(acc, dot32(f, x), h2f(k[b].d));
    }
    return vaddvq_f32(acc);
}

void kv_axpy_q8_0_neon(int64_t n, float a, const void * vx, float * y) {
    const block_q8_0 * x = static_cast<const block_q8_0 *>(vx);
    float32x4_t f[8];
    for (int64_t b = 0; b < n / QK; b++, y += QK) {
        q8_floats(x[b], f);
        axpy32(f, a * h2f(x[b].d), y);
    }
}

void kv_axpy_q4_0_neon(int64_t n, float a, const void * vx, float * y) {
    const block_q4_0 * x = static_cast<const block_q4_0 *>(vx);
    float32x4_t f[8];
    for (int64_t b = 0; b < n / QK; b++, y += QK) {
        q4_floats(x[b], f);
        axpy32(f, a * h2f(x[b].d), y);
    }
}

}  // namespace looplm
