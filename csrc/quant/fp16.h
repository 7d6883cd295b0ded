// fp16.h - IEEE half and bfloat16 conversions, scalar and out of line (see the SIGILL note in
// kernels/kernels.h: ISA files may call these, never instantiate them).
#pragma once

#include <cstdint>

namespace looplm {

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even, like F16C
float bf16_to_fp32(uint16_t h);

}  // namespace looplm
