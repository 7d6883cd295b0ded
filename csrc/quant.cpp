// quant.cpp - type table, fp16/bf16 conversion, scalar quantizers and dequantizers.
//
// Built with -ffp-contract=off so that x * id + 8.5f is never fused: the Q4_0/Q8_0
// bytes must equal gguf-py's (and ggml's) reference quantizers exactly.
#include "quant.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace looplm {

namespace {

struct TypeEntry {
    uint32_t id;
    TypeInfo info;
};

// Sizes from ggml-common.h. Types the runtime cannot run are still listed so that
// files holding them parse (and `looplm info` can describe them).
const TypeEntry kTypes[] = {
    {0, {"F32", 1, 4, true}},        {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 18, true}},     {3, {"Q4_1", 32, 20, true}},
    {6, {"Q5_0", 32, 22, false}},    {7, {"Q5_1", 32, 24, false}},
    {8, {"Q8_0", 32, 34, true}},     {9, {"Q8_1", 32, 36, false}},
    {10, {"Q2_K", 256, 84, false}},  {11, {"Q3_K", 256, 110, false}},
    {12, {"Q4_K", 256, 144, false}}, {13, {"Q5_K", 256, 176, false}},
    {14, {"Q6_K", 256, 210, false}}, {15, {"Q8_K", 256, 292, false}},
    {24, {"I8", 1, 1, false}},       {25, {"I16", 1, 2, false}},
    {26, {"I32", 1, 4, false}},      {27, {"I64", 1, 8, false}},
    {28, {"F64", 1, 8, false}},      {30, {"BF16", 1, 2, true}},
};

uint32_t f32_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

float bits_f32(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

}  // namespace

const TypeInfo * type_info(uint32_t type_id) {
    for (const TypeEntry & e : kTypes) {
        if (e.id == type_id) return &e.info;
    }
    return nullptr;
}

const char * type_name(DType t) {
    const TypeInfo * ti = type_info(static_cast<uint32_t>(t));
    return ti ? ti->name : "unknown";
}

int64_t row_bytes(DType t, int64_t n) {
    const TypeInfo * ti = type_info(static_cast<uint32_t>(t));
    return n / ti->block_elems * ti->block_bytes;
}

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        // subnormal: normalise
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while ((mant & 0x400) == 0);
        mant &= 0x3ff;
        return bits_f32(sign | static_cast<uint32_t>(127 - 15 - e) << 23 | mant << 13);
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | mant << 13);
    return bits_f32(sign | (exp + 127 - 15) << 23 | mant << 13);
}

uint16_t fp32_to_fp16(float f) {
    const uint32_t x = f32_bits(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
    const uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) {  // inf or nan (quieted)
        return sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0);
    }
    if (absx >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: overflow to inf
    if (absx < 0x38800000u) {                        // below the smallest normal half
        if (absx < 0x33000000u) return sign;         // below half the smallest subnormal
        const uint32_t e = absx >> 23;
        const uint32_t m = (absx & 0x7fffff) | 0x800000;
        const uint32_t shift = 126 - e;  // 14 + (113 - e)
        uint32_t h = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return sign | static_cast<uint16_t>(h);
    }
    uint32_t h = ((absx - 0x38000000u) >> 13);
    const uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return sign | static_cast<uint16_t>(h);
}

float bf16_to_fp32(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

void quantize_row_q8_0_ref(const float * x, block_q8_0 * y, int64_t n) {
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        for (int j = 0; j < QK; j++) y[b].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
    }
}

void finish_block_q8_s(block_q8_s * y) {
    int sum = 0;
    for (int i = 0; i < QK / 4; i++) {
        const int lane = y->qs[4 * i] + y->qs[4 * i + 1] + y->qs[4 * i + 2] + y->qs[4 * i + 3];
        y->bias[i] = (i < QK / 8 ? -8 : -128) * lane;
        sum += lane;
    }
    y->ds = y->d * static_cast<float>(sum);
}

void quantize_row_q8_s_ref(const float * x, block_q8_s * y, int64_t n) {
    block_q8_0 b;
    for (int64_t i = 0; i < n / QK; i++) {
        quantize_row_q8_0_ref(x + i * QK, &b, QK);
        y[i].d = fp16_to_fp32(b.d);
        std::memcpy(y[i].qs, b.qs, QK);
        finish_block_q8_s(&y[i]);
    }
}

void quantize_row_q4_0_ref(const float * x, block_q4_0 * y, int64_t n) {
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        float amax = 0.0f, max = 0.0f;  // max keeps the sign of the largest |x|
        for (int j = 0; j < QK; j++) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        for (int j = 0; j < QK / 2; j++) {
            const float x0 = x[j] * id;
            const float x1 = x[QK / 2 + j] * id;
            int xi0 = static_cast<int8_t>(x0 + 8.5f);
            int xi1 = static_cast<int8_t>(x1 + 8.5f);
            xi0 = xi0 < 15 ? xi0 : 15;
            xi1 = xi1 < 15 ? xi1 : 15;
            y[b].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
        }
    }
}

void quantize_row_q4_1_ref(const float * x, block_q4_1 * y, int64_t n) {
    for (int64_t b = 0; b < n / QK; b++, x += QK) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK; j++) {
            min = x[j] < min ? x[j] : min;
            max = x[j] > max ? x[j] : max;
        }
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        y[b].m = fp32_to_fp16(min);
        for (int j = 0; j < QK / 2; j++) {
            const float x0 = (x[j] - min) * id;
            const float x1 = (x[QK / 2 + j] - min) * id;
            int xi0 = static_cast<int8_t>(x0 + 0.5f);
            int xi1 = static_cast<int8_t>(x1 + 0.5f);
            xi0 = xi0 < 15 ? xi0 : 15;
            xi1 = xi1 < 15 ? xi1 : 15;
            y[b].qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
        }
    }
}

void dequantize_row(DType t, const void * src, float * dst, int64_t n) {
    switch (t) {
        case DType::F32:
            std::memcpy(dst, src, static_cast<size_t>(n) * 4);
            return;
        case DType::F16: {
            const uint16_t * s = static_cast<const uint16_t *>(src);
            for (int64_t i = 0; i < n; i++) dst[i] = fp16_to_fp32(s[i]);
            return;
        }
        case DType::BF16: {
            const uint16_t * s = static_cast<const uint16_t *>(src);
            for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_fp32(s[i]);
            return;
        }
        case DType::Q4_0: {
            const block_q4_0 * b = static_cast<const block_q4_0 *>(src);
            for (int64_t i = 0; i < n / QK; i++, dst += QK) {
                const float d = fp16_to_fp32(b[i].d);
                for (int j = 0; j < QK / 2; j++) {
                    dst[j] = d * static_cast<float>((b[i].qs[j] & 0x0f) - 8);
                    dst[j + QK / 2] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
                }
            }
            return;
        }
        case DType::Q4_1: {
            const block_q4_1 * b = static_cast<const block_q4_1 *>(src);
            for (int64_t i = 0; i < n / QK; i++, dst += QK) {
                const float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
                for (int j = 0; j < QK / 2; j++) {
                    dst[j] = d * static_cast<float>(b[i].qs[j] & 0x0f) + m;
                    dst[j + QK / 2] = d * static_cast<float>(b[i].qs[j] >> 4) + m;
                }
            }
            return;
        }
        case DType::Q8_0: {
            const block_q8_0 * b = static_cast<const block_q8_0 *>(src);
            for (int64_t i = 0; i < n / QK; i++, dst += QK) {
                const float d = fp16_to_fp32(b[i].d);
                for (int j = 0; j < QK; j++) dst[j] = d * static_cast<float>(b[i].qs[j]);
            }
            return;
        }
        default:
            break;
    }
    throw std::invalid_argument(std::string("cannot decode tensor type ") + type_name(t));
}

}  // namespace looplm
