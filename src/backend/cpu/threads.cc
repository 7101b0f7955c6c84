#include "backend/cpu/threads.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <cstdlib>
#include <memory>
#include <string_view>

namespace tessera::cpu {

int default_threads() { return std::max(1, omp_get_num_procs()); }

void set_thread_count(int threads) { omp_set_num_threads(std::max(1, threads)); }

namespace {

// TESSERA_PARALLEL_FOR=pool: parallel_for's helpers are a few threads per calling thread that
// claim chunks of the caller's loop from an atomic counter. The caller works through the
// chunks too and waits only for chunks a helper has claimed, never for a helper that has not
// woken up yet, where an OpenMP team waits at its barrier for every thread: on a machine whose
// cores are busy with other processes each loop then costs a scheduler delay (a 2-thread
// training step of the seed MLP, ~100 loops, ran 9x slower than on one thread at load 19).
// It is not the default because on a machine that is not oversubscribed its helpers and
// oneDNN's OpenMP workers are two sets of threads spinning for the same cores: the seed MLP
// train step (b256, 2 threads, load ~2, 5 interleaved runs, medians) ran 50.5k samples/s on
// the pool and 53.9k on the OpenMP team; the small CNN 11.9k and 12.0k; MobileNetV2 batch-1
// inference 1.08 and 1.05 ms.
struct ForJob {
  const std::function<void(int64_t, int64_t)>* body = nullptr;
  int64_t n = 0, chunks = 0;
  int helpers = 0;  // helpers 1..helpers may take part
  std::atomic<int64_t> next{0}, done{0};

  // Claims and runs chunks until none are left.
  void work() {
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      (*body)(n * c / chunks, n * (c + 1) / chunks);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

class ForPool {
 public:
  ~ForPool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  void run(int64_t n, int64_t chunks, int threads, const std::function<void(int64_t, int64_t)>& body) {
    auto job = std::make_shared<ForJob>();
    job->body = &body;
    job->n = n;
    job->chunks = chunks;
    job->helpers = threads - 1;
    while (static_cast<int>(threads_.size()) < job->helpers) {
      const int id = static_cast<int>(threads_.size()) + 1;
      threads_.emplace_back([this, id] { loop(id); });
    }
    {
      std::lock_guard lock(mu_);
      job_ = job;
      ++generation_;
    }
    cv_.notify_all();
    job->work();
    // Chunks still running on helpers: brief, so spin (yielding) rather than sleep.
    while (job->done.load(std::memory_order_acquire) < chunks) std::this_thread::yield();
    std::lock_guard lock(mu_);
    if (job_ == job) job_.reset();
  }

 private:
  void loop(int id) {
    omp_set_num_threads(1);  // oneDNN calls in a chunk must not start teams of their own
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<ForJob> job;
      {
        // Spin a little before sleeping: loops come in quick succession within a run.
        for (int i = 0; i < 2000 && generation_.load(std::memory_order_acquire) == seen; ++i) std::this_thread::yield();
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
        if (stop_) return;
        seen = generation_.load();
        job = job_;
      }
      // A late helper finds the counter exhausted and never touches the (maybe finished) body.
      if (job && id <= job->helpers) job->work();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  std::shared_ptr<ForJob> job_;
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
};

// One pool per calling thread (executor, inter-op workers, a server's request threads), so
// concurrent callers never share helpers; its helpers are joined when the caller exits.
ForPool& pool_for_this_thread() {
  thread_local ForPool pool;
  return pool;
}

bool use_own_pool() {
  static const bool pool = [] {
    const char* v = std::getenv("TESSERA_PARALLEL_FOR");
    return v && std::string_view(v) == "pool";
  }();
  return pool;
}

}  // namespace

void parallel_for(int64_t n, int64_t grain, int threads, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  const int64_t g = std::max<int64_t>(grain, 1);
  const int64_t most = (n + g - 1) / g;
  const int64_t chunks = std::min<int64_t>(most, static_cast<int64_t>(threads) * 4);  // a few per thread: load balance
  if (threads <= 1 || chunks <= 1) return body(0, n);
  const int team = static_cast<int>(std::min<int64_t>(threads, chunks));
  if (use_own_pool()) return pool_for_this_thread().run(n, chunks, team, body);
  // The calling thread's OpenMP team (the one oneDNN uses), chunks claimed dynamically.
  std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(team)
  for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) body(n * c / chunks, n * (c + 1) / chunks);
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
