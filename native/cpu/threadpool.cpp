// Thread pool implementation (see threadpool.h).
#include "threadpool.h"
#include <chrono>
#include <cstdlib>

namespace aha {

thread_local bool in_parallel = false;

namespace {
inline void relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
// the item part of next_ while run() writes a job's function and size: nothing can be claimed
constexpr long kClosed = 0xffffffffL;
long now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

ThreadPool& ThreadPool::get() {
  static ThreadPool* pool = [] {
    int n = (int)std::thread::hardware_concurrency();
    if (const char* e = std::getenv("AHA_NUM_THREADS")) n = std::atoi(e);
    if (n < 1) n = 1;
    return new ThreadPool(n);
  }();
  return *pool;
}

ThreadPool::ThreadPool(int threads) {
  const char* s = std::getenv("AHA_SPIN_US");
  spin_ns_ = (s ? std::atol(s) : 200) * 1000;
  for (int i = 0; i < threads - 1; i++) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  { std::lock_guard<std::mutex> l(mu_); stop_ = true; }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

bool ThreadPool::drain(uint64_t gen) {
  bool any = false;
  in_parallel = true;
  uint64_t w = next_.load(std::memory_order_acquire);
  for (;;) {
    if ((w >> 32) != gen) break;
    const long i = (long)(w & 0xffffffffu);
    if (i == kClosed) { relax(); w = next_.load(std::memory_order_acquire); continue; }  // being set up
    if (i >= n_.load(std::memory_order_relaxed)) break;
    // a successful claim proves the job is still this generation's, so fn_ / ctx_ read below are its own
    if (!next_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    fn_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), i);
    done_.fetch_add(1, std::memory_order_release);
    any = true;
    w = next_.load(std::memory_order_acquire);
  }
  in_parallel = false;
  return any;
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = next_.load(std::memory_order_acquire) >> 32;
    if (g == seen) {
      const long t0 = now_ns();
      long spins = 0;
      while ((g = next_.load(std::memory_order_acquire) >> 32) == seen) {
        relax();
        if ((++spins & 255) == 0 && now_ns() - t0 > spin_ns_) {
          std::unique_lock<std::mutex> l(mu_);
          sleepers_.fetch_add(1);
          cv_.wait(l, [&] { return stop_ || (next_.load() >> 32) != seen; });
          sleepers_.fetch_sub(1);
          if (stop_) return;
        }
      }
    }
    seen = g;
    drain(g);
  }
}

void ThreadPool::run(long n, void (*fn)(void*, long), void* ctx) {
  if (workers_.empty()) { for (long i = 0; i < n; i++) fn(ctx, i); return; }
  const uint64_t gen = ++gen_ & 0xffffffffu;
  // closed first, so a worker holding an old word can claim nothing while the job's fields change (drain)
  next_.store(gen << 32 | kClosed);
  fn_.store(fn, std::memory_order_relaxed);
  ctx_.store(ctx, std::memory_order_relaxed);
  n_.store(n, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  next_.store(gen << 32);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> l(mu_);  // (a worker between its check and its wait holds the lock)
    cv_.notify_all();
  }
  drain(gen);
  while (done_.load(std::memory_order_acquire) < n) relax();
}

}  // namespace aha
