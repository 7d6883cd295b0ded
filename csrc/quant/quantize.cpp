// quantize.cpp - scalar reference quantizers, and dequantize_row over the traits table.
//
// Built with -ffp-contract=off so that x * id + 8.5f is never fused: the Q4_0/Q8_0
// bytes must equal gguf-py's (and ggml's) reference quantizers exactly.
#include "quant/quantize.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "quant/fp16.h"
#include "quant/traits.h"

namespace looplm {

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
    const TypeTraits & tr = traits(t);
    if (!tr.dequantize) throw std::invalid_argument(std::string("cannot decode tensor type ") + tr.name);
    tr.dequantize(src, dst, n);
}

}  // namespace looplm
