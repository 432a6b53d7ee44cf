// A persistent pool of worker threads with one primitive: parallel_for over [0, n).
// Work items are handed out by an atomic counter; each item is computed by exactly one thread, so results do not
// depend on the thread count. AHA_NUM_THREADS overrides the hardware concurrency.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace aha {

class ThreadPool {
 public:
  static ThreadPool& get();
  int size() const { return (int)workers_.size() + 1; }
  // fn(item) for item in [0, n); runs on the pool and the calling thread; returns when all are done.
  void parallel_for(long n, const std::function<void(long)>& fn);
  ~ThreadPool();

 private:
  explicit ThreadPool(int threads);
  void worker_loop();
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(long)>* job_ = nullptr;
  long n_ = 0;
  std::atomic<long> next_{0};
  int finished_ = 0;
  long generation_ = 0;
  bool stop_ = false;
};

inline void parallel_for(long n, const std::function<void(long)>& fn) {
  if (n <= 1) { if (n == 1) fn(0); return; }
  ThreadPool::get().parallel_for(n, fn);
}

}  // namespace aha
