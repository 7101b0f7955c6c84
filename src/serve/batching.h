// Dynamic batching with TF Serving's BatchingParameters: concurrent requests for the same
// queue (model, version, signature) merge along dim 0 into one execution and are split back.
//
// Semantics follow TF Serving's shared batch scheduler: tasks join the newest open batch of
// their queue while it has room (max_batch_size rows); a batch runs when it is full, when its
// oldest task has waited batch_timeout_micros, or (timeout 0) as soon as a thread is free. One
// departure from TF Serving: the timeout only runs while a batch thread is free. A batch that
// opened while every thread was busy gets its full timeout from the moment one frees up, so
// the clients whose batch just finished can re-send and join it. Without this, 64 closed-loop
// clients whose requests once straddled a timeout kept alternating between two half batches,
// each opened, timed out and waiting while the other ran (MobileNetV2 at 64 clients: batches
// of 33-44 rows padded up, p99 above the bound), instead of merging back into one. A
// queue holds at most max_enqueued_batches batches; beyond that a task is rejected with
// RESOURCE_EXHAUSTED. Batches are padded to the next allowed_batch_sizes entry with copies of
// their first row. Tasks whose deadline passed or whose client went away are dropped before
// their batch runs (DEADLINE_EXCEEDED / CANCELLED). Tasks whose inputs cannot be concatenated
// with the batch's first task (other dtypes / inner dims, without pad_variable_length_inputs)
// run on their own rather than failing the others.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/model.h"
#include "serve/metrics.h"
#include "serve/server_core.h"
#include "tensorflow_serving/servables/tensorflow/session_bundle_config.pb.h"

namespace tessera::serve {

struct BatchingOptions {
  int64_t max_batch_size = 1000;
  int64_t batch_timeout_micros = 0;
  int64_t max_enqueued_batches = 10;
  int64_t num_batch_threads = 0;  // 0 here means "every core"; see BatchScheduler's manual mode
  std::vector<int64_t> allowed_batch_sizes;
  bool pad_variable_length_inputs = false;

  // TF Serving's defaults for unset fields; checks allowed_batch_sizes (increasing, positive,
  // last == max_batch_size).
  static BatchingOptions from_proto(const ::tensorflow::serving::BatchingParameters& p);
  int64_t padded_size(int64_t rows) const;  // next allowed size (rows if none are set)
};

struct BatchResult {
  ServeStatus status;
  TensorMap outputs;
};

// Runs one merged batch: inputs keyed by signature input name, every output returned.
using BatchFn = std::function<TensorMap(const TensorMap&)>;

// Merging and splitting, exposed for tests. All tensors must have rank >= 1.
Tensor concat_rows(const std::vector<const Tensor*>& parts, const Shape& inner, int64_t pad_to_rows);
Tensor slice_rows(const Tensor& t, int64_t begin, int64_t count);

class BatchScheduler {
 public:
  using Clock = std::chrono::steady_clock;
  // manual = true starts no threads: tests drive it with run_ready_batch() and an injected
  // clock, so timing is deterministic.
  BatchScheduler(BatchingOptions options, Metrics* metrics = nullptr, bool manual = false,
                 std::function<Clock::time_point()> now = [] { return Clock::now(); });
  ~BatchScheduler();  // fails still-queued tasks with UNAVAILABLE and joins the threads
  int threads() const { return static_cast<int>(threads_.size()); }  // batches that may run at once

  // Queues a task; the future resolves when its batch ran or it was dropped/rejected.
  // `rows` is the dim-0 size shared by every input.
  std::future<BatchResult> submit(const std::string& queue, const std::string& model_name, TensorMap inputs,
                                  int64_t rows, BatchFn run, const CallContext& ctx);
  // submit + wait.
  BatchResult run(const std::string& queue, const std::string& model_name, TensorMap inputs, int64_t rows, BatchFn fn,
                  const CallContext& ctx);

  // Manual mode: runs one batch that is ready now on the calling thread; false if none is.
  bool run_ready_batch();
  size_t queued_tasks() const;
  size_t queued_batches(const std::string& queue) const;
  const BatchingOptions& options() const { return options_; }

 private:
  struct Task {
    TensorMap inputs;
    int64_t rows = 0;
    BatchFn run;
    std::string model_name;
    std::optional<Clock::time_point> deadline;
    std::function<bool()> cancelled;
    Clock::time_point enqueued;
    std::promise<BatchResult> done;
  };
  struct Batch {
    std::vector<std::shared_ptr<Task>> tasks;
    int64_t rows = 0;
    Clock::time_point opened;
  };
  struct Queue {
    std::deque<Batch> batches;
  };

  bool take_ready_locked(Batch* out, Clock::time_point now);
  Clock::time_point timeout_start(const Batch& b) const;  // with mu_ held
  void execute(Batch batch);
  void execute_group(std::vector<std::shared_ptr<Task>>& tasks);
  void worker();

  BatchingOptions options_;
  Metrics* metrics_;
  std::function<Clock::time_point()> now_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Queue> queues_;
  size_t queued_ = 0;
  int busy_ = 0;                   // threads executing a batch
  Clock::time_point free_since_;  // when a thread last became free while all were busy
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace tessera::serve
