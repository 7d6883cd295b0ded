// quant/repack.cpp - plain rows <-> the x16 layout of kernels/x16.h.
#include "quant/repack.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/x16.h"
#include "quant/blocks.h"
#include "quant/traits.h"

namespace looplm {

namespace {

// The scale (and Q4_1's minimum) and quants of one plain block, as offsets into it.
struct PlainBlock {
    size_t bytes;     // sizeof the plain block
    bool has_min;     // Q4_1
    size_t qs_off;    // offset of qs in the plain block
};

PlainBlock plain_block(DType t) {
    if (t == DType::Q4_0) return {sizeof(block_q4_0), false, offsetof(block_q4_0, qs)};
    if (t == DType::Q4_1) return {sizeof(block_q4_1), true, offsetof(block_q4_1, qs)};
    throw std::invalid_argument(std::string("no x16 layout for ") + type_name(t));
}

// One group: 16 plain rows <-> nb group-blocks, direction by `to_x16`.
void convert_group(const PlainBlock & p, const uint8_t * plain_rows, uint8_t * group, int64_t nb, size_t rs,
                   bool to_x16, const uint8_t * src_group, uint8_t * dst_rows) {
    const size_t gb = kX16Rows * p.bytes;           // bytes of one group-block
    const size_t qs0 = (p.has_min ? 4 : 2) * kX16Rows;  // offset of qs[4][16][4] in it
    for (int64_t b = 0; b < nb; b++) {
        for (int r = 0; r < kX16Rows; r++) {
            const size_t po = r * rs + b * p.bytes;  // row r's plain block b
            const size_t go = b * gb;
            if (to_x16) {
                std::memcpy(group + go + 2 * r, plain_rows + po, 2);
                if (p.has_min) std::memcpy(group + go + 2 * kX16Rows + 2 * r, plain_rows + po + 2, 2);
                for (int c = 0; c < 4; c++)
                    std::memcpy(group + go + qs0 + (c * kX16Rows + r) * 4, plain_rows + po + p.qs_off + 4 * c, 4);
            } else {
                std::memcpy(dst_rows + po, src_group + go + 2 * r, 2);
                if (p.has_min) std::memcpy(dst_rows + po + 2, src_group + go + 2 * kX16Rows + 2 * r, 2);
                for (int c = 0; c < 4; c++)
                    std::memcpy(dst_rows + po + p.qs_off + 4 * c, src_group + go + qs0 + (c * kX16Rows + r) * 4, 4);
            }
        }
    }
}

void convert(DType t, const void * src, void * dst, int64_t n, int64_t rows, bool to_x16) {
    const PlainBlock p = plain_block(t);
    if (n % QK != 0 || rows < 0) throw std::invalid_argument("repack_x16: n must be a multiple of 32");
    const int64_t nb = n / QK;
    const size_t rs = static_cast<size_t>(nb) * p.bytes;
    const uint8_t * s = static_cast<const uint8_t *>(src);
    uint8_t * d = static_cast<uint8_t *>(dst);
    const int64_t ng = rows / kX16Rows;
    for (int64_t g = 0; g < ng; g++) {
        const size_t off = static_cast<size_t>(g) * kX16Rows * rs;
        convert_group(p, s + off, d + off, nb, rs, to_x16, s + off, d + off);
    }
    const size_t done = static_cast<size_t>(ng) * kX16Rows * rs;
    std::memcpy(d + done, s + done, static_cast<size_t>(rows - ng * kX16Rows) * rs);
}

}  // namespace

bool has_x16_layout(DType t) { return t == DType::Q4_0 || t == DType::Q4_1; }

void repack_x16(DType t, const void * src, void * dst, int64_t n, int64_t rows) { convert(t, src, dst, n, rows, true); }

void unpack_x16(DType t, const void * src, void * dst, int64_t n, int64_t rows) {
    convert(t, src, dst, n, rows, false);
}

}  // namespace looplm
