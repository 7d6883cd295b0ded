// threads.cpp - the fork-join pool: spin-then-sleep workers, one generation counter.
#include "runtime/threads.h"

#include <chrono>
#include <fstream>
#include <sched.h>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define LOOPLM_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define LOOPLM_PAUSE() __asm__ __volatile__("yield")
#else
#define LOOPLM_PAUSE() ((void)0)
#endif

namespace looplm {

namespace {
// How long an idle worker spins before it sleeps: long enough to bridge the serial gaps
// between the ops of one forward pass, short enough not to burn a core between calls.
constexpr auto kSpin = std::chrono::microseconds(2000);
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_(n_threads < 1 ? 1 : n_threads) {
    threads_.reserve(static_cast<size_t>(n_ - 1));
    try {
        for (int i = 1; i < n_; i++) threads_.emplace_back(&ThreadPool::worker, this, i);
    } catch (const std::system_error & e) {
        // Out of threads (ulimit, cgroup pids, memory): the workers already started wait on
        // wake_ and must be stopped and joined, or destroying wake_ blocks for ever.
        const size_t started = threads_.size() + 1;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_.store(true);
            generation_.fetch_add(1);
        }
        wake_.notify_all();
        for (std::thread & t : threads_) t.join();
        throw std::runtime_error("cannot start " + std::to_string(n_) + " threads (" + std::to_string(started) +
                                 " started): " + e.what());
    }
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true);
        generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (std::thread & t : threads_) t.join();
}

void ThreadPool::run_impl(Call call, void * ctx) {
    if (n_ == 1) {
        call(ctx, 0, 1);
        return;
    }
    call_ = call;
    ctx_ = ctx;
    pending_.store(n_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> lock(mutex_);
        wake_.notify_all();
    }
    call(ctx, 0, n_);
    for (uint64_t spins = 0; pending_.load(std::memory_order_acquire) != 0; spins++) {
        LOOPLM_PAUSE();
        if ((spins & 0x3ff) == 0x3ff) std::this_thread::yield();  // a worker was descheduled
    }
}

void ThreadPool::worker(int ith) {
    uint64_t seen = 0;
    for (;;) {
        auto start = std::chrono::steady_clock::now();
        for (uint64_t spins = 0; generation_.load(std::memory_order_acquire) == seen; spins++) {
            LOOPLM_PAUSE();
            if ((spins & 0xff) != 0xff) continue;
            if (std::chrono::steady_clock::now() - start < kSpin) {
                if ((spins & 0xfff) == 0xfff) std::this_thread::yield();
                continue;
            }
            std::unique_lock<std::mutex> lock(mutex_);
            sleeping_.fetch_add(1, std::memory_order_seq_cst);
            wake_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
            sleeping_.fetch_sub(1, std::memory_order_seq_cst);
            break;
        }
        seen = generation_.load(std::memory_order_acquire);
        if (stop_.load()) return;
        call_(ctx_, ith, n_);
        pending_.fetch_sub(1, std::memory_order_release);
    }
}

Range split_range(int64_t n, int ith, int nth, int64_t align) {
    const int64_t units = (n + align - 1) / align;
    const int64_t per = units / nth, extra = units % nth;
    const int64_t b = ith * per + (ith < extra ? ith : extra);
    const int64_t e = b + per + (ith < extra ? 1 : 0);
    return {b * align < n ? b * align : n, e * align < n ? e * align : n};
}

int physical_cores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) {
        const unsigned hc = std::thread::hardware_concurrency();
        return hc ? static_cast<int>(hc) : 1;
    }
    std::set<std::string> cores;
    int logical = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        logical++;
        std::ifstream f("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/thread_siblings_list");
        std::string siblings;
        if (f && std::getline(f, siblings))
            cores.insert(siblings);
        else
            cores.insert("cpu" + std::to_string(cpu));
    }
    const int n = static_cast<int>(cores.size());
    return n > 0 ? n : (logical > 0 ? logical : 1);
}

}  // namespace looplm
