#include "serve/run_threads.h"

#include <algorithm>
#include <exception>

namespace tessera::serve {

// Lives on the caller's stack: run() waits until the worker has marked it done.
struct RunThreads::Job {
  const std::function<void()>* body = nullptr;
  std::exception_ptr error;
  bool done = false;
  std::condition_variable finished;
};

RunThreads::RunThreads(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { loop(); });
}

RunThreads::~RunThreads() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void RunThreads::run(const std::function<void()>& body) {
  Job job;
  job.body = &body;
  std::unique_lock lock(mu_);
  queue_.push_back(&job);
  cv_.notify_one();
  job.finished.wait(lock, [&] { return job.done; });
  if (job.error) std::rethrow_exception(job.error);
}

void RunThreads::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    Job* job = queue_.front();
    queue_.pop_front();
    lock.unlock();
    try {
      (*job->body)();
    } catch (...) {
      job->error = std::current_exception();
    }
    lock.lock();
    job->done = true;
    job->finished.notify_one();
  }
}

}  // namespace tessera::serve
