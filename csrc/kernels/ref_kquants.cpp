// kernels/ref_kquants.cpp - the scalar reference of the newer weight types: Q5_0 and Q5_1
// against block_q8_s activations (like Q4_0/Q4_1), the K-quants Q4_K, Q5_K and Q6_K against
// block_q8_K activations, and the Q8_K activation quantizer. Plain loops from ggml's block
// layouts (quant/blocks.h); ref.cpp makes its tile GEMMs of these dots. Integer sums
// are exact per block (per super-block for the K-quants); only the float sums over blocks
// may be ordered differently elsewhere. Built with -ffp-contract=off (the quantizer must be
// bit-exact with ggml's quantize_row_q8_K_ref, which rounds x * iscale before rounding it to
// an integer).
#include "kernels/ref_kquants.h"

#include <cmath>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/kpack.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace looplm {

namespace {

// Q5_0 / Q5_1: the five-bit quant of element j (0..31): the nibble plus bit j of qh as bit 4.
inline int q5(const uint8_t * qs, uint32_t qh, int j) {
    const int nib = j < QK / 2 ? qs[j] & 0x0f : qs[j - QK / 2] >> 4;
    return nib | static_cast<int>(((qh >> j) & 1u) << 4);
}

inline uint32_t load_qh(const uint8_t * p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;  // little-endian, as on disk
}

// ggml's get_scale_min_k4: the six-bit scale and min of sub-block j (0..7) of Q4_K/Q5_K.
inline void scale_min_k4(int j, const uint8_t * q, int & sc, int & m) {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q4_K / Q5_K: sub-block j (32 elements) has 4-bit quants in the low (j even) or high (j odd)
// nibbles of qs[32 (j / 2) ..], Q5_K's fifth bit is bit j of qh[l]. With sc_j, m_j:
//   sum_b d_w d_x sum_j sc_j sum_l q q_x  -  dmin_w d_x sum_j m_j (bsums[2j] + bsums[2j+1])
// (sum_l q_x of a sub-block is the sum of two of Q8_K's 16-element bsums).
// The sum above over nb super-blocks of w, the activations read through xq(b, e) (quant of
// element e of super-block b), xsum(b, j) (sum of sub-block j's quants) and xd(b) (scale), so
// the plain Q8_K dot and the packed layout's reference share one loop.
template <bool kFifthBit, typename WT, typename XQ, typename XSum, typename XD>
float sum_q45_K(int64_t nb, const WT * w, XQ xq, XSum xsum, XD xd) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int sumi = 0, summ = 0;
        for (int j = 0; j < QK_K / 32; j++) {
            int sc, m;
            scale_min_k4(j, w[b].scales, sc, m);
            const uint8_t * q = w[b].qs + 32 * (j / 2);
            int s = 0;
            for (int l = 0; l < 32; l++) {
                int v = j % 2 ? q[l] >> 4 : q[l] & 0x0f;
                if constexpr (kFifthBit) v |= ((w[b].qh[l] >> j) & 1) << 4;
                s += v * xq(b, 32 * j + l);
            }
            sumi += sc * s;
            summ += m * xsum(b, j);
        }
        sum += fp16_to_fp32(w[b].d) * xd(b) * static_cast<float>(sumi) -
               fp16_to_fp32(w[b].dmin) * xd(b) * static_cast<float>(summ);
    }
    return sum;
}

template <bool kFifthBit, typename WT>
float dot_q45_K(int64_t n, const void * vw, const void * vx) {
    const block_q8_K * x = static_cast<const block_q8_K *>(vx);
    return sum_q45_K<kFifthBit>(
        n / QK_K, static_cast<const WT *>(vw), [x](int64_t b, int e) { return static_cast<int>(x[b].qs[e]); },
        [x](int64_t b, int j) { return x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]; }, [x](int64_t b) { return x[b].d; });
}

// Q6_K element e (0..255) of a super-block: e = 128 h + 32 k + l (h half, k quarter, l < 32);
// low 4 bits in the low (k < 2) or high (k >= 2) nibble of ql[64 h + 32 (k % 2) + l], high 2
// bits at bit 2 k of qh[32 h + l]; scale scales[e / 16]; the value is q - 32.
inline int q6(const block_q6_K & w, int e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t lo = w.ql[64 * h + 32 * (k % 2) + l];
    const int low = k < 2 ? lo & 0x0f : lo >> 4;
    const int high = (w.qh[32 * h + l] >> (2 * k)) & 3;
    return (low | (high << 4)) - 32;
}

// The packed GEMM's scalar reference, one weight row against column c of a packed group:
// the same integer sums per sub-block as the dots above, the activation quants read back from
// the packed layout (qs - 128) and the sub-block sums from its pairs of bsums.
inline int packed_x(const block_q8_Kx8 & x, int c, int e) { return static_cast<int>(x.qs[e / 4][c][e % 4]) - 128; }

template <bool kFifthBit, typename WT>
float packed_dot_q45_K(int64_t nb, const WT * w, const block_q8_Kx8 * x, int c) {
    return sum_q45_K<kFifthBit>(
        nb, w, [x, c](int64_t b, int e) { return packed_x(x[b], c, e); },
        [x, c](int64_t b, int j) { return static_cast<int>(x[b].bsums[j / 2][c][j % 2]); },
        [x, c](int64_t b) { return x[b].d[c]; });
}

float packed_dot_q6_K(int64_t nb, const block_q6_K * w, const block_q8_Kx8 * x, int c) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int sumi = 0;
        for (int s = 0; s < QK_K / 16; s++) {
            int t = 0;
            for (int e = 16 * s; e < 16 * s + 16; e++) t += q6(w[b], e) * packed_x(x[b], c, e);
            sumi += w[b].scales[s] * t;
        }
        sum += fp16_to_fp32(w[b].d) * x[b].d[c] * static_cast<float>(sumi);
    }
    return sum;
}

template <typename Dot>
void packed_gemm(Dot dot, int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                 float * out, size_t ldo) {
    for (int64_t c = 0; c < nc; c++) {
        const block_q8_Kx8 * g = reinterpret_cast<const block_q8_Kx8 *>(static_cast<const char *>(x) + (c / 8) * xs);
        for (int64_t r = 0; r < nr; r++) {
            out[c * ldo + r] = dot(n / QK_K, static_cast<const char *>(w) + r * ws, g, static_cast<int>(c % 8));
        }
    }
}

}  // namespace

void pack_x8k_ref(int64_t n, const void * x, size_t xs, void * out) {
    block_q8_Kx8 * p = static_cast<block_q8_Kx8 *>(out);
    for (int64_t b = 0; b < n / QK_K; b++) {
        for (int c = 0; c < 8; c++) {
            const block_q8_K & xb = reinterpret_cast<const block_q8_K *>(static_cast<const char *>(x) + c * xs)[b];
            for (int e = 0; e < QK_K; e++) p[b].qs[e / 4][c][e % 4] = static_cast<uint8_t>(xb.qs[e] + 128);
            p[b].d[c] = xb.d;
            for (int j = 0; j < QK_K / 32; j++) {
                p[b].bsums[j / 2][c][j % 2] = static_cast<int16_t>(xb.bsums[2 * j] + xb.bsums[2 * j + 1]);
            }
        }
    }
}

size_t packed_x8k_bytes_ref(int64_t n) { return static_cast<size_t>(n / QK_K) * sizeof(block_q8_Kx8); }

void gemm8_q4_K_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                    float * out, size_t ldo) {
    packed_gemm([](int64_t nb, const void * wr, const block_q8_Kx8 * g,
                   int c) { return packed_dot_q45_K<false>(nb, static_cast<const block_q4_K *>(wr), g, c); },
                n, w, ws, nr, x, xs, nc, out, ldo);
}

void gemm8_q5_K_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                    float * out, size_t ldo) {
    packed_gemm([](int64_t nb, const void * wr, const block_q8_Kx8 * g,
                   int c) { return packed_dot_q45_K<true>(nb, static_cast<const block_q5_K *>(wr), g, c); },
                n, w, ws, nr, x, xs, nc, out, ldo);
}

void gemm8_q6_K_ref(int64_t n, const void * w, size_t ws, int64_t nr, const void * x, size_t xs, int64_t nc,
                    float * out, size_t ldo) {
    packed_gemm([](int64_t nb, const void * wr, const block_q8_Kx8 * g,
                   int c) { return packed_dot_q6_K(nb, static_cast<const block_q6_K *>(wr), g, c); },
                n, w, ws, nr, x, xs, nc, out, ldo);
}

// sum_b d_w d_x sum_j (q_w - 16) q_x
float dot_q5_0_ref(int64_t n, const void * vw, const void * vx) {
    const block_q5_0 * w = static_cast<const block_q5_0 *>(vw);
    const block_q8_s * x = static_cast<const block_q8_s *>(vx);
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        const uint32_t qh = load_qh(w[b].qh);
        int sumi = 0;
        for (int j = 0; j < QK; j++) sumi += (q5(w[b].qs, qh, j) - 16) * x[b].qs[j];
        sum += fp16_to_fp32(w[b].d) * x[b].d * static_cast<float>(sumi);
    }
    return sum;
}

// sum_b (d_w d_x sum_j q_w q_x + m_w ds_x)
float dot_q5_1_ref(int64_t n, const void * vw, const void * vx) {
    const block_q5_1 * w = static_cast<const block_q5_1 *>(vw);
    const block_q8_s * x = static_cast<const block_q8_s *>(vx);
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        const uint32_t qh = load_qh(w[b].qh);
        int sumi = 0;
        for (int j = 0; j < QK; j++) sumi += q5(w[b].qs, qh, j) * x[b].qs[j];
        sum += fp16_to_fp32(w[b].d) * x[b].d * static_cast<float>(sumi) + fp16_to_fp32(w[b].m) * x[b].ds;
    }
    return sum;
}

float dot_q4_K_ref(int64_t n, const void * w, const void * x) { return dot_q45_K<false, block_q4_K>(n, w, x); }
float dot_q5_K_ref(int64_t n, const void * w, const void * x) { return dot_q45_K<true, block_q5_K>(n, w, x); }

// sum_b d_w d_x sum_s scales[s] sum_{e in sub-block s} (q - 32) q_x
float dot_q6_K_ref(int64_t n, const void * vw, const void * vx) {
    const block_q6_K * w = static_cast<const block_q6_K *>(vw);
    const block_q8_K * x = static_cast<const block_q8_K *>(vx);
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int sumi = 0;
        for (int s = 0; s < QK_K / 16; s++) {
            int t = 0;
            for (int e = 16 * s; e < 16 * s + 16; e++) t += q6(w[b], e) * x[b].qs[e];
            sumi += w[b].scales[s] * t;
        }
        sum += fp16_to_fp32(w[b].d) * x[b].d * static_cast<float>(sumi);
    }
    return sum;
}

// ggml's quantize_row_q8_K_ref: max = the element of largest |x| (the first of equals, sign
// kept), iscale = -127 / max, q = nearest_int(iscale * x) (round half to even) capped at 127,
// d = 1 / iscale; an all-zero block has d = 0 and zero quants (ggml leaves its bsums unset;
// here they are 0, the sums of its quants).
void quantize_q8k_ref(const float * x, void * vy, int64_t n) {
    block_q8_K * y = static_cast<block_q8_K *>(vy);
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            const float ax = std::fabs(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        std::memset(&y[b], 0, sizeof(block_q8_K));
        if (amax == 0.0f) continue;
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            const float v = iscale * x[j];
            const int q = static_cast<int>(std::nearbyint(v));  // default rounding: half to even
            y[b].qs[j] = static_cast<int8_t>(q < 127 ? q : 127);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += y[b].qs[16 * j + l];
            y[b].bsums[j] = static_cast<int16_t>(s);
        }
        y[b].d = 1.0f / iscale;
    }
}

}  // namespace looplm
