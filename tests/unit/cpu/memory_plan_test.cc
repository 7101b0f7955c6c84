// The memory planner on its own: in-place merging (chains shrink the arena; a buffer still read
// later, a result or an arg is never overwritten) and the dependency order used with inter-op
// parallelism (values of steps that may run at the same time never share space).
#include <gtest/gtest.h>

#include <random>

#include "backend/cpu/memory_plan.h"
#include "support/error.h"

namespace tessera::cpu {
namespace {

// Value i written by step i, read by step i+1, optionally in place over value i-1.
std::vector<PlanValue> chain(int n, int64_t bytes, bool in_place) {
  std::vector<PlanValue> v(n);
  for (int i = 0; i < n; ++i) {
    v[i].bytes = bytes;
    v[i].writer = i;
    if (i + 1 < n) v[i].readers = {i + 1};
    else v[i].live_out = true;
    if (in_place && i > 0) v[i].in_place = {i - 1};
  }
  return v;
}

TEST(CpuMemoryPlan, InPlaceChainUsesOneBuffer) {
  ValuePlan without = plan_values(chain(6, 1000, false), StepOrder::sequential(6));
  ValuePlan with = plan_values(chain(6, 1000, true), StepOrder::sequential(6));
  EXPECT_EQ(without.arena_bytes, 2 * 1024);
  EXPECT_EQ(without.in_place, 0);
  EXPECT_EQ(with.arena_bytes, 1024);
  EXPECT_EQ(with.in_place, 5);
  for (int i = 1; i < 6; ++i) {
    EXPECT_EQ(with.shares[i], i - 1);
    EXPECT_EQ(with.offsets[i], with.offsets[0]);
  }
  EXPECT_EQ(with.total_requested, 6000);
}

TEST(CpuMemoryPlan, InPlaceNeedsSameSize) {
  std::vector<PlanValue> v = chain(3, 1000, true);
  v[1].bytes = 2000;
  ValuePlan p = plan_values(v, StepOrder::sequential(3));
  EXPECT_EQ(p.shares[1], -1);
  EXPECT_EQ(p.shares[2], -1);  // 1's buffer is 2000 bytes, 2 needs 1000
}

TEST(CpuMemoryPlan, ValueReadLaterIsNeverOverwritten) {
  // v0 (step 0) is read by steps 1 and 3; v1 (step 1) asks to overwrite v0 in place.
  std::vector<PlanValue> v(3);
  v[0] = {1000, 0, {1, 3}, false, {}};
  v[1] = {1000, 1, {2}, false, {0}};
  v[2] = {1000, 2, {3}, false, {1}};
  ValuePlan p = plan_values(v, StepOrder::sequential(4));
  EXPECT_EQ(p.shares[1], -1);
  EXPECT_NE(p.offsets[0], p.offsets[1]);
  EXPECT_NE(p.offsets[0], p.offsets[2]);  // v2 lives while step 3 still reads v0
  EXPECT_EQ(p.shares[2], 1);              // v1's last use is step 2: fine
}

TEST(CpuMemoryPlan, ResultsAndArgsAreNeverTakenOver) {
  std::vector<PlanValue> v(3);
  v[0] = {-1, 0, {1}, false, {}};          // an arg: not in the arena
  v[1] = {1000, 1, {2}, true, {0}};        // a result; asks for the arg's buffer
  v[2] = {1000, 2, {}, true, {1}};         // asks for the result's buffer
  ValuePlan p = plan_values(v, StepOrder::sequential(3));
  EXPECT_EQ(p.offsets[0], -1);
  EXPECT_EQ(p.shares[1], -1);
  EXPECT_EQ(p.shares[2], -1);
  EXPECT_NE(p.offsets[1], p.offsets[2]);
}

// x (step 0) feeds two independent steps 1 and 2, joined by step 3. In order, step 2 is x's
// last reader and may overwrite it; when steps 1 and 2 may run at once, it must not.
TEST(CpuMemoryPlan, ConcurrentStepsNeverShare) {
  std::vector<PlanValue> v(4);
  v[0] = {4096, 0, {1, 2}, false, {}};
  v[1] = {4096, 1, {3}, false, {0}};
  v[2] = {4096, 2, {3}, false, {0}};
  v[3] = {4096, 3, {}, true, {1, 2}};
  ValuePlan seq = plan_values(v, StepOrder::sequential(4));
  EXPECT_EQ(seq.shares[2], 0);
  StepOrder dag = StepOrder::from_deps({{}, {0}, {0}, {1, 2}});
  EXPECT_TRUE(dag.before(0, 3));
  EXPECT_FALSE(dag.before(1, 2));
  EXPECT_FALSE(dag.before(2, 1));
  ValuePlan par = plan_values(v, dag);
  EXPECT_EQ(par.shares[1], -1);
  EXPECT_EQ(par.shares[2], -1);
  EXPECT_NE(par.offsets[0], par.offsets[1]);
  EXPECT_NE(par.offsets[0], par.offsets[2]);
  EXPECT_NE(par.offsets[1], par.offsets[2]);
  EXPECT_EQ(par.shares[3], 1);  // both its inputs die at step 3
  EXPECT_GT(par.arena_bytes, seq.arena_bytes);
}

TEST(CpuMemoryPlan, StepOrderIsTransitive) {
  StepOrder o = StepOrder::from_deps({{}, {0}, {1}, {}, {2, 3}});
  EXPECT_TRUE(o.before(0, 2));
  EXPECT_TRUE(o.before(0, 4));
  EXPECT_FALSE(o.before(0, 3));
  EXPECT_FALSE(o.before(3, 2));
  EXPECT_FALSE(o.before(2, 2));
  std::vector<uint64_t> after = o.after_all({0, 3});
  EXPECT_EQ(after[0], uint64_t(1) << 4);
  EXPECT_THROW(StepOrder::from_deps({{1}, {}}), Error);
}

// Random DAGs and random in-place requests: two placed values whose bytes overlap must be
// ordered (every use of the earlier before the later's writer), or the later took the earlier
// over in place, where its own writer may be the earlier's last use.
TEST(CpuMemoryPlan, RandomGraphsNeverOverlapLiveBuffers) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 40; ++trial) {
    const int n = 30 + static_cast<int>(rng() % 40);
    std::vector<std::vector<int>> deps(n);
    std::vector<PlanValue> v(n);
    for (int i = 0; i < n; ++i) {
      v[i].writer = i;
      v[i].bytes = rng() % 7 == 0 ? -1 : static_cast<int64_t>(256 * (1 + rng() % 3));
      const int k = i == 0 ? 0 : static_cast<int>(rng() % 3);
      for (int j = 0; j < k; ++j) {
        const int d = static_cast<int>(rng() % i);
        deps[i].push_back(d);
        v[d].readers.push_back(i);
        if (rng() % 2) v[i].in_place.push_back(d);
      }
      v[i].live_out = rng() % 10 == 0;
    }
    const bool sequential = trial % 2 == 0;
    StepOrder order = sequential ? StepOrder::sequential(n) : StepOrder::from_deps(deps);
    ValuePlan p = plan_values(v, order);
    auto uses = [&](int i) {
      std::vector<int> u = v[i].readers;
      u.push_back(v[i].writer);
      return u;
    };
    auto took_over = [&](int later, int earlier) {
      for (int c = p.shares[later]; c >= 0; c = p.shares[c])
        if (c == earlier) return true;
      return false;
    };
    for (int i = 0; i < n; ++i)
      for (int j = i + 1; j < n; ++j) {
        if (p.offsets[i] < 0 || p.offsets[j] < 0) continue;
        const bool space = p.offsets[i] < p.offsets[j] + v[j].bytes && p.offsets[j] < p.offsets[i] + v[i].bytes;
        if (!space) continue;
        SCOPED_TRACE("trial " + std::to_string(trial) + " values " + std::to_string(i) + "," + std::to_string(j));
        ASSERT_FALSE(v[i].live_out);
        for (int u : uses(i))
          ASSERT_TRUE(order.before(u, v[j].writer) || (u == v[j].writer && took_over(j, i)));
      }
  }
}

}  // namespace
}  // namespace tessera::cpu
