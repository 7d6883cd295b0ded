// runtime/buffers.h - scratch buffers that grow to the largest size asked and are kept.
#pragma once

#include <cstdint>
#include <vector>

namespace looplm {

// v's data with room for n elements: resized when smaller, never shrunk.
template <typename T>
T * grow(std::vector<T> & v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
    return v.data();
}

}  // namespace looplm
