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

// One field of a plain block: `chunks` chunks of `bytes` bytes from offset `off`. In a
// group-block the field's chunk c of row r lies at (c * 16 + r) * bytes from the field's start,
// the fields following each other in the table's order (kernels/x16.h; Q6_K puts its d first).
struct Field {
    size_t off, bytes, chunks;
};

struct PlainBlock {
    size_t bytes;   // sizeof the plain block
    int64_t elems;  // elements per block
    int nfields;
    Field fields[4];
};

PlainBlock plain_block(DType t) {
    if (t == DType::Q4_0) return {sizeof(block_q4_0), QK, 2, {{0, 2, 1}, {offsetof(block_q4_0, qs), 4, QK / 8}}};
    if (t == DType::Q4_1) {
        return {sizeof(block_q4_1), QK, 3, {{0, 2, 1}, {2, 2, 1}, {offsetof(block_q4_1, qs), 4, QK / 8}}};
    }
    if (t == DType::Q4_K) {
        return {sizeof(block_q4_K),
                QK_K,
                4,
                {{0, 2, 1},
                 {2, 2, 1},
                 {offsetof(block_q4_K, scales), 4, K_SCALE_SIZE / 4},
                 {offsetof(block_q4_K, qs), 4, QK_K / 8}}};
    }
    if (t == DType::Q6_K) {
        return {sizeof(block_q6_K),
                QK_K,
                4,
                {{offsetof(block_q6_K, d), 2, 1},
                 {offsetof(block_q6_K, scales), 2, QK_K / 16 / 2},
                 {offsetof(block_q6_K, ql), 4, QK_K / 2 / 4},
                 {offsetof(block_q6_K, qh), 4, QK_K / 4 / 4}}};
    }
    throw std::invalid_argument(std::string("no x16 layout for ") + type_name(t));
}

// One group: 16 plain rows (rs bytes apart) <-> nb group-blocks, direction by `to_x16`.
void convert_group(const PlainBlock & p, const uint8_t * src, uint8_t * dst, int64_t nb, size_t rs, bool to_x16) {
    const size_t gb = kX16Rows * p.bytes;  // bytes of one group-block
    for (int64_t b = 0; b < nb; b++) {
        size_t fo = b * gb;  // the field's start in the group
        for (int f = 0; f < p.nfields; f++) {
            const Field & fl = p.fields[f];
            for (int r = 0; r < kX16Rows; r++) {
                const size_t po = r * rs + b * p.bytes + fl.off;  // the field in row r's plain block b
                for (size_t c = 0; c < fl.chunks; c++) {
                    const size_t go = fo + (c * kX16Rows + r) * fl.bytes;
                    if (to_x16) {
                        std::memcpy(dst + go, src + po + c * fl.bytes, fl.bytes);
                    } else {
                        std::memcpy(dst + po + c * fl.bytes, src + go, fl.bytes);
                    }
                }
            }
            fo += kX16Rows * fl.bytes * fl.chunks;
        }
    }
}

void convert(DType t, const void * src, void * dst, int64_t n, int64_t rows, bool to_x16) {
    const PlainBlock p = plain_block(t);
    if (n % p.elems != 0 || rows < 0) {
        throw std::invalid_argument(std::string("repack_x16: ") + type_name(t) + " rows must be a multiple of " +
                                    std::to_string(p.elems) + " elements");
    }
    const int64_t nb = n / p.elems;
    const size_t rs = static_cast<size_t>(nb) * p.bytes;
    const uint8_t * s = static_cast<const uint8_t *>(src);
    uint8_t * d = static_cast<uint8_t *>(dst);
    const int64_t ng = rows / kX16Rows;
    for (int64_t g = 0; g < ng; g++) {
        const size_t off = static_cast<size_t>(g) * kX16Rows * rs;
        convert_group(p, s + off, d + off, nb, rs, to_x16);
    }
    const size_t done = static_cast<size_t>(ng) * kX16Rows * rs;
    std::memcpy(d + done, s + done, static_cast<size_t>(rows - ng * kX16Rows) * rs);
}

}  // namespace

bool has_x16_layout(DType t) { return t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q4_K || t == DType::Q6_K; }

void repack_x16(DType t, const void * src, void * dst, int64_t n, int64_t rows) { convert(t, src, dst, n, rows, true); }

void unpack_x16(DType t, const void * src, void * dst, int64_t n, int64_t rows) {
    convert(t, src, dst, n, rows, false);
}

}  // namespace looplm
