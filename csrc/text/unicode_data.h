// unicode_data.h - Unicode code point classes for the tokenizer's pre-tokenizer.
//
// The tables behind codepoint_class() are generated into unicode_data.cpp by
// scripts/gen_unicode_data.py; regenerate rather than edit them.
#pragma once

#include <cstdint>

namespace looplm {

// The classes the GPT-2 pre-tokenizer regex distinguishes.
enum CodepointClass : uint8_t {
    CP_OTHER = 0,   // anything else, including unassigned code points
    CP_LETTER = 1,  // \p{L}: general categories Lu, Ll, Lt, Lm, Lo
    CP_NUMBER = 2,  // \p{N}: general categories Nd, Nl, No
    CP_SPACE = 3,   // \s: the White_Space property
};

// The Unicode version the tables were generated from, e.g. "16.0.0".
extern const char * const kUnicodeVersion;

// Class of a code point; values above U+10FFFF are CP_OTHER.
CodepointClass codepoint_class(uint32_t cp);

}  // namespace looplm
