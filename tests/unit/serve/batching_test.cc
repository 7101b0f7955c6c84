// The batch scheduler with a fake executor: manual mode and an injected clock make batch
// formation, timeouts, overflow, padding and dropping deterministic.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "serve/batching.h"

namespace tessera::serve {
namespace {

namespace tfe = ::tensorflow::error;
using Clock = BatchScheduler::Clock;

struct FakeClock {
  Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);
  std::function<Clock::time_point()> fn() {
    return [this] { return now; };
  }
  void advance_us(int64_t us) { now += std::chrono::microseconds(us); }
};

// y = 2x, recording the row count of every batch it runs.
struct FakeModel {
  std::vector<int64_t> batches;
  std::mutex mu;
  BatchFn fn() {
    return [this](const TensorMap& in) {
      const Tensor& x = in.at("x");
      {
        std::lock_guard lock(mu);
        batches.push_back(x.dim(0));
      }
      Tensor y(DType::kFloat32, x.shape());
      for (int64_t i = 0; i < x.num_elements(); ++i) y.data<float>()[i] = 2 * x.data<float>()[i];
      return TensorMap{{"y", y}};
    };
  }
};

TensorMap rows(std::vector<float> v, int64_t cols = 1) {
  return {{"x", Tensor::from_vector<float>(v, {static_cast<int64_t>(v.size()) / cols, cols})}};
}

BatchingOptions opts(int64_t max, int64_t timeout_us, int64_t max_batches = 10) {
  BatchingOptions o;
  o.max_batch_size = max;
  o.batch_timeout_micros = timeout_us;
  o.max_enqueued_batches = max_batches;
  return o;
}

TEST(Batching, ConcurrentTasksMergeAndSplitBack) {
  FakeClock clock;
  FakeModel model;
  BatchScheduler s(opts(8, 1000), nullptr, true, clock.fn());
  auto a = s.submit("q", "m", rows({1, 2}), 2, model.fn(), {});
  auto b = s.submit("q", "m", rows({3}), 1, model.fn(), {});
  EXPECT_FALSE(s.run_ready_batch()) << "not full and not timed out yet";
  clock.advance_us(1000);
  ASSERT_TRUE(s.run_ready_batch());
  ASSERT_EQ(model.batches, std::vector<int64_t>({3}));
  BatchResult ra = a.get(), rb = b.get();
  ASSERT_TRUE(ra.status.ok()) << ra.status.message;
  ASSERT_TRUE(rb.status.ok());
  EXPECT_EQ(ra.outputs.at("y").shape(), Shape({2, 1}));
  EXPECT_EQ(ra.outputs.at("y").data<float>()[1], 4.0f);
  EXPECT_EQ(rb.outputs.at("y").shape(), Shape({1, 1}));
  EXPECT_EQ(rb.outputs.at("y").data<float>()[0], 6.0f);
}

TEST(Batching, FullBatchRunsWithoutWaitingAndOverflowIsRejected) {
  FakeClock clock;
  FakeModel model;
  BatchScheduler s(opts(2, 1000000, 2), nullptr, true, clock.fn());
  auto a = s.submit("q", "m", rows({1, 2}), 2, model.fn(), {});  // batch 1 (full)
  auto b = s.submit("q", "m", rows({3}), 1, model.fn(), {});     // batch 2
  auto c = s.submit("q", "m", rows({4, 5}), 2, model.fn(), {});  // would be batch 3
  BatchResult rc = c.get();
  EXPECT_EQ(rc.status.code, tfe::RESOURCE_EXHAUSTED) << rc.status.message;
  EXPECT_EQ(s.queued_batches("q"), 2u);
  ASSERT_TRUE(s.run_ready_batch());  // the full one
  EXPECT_TRUE(a.get().status.ok());
  EXPECT_FALSE(s.run_ready_batch()) << "batch 2 is neither full nor timed out";
  auto d = s.submit("q", "m", rows({6}), 1, model.fn(), {});  // joins batch 2, filling it
  ASSERT_TRUE(s.run_ready_batch());
  EXPECT_EQ(model.batches, std::vector<int64_t>({2, 2}));
  EXPECT_EQ(d.get().outputs.at("y").data<float>()[0], 12.0f);
  EXPECT_EQ(b.get().outputs.at("y").data<float>()[0], 6.0f);
}

TEST(Batching, TaskLargerThanMaxBatchIsInvalid) {
  FakeModel model;
  BatchScheduler s(opts(2, 0), nullptr, true);
  EXPECT_EQ(s.submit("q", "m", rows({1, 2, 3}), 3, model.fn(), {}).get().status.code, tfe::INVALID_ARGUMENT);
}

TEST(Batching, PadsToAllowedBatchSizes) {
  FakeClock clock;
  FakeModel model;
  BatchingOptions o = opts(8, 0);
  o.allowed_batch_sizes = {2, 4, 8};
  BatchScheduler s(o, nullptr, true, clock.fn());
  auto a = s.submit("q", "m", rows({1, 2}), 2, model.fn(), {});
  auto b = s.submit("q", "m", rows({3}), 1, model.fn(), {});
  ASSERT_TRUE(s.run_ready_batch());
  EXPECT_EQ(model.batches, std::vector<int64_t>({4})) << "3 rows padded to the next allowed size";
  EXPECT_EQ(a.get().outputs.at("y").shape(), Shape({2, 1}));
  EXPECT_EQ(b.get().outputs.at("y").data<float>()[0], 6.0f);
}

TEST(Batching, AllowedBatchSizesMustEndAtMax) {
  ::tensorflow::serving::BatchingParameters p;
  p.mutable_max_batch_size()->set_value(8);
  p.add_allowed_batch_sizes(2);
  p.add_allowed_batch_sizes(4);
  EXPECT_THROW(BatchingOptions::from_proto(p), Error);
  p.add_allowed_batch_sizes(8);
  BatchingOptions o = BatchingOptions::from_proto(p);
  EXPECT_EQ(o.padded_size(3), 4);
  EXPECT_EQ(o.max_enqueued_batches, 10) << "TF Serving's default";
  EXPECT_EQ(o.batch_timeout_micros, 0);
}

TEST(Batching, ExpiredAndCancelledTasksAreDropped) {
  FakeClock clock;
  FakeModel model;
  BatchScheduler s(opts(8, 100), nullptr, true, clock.fn());
  CallContext late;
  late.deadline = clock.now + std::chrono::microseconds(50);
  CallContext gone;
  std::atomic<bool> cancelled{false};
  gone.cancelled = [&] { return cancelled.load(); };
  auto a = s.submit("q", "m", rows({1}), 1, model.fn(), late);
  auto b = s.submit("q", "m", rows({2}), 1, model.fn(), gone);
  auto c = s.submit("q", "m", rows({3}), 1, model.fn(), {});
  cancelled = true;
  clock.advance_us(100);
  ASSERT_TRUE(s.run_ready_batch());
  EXPECT_EQ(a.get().status.code, tfe::DEADLINE_EXCEEDED);
  EXPECT_EQ(b.get().status.code, tfe::CANCELLED);
  EXPECT_EQ(c.get().outputs.at("y").data<float>()[0], 6.0f);
  EXPECT_EQ(model.batches, std::vector<int64_t>({1})) << "only the live task ran";
  CallContext past;
  past.deadline = clock.now - std::chrono::microseconds(1);
  EXPECT_EQ(s.submit("q", "m", rows({1}), 1, model.fn(), past).get().status.code, tfe::DEADLINE_EXCEEDED);
}

TEST(Batching, IncompatibleShapesRunSeparatelyUnlessPadded) {
  FakeClock clock;
  FakeModel model;
  BatchScheduler s(opts(8, 0), nullptr, true, clock.fn());
  auto a = s.submit("q", "m", rows({1, 2}, 2), 1, model.fn(), {});
  auto b = s.submit("q", "m", rows({3, 4, 5}, 3), 1, model.fn(), {});
  ASSERT_TRUE(s.run_ready_batch());
  EXPECT_EQ(model.batches, std::vector<int64_t>({1, 1}));
  EXPECT_EQ(b.get().outputs.at("y").shape(), Shape({1, 3}));
  EXPECT_TRUE(a.get().status.ok());

  FakeModel padded_model;
  BatchingOptions o = opts(8, 0);
  o.pad_variable_length_inputs = true;
  BatchScheduler p(o, nullptr, true, clock.fn());
  auto c = p.submit("q", "m", rows({1, 2}, 2), 1, padded_model.fn(), {});
  auto d = p.submit("q", "m", rows({3, 4, 5}, 3), 1, padded_model.fn(), {});
  ASSERT_TRUE(p.run_ready_batch());
  EXPECT_EQ(padded_model.batches, std::vector<int64_t>({2}));
  BatchResult rc = c.get();
  ASSERT_TRUE(rc.status.ok());
  // The padded output row: [2, 4, 0].
  EXPECT_EQ(rc.outputs.at("y").shape(), Shape({1, 3}));
  EXPECT_EQ(rc.outputs.at("y").data<float>()[1], 4.0f);
  EXPECT_EQ(rc.outputs.at("y").data<float>()[2], 0.0f);
  EXPECT_EQ(d.get().outputs.at("y").data<float>()[2], 10.0f);
}

TEST(Batching, OutputsWithoutBatchDimFailTheBatch) {
  BatchScheduler s(opts(8, 0), nullptr, true);
  BatchFn scalar = [](const TensorMap&) { return TensorMap{{"y", Tensor::scalar<float>(1)}}; };
  auto a = s.submit("q", "m", rows({1}), 1, scalar, {});
  ASSERT_TRUE(s.run_ready_batch());
  BatchResult r = a.get();
  EXPECT_EQ(r.status.code, tfe::INTERNAL);
  EXPECT_NE(r.status.message.find("'y'"), std::string::npos) << r.status.message;
}

TEST(Batching, ThreadedSchedulerAnswersEveryCaller) {
  FakeModel model;
  Metrics metrics;
  BatchScheduler s(opts(16, 2000, 100), &metrics);
  std::vector<std::thread> clients;
  std::atomic<int> good{0};
  for (int i = 0; i < 16; ++i)
    clients.emplace_back([&, i] {
      for (int k = 0; k < 10; ++k) {
        BatchResult r = s.run("q", "m", rows({float(i), float(k)}), 2, model.fn(), {});
        if (r.status.ok() && r.outputs.at("y").data<float>()[0] == 2.0f * i &&
            r.outputs.at("y").data<float>()[1] == 2.0f * k)
          ++good;
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(good.load(), 160);
  int64_t total = 0;
  for (int64_t b : model.batches) total += b;
  EXPECT_EQ(total, 320);
  EXPECT_LT(model.batches.size(), 160u) << "some requests shared a batch";
  EXPECT_EQ(metrics.histogram_count(Metrics::kBatchSize, {{"model_name", "m"}}), model.batches.size());
}

// A batch that fills runs at once on the worker thread, long before its timeout.
TEST(Batching, ThreadedFullBatchRunsBeforeItsTimeout) {
  FakeModel model;
  BatchScheduler s(opts(4, 60 * 1000 * 1000, 10), nullptr);  // 60 s timeout
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::future<BatchResult>> done;
  for (int i = 0; i < 4; ++i) done.push_back(s.submit("q", "m", rows({float(i)}), 1, model.fn(), {}));
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(done[i].wait_for(std::chrono::seconds(10)), std::future_status::ready) << "task " << i;
    BatchResult r = done[i].get();
    ASSERT_TRUE(r.status.ok()) << r.status.message;
    EXPECT_EQ(r.outputs.at("y").data<float>()[0], 2.0f * i);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_EQ(model.batches, std::vector<int64_t>{4});
}

// A lone task in a new batch runs when that batch times out.
TEST(Batching, ThreadedLoneTaskRunsAtTimeout) {
  FakeModel model;
  BatchScheduler s(opts(64, 1000, 10), nullptr);
  for (int k = 0; k < 3; ++k) {
    auto f = s.submit("q", "m", rows({float(k)}), 1, model.fn(), {});
    ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_EQ(f.get().outputs.at("y").data<float>()[0], 2.0f * k);
  }
  EXPECT_EQ(model.batches, (std::vector<int64_t>{1, 1, 1}));
}

// The timeout runs only while a batch thread is free: a task queued behind a running batch
// gets its full timeout once the thread frees up, so requests re-sent right after that batch
// finished join it rather than forming a second, partial batch.
TEST(Batching, TimeoutStartsWhenTheBusyThreadFrees) {
  FakeModel model;
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  BatchFn held = [&, inner = model.fn()](const TensorMap& in) {
    gate.wait();
    return inner(in);
  };
  constexpr int kTimeoutUs = 1000 * 1000;  // long: followers must arrive within it even on a loaded machine
  BatchingOptions o = opts(4, kTimeoutUs, 10);
  o.num_batch_threads = 1;
  BatchScheduler s(o, nullptr);
  std::vector<std::future<BatchResult>> first;
  for (int i = 0; i < 4; ++i) first.push_back(s.submit("q", "m", rows({float(i)}), 1, held, {}));  // full: runs
  std::vector<std::future<BatchResult>> second;
  second.push_back(s.submit("q", "m", rows({10}), 1, model.fn(), {}));
  std::this_thread::sleep_for(std::chrono::microseconds(kTimeoutUs + 200 * 1000));  // its timeout, while busy
  EXPECT_EQ(second[0].wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  release.set_value();
  for (auto& f : first) ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  for (int i = 1; i < 4; ++i) second.push_back(s.submit("q", "m", rows({10.0f + i}), 1, model.fn(), {}));
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(second[i].wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_EQ(second[i].get().outputs.at("y").data<float>()[0], 2.0f * (10 + i));
  }
  EXPECT_EQ(model.batches, (std::vector<int64_t>{4, 4}));

  // A task left alone behind a busy thread still runs, one timeout after the thread freed up.
  std::promise<void> release2;
  gate = release2.get_future().share();
  std::vector<std::future<BatchResult>> third;
  for (int i = 0; i < 4; ++i) third.push_back(s.submit("q", "m", rows({float(i)}), 1, held, {}));
  auto lone = s.submit("q", "m", rows({7}), 1, model.fn(), {});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto freed = std::chrono::steady_clock::now();
  release2.set_value();
  ASSERT_EQ(lone.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_GE(std::chrono::steady_clock::now() - freed, std::chrono::microseconds(kTimeoutUs * 9 / 10));
  EXPECT_EQ(lone.get().outputs.at("y").data<float>()[0], 14.0f);
}

}  // namespace
}  // namespace tessera::serve
