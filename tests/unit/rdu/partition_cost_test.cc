// Cost-aware section cuts on the `tiny` chip (8 PCUs of 4 lanes x 3 stages, pipeline latency
// 4, switch + sync 120 cycles): a case where packing until the units run out starves a kernel.
#include <gtest/gtest.h>

#include "rdu/rdu_test_util.h"

namespace tessera::rdu {
namespace {

using testing::tiny;

// A SIMD kernel of `vectors` 4-lane vectors and a 3-op program (one pass through the stages),
// with no bytes moved, so its time is compute only: ceil(vectors / pcus) + 4 cycles.
Kernel simd(int64_t vectors, int producer) {
  Kernel k;
  k.engine = Engine::kSimd;
  k.name = k.op = "Relu";
  k.family = "elementwise";
  k.elems = 4 * vectors;
  k.ops = 3;
  k.flops = 3.0 * k.elems;
  if (producer >= 0) {
    k.producers = {producer};
    k.producer_bytes = {0};
    k.producer_whole = {false};
  }
  return k;
}

// k0 has 1,024 vectors (1,028 cycles on 1 PCU, 132 on 8); k1..k7 one vector each (5 cycles,
// 1 useful PCU). All eight fit tiny's 8 PCUs and 8 PMUs at once.
std::vector<Kernel> starving_chain() {
  std::vector<Kernel> ks{simd(1024, -1)};
  for (int i = 1; i < 8; ++i) ks.push_back(simd(1, i - 1));
  ks.back().is_result = true;
  return ks;
}

TEST(RduPartition, GreedyStarvesCostAwareCuts) {
  Arch a = tiny();
  std::vector<Kernel> ks = starving_chain();
  // Greedy: one section, every kernel on 1 PCU; k0 paces it: 1,028 + 120 = 1,148 cycles.
  PartitionOptions greedy;
  greedy.cost_aware = false;
  Partition g = partition_kernels(ks, a, {}, greedy);
  ASSERT_EQ(g.sections.size(), 1u);
  EXPECT_EQ(g.sections[0].pcus, std::vector<int>(8, 1));
  // Cost-aware: k0 alone on 8 PCUs (132 + 120), then k1..k7 (5 + 120) = 377 estimated. Every
  // other cut is worse by hand: {k0,k1} gives k0 7 PCUs, 147 + 4 + 120 + 125 = 396; one
  // section per kernel pays 8 switches (8 x 120 + 132 + 7 x 5 = 1,127).
  Partition c = partition_kernels(ks, a, {}, PartitionOptions{});
  ASSERT_EQ(c.sections.size(), 2u);
  EXPECT_EQ(c.sections[0].kernels, std::vector<int>{0});
  EXPECT_EQ(c.sections[0].pcus, std::vector<int>{8});
  EXPECT_EQ(c.sections[1].kernels, (std::vector<int>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(c.section_of, (std::vector<int>{0, 1, 1, 1, 1, 1, 1, 1}));

  // The simulated times follow: within 5% of the hand values (the pipeline adds a few cycles
  // of fill per section), and the cost-aware mapping is about 3x faster.
  double greedy_cycles = 0, cost_cycles = 0;
  {
    MapOptions o;
    o.partition = greedy;
    greedy_cycles = simulate_timing(map_kernels(ks, 1, a, o)).cycles;
  }
  cost_cycles = simulate_timing(map_kernels(ks, 1, a, MapOptions{})).cycles;
  EXPECT_NEAR(greedy_cycles, 1148, 0.05 * 1148);
  EXPECT_NEAR(cost_cycles, 377, 0.05 * 377);
  EXPECT_LT(cost_cycles * 2.5, greedy_cycles);
}

TEST(RduPartition, SwitchCostKeepsSmallKernelsTogether) {
  // Eight one-vector kernels: splitting gains nothing, so one section (5 + 120 cycles), as
  // greedy does.
  Arch a = tiny();
  std::vector<Kernel> ks{simd(1, -1)};
  for (int i = 1; i < 8; ++i) ks.push_back(simd(1, i - 1));
  ks.back().is_result = true;
  Partition c = partition_kernels(ks, a, {}, PartitionOptions{});
  ASSERT_EQ(c.sections.size(), 1u);
}

TEST(RduPartition, UnfusedIsOneComputeKernelPerSection) {
  Arch a = tiny();
  PartitionOptions o;
  o.fused = false;
  Partition u = partition_kernels(starving_chain(), a, {}, o);
  EXPECT_EQ(u.sections.size(), 8u);
}

}  // namespace
}  // namespace tessera::rdu
