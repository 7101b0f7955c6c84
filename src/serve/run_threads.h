// The threads that execute un-batched model runs. gRPC and REST handler threads come and go
// (grpc++'s sync server grows and shrinks its pool), and every thread that runs a model becomes
// an OpenMP initial thread with its own team, and owns its own parallel_for helpers
// (backend/cpu/threads.h): handler threads running models directly left a dozen teams spinning
// against each other on two cores, and created new ones as the pool turned over (measured:
// MobileNetV2 batch-32 requests, one client, 0.68 of in-process throughput). Handing each run to
// one of a few long-lived threads keeps one warm team per thread. (Batched runs already execute
// on the batch scheduler's own threads.)
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tessera::serve {

class RunThreads {
 public:
  explicit RunThreads(int threads);  // at least 1
  ~RunThreads();                     // finishes queued jobs, then joins
  RunThreads(const RunThreads&) = delete;
  RunThreads& operator=(const RunThreads&) = delete;
  // Runs `job` on one of the threads and returns when it has finished; an exception it throws
  // is rethrown here.
  void run(const std::function<void()>& job);
  int size() const { return static_cast<int>(threads_.size()); }

 private:
  struct Job;
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tessera::serve
