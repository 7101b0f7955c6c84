// Intra-op parallelism. Debian's oneDNN 2.6 is built with OpenMP (libgomp, see `ldd
// libdnnl.so`); CpuOptions::threads, applied per run on the calling thread with
// omp_set_num_threads, bounds its teams. Our own kernels' parallel_for runs on the same team,
// chunks claimed dynamically, so one set of threads serves both. TESSERA_PARALLEL_FOR=pool
// runs it on a small pool per calling thread instead, whose caller never waits for a helper
// that has not started: better when the cores are oversubscribed, where a team's barrier
// costs a scheduler delay per loop (threads.cc has the measurements).
//
// Inter-op parallelism runs steps on a WorkerPool: plain std::threads, each of which is its
// own OpenMP initial thread with its own team and its own thread-count setting. One pool per
// size lives as long as the process: libgomp keeps a team per initial thread, and oneDNN
// convolutions crashed (null scratchpad) when pools were made and joined per executable.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tessera::cpu {

int default_threads();               // cores available to this process
void set_thread_count(int threads);  // for oneDNN and parallel_for on this thread

// Calls body(begin, end) over [0, n) split into contiguous chunks of at least `grain` items (up
// to 4 per thread, claimed dynamically), on at most `threads` threads including the caller;
// runs inline when one chunk suffices.
void parallel_for(int64_t n, int64_t grain, int threads, const std::function<void(int64_t, int64_t)>& body);

// `size` workers: the caller of run() and size-1 persistent threads.
class WorkerPool {
 public:
  explicit WorkerPool(int size);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  int size() const { return static_cast<int>(threads_.size()) + 1; }
  // The process-wide pool of this size (never destroyed).
  static WorkerPool& shared(int size);
  // Runs body(worker) on every worker (the caller is worker 0) and returns when all have
  // returned. body must not throw. Concurrent calls take turns.
  void run(const std::function<void(int)>& body);

 private:
  void loop(int worker);
  std::mutex run_mu_;  // one run() at a time
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void(int)>* body_ = nullptr;
  uint64_t generation_ = 0;
  int busy_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tessera::cpu
