// Multi-chip mapping on the rdu target: K = 1 equals the single chip, data-parallel scaling and
// its ring all-reduce by hand, a two-stage pipeline by hand, a tensor split's all-gather, and a
// model too big for one chip. Hand numbers use `tiny` (1 GHz, p2p 8 B/cycle + 200 cycles) and
// `small` (p2p 64 B/cycle + 2,000 cycles); weights count 2 bytes per value (bf16 timing).
#include <gtest/gtest.h>

#include "backend/rdu/multichip.h"
#include "rdu/rdu_test_util.h"

namespace tessera::rdu {
namespace {

using testing::FnGraph;
using testing::tiny;

// x [batch, 64] -> MatMul 64x32 -> BiasAdd -> Relu -> MatMul 32x10 -> Softmax.
FnGraph mlp() {
  FnGraph f;
  Value x = f.arg(DType::kFloat32, PartialShape({-1, 64}));
  Value h = f.op("MatMul", {x, f.constant(cpu::testing::random_tensor({64, 32}, 2))}, {{"T", DType::kFloat32}})->out();
  h = f.op("BiasAdd", {h, f.constant(cpu::testing::random_tensor({32}, 3))}, {{"T", DType::kFloat32}})->out();
  h = f.op("Relu", {h}, {{"T", DType::kFloat32}})->out();
  h = f.op("MatMul", {h, f.constant(cpu::testing::random_tensor({32, 10}, 4))}, {{"T", DType::kFloat32}})->out();
  f.result(f.op("Softmax", {h}, {{"T", DType::kFloat32}})->out());
  return f;
}
constexpr int64_t kMlpWeightBytes = (64 * 32 + 32 + 32 * 10) * 2;

// x [batch, 128] through `layers` MatMuls by 128x128 constants (32 KiB of bf16 each: on tiny,
// every one fills the chip's SRAM and gets a section of its own).
FnGraph square_chain(int layers) {
  FnGraph f;
  Value v = f.arg(DType::kFloat32, PartialShape({-1, 128}));
  for (int i = 0; i < layers; ++i)
    v = f.op("MatMul", {v, f.constant(cpu::testing::random_tensor({128, 128}, 10 + i))}, {{"T", DType::kFloat32}})->out();
  f.result(v);
  return f;
}

Arch node_of(Arch a, int sockets) {
  a.p2p.sockets = sockets;
  return a;
}

MultiChipReport run(const FnGraph& f, int64_t batch, const Arch& a, int chips, Parallel p, int microbatches = 1) {
  MultiChipOptions o;
  o.chips = chips;
  o.parallel = p;
  o.microbatches = microbatches;
  return simulate_multichip(*f.g, batch, a, o);
}

double single_cycles(const FnGraph& f, int64_t batch, const Arch& a) { return simulate_timing(map_graph(*f.g, batch, a)).cycles; }

TEST(RduMultiChip, OneChipEqualsTheSingleChipExactly) {
  Arch small_ddr = tiny();  // weights (3 x 32 KiB) over HBM: the single chip keeps them in DDR
  small_ddr.hbm.capacity_bytes = 64 * 1024;
  struct Case {
    FnGraph f;
    Arch a;
    int64_t batch;
  };
  std::vector<Case> cases;
  cases.push_back({mlp(), tiny(), 16});
  cases.push_back({mlp(), testing::preset("small"), 32});
  cases.push_back({square_chain(3), tiny(), 256});
  cases.push_back({square_chain(3), small_ddr, 256});
  for (size_t c = 0; c < cases.size(); ++c) {
    double want = single_cycles(cases[c].f, cases[c].batch, cases[c].a);
    for (Parallel p : {Parallel::kData, Parallel::kPipeline, Parallel::kTensor}) {
      SCOPED_TRACE("case " + std::to_string(c) + " " + parallel_name(p));
      MultiChipReport r = run(cases[c].f, cases[c].batch, cases[c].a, 1, p);
      ASSERT_EQ(r.plans.size(), 1u);
      EXPECT_DOUBLE_EQ(r.step_cycles, want);
      EXPECT_DOUBLE_EQ(r.steady_cycles, want);
      EXPECT_EQ(r.p2p_bytes, 0);
      EXPECT_DOUBLE_EQ(r.allreduce_cycles, 0);
      EXPECT_TRUE(r.valid());
    }
  }
  EXPECT_TRUE(run(cases[3].f, 256, small_ddr, 1, Parallel::kPipeline).plans[0].weights_in_ddr);
}

TEST(RduMultiChip, DataParallelScalesAtMostLinearlyAndMonotonically) {
  FnGraph f = mlp();
  Arch a = node_of(tiny(), 8);
  const int64_t N = 64;
  double one = 0, prev = 0;
  for (int K : {1, 2, 4, 8}) {
    SCOPED_TRACE("K = " + std::to_string(K));
    MultiChipReport r = run(f, N, a, K, Parallel::kData);
    ASSERT_EQ(r.plans.size(), static_cast<size_t>(K));
    // Every replica maps N/K samples on its own chip; throughput = K x one replica's.
    double per_chip = single_cycles(f, N / K, a);
    EXPECT_DOUBLE_EQ(r.step_cycles, per_chip);
    EXPECT_NEAR(r.samples_per_second(), K * (N / K) / (per_chip * 1e-9), 1e-6 * r.samples_per_second());
    if (K == 1) one = r.samples_per_second();
    EXPECT_LE(r.samples_per_second(), K * one * (1 + 1e-9));
    EXPECT_GE(r.samples_per_second(), one * (1 - 1e-9));
    EXPECT_GE(r.samples_per_second(), prev * (1 - 1e-9));
    prev = r.samples_per_second();
    EXPECT_TRUE(r.valid());
  }
}

TEST(RduMultiChip, DataParallelRemainderWaitsForTheLargestReplica) {
  FnGraph f = mlp();
  MultiChipReport r = run(f, 10, node_of(tiny(), 4), 4, Parallel::kData);
  std::vector<int64_t> batches;
  for (const ChipPlan& p : r.plans) batches.push_back(p.batch);
  EXPECT_EQ(batches, (std::vector<int64_t>{3, 3, 2, 2}));
  EXPECT_DOUBLE_EQ(r.step_cycles, single_cycles(f, 3, tiny()));
  EXPECT_EQ(r.notes.size(), 1u);
  EXPECT_THROW(run(f, 3, node_of(tiny(), 4), 4, Parallel::kData), Error);
}

TEST(RduMultiChip, AllReduceMatchesTheRingFormula) {
  // tiny, K = 2: 2 (1/2) 4,800 B / 8 B/cycle + 2 x 200 = 600 + 400 = 1,000 cycles.
  MultiChipReport t = run(mlp(), 16, tiny(), 2, Parallel::kData);
  EXPECT_EQ(t.allreduce_bytes, kMlpWeightBytes);
  EXPECT_DOUBLE_EQ(t.allreduce_cycles, 1000);
  // small, K = 4: 2 (3/4) 4,800 / 64 + 6 x 2,000 = 112.5 + 12,000.
  MultiChipReport s = run(mlp(), 16, testing::preset("small"), 4, Parallel::kData);
  EXPECT_DOUBLE_EQ(s.allreduce_cycles, 12112.5);
  EXPECT_DOUBLE_EQ(ring_allreduce_cycles(kMlpWeightBytes, 8, testing::preset("small").p2p), 2.0 * 7 / 8 * 4800 / 64 + 14 * 2000);
  // Inference replicas exchange nothing; the all-reduce is reported apart from the step.
  EXPECT_EQ(s.p2p_bytes, 0);
  EXPECT_DOUBLE_EQ(s.step_cycles, single_cycles(mlp(), 4, testing::preset("small")));
}

TEST(RduMultiChip, TwoEqualStagesDoubleThroughputLessTransfers) {
  FnGraph f = square_chain(2);
  Arch a = tiny();
  const int64_t N = 1024;
  SimReport one = simulate_timing(map_graph(*f.g, N, a));
  ASSERT_EQ(one.sections.size(), 2u);
  const double t0 = one.sections[0].cycles, t1 = one.sections[1].cycles;
  EXPECT_NEAR(t0, t1, 0.01 * t0);  // equal work
  // The cut sends h [1024, 128] bf16 = 262,144 B: 262,144 / 8 + 200 = 32,968 cycles, less than a
  // stage, so it overlaps: steady state runs at the slower stage.
  const double link = 262144.0 / 8 + 200;
  MultiChipReport r = run(f, N, a, 2, Parallel::kPipeline);
  ASSERT_EQ(r.plans.size(), 2u);
  EXPECT_EQ(r.plans[0].p2p_send_bytes, 262144);
  EXPECT_DOUBLE_EQ(r.plans[0].p2p_cycles, link);
  EXPECT_DOUBLE_EQ(r.steady_cycles, std::max({t0, t1, link}));
  EXPECT_DOUBLE_EQ(r.latency_cycles, t0 + link + t1);
  double speedup = r.samples_per_second() / (N / one.seconds);
  EXPECT_GT(speedup, 1.95);
  EXPECT_LE(speedup, 2.0 + 1e-9);
  EXPECT_TRUE(r.valid());
  // A slow link becomes the bottleneck: 262,144 / 1 + 200 cycles per batch.
  Arch slow = a;
  slow.p2p.bw_Bpc = 1;
  MultiChipReport s = run(f, N, slow, 2, Parallel::kPipeline);
  EXPECT_DOUBLE_EQ(s.steady_cycles, 262144.0 + 200);
  // Microbatches: 4 of 256 samples; step = latency + 3 x the slowest stage, bubble as GPipe.
  MultiChipReport m = run(f, N, a, 2, Parallel::kPipeline, 4);
  SimReport q = simulate_timing(map_graph(*f.g, N / 4, a));
  const double l4 = 65536.0 / 8 + 200, slowest = std::max({q.sections[0].cycles, q.sections[1].cycles, l4});
  EXPECT_DOUBLE_EQ(m.latency_cycles, q.sections[0].cycles + l4 + q.sections[1].cycles);
  EXPECT_DOUBLE_EQ(m.step_cycles, m.latency_cycles + 3 * slowest);
  EXPECT_DOUBLE_EQ(m.steady_cycles, 4 * slowest);
  EXPECT_NEAR(m.bubble_fraction, 1 - 4 * slowest / m.step_cycles, 1e-12);
  EXPECT_GT(m.bubble_fraction, 0.15);  // about (K-1)/(M+K-1) = 1/5 with equal stages
  EXPECT_LT(m.bubble_fraction, 0.25);
  EXPECT_EQ(m.p2p_bytes, 4 * 65536);
}

TEST(RduMultiChip, MoreLinkBandwidthNeverSlows) {
  for (Parallel p : {Parallel::kPipeline, Parallel::kTensor}) {
    double prev = 0;
    for (double bw : {0.5, 1.0, 4.0, 8.0, 64.0}) {
      Arch a = node_of(tiny(), 4);
      a.p2p.bw_Bpc = bw;
      double sps = run(square_chain(4), 512, a, 4, p).samples_per_second();
      EXPECT_GE(sps, prev * (1 - 1e-9)) << parallel_name(p) << " bw " << bw;
      prev = sps;
    }
  }
}

TEST(RduMultiChip, TensorSplitHalvesTheProductAndGathersItsOutput) {
  // One GEMM x [2048, 96] . w [96, 64], split in 2 by output column: each chip computes 32
  // columns; the 2048 x 64 bf16 output (262,144 B) is all-gathered: 1/2 x 262,144 / 8 + 200.
  FnGraph f = testing::matmul_graph(2048, 96, 64);
  Arch a = tiny();
  MultiChipReport r = run(f, 1, a, 2, Parallel::kTensor);
  ASSERT_EQ(r.plans.size(), 2u);
  const double gather = 0.5 * 262144 / 8 + 200;
  EXPECT_DOUBLE_EQ(r.p2p_cycles, gather);
  EXPECT_EQ(r.plans[0].p2p_send_bytes, 131072);
  EXPECT_EQ(r.p2p_bytes, 2 * 131072);
  EXPECT_DOUBLE_EQ(r.plans[0].flops, 2.0 * 2048 * 96 * 32);
  EXPECT_DOUBLE_EQ(r.flops, 2.0 * 2048 * 96 * 64);
  EXPECT_EQ(r.plans[0].weight_bytes, 96 * 32 * 2);
  EXPECT_DOUBLE_EQ(r.step_cycles, r.plans[0].cycles + gather);
  EXPECT_LT(r.plans[0].cycles, 0.6 * single_cycles(f, 1, a));
  EXPECT_TRUE(r.valid());
}

TEST(RduMultiChip, WeightsBeyondOneChipFailThereAndMapOnSeveral) {
  // Six 32 KiB weight matrices (192 KiB) on a chip with 64 KiB HBM + 64 KiB DDR.
  Arch a = node_of(tiny(), 4);
  a.hbm.capacity_bytes = a.ddr.capacity_bytes = 64 * 1024;
  FnGraph f = square_chain(6);
  for (Parallel p : {Parallel::kData, Parallel::kPipeline, Parallel::kTensor}) {
    try {
      run(f, 64, a, 1, p);
      ADD_FAILURE() << parallel_name(p) << ": mapped 192 KiB of weights on one chip";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("196608 bytes of weights"), std::string::npos) << m;
      EXPECT_NE(m.find("HBM 65536 + DDR 65536"), std::string::npos) << m;
    }
  }
  EXPECT_THROW(run(f, 64, a, 4, Parallel::kData), Error);  // every replica holds all weights
  // Two stages of 96 KiB keep theirs in DDR; four stages of <= 64 KiB fit in HBM and run faster.
  MultiChipReport two = run(f, 64, a, 2, Parallel::kPipeline), four = run(f, 64, a, 4, Parallel::kPipeline);
  for (const ChipPlan& p : two.plans) EXPECT_TRUE(p.weights_in_ddr);
  for (const ChipPlan& p : four.plans) {
    EXPECT_FALSE(p.weights_in_ddr);
    EXPECT_LE(p.weight_bytes, a.hbm.capacity_bytes);
  }
  EXPECT_TRUE(two.valid() && four.valid());
  EXPECT_GT(four.samples_per_second(), two.samples_per_second());
  MultiChipReport tensor = run(f, 64, a, 2, Parallel::kTensor);
  EXPECT_EQ(tensor.plans[0].weight_bytes, 6 * 16 * 1024);
  EXPECT_TRUE(tensor.valid());
}

// The multi-chip validator catches each kind of broken split (mutation tests).
TEST(RduMultiChip, ValidatorCatchesBrokenSplits) {
  Arch a = node_of(tiny(), 4);
  FnGraph f = square_chain(4);
  MultiChipReport pipe = run(f, 256, a, 2, Parallel::kPipeline), data = run(f, 10, a, 4, Parallel::kData);
  ASSERT_TRUE(validate_multichip(pipe, a).empty());
  ASSERT_TRUE(validate_multichip(data, a).empty());
  auto kinds = [&](const MultiChipReport& r) {
    std::string all;
    for (const std::string& m : validate_multichip(r, a)) all += m.substr(0, m.find(':') + 1) + " ";
    return all;
  };
  MultiChipReport r = pipe;
  r.plans[1].first_section += 1;  // a section no stage runs
  EXPECT_NE(kinds(r).find("split:"), std::string::npos);
  r = pipe;
  r.plans.pop_back();  // the last stage is missing
  EXPECT_NE(kinds(r).find("split:"), std::string::npos);
  r = pipe;
  r.plans[0].p2p_cycles = r.steady_cycles * 2;  // the link slower than the steady interval
  EXPECT_NE(kinds(r).find("p2p:"), std::string::npos);
  r = pipe;
  r.plans[0].p2p_cycles = 1;  // bytes faster than the link carries them
  EXPECT_NE(kinds(r).find("p2p:"), std::string::npos);
  r = pipe;
  r.plans[0].weight_bytes = a.hbm.capacity_bytes + 1;  // in HBM but over it
  EXPECT_NE(kinds(r).find("capacity:"), std::string::npos);
  r = pipe;
  r.plans[1].problems.push_back("link: a chip's own mapping is broken");
  EXPECT_NE(kinds(r).find("chip:"), std::string::npos);
  r = data;
  r.plans[3].batch = 3;  // 11 samples mapped for a batch of 10
  EXPECT_NE(kinds(r).find("split:"), std::string::npos);
  r = data;
  r.chips = r.plans.size() + 4;
  EXPECT_NE(kinds(r).find("split:"), std::string::npos);
}

TEST(RduMultiChip, ClearErrorsForImpossibleSplits) {
  auto message = [](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  FnGraph f = mlp();
  EXPECT_NE(message([&] { run(f, 16, tiny(), 4, Parallel::kData); }).find("p2p.sockets = 2"), std::string::npos);
  EXPECT_NE(message([&] { run(f, 16, node_of(tiny(), 8), 8, Parallel::kPipeline); }).find("needs at least 8 sections"),
            std::string::npos);
  EXPECT_NE(message([&] { run(f, 4, tiny(), 1, Parallel::kPipeline, 5); }).find("--microbatches 5"), std::string::npos);
  EXPECT_THROW(parse_parallel("model"), Error);
}

}  // namespace
}  // namespace tessera::rdu
