// runtime/threads.h - a persistent thread pool for fork-join parallel loops.
//
// The caller is thread 0 and takes its share; workers spin briefly between jobs (an Ouro
// token crosses ~1,000 op boundaries, so a wake-up must be cheap) and sleep when idle.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace looplm {

class ThreadPool {
  public:
    explicit ThreadPool(int n_threads);  // n_threads >= 1
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool & operator=(const ThreadPool &) = delete;

    int size() const { return n_; }

    // Calls fn(ith, nth) once on every thread (ith = 0 on the caller) and returns when all
    // calls have returned. fn must not throw.
    template <typename F>
    void run(F && fn) {
        using Fn = typename std::remove_reference<F>::type;
        run_impl([](void * ctx, int ith, int nth) { (*static_cast<Fn *>(ctx))(ith, nth); }, &fn);
    }

    // Runs fn(begin, end) over contiguous shares of [0, rows): on the calling thread alone when
    // there are too few rows to be worth a fork-join.
    template <typename F>
    void for_rows(int64_t rows, F && fn);

  private:
    using Call = void (*)(void *, int, int);
    void run_impl(Call call, void * ctx);
    void worker(int ith);

    int n_;
    std::vector<std::thread> threads_;
    Call call_ = nullptr;
    void * ctx_ = nullptr;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<int> sleeping_{0};
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::condition_variable wake_;
};

// Splits [0, n) into nth contiguous ranges, each a multiple of `align` except the last.
struct Range {
    int64_t begin, end;
};
Range split_range(int64_t n, int ith, int nth, int64_t align = 1);

template <typename F>
void ThreadPool::for_rows(int64_t rows, F && fn) {
    if (rows < 4) {
        fn(int64_t(0), rows);
        return;
    }
    run([&](int ith, int nth) {
        const Range r = split_range(rows, ith, nth);
        if (r.begin < r.end) fn(r.begin, r.end);
    });
}

// Physical cores this process may run on (hyper-threads counted once); >= 1.
int physical_cores();

}  // namespace looplm
