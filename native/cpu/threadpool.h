// A persistent pool of worker threads with one primitive: parallel_for over [0, n).
// Items are handed out one at a time (a compare-and-swap on a word that holds the job's generation and the next item),
// so each item is computed by exactly one thread and results do not depend on the thread count; the caller takes items
// too, and waits for the items, not for the workers (a worker still asleep costs nothing). Idle workers spin for a
// while (AHA_SPIN_US, default 200 µs) before they sleep, so the back-to-back kernels of a decode step find them awake.
// AHA_NUM_THREADS overrides the hardware concurrency. Jobs do not nest: a parallel_for inside a parallel_for item
// runs inline.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace aha {

class ThreadPool {
 public:
  static ThreadPool& get();
  int size() const { return (int)workers_.size() + 1; }
  // fn(ctx, item) for item in [0, n); runs on the pool and the calling thread; returns when all are done.
  void run(long n, void (*fn)(void*, long), void* ctx);
  ~ThreadPool();

 private:
  explicit ThreadPool(int threads);
  void worker_loop();
  // claim and run items of generation gen until none is left; true if it ran any
  bool drain(uint64_t gen);
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  // the job (atomics: a worker may read them while run() writes the next job's; drain's claim sorts that out)
  std::atomic<void (*)(void*, long)> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<long> n_{0};
  std::atomic<uint64_t> next_{0};  // generation << 32 | next item
  std::atomic<long> done_{0};      // items finished in this generation
  std::atomic<int> sleepers_{0};
  uint64_t gen_ = 0;
  long spin_ns_;
  bool stop_ = false;
};

// true while this thread runs an item of a parallel_for
extern thread_local bool in_parallel;

template <class F> void parallel_for(long n, F&& fn) {
  if (n <= 0) return;
  if (n == 1 || in_parallel) { for (long i = 0; i < n; i++) fn(i); return; }
  ThreadPool::get().run(n, [](void* c, long i) { (*(F*)c)(i); }, (void*)&fn);
}

// threads in the pool (the caller included)
inline int pool_threads() { return ThreadPool::get().size(); }

}  // namespace aha
