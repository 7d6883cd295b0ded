// kernels/kscales.h - the unpacking of Q4_K/Q5_K's twelve bytes of six-bit scales and mins
// (ggml's get_scale_min_k4, for all eight sub-blocks at once), for every kernel set. One
// `static` function (internal linkage in every file that includes it, so ISA files may: see
// the SIGILL note in kernels/kernels.h).
#pragma once

#include <cstdint>
#include <cstring>

namespace looplm {

// out bytes 0..7: the scales of sub-blocks 0..7; bytes 8..15: their mins.
static inline void unpack_k4_scales(const uint8_t * scales, uint32_t out[4]) {
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t u[3];
    std::memcpy(u, scales, 12);
    out[0] = u[0] & m6;                                       // scales 0..3: low 6 bits of bytes 0..3
    out[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);         // scales 4..7: nibbles of 8..11, top bits of 0..3
    out[2] = u[1] & m6;                                       // mins 0..3: low 6 bits of bytes 4..7
    out[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);  // mins 4..7
}

}  // namespace looplm
