// membw.h - the machine's memory read bandwidth, measured the way a decode streams weights:
// every thread reads its own part of a buffer much larger than the caches.
#pragma once

#include <cstddef>

#include "runtime/threads.h"

namespace looplm {

// Best-of-`reps` read bandwidth in bytes/s over a buffer of `bytes`, using every pool thread.
double read_bandwidth(ThreadPool & pool, size_t bytes, int reps);

}  // namespace looplm
