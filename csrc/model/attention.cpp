// model/attention.cpp - softmax attention per (token, head) over the pool, F16 or F32 cache rows.
#include "model/attention.h"

#include <cmath>
#include <cstring>

namespace looplm {

void Attention::store_kv(KVCache & kv, int slot, const float * kr, const float * vr, const int32_t * pos,
                   int64_t rows) {
    const int64_t d = kv.kv_dim();
    pool_.for_rows(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
            if (kv.type() == DType::F16) {
                k_.f32_to_f16(d, kr + r * d, static_cast<uint16_t *>(kv.k(slot, pos[r])));
                k_.f32_to_f16(d, vr + r * d, static_cast<uint16_t *>(kv.v(slot, pos[r])));
            } else {
                std::memcpy(kv.k(slot, pos[r]), kr + r * d, static_cast<size_t>(d) * 4);
                std::memcpy(kv.v(slot, pos[r]), vr + r * d, static_cast<size_t>(d) * 4);
            }
        }
    });
}

void Attention::attend(const float * q, const KVCache & kv, int slot, const int32_t * pos, int64_t rows,
                    int n_head, int n_head_kv, int head_dim, float * out) {
    const int group = n_head / n_head_kv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    const bool f16 = kv.type() == DType::F16;
    int64_t max_pos = 0;
    for (int64_t r = 0; r < rows; r++) max_pos = pos[r] > max_pos ? pos[r] : max_pos;
    for (auto & s : scratch_) {
        if (static_cast<int64_t>(s.size()) < max_pos + 1) s.resize(static_cast<size_t>(max_pos + 1));
    }
    pool_.run([&](int ith, int nth) {
        float * scores = scratch_[static_cast<size_t>(ith)].data();
        const Range range = split_range(rows * n_head, ith, nth);
        for (int64_t task = range.begin; task < range.end; task++) {
            const int64_t r = task / n_head;
            const int h = static_cast<int>(task % n_head);
            const int64_t off = static_cast<int64_t>(h / group) * head_dim;  // kv head offset
            const float * qh = q + (r * n_head + h) * head_dim;
            const int64_t n_pos = pos[r] + 1;
            float max_s = -INFINITY;
            for (int64_t t = 0; t < n_pos; t++) {
                const float s = f16 ? k_.dot_f16_f32(head_dim, static_cast<const uint16_t *>(kv.k(slot, t)) + off, qh)
                                    : k_.dot_f32(head_dim, static_cast<const float *>(kv.k(slot, t)) + off, qh);
                scores[t] = s * scale;
                max_s = scores[t] > max_s ? scores[t] : max_s;
            }
            float sum = 0.0f;
            for (int64_t t = 0; t < n_pos; t++) {
                scores[t] = std::exp(scores[t] - max_s);
                sum += scores[t];
            }
            float * o = out + (r * n_head + h) * head_dim;
            std::memset(o, 0, static_cast<size_t>(head_dim) * sizeof(float));
            const float inv = 1.0f / sum;
            for (int64_t t = 0; t < n_pos; t++) {
                if (f16) k_.axpy_f16(head_dim, scores[t] * inv, static_cast<const uint16_t *>(kv.v(slot, t)) + off, o);
                else k_.axpy_f32(head_dim, scores[t] * inv, static_cast<const float *>(kv.v(slot, t)) + off, o);
            }
        }
    });
}

}  // namespace looplm
