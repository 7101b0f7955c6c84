// The threaded operators: map on N workers (results in input order) and prefetch on a
// background thread; plus the stock map functions.
#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <thread>

#include "support/error.h"
#include "train/dataset.h"

namespace tessera::train {
namespace {

// A fixed set of worker threads running queued tasks; joins them on destruction after the
// queue drains (tasks only touch data they own, so draining is safe).
class WorkerPool {
 public:
  explicit WorkerPool(int n) {
    for (int i = 0; i < n; ++i)
      threads_.emplace_back([this] {
        for (;;) {
          std::function<void()> task;
          {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
            if (tasks_.empty()) return;
            task = std::move(tasks_.front());
            tasks_.pop_front();
          }
          task();
        }
      });
  }
  ~WorkerPool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void submit(std::function<void()> task) {
    {
      std::lock_guard lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

class MapDataset : public Dataset {
 public:
  MapDataset(DatasetPtr in, MapFn fn, int parallelism, std::string name)
      : in_(std::move(in)), fn_(std::make_shared<MapFn>(std::move(fn))),
        parallelism_(std::max(1, parallelism)), name_(std::move(name)) {}
  int64_t cardinality() const override { return in_->cardinality(); }
  std::string describe() const override { return str_cat("map(", name_, ",", in_->describe(), ")"); }
  std::unique_ptr<Iterator> make_iterator(uint64_t epoch) const override {
    struct It : Iterator {
      const MapDataset* ds;
      std::unique_ptr<Iterator> in;
      bool in_done = false;
      std::deque<std::future<Element>> pending;  // in input order
      std::unique_ptr<WorkerPool> pool;          // started on first use
      ~It() override {
        for (auto& f : pending) f.wait();  // tasks reference nothing of ours, but finish them
        pool.reset();
      }
      bool next(Element* out) override {
        if (ds->parallelism_ == 1) {
          Element e;
          if (!in->next(&e)) return false;
          *out = (*ds->fn_)(std::move(e));
          return true;
        }
        if (!pool) pool = std::make_unique<WorkerPool>(ds->parallelism_);
        while (!in_done && pending.size() < static_cast<size_t>(2 * ds->parallelism_)) {
          Element e;
          if (!in->next(&e)) {
            in_done = true;
            break;
          }
          auto task = std::make_shared<std::packaged_task<Element()>>(
              [fn = ds->fn_, e = std::move(e)]() mutable { return (*fn)(std::move(e)); });
          pending.push_back(task->get_future());
          pool->submit([task] { (*task)(); });
        }
        if (pending.empty()) return false;
        auto f = std::move(pending.front());
        pending.pop_front();
        *out = f.get();  // rethrows the map function's error
        return true;
      }
      uint64_t skip(uint64_t n) override {
        uint64_t done = 0;
        while (done < n && !pending.empty()) {  // already in flight: drop the results
          pending.front().wait();
          pending.pop_front();
          ++done;
        }
        return done + in->skip(n - done);  // the rest skips upstream without mapping
      }
    };
    auto it = std::make_unique<It>();
    it->ds = this;
    it->in = in_->make_iterator(epoch);
    return it;
  }

 private:
  DatasetPtr in_;
  std::shared_ptr<MapFn> fn_;
  int parallelism_;
  std::string name_;
};

class PrefetchDataset : public Dataset {
 public:
  PrefetchDataset(DatasetPtr in, size_t k) : in_(std::move(in)), k_(std::max<size_t>(1, k)) {}
  int64_t cardinality() const override { return in_->cardinality(); }
  // Prefetching does not change the sequence, so it is not part of the fingerprint.
  std::string describe() const override { return in_->describe(); }
  std::unique_ptr<Iterator> make_iterator(uint64_t epoch) const override {
    struct It : Iterator {
      size_t k;
      std::unique_ptr<Iterator> in;
      std::thread worker;
      std::mutex mu;
      std::condition_variable cv;
      std::deque<Element> queue;
      bool producer_done = false;  // end of input reached (or error)
      std::exception_ptr error;
      bool stop = false;

      ~It() override {
        if (worker.joinable()) {
          {
            std::lock_guard lock(mu);
            stop = true;
          }
          cv.notify_all();
          worker.join();
        }
      }
      void produce() {
        for (;;) {
          {
            std::unique_lock lock(mu);
            cv.wait(lock, [this] { return stop || queue.size() < k; });
            if (stop) return;
          }
          Element e;
          bool ok = false;
          std::exception_ptr err;
          try {
            ok = in->next(&e);
          } catch (...) {
            err = std::current_exception();
          }
          {
            std::lock_guard lock(mu);
            if (ok) {
              queue.push_back(std::move(e));
            } else {
              producer_done = true;
              error = err;
            }
          }
          cv.notify_all();
          if (!ok) return;
        }
      }
      bool next(Element* out) override {
        if (!worker.joinable()) worker = std::thread([this] { produce(); });
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return !queue.empty() || producer_done; });
        if (!queue.empty()) {
          *out = std::move(queue.front());
          queue.pop_front();
          lock.unlock();
          cv.notify_all();
          return true;
        }
        if (error) std::rethrow_exception(error);
        return false;
      }
      uint64_t skip(uint64_t n) override {
        if (!worker.joinable()) return in->skip(n);  // not started: the input skips cheaply
        return Iterator::skip(n);
      }
    };
    auto it = std::make_unique<It>();
    it->k = k_;
    it->in = in_->make_iterator(epoch);
    return it;
  }

 private:
  DatasetPtr in_;
  size_t k_;
};

template <typename To>
void convert_into(const Tensor& t, Tensor& out) {
  To* dst = out.data<To>();
  dispatch(RealTypes{}, t.dtype(), "cast", [&]<typename From>() {
    const From* src = t.data<From>();
    for (int64_t i = 0; i < t.num_elements(); ++i) dst[i] = static_cast<To>(static_cast<double>(src[i]));
  });
}

}  // namespace

DatasetPtr Dataset::map(MapFn fn, int parallelism, std::string name) const {
  return std::make_shared<MapDataset>(shared_from_this(), std::move(fn), parallelism, std::move(name));
}

DatasetPtr Dataset::prefetch(size_t k) const {
  return std::make_shared<PrefetchDataset>(shared_from_this(), k);
}

Tensor cast_tensor(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out(dtype, t.shape());
  dispatch(RealTypes{}, dtype, "cast", [&]<typename To>() { convert_into<To>(t, out); });
  return out;
}

MapFn normalize(size_t index, float scale, float offset) {
  return [=](Element e) {
    TS_CHECK(index < e.size(), "normalize: element has no component ", index);
    Tensor f = cast_tensor(e[index], DType::kFloat32);
    if (f.raw() == e[index].raw()) f = f.clone();  // never write into shared input storage
    float* p = f.data<float>();
    for (int64_t i = 0; i < f.num_elements(); ++i) p[i] = p[i] * scale + offset;
    e[index] = std::move(f);
    return e;
  };
}

MapFn cast(size_t index, DType dtype) {
  return [=](Element e) {
    TS_CHECK(index < e.size(), "cast: element has no component ", index);
    e[index] = cast_tensor(e[index], dtype);
    return e;
  };
}

MapFn parse_example(std::vector<FeatureSpec> specs) {
  return [specs = std::move(specs)](Element e) {
    TS_CHECK(!e.empty() && e[0].dtype() == DType::kString && e[0].rank() <= 1,
             "parse_example: component 0 must be a string scalar or vector of serialized Examples");
    std::vector<std::string_view> views;
    for (const auto& s : e[0].strings()) views.emplace_back(s);
    auto parsed = parse_examples(views, specs);
    if (e[0].rank() == 0)  // one example: drop the batch dimension
      for (auto& t : parsed) {
        Shape s(t.shape().begin() + 1, t.shape().end());
        t = t.reshaped(s);
      }
    return parsed;
  };
}

}  // namespace tessera::train
