// Thread pool implementation (see threadpool.h).
#include "threadpool.h"
#include <cstdlib>

namespace aha {

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
  for (int i = 0; i < threads - 1; i++) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  { std::lock_guard<std::mutex> l(mu_); stop_ = true; }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop() {
  long seen = 0;
  for (;;) {
    const std::function<void(long)>* job;
    long n;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = n_;
    }
    for (long i = next_.fetch_add(1); i < n; i = next_.fetch_add(1)) (*job)(i);
    {
      std::lock_guard<std::mutex> l(mu_);
      if (++finished_ == (int)workers_.size()) done_cv_.notify_all();
    }
  }
}

void ThreadPool::parallel_for(long n, const std::function<void(long)>& fn) {
  if (workers_.empty()) { for (long i = 0; i < n; i++) fn(i); return; }
  {
    std::lock_guard<std::mutex> l(mu_);
    job_ = &fn;
    n_ = n;
    next_ = 0;
    finished_ = 0;
    generation_++;
  }
  cv_.notify_all();
  for (long i = next_.fetch_add(1); i < n; i = next_.fetch_add(1)) fn(i);
  std::unique_lock<std::mutex> l(mu_);
  // every worker takes part in every generation, so none can wake late and run a stale job
  done_cv_.wait(l, [&] { return finished_ == (int)workers_.size(); });
  job_ = nullptr;
}

}  // namespace aha
