// The validator accepts what the mapper produces and catches each kind of broken mapping.
#include <gtest/gtest.h>

#include "backend/rdu/routing.h"
#include "rdu/rdu_test_util.h"

namespace tessera::rdu {
namespace {

struct Fixture {
  testing::FnGraph f = testing::relu_chain(65536, 2);
  RduMapping m = map_graph(*f.g, 1, testing::tiny());
  SimReport r = simulate_timing(m);
  int slot(int which) const {  // slot of the which-th compute kernel of section 0
    const Section& s = m.partition.sections[0];
    for (size_t j = 0; j < s.kernels.size(); ++j)
      if (!m.kernels[s.kernels[j]].costs_nothing() && which-- == 0) return static_cast<int>(j);
    return -1;
  }
};

bool has(const std::vector<std::string>& problems, const std::string& kind) {
  for (const auto& p : problems)
    if (p.rfind(kind, 0) == 0) return true;
  return false;
}

TEST(RduValidator, AcceptsMappedSections) {
  Fixture x;
  EXPECT_TRUE(validate_mapping(x.m, &x.r).empty());
  MapOptions naive;
  naive.placement.naive = true;
  RduMapping n = map_graph(*x.f.g, 1, testing::tiny(), naive);
  SimReport nr = simulate_timing(n);
  EXPECT_TRUE(validate_mapping(n, &nr).empty());
  // Annealing never ends worse than its lower bound, and beats or ties the naive placement.
  EXPECT_GE(x.m.placement_cost, x.m.placement_lower_bound);
  EXPECT_LE(x.m.placement_cost, n.placement_cost);
}

TEST(RduValidator, CatchesRouteThatJumps) {
  Fixture x;
  auto& r = x.m.sections[0].routes[0];
  ASSERT_GE(r.size(), 2u);
  // Detour through the cell diagonally opposite the source: right ends, non-adjacent steps.
  int far = (4 - 1 - r.front() / 4) * 4 + (4 - 1 - r.front() % 4);
  r.insert(r.begin() + 1, far);
  EXPECT_TRUE(has(validate_mapping(x.m), "route:"));
}

TEST(RduValidator, CatchesRouteToTheWrongUnit) {
  Fixture x;
  x.m.sections[0].routes[0].pop_back();
  if (x.m.sections[0].routes[0].empty()) x.m.sections[0].routes[0].push_back(-1);
  EXPECT_TRUE(has(validate_mapping(x.m), "route:"));
}

TEST(RduValidator, CatchesDoubleBookedUnit) {
  Fixture x;
  SectionMapping& sm = x.m.sections[0];
  int a = sm.pcu_units[x.slot(0)][0], b = sm.pcu_units[x.slot(1)][0];
  sm.unit_cell[b] = sm.unit_cell[a];
  EXPECT_TRUE(has(validate_mapping(x.m), "double-booked:"));
}

TEST(RduValidator, CatchesWrongUnitType) {
  Fixture x;
  SectionMapping& sm = x.m.sections[0];
  sm.unit_cell[sm.pcu_units[x.slot(0)][0]] = sm.unit_cell[sm.pmu_units[x.slot(1)][0]];
  auto p = validate_mapping(x.m);
  EXPECT_TRUE(has(p, "unit:"));
}

TEST(RduValidator, CatchesSramOverCapacity) {
  Fixture x;
  x.m.partition.sections[0].sram[x.slot(0)] = 1 + static_cast<int64_t>(x.m.sections[0].pmu_units[x.slot(0)].size()) * 4096;
  EXPECT_TRUE(has(validate_mapping(x.m), "sram:"));
}

TEST(RduValidator, CatchesMissingUnits) {
  Fixture x;
  x.m.sections[0].pcu_units[x.slot(0)].pop_back();
  EXPECT_TRUE(has(validate_mapping(x.m), "unit:"));
}

TEST(RduValidator, CatchesLinkOverBandwidth) {
  Fixture x;
  ASSERT_TRUE(validate_mapping(x.m, &x.r).empty());
  // Claim the section ran in a tenth of the time: its links would exceed 100%.
  x.r.sections[0].pipeline_cycles /= 10;
  EXPECT_TRUE(has(validate_mapping(x.m, &x.r), "link:"));
}

}  // namespace
}  // namespace tessera::rdu
