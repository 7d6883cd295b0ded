// runtime/fault.cpp - see fault.h.
#include "runtime/fault.h"

#include <atomic>
#include <cstring>
#include <mutex>
#include <new>

namespace looplm::fault {

namespace {
std::atomic<bool> armed{false};
std::mutex mu;
std::string armed_stage;
int64_t countdown = 0;
}  // namespace

void arm(const std::string & stage, int64_t nth) {
    std::lock_guard<std::mutex> lock(mu);
    armed_stage = stage;
    countdown = nth;
    armed.store(nth > 0, std::memory_order_relaxed);
}

void point(const char * stage) {
    if (!armed.load(std::memory_order_relaxed)) return;
    std::lock_guard<std::mutex> lock(mu);
    if (countdown <= 0 || armed_stage != stage) return;
    if (--countdown == 0) {
        armed.store(false, std::memory_order_relaxed);
        throw std::bad_alloc();
    }
}

}  // namespace looplm::fault
