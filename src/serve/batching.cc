#include "serve/batching.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "serve/status.h"
#include "support/cpus.h"

namespace tessera::serve {

namespace tfe = ::tensorflow::error;

BatchingOptions BatchingOptions::from_proto(const ::tensorflow::serving::BatchingParameters& p) {
  BatchingOptions o;
  if (p.has_max_batch_size()) o.max_batch_size = p.max_batch_size().value();
  if (p.has_batch_timeout_micros()) o.batch_timeout_micros = p.batch_timeout_micros().value();
  if (p.has_max_enqueued_batches()) o.max_enqueued_batches = p.max_enqueued_batches().value();
  if (p.has_num_batch_threads()) o.num_batch_threads = p.num_batch_threads().value();
  o.allowed_batch_sizes.assign(p.allowed_batch_sizes().begin(), p.allowed_batch_sizes().end());
  o.pad_variable_length_inputs = p.pad_variable_length_inputs();
  TS_CHECK(o.max_batch_size > 0, "batching parameters: max_batch_size must be positive, got ", o.max_batch_size);
  TS_CHECK(o.batch_timeout_micros >= 0, "batching parameters: batch_timeout_micros must be >= 0");
  TS_CHECK(o.max_enqueued_batches > 0, "batching parameters: max_enqueued_batches must be positive");
  TS_CHECK(o.num_batch_threads >= 0, "batching parameters: num_batch_threads must be >= 0");
  int64_t prev = 0;
  for (int64_t s : o.allowed_batch_sizes) {
    TS_CHECK(s > prev, "batching parameters: allowed_batch_sizes must be positive and increasing");
    prev = s;
  }
  if (!o.allowed_batch_sizes.empty())
    TS_CHECK(o.allowed_batch_sizes.back() == o.max_batch_size,
             "batching parameters: the last entry of allowed_batch_sizes (", o.allowed_batch_sizes.back(),
             ") must equal max_batch_size (", o.max_batch_size, ")");
  return o;
}

int64_t BatchingOptions::padded_size(int64_t rows) const {
  for (int64_t s : allowed_batch_sizes)
    if (s >= rows) return s;
  return rows;
}

namespace {

Shape inner_of(const Tensor& t) { return Shape(t.shape().begin() + 1, t.shape().end()); }

// Copies `src` (rows x its inner dims) into dst starting at row `row0`; dst's inner dims may be
// larger (variable-length padding), the rest stays zero / empty.
void copy_into(Tensor& dst, const Tensor& src, int64_t row0) {
  const Shape& ds = dst.shape();
  const Shape& ss = src.shape();
  const int64_t n = src.num_elements();
  const bool same_inner = std::equal(ds.begin() + 1, ds.end(), ss.begin() + 1, ss.end());
  int64_t dst_row_elems = 1;
  for (size_t i = 1; i < ds.size(); ++i) dst_row_elems *= ds[i];
  auto dest_index = [&](int64_t flat) {
    if (same_inner) return row0 * dst_row_elems + flat;
    int64_t off = 0, stride = 1;
    for (size_t d = ss.size(); d-- > 0;) {
      int64_t idx = flat % ss[d];
      flat /= ss[d];
      off += (d == 0 ? idx + row0 : idx) * stride;
      stride *= ds[d];
    }
    return off;
  };
  if (src.dtype() == DType::kString) {
    auto& out = dst.strings();
    const auto& in = src.strings();
    for (int64_t i = 0; i < n; ++i) out[dest_index(i)] = in[i];
    return;
  }
  const size_t es = dtype_size(src.dtype());
  auto* out = static_cast<char*>(dst.mutable_raw());
  const auto* in = static_cast<const char*>(src.raw());
  if (same_inner) {
    std::memcpy(out + row0 * dst_row_elems * es, in, n * es);
    return;
  }
  for (int64_t i = 0; i < n; ++i) std::memcpy(out + dest_index(i) * es, in + i * es, es);
}

}  // namespace

Tensor concat_rows(const std::vector<const Tensor*>& parts, const Shape& inner, int64_t pad_to_rows) {
  TS_CHECK(!parts.empty(), "concat_rows: nothing to concatenate");
  int64_t rows = 0;
  for (const Tensor* p : parts) rows += p->dim(0);
  const int64_t total = std::max(rows, pad_to_rows);
  Shape shape{total};
  shape.insert(shape.end(), inner.begin(), inner.end());
  const DType dtype = parts[0]->dtype();
  TS_CHECK(is_pod(dtype) || dtype == DType::kString, "cannot batch inputs of dtype ", dtype_name(dtype));
  Tensor out(dtype, shape);
  int64_t row = 0;
  for (const Tensor* p : parts) {
    copy_into(out, *p, row);
    row += p->dim(0);
  }
  // Padding rows repeat the first row: always a valid input for the model.
  if (total > rows && rows > 0) {
    Tensor first = slice_rows(out, 0, 1);
    for (int64_t r = rows; r < total; ++r) copy_into(out, first, r);
  }
  return out;
}

Tensor slice_rows(const Tensor& t, int64_t begin, int64_t count) {
  TS_CHECK(t.rank() >= 1 && begin >= 0 && begin + count <= t.dim(0), "slice_rows: rows [", begin, ", ",
           begin + count, ") out of ", t.rank() ? t.dim(0) : 0);
  Shape shape = t.shape();
  shape[0] = count;
  Tensor out(t.dtype(), shape);
  const int64_t row = t.dim(0) ? t.num_elements() / t.dim(0) : 0;
  if (t.dtype() == DType::kString) {
    std::copy_n(t.strings().begin() + begin * row, count * row, out.strings().begin());
  } else {
    const size_t es = dtype_size(t.dtype());
    std::memcpy(out.mutable_raw(), static_cast<const char*>(t.raw()) + begin * row * es, count * row * es);
  }
  return out;
}

BatchScheduler::BatchScheduler(BatchingOptions options, Metrics* metrics, bool manual,
                               std::function<Clock::time_point()> now)
    : options_(std::move(options)), metrics_(metrics), now_(std::move(now)) {
  if (manual) return;
  int64_t n = options_.num_batch_threads > 0 ? options_.num_batch_threads : cpu_count();
  for (int64_t i = 0; i < n; ++i) threads_.emplace_back([this] { worker(); });
}

BatchScheduler::~BatchScheduler() {
  std::map<std::string, Queue> left;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    left.swap(queues_);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  for (auto& [key, q] : left)
    for (auto& b : q.batches)
      for (auto& task : b.tasks) task->done.set_value({make_status(tfe::UNAVAILABLE, "the server is shutting down"), {}});
}

std::future<BatchResult> BatchScheduler::submit(const std::string& queue, const std::string& model_name,
                                                TensorMap inputs, int64_t rows, BatchFn run, const CallContext& ctx) {
  auto task = std::make_shared<Task>();
  task->inputs = std::move(inputs);
  task->rows = rows;
  task->run = std::move(run);
  task->model_name = model_name;
  task->deadline = ctx.deadline;
  task->cancelled = ctx.cancelled;
  auto future = task->done.get_future();
  auto reject = [&](tfe::Code code, std::string msg) {
    task->done.set_value({make_status(code, std::move(msg)), {}});
    return std::move(future);
  };
  if (rows > options_.max_batch_size)
    return reject(tfe::INVALID_ARGUMENT, str_cat("Task size ", rows, " is larger than maximum batch size ",
                                                 options_.max_batch_size));
  {
    std::lock_guard lock(mu_);
    if (stopping_) return reject(tfe::UNAVAILABLE, "the server is shutting down");
    task->enqueued = now_();
    if (task->deadline && *task->deadline <= task->enqueued)
      return reject(tfe::DEADLINE_EXCEEDED, "Deadline exceeded before the request was queued");
    Queue& q = queues_[queue];
    if (q.batches.empty() || q.batches.back().rows + rows > options_.max_batch_size) {
      if (static_cast<int64_t>(q.batches.size()) >= options_.max_enqueued_batches)
        return reject(tfe::RESOURCE_EXHAUSTED, "The batch scheduling queue to which this task was submitted is full");
      q.batches.push_back(Batch{{}, 0, task->enqueued});
    }
    q.batches.back().tasks.push_back(task);
    q.batches.back().rows += rows;
    ++queued_;
    if (metrics_) metrics_->gauge_add(Metrics::kQueueDepth, {{"model_name", model_name}}, 1);
  }
  cv_.notify_one();
  return future;
}

BatchResult BatchScheduler::run(const std::string& queue, const std::string& model_name, TensorMap inputs,
                                int64_t rows, BatchFn fn, const CallContext& ctx) {
  return submit(queue, model_name, std::move(inputs), rows, std::move(fn), ctx).get();
}

BatchScheduler::Clock::time_point BatchScheduler::timeout_start(const Batch& b) const {
  return std::max(b.opened, free_since_);
}

bool BatchScheduler::take_ready_locked(Batch* out, Clock::time_point now) {
  const auto timeout = std::chrono::microseconds(options_.batch_timeout_micros);
  std::map<std::string, Queue>::iterator best = queues_.end();
  for (auto it = queues_.begin(); it != queues_.end(); ++it) {
    const auto& bs = it->second.batches;
    if (bs.empty()) continue;
    const Batch& b = bs.front();
    bool ready = bs.size() > 1 || b.rows >= options_.max_batch_size || now - timeout_start(b) >= timeout;
    if (ready && (best == queues_.end() || b.opened < best->second.batches.front().opened)) best = it;
  }
  if (best == queues_.end()) return false;
  *out = std::move(best->second.batches.front());
  best->second.batches.pop_front();
  if (best->second.batches.empty()) queues_.erase(best);
  queued_ -= out->tasks.size();
  return true;
}

bool BatchScheduler::run_ready_batch() {
  Batch b;
  {
    std::lock_guard lock(mu_);
    if (!take_ready_locked(&b, now_())) return false;
  }
  execute(std::move(b));
  return true;
}

size_t BatchScheduler::queued_tasks() const {
  std::lock_guard lock(mu_);
  return queued_;
}

size_t BatchScheduler::queued_batches(const std::string& queue) const {
  std::lock_guard lock(mu_);
  auto it = queues_.find(queue);
  return it == queues_.end() ? 0 : it->second.batches.size();
}

void BatchScheduler::worker() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    Batch b;
    if (take_ready_locked(&b, now_())) {
      ++busy_;
      lock.unlock();
      execute(std::move(b));
      lock.lock();
      if (busy_-- == static_cast<int>(threads_.size())) free_since_ = now_();
      continue;
    }
    // Sleep until the oldest open batch times out, or a new task arrives.
    std::optional<Clock::time_point> wake;
    for (const auto& [key, q] : queues_)
      if (!q.batches.empty()) {
        auto t = timeout_start(q.batches.front()) + std::chrono::microseconds(options_.batch_timeout_micros);
        if (!wake || t < *wake) wake = t;
      }
    if (wake)
      cv_.wait_until(lock, *wake);
    else
      cv_.wait(lock);
  }
}

void BatchScheduler::execute(Batch batch) {
  const auto now = now_();
  std::vector<std::shared_ptr<Task>> live;
  for (auto& t : batch.tasks) {
    if (metrics_) {
      metrics_->gauge_add(Metrics::kQueueDepth, {{"model_name", t->model_name}}, -1);
      metrics_->observe(Metrics::kQueuingLatency, {{"model", t->model_name}},
                        std::chrono::duration<double, std::micro>(now - t->enqueued).count());
    }
    if (t->cancelled && t->cancelled())
      t->done.set_value({make_status(tfe::CANCELLED, "the client cancelled the request"), {}});
    else if (t->deadline && *t->deadline <= now)
      t->done.set_value({make_status(tfe::DEADLINE_EXCEEDED, "Deadline exceeded while the request was queued"), {}});
    else
      live.push_back(t);
  }
  // Split into groups that can be concatenated with their first task; usually one.
  while (!live.empty()) {
    std::vector<std::shared_ptr<Task>> group, rest;
    const TensorMap& first = live[0]->inputs;
    for (auto& t : live) {
      bool fits = t->inputs.size() == first.size();
      for (auto it = t->inputs.cbegin(), jt = first.cbegin(); fits && it != t->inputs.end(); ++it, ++jt) {
        fits = it->first == jt->first && it->second.dtype() == jt->second.dtype() &&
               it->second.rank() == jt->second.rank() && it->second.rank() >= 1;
        if (fits && !options_.pad_variable_length_inputs) fits = inner_of(it->second) == inner_of(jt->second);
      }
      (fits ? group : rest).push_back(t);
    }
    execute_group(group);
    live.swap(rest);
  }
}

void BatchScheduler::execute_group(std::vector<std::shared_ptr<Task>>& tasks) {
  int64_t rows = 0;
  for (auto& t : tasks) rows += t->rows;
  const int64_t padded = options_.padded_size(rows);
  try {
    // A lone task that needs no padding runs on its own tensors: no merge copy, no split copy.
    const bool alone = tasks.size() == 1 && padded == rows;
    TensorMap merged;
    if (alone) merged = tasks[0]->inputs;
    for (const auto& [key, t0] : tasks[0]->inputs) {
      if (alone) break;
      std::vector<const Tensor*> parts;
      Shape inner = inner_of(t0);
      for (auto& t : tasks) {
        const Tensor& x = t->inputs.at(key);
        parts.push_back(&x);
        for (size_t d = 0; d < inner.size(); ++d) inner[d] = std::max(inner[d], x.dim(static_cast<int64_t>(d) + 1));
      }
      merged[key] = concat_rows(parts, inner, padded);
    }
    if (metrics_) metrics_->observe(Metrics::kBatchSize, {{"model_name", tasks[0]->model_name}}, static_cast<double>(padded));
    TensorMap out = tasks[0]->run(merged);
    for (const auto& [key, t] : out)
      if (t.rank() < 1 || t.dim(0) != padded)
        fail_code(ErrorCode::kInternal, "batched output '", key, "' has shape ", shape_str(t.shape()),
                  "; its 0th dimension must equal the batch size ", padded,
                  " (a signature whose outputs do not follow dim 0 of its inputs cannot be batched)");
    if (alone) {
      tasks[0]->done.set_value({ServeStatus{}, std::move(out)});
      return;
    }
    std::vector<BatchResult> results(tasks.size());
    int64_t row = 0;
    for (size_t i = 0; i < tasks.size(); ++i) {
      for (const auto& [key, t] : out) results[i].outputs[key] = slice_rows(t, row, tasks[i]->rows);
      row += tasks[i]->rows;
    }
    for (size_t i = 0; i < tasks.size(); ++i) tasks[i]->done.set_value(std::move(results[i]));
  } catch (...) {
    ServeStatus s = status_from_current_exception();
    for (auto& task : tasks) task->done.set_value({s, {}});
  }
}

}  // namespace tessera::serve
