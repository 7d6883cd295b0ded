// kquant.cpp - the K-quant quantizers (docs/gguf-format.md, "K-quants").
//
// A super-block of 256 values is cut into sub-blocks (8 of 32 for Q4_K/Q5_K, 16 of 16 for
// Q6_K). Each sub-block gets its own scale (and, Q4_K/Q5_K, minimum) from a small search; the
// sub-block scales are then themselves quantized to 6 bits (8 bits for Q6_K) against one fp16
// super-block scale, and the values are re-quantized with the scales as stored.
//
// The searches are the ones llama.cpp's reference quantizers use (no importance matrix):
//   asymmetric (Q4_K, Q5_K): x ~ s * q + m, q in 0..nmax, m <= 0. Candidate inverse scales
//     (nmax + rmin + k * rdelta) / (max - min) for k = 0..nstep; for each, q = round((x - min) * iscale)
//     and (s, m) the weighted least-squares fit for those q; weights |x| + rms(x). The fit with the
//     smallest weighted squared error wins (the plain min/max grid is the starting point).
//   symmetric (Q6_K): x ~ s * q, q in -nmax..nmax-1. Candidate inverse scales -(nmax + k/10) / max
//     for k = -9..9 (max the value of largest magnitude); s the least-squares fit weighted by x^2;
//     the candidate that maximises (sum w x q)^2 / sum w q^2 (the error reduction) wins.
// Built with -ffp-contract=off like the other quantizers.
#include "quant/kquant.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "quant/decode.h"
#include "quant/fp16.h"
#include "quant/quantize.h"
#include "quant/traits.h"

namespace looplm {

namespace {

constexpr float kTiny = 1e-15f;  // below this a group is treated as all zero

// Round to nearest, ties to even (the default rounding mode), for |v| < 2^22.
inline int round_int(float v) { return static_cast<int>(std::nearbyint(v)); }

inline int clamp(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Asymmetric fit of n values: q[i] in 0..nmax with x ~ scale * q + m. Returns scale and stores
// -m (>= 0) in *neg_min.
float fit_scale_min(int n, int nmax, const float * x, const float * w, uint8_t * q, float * neg_min, float rmin,
                    float rdelta, int nstep) {
    float lo = x[0], hi = x[0], sw = w[0], swx = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        sw += w[i];
        swx += w[i] * x[i];
    }
    if (lo > 0) lo = 0;  // the minimum is never positive: 0 must stay representable
    if (hi == lo) {
        std::memset(q, 0, static_cast<size_t>(n));
        *neg_min = -lo;
        return 0.0f;
    }
    float iscale = nmax / (hi - lo);
    float scale = 1 / iscale, m = lo;
    float best = 0;
    for (int i = 0; i < n; i++) {
        q[i] = static_cast<uint8_t>(clamp(round_int(iscale * (x[i] - lo)), 0, nmax));
        const float e = scale * q[i] + m - x[i];
        best += w[i] * (e * e);
    }
    uint8_t cand[32];
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * k + nmax) / (hi - lo);
        float sl = 0, sll = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp(round_int(iscale * (x[i] - lo)), 0, nmax);
            cand[i] = static_cast<uint8_t>(l);
            sl += w[i] * l;
            sll += w[i] * l * l;
            sxl += w[i] * l * x[i];
        }
        const float det = sw * sll - sl * sl;
        if (!(det > 0)) continue;
        float s = (sw * sxl - swx * sl) / det;
        float mm = (sll * swx - sl * sxl) / det;
        if (mm > 0) {  // refit without an offset
            mm = 0;
            s = sxl / sll;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            const float e = s * cand[i] + mm - x[i];
            err += w[i] * (e * e);
        }
        if (err < best) {
            std::memcpy(q, cand, static_cast<size_t>(n));
            best = err;
            scale = s;
            m = mm;
        }
    }
    *neg_min = -m;
    return scale;
}

// Symmetric fit of n values: q[i] in 0..2*nmax-1 stores l + nmax with x ~ scale * l.
float fit_scale(int n, int nmax, const float * x, int8_t * q) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; i++) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            vmax = x[i];
        }
    }
    if (amax < kTiny) {
        std::memset(q, 0, static_cast<size_t>(n));
        return 0.0f;
    }
    auto sums = [&](float iscale, float * sxl, float * sll) {
        *sxl = *sll = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp(round_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            *sxl += w * x[i] * l;
            *sll += w * l * l;
        }
    };
    auto store = [&](float iscale) {
        for (int i = 0; i < n; i++) q[i] = static_cast<int8_t>(nmax + clamp(round_int(iscale * x[i]), -nmax, nmax - 1));
    };
    float iscale = -nmax / vmax, sxl, sll;
    sums(iscale, &sxl, &sll);
    store(iscale);
    float scale = sll ? sxl / sll : 0.0f;
    float best = scale * sxl;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        iscale = -(nmax + 0.1f * k) / vmax;
        sums(iscale, &sxl, &sll);
        if (sll > 0 && sxl * sxl > best * sll) {
            store(iscale);
            scale = sxl / sll;
            best = scale * sxl;
        }
    }
    return scale;
}

// Q4_K/Q5_K: the eight sub-block (scale, min) pairs of one super-block, the packed 6-bit
// scales and the final quants q[256] in 0..nmax.
template <typename Block>
void quantize_super_block_k(const float * x, Block & y, int nmax, float rmin, int nstep, uint8_t * q) {
    float scales[8], mins[8], w[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float * xs = x + 32 * j;
        float ss = 0;
        for (int l = 0; l < 32; l++) ss += xs[l] * xs[l];
        const float rms = std::sqrt(ss / 32);
        for (int l = 0; l < 32; l++) w[l] = rms + std::fabs(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, w, q + 32 * j, &mins[j], rmin, 0.1f, nstep);
        max_scale = scales[j] > max_scale ? scales[j] : max_scale;
        max_min = mins[j] > max_min ? mins[j] : max_min;
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::memset(y.scales, 0, sizeof(y.scales));
    for (int j = 0; j < 8; j++) {
        const int ls = clamp(round_int(inv_scale * scales[j]), 0, 63);
        const int lm = clamp(round_int(inv_min * mins[j]), 0, 63);
        if (j < 4) {  // the layout kquant_scale_min reads
            y.scales[j] = static_cast<uint8_t>(ls);
            y.scales[j + 4] = static_cast<uint8_t>(lm);
        } else {
            y.scales[j + 4] = static_cast<uint8_t>((ls & 0x0f) | ((lm & 0x0f) << 4));
            y.scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
            y.scales[j] |= static_cast<uint8_t>((lm >> 4) << 6);
        }
    }
    y.d = fp32_to_fp16(max_scale / 63.f);
    y.dmin = fp32_to_fp16(max_min / 63.f);
    // Re-quantize against the scales as stored.
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        kquant_scale_min(j, y.scales, &sc, &mn);
        const float d = fp16_to_fp32(y.d) * sc;
        if (!d) continue;
        const float dm = fp16_to_fp32(y.dmin) * mn;
        for (int l = 0; l < 32; l++) q[32 * j + l] = static_cast<uint8_t>(clamp(round_int((x[32 * j + l] + dm) / d), 0, nmax));
    }
}

void check_row(int64_t n, int64_t block, const char * type) {
    if (n % block != 0) {
        throw std::invalid_argument("row length " + std::to_string(n) + " is not a multiple of the " + type +
                                    " block size " + std::to_string(block));
    }
}

}  // namespace

void quantize_row_q4_K(const float * x, block_q4_K * y, int64_t n) {
    uint8_t q[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        quantize_super_block_k(x, y[b], 15, -1.0f, 20, q);
        for (int j = 0; j < QK_K / 64; j++) {  // 32 bytes: sub-block 2j low nibbles, 2j+1 high
            for (int l = 0; l < 32; l++) y[b].qs[32 * j + l] = static_cast<uint8_t>(q[64 * j + l] | (q[64 * j + 32 + l] << 4));
        }
    }
}

void quantize_row_q5_K(const float * x, block_q5_K * y, int64_t n) {
    uint8_t q[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        quantize_super_block_k(x, y[b], 31, -0.5f, 15, q);
        std::memset(y[b].qh, 0, sizeof(y[b].qh));
        for (int j = 0; j < QK_K / 64; j++) {
            for (int l = 0; l < 32; l++) {
                const int lo = q[64 * j + l], hi = q[64 * j + 32 + l];
                y[b].qs[32 * j + l] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
                y[b].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * j)) | ((hi >> 4) << (2 * j + 1)));
            }
        }
    }
}

void quantize_row_q6_K(const float * x, block_q6_K * y, int64_t n) {
    int8_t q[QK_K];
    float scales[QK_K / 16];
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float max_scale = 0, max_abs = 0;
        for (int j = 0; j < QK_K / 16; j++) {
            scales[j] = fit_scale(16, 32, x + 16 * j, q + 16 * j);
            if (std::fabs(scales[j]) > max_abs) {
                max_abs = std::fabs(scales[j]);
                max_scale = scales[j];
            }
        }
        std::memset(&y[b], 0, sizeof(y[b]));
        if (max_abs < kTiny) continue;  // all zero: d = 0
        const float iscale = -128.f / max_scale;
        y[b].d = fp32_to_fp16(1 / iscale);
        for (int j = 0; j < QK_K / 16; j++) {
            y[b].scales[j] = static_cast<int8_t>(clamp(round_int(iscale * scales[j]), -128, 127));
        }
        for (int j = 0; j < QK_K / 16; j++) {  // re-quantize against the stored scales
            const float d = fp16_to_fp32(y[b].d) * y[b].scales[j];
            if (!d) continue;
            for (int l = 0; l < 16; l++) q[16 * j + l] = static_cast<int8_t>(clamp(round_int(x[16 * j + l] / d), -32, 31) + 32);
        }
        // Each half of 128: ql[l] = q[l] | q[l+64] << 4, ql[l+32] = q[l+32] | q[l+96] << 4, and
        // qh[l] the top two bits of q[l], q[l+32], q[l+64], q[l+96].
        for (int h = 0; h < 2; h++) {
            const int8_t * qq = q + 128 * h;
            uint8_t * ql = y[b].ql + 64 * h;
            uint8_t * qh = y[b].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = static_cast<uint8_t>((qq[l] & 0x0f) | ((qq[l + 64] & 0x0f) << 4));
                ql[l + 32] = static_cast<uint8_t>((qq[l + 32] & 0x0f) | ((qq[l + 96] & 0x0f) << 4));
                qh[l] = static_cast<uint8_t>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) | ((qq[l + 64] >> 4) << 4) |
                                             ((qq[l + 96] >> 4) << 6));
            }
        }
    }
}

void quantize_row(DType t, const float * x, void * y, int64_t n) {
    switch (t) {
        case DType::Q4_K:
            check_row(n, QK_K, "Q4_K");
            return quantize_row_q4_K(x, static_cast<block_q4_K *>(y), n);
        case DType::Q5_K:
            check_row(n, QK_K, "Q5_K");
            return quantize_row_q5_K(x, static_cast<block_q5_K *>(y), n);
        case DType::Q6_K:
            check_row(n, QK_K, "Q6_K");
            return quantize_row_q6_K(x, static_cast<block_q6_K *>(y), n);
        case DType::Q8_0:
            check_row(n, QK, "Q8_0");
            return quantize_row_q8_0_ref(x, static_cast<block_q8_0 *>(y), n);
        case DType::Q4_0:
            check_row(n, QK, "Q4_0");
            return quantize_row_q4_0_ref(x, static_cast<block_q4_0 *>(y), n);
        case DType::Q4_1:
            check_row(n, QK, "Q4_1");
            return quantize_row_q4_1_ref(x, static_cast<block_q4_1 *>(y), n);
        default:
            throw std::invalid_argument(std::string("looplm cannot quantize to ") + type_name(t));
    }
}

}  // namespace looplm
