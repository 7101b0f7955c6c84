#include "backend/cpu/threads.h"

#include <omp.h>

#include <algorithm>
#include <map>
#include <memory>

namespace tessera::cpu {

int default_threads() { return std::max(1, omp_get_num_procs()); }

void set_thread_count(int threads) { omp_set_num_threads(std::max(1, threads)); }

void parallel_for(int64_t n, int64_t grain, int threads, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  int64_t chunks = std::min<int64_t>(threads, (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1));
  if (chunks <= 1) return body(0, n);
#pragma omp parallel for num_threads(chunks) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    body(b, e);
  }
}

WorkerPool::WorkerPool(int size) {
  for (int w = 1; w < size; ++w) threads_.emplace_back([this, w] { loop(w); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

WorkerPool& WorkerPool::shared(int size) {
  static std::mutex mu;
  static auto* pools = new std::map<int, std::unique_ptr<WorkerPool>>();  // leaked: threads outlive statics
  std::lock_guard lock(mu);
  auto& p = (*pools)[size];
  if (!p) p = std::make_unique<WorkerPool>(size);
  return *p;
}

void WorkerPool::run(const std::function<void(int)>& body) {
  std::lock_guard turn(run_mu_);
  {
    std::lock_guard lock(mu_);
    body_ = &body;
    busy_ = static_cast<int>(threads_.size());
    ++generation_;
  }
  cv_.notify_all();
  body(0);
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return busy_ == 0; });
  body_ = nullptr;
}

void WorkerPool::loop(int worker) {
  uint64_t seen = 0;
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    const std::function<void(int)>* body = body_;
    lock.unlock();
    (*body)(worker);
    lock.lock();
    if (--busy_ == 0) cv_.notify_all();
  }
}

}  // namespace tessera::cpu
