#include "train/dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "support/error.h"
#include "train/train_test_util.h"

namespace tessera::train {
namespace {

DatasetPtr range(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return Dataset::from_tensors({Tensor::from_vector<int64_t>(v, {n})});
}

// The first component of every element, flattened, in order.
std::vector<int64_t> drain(const DatasetPtr& ds, size_t limit = 1000000) {
  Pipeline p(ds);
  std::vector<int64_t> out;
  Element e;
  while (out.size() < limit && p.next(&e)) {
    Tensor t = e[0];
    for (int64_t i = 0; i < t.num_elements(); ++i) out.push_back(t.data<int64_t>()[i]);
  }
  return out;
}

TEST(Dataset, SlicesAndBatches) {
  auto x = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {5, 2});
  auto ds = Dataset::from_tensors({x, Tensor::from_vector<int64_t>({0, 1, 2, 3, 4}, {5})});
  Pipeline p(ds->batch(2));
  Element e;
  ASSERT_TRUE(p.next(&e));
  EXPECT_EQ(e[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(e[0].data<float>()[3], 3.0f);
  ASSERT_TRUE(p.next(&e));
  ASSERT_TRUE(p.next(&e));
  EXPECT_EQ(e[1].shape(), (Shape{1}));  // the remainder
  EXPECT_EQ(e[1].data<int64_t>()[0], 4);
  EXPECT_FALSE(p.next(&e));
  EXPECT_EQ(drain(range(9)->batch(2, true)), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(ds->batch(2, true)->cardinality(), 2);
  EXPECT_EQ(ds->batch(2)->cardinality(), 3);
}

TEST(Dataset, ShuffleIsADeterministicPermutationPerSeedAndEpoch) {
  auto a = drain(range(100)->shuffle(10, 7));
  EXPECT_EQ(a, drain(range(100)->shuffle(10, 7)));
  EXPECT_NE(a, drain(range(100)->shuffle(10, 8)));
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, drain(range(100)));
  EXPECT_NE(a, drain(range(100)));
  // A buffer of b elements: output p comes from the first p + b inputs.
  for (size_t p = 0; p < a.size(); ++p) EXPECT_LT(a[p], static_cast<int64_t>(p) + 10);
  EXPECT_EQ(drain(range(20)->shuffle(1, 3)), drain(range(20)));
  // Reshuffled each epoch, unless asked not to.
  auto two = drain(range(50)->shuffle(50, 1)->repeat(2));
  EXPECT_NE(std::vector<int64_t>(two.begin(), two.begin() + 50), std::vector<int64_t>(two.begin() + 50, two.end()));
  auto same = drain(range(50)->shuffle(50, 1, false)->repeat(2));
  EXPECT_EQ(std::vector<int64_t>(same.begin(), same.begin() + 50), std::vector<int64_t>(same.begin() + 50, same.end()));
}

TEST(Dataset, RepeatTakeAndForever) {
  EXPECT_EQ(drain(range(3)->repeat(2)), (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(drain(range(3)->repeat()->take(7)), (std::vector<int64_t>{0, 1, 2, 0, 1, 2, 0}));
  EXPECT_EQ(range(3)->repeat()->cardinality(), kInfiniteCardinality);
  EXPECT_TRUE(drain(range(0)->repeat()).empty());  // no infinite loop on an empty input
}

TEST(Dataset, CacheRunsTheMapOnce) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto ds = range(10)->map([calls](Element e) { ++*calls; return e; })->cache()->repeat(3);
  EXPECT_EQ(drain(ds).size(), 30u);
  EXPECT_EQ(calls->load(), 10);
}

TEST(Dataset, ParallelMapKeepsOrderAndNormalises) {
  auto slow_double = [](Element e) {
    std::this_thread::sleep_for(std::chrono::microseconds(50 * (e[0].data<int64_t>()[0] % 7)));
    e[0] = Tensor::from_vector<int64_t>({e[0].data<int64_t>()[0] * 2});
    return e;
  };
  auto seq = drain(range(200)->map(slow_double, 1));
  EXPECT_EQ(drain(range(200)->map(slow_double, 4)), seq);
  EXPECT_EQ(seq[199], 398);
  auto px = Dataset::from_tensors({Tensor::from_vector<uint8_t>({0, 51, 255, 102}, {2, 2})});
  Pipeline p(px->map(normalize(0, 1.0f / 255))->batch(2));
  Element e;
  ASSERT_TRUE(p.next(&e));
  EXPECT_EQ(e[0].dtype(), DType::kFloat32);
  EXPECT_FLOAT_EQ(e[0].data<float>()[1], 0.2f);
  EXPECT_FLOAT_EQ(e[0].data<float>()[2], 1.0f);
  Pipeline c(px->map(cast(0, DType::kInt32)));
  ASSERT_TRUE(c.next(&e));
  EXPECT_EQ(e[0].data<int32_t>()[1], 51);
}

TEST(Dataset, ErrorsPropagateThroughThreads) {
  auto bad = [](Element e) -> Element {
    if (e[0].data<int64_t>()[0] == 5) fail("bad element 5");
    return e;
  };
  for (int par : {1, 3}) {
    Pipeline p(range(10)->map(bad, par)->prefetch(2));
    Element e;
    int got = 0;
    try {
      while (p.next(&e)) ++got;
      FAIL() << "no error";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("bad element 5"), std::string::npos);
    }
    EXPECT_EQ(got, 5);
  }
}

TEST(Dataset, PrefetchPreservesTheSequenceAndCountsWaiting) {
  auto slow = [](Element e) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return e;
  };
  auto ds = range(20)->map(slow)->prefetch(4);
  EXPECT_EQ(drain(ds), drain(range(20)));
  Pipeline p(ds);
  Element e;
  while (p.next(&e)) {
  }
  EXPECT_EQ(p.stats().elements, 20u);
  EXPECT_GT(p.stats().wait_seconds, 0.01);  // the consumer outran a 2 ms/element producer
}

// A resumed pipeline continues exactly as an uninterrupted one, for several shapes.
TEST(Dataset, ResumeSeesExactlyTheSameBatches) {
  auto identity = [](Element e) { return e; };
  std::vector<DatasetPtr> pipelines = {
      range(103)->shuffle(16, 42)->map(identity, 3, "id")->batch(8, true)->repeat()->prefetch(3),
      range(50)->shuffle(64, 1)->repeat(5)->batch(7)->prefetch(2),
      range(40)->cache()->shuffle(10, 9)->repeat()->batch(6),
      range(30)->repeat(3)->shuffle(25, 5)->batch(4),
  };
  for (size_t k = 0; k < pipelines.size(); ++k) {
    const auto& ds = pipelines[k];
    const auto full = drain(ds, 600);
    for (uint64_t stop : {0, 1, 5, 13, 29}) {
      Pipeline first(ds);
      Element e;
      std::vector<int64_t> seen;
      for (uint64_t i = 0; i < stop && first.next(&e); ++i)
        for (int64_t j = 0; j < e[0].num_elements(); ++j) seen.push_back(e[0].data<int64_t>()[j]);
      const Tensor saved = first.state().to_tensor();
      Pipeline resumed(ds, PipelineState::from_tensor(saved));
      while (seen.size() < full.size() && resumed.next(&e))
        for (int64_t j = 0; j < e[0].num_elements(); ++j) seen.push_back(e[0].data<int64_t>()[j]);
      seen.resize(std::min(seen.size(), full.size()));
      EXPECT_EQ(seen, full) << "pipeline " << k << " stopped after " << stop;
    }
  }
}

TEST(Dataset, ResumeFarIntoAnInfiniteRunIsCheap) {
  auto ds = range(1000)->shuffle(100, 3)->repeat()->batch(32);
  Pipeline a(ds);
  Element e;
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(a.next(&e));  // ~160 epochs
  const auto start = std::chrono::steady_clock::now();
  Pipeline b(ds, a.state());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Element ea, eb;
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(a.next(&ea));
    ASSERT_TRUE(b.next(&eb));
    ASSERT_EQ(std::vector<int64_t>(ea[0].data<int64_t>(), ea[0].data<int64_t>() + 32),
              std::vector<int64_t>(eb[0].data<int64_t>(), eb[0].data<int64_t>() + 32));
  }
  EXPECT_LT(secs, 1.0);
}

TEST(Dataset, ResumeRefusesAnotherPipeline) {
  Pipeline a(range(10)->shuffle(5, 1));
  EXPECT_THROW(Pipeline(range(10)->shuffle(5, 2), a.state()), Error);
  PipelineState past_end = Pipeline(range(10)).state();
  past_end.elements = 11;
  EXPECT_THROW(Pipeline(range(10), past_end), Error);
}

TEST(Dataset, TFRecordsOfExamples) {
  testing::TempDir dir;
  const std::string path = dir.file("ex.tfrecord.gz");
  {
    TFRecordWriter w(path, Compression::kGzip);
    for (int i = 0; i < 5; ++i)
      w.write(make_example({{"v", Tensor::from_vector<int64_t>({i, i * 10})}}));
  }
  auto ds = Dataset::tfrecord({path, path}, Compression::kGzip)
                ->batch(4)
                ->map(parse_example({parse_feature_spec("v:int64:2")}), 2);
  auto all = drain(ds);
  ASSERT_EQ(all.size(), 20u);
  EXPECT_EQ(all[9], 40);
  EXPECT_EQ(all[10], 0);  // second file
}

// A source of unknown size: repeat learns the pass size from the first pass, so resuming
// epochs later still matches.
TEST(Dataset, ResumeOverRecordsOfUnknownSize) {
  testing::TempDir dir;
  const std::string path = dir.file("ex.tfrecord");
  {
    TFRecordWriter w(path);
    for (int64_t i = 0; i < 37; ++i) w.write(make_example({{"v", Tensor::from_vector<int64_t>({i})}}));
  }
  auto ds = Dataset::tfrecord({path})
                ->map(parse_example({parse_feature_spec("v:int64:")}), 2, "parse")
                ->shuffle(8, 11)
                ->repeat()
                ->batch(5)
                ->prefetch(2);
  EXPECT_EQ(ds->cardinality(), kInfiniteCardinality);
  const auto full = drain(ds, 600);
  for (uint64_t stop : {3, 8, 50, 100}) {
    Pipeline first(ds);
    Element e;
    std::vector<int64_t> seen;
    for (uint64_t i = 0; i < stop; ++i) {
      ASSERT_TRUE(first.next(&e));
      for (int64_t j = 0; j < 5; ++j) seen.push_back(e[0].data<int64_t>()[j]);
    }
    Pipeline resumed(ds, first.state());
    while (seen.size() < full.size() && resumed.next(&e))
      for (int64_t j = 0; j < 5; ++j) seen.push_back(e[0].data<int64_t>()[j]);
    seen.resize(full.size());
    EXPECT_EQ(seen, full) << "stopped after " << stop;
  }
}

}  // namespace
}  // namespace tessera::train
