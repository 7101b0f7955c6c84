#include <gtest/gtest.h>

#include "rdu/rdu_test_util.h"

namespace tessera::rdu {
namespace {

using testing::preset;

TEST(RduArch, PresetsLoadWithDerivedPeaks) {
  Arch t = preset("tiny");
  EXPECT_EQ(t.pcu.count, 8);
  EXPECT_EQ(t.pmu.count, 8);
  EXPECT_DOUBLE_EQ(t.peak_flop_per_cycle(true), 192);
  EXPECT_EQ(t.sram_bytes(), 32768);
  Arch s = preset("sn40l_like");
  // 1040 PCUs x 384 FLOP x 1.6 GHz = 638.976 TFLOP/s bf16; 520 MB-ish SRAM (1040 x 512 KiB).
  EXPECT_NEAR(s.peak_flop_per_cycle(true) * s.clock_ghz * 1e9 / 1e12, 638.976, 1e-6);
  EXPECT_EQ(s.sram_bytes(), 1040LL * 524288);
  EXPECT_NEAR(s.hbm.bw_Bpc * s.clock_ghz * 1e9, 1.6e12, 1e3);
  EXPECT_NEAR(s.ddr.bw_Bpc * s.clock_ghz * 1e9, 100e9, 1e3);
  Arch m = preset("small");
  EXPECT_EQ(m.hbm.capacity_bytes, 4LL << 30);
}

TEST(RduArch, PlasticineConfigReproducesPublishedPeaks) {
  // Published (ISCA 2017): 12.3 single-precision TFLOP/s and 16 MB on chip.
  Arch p = preset("plasticine");
  double tflops = p.peak_flop_per_cycle(false) * p.clock_ghz * 1e9 / 1e12;
  EXPECT_NEAR(tflops, 12.3, 12.3 * 0.01);  // 12.288: 0.1% below
  EXPECT_EQ(p.sram_bytes(), 16LL << 20);
}

TEST(RduArch, SweepParametersAreValidated) {
  Arch a = preset("small");
  set_arch_param(a, "hbm.bw_Bpc", 512);
  EXPECT_DOUBLE_EQ(a.hbm.bw_Bpc, 512);
  set_arch_param(a, "pcu.count", 16);
  EXPECT_EQ(a.pcu.count, 16);
  EXPECT_THROW(set_arch_param(a, "pcu.count", 33), Error);  // more than the grid's PCU cells
  EXPECT_THROW(set_arch_param(a, "no.such", 1), Error);
  EXPECT_THROW(set_arch_param(a, "hbm.bw_Bpc", 0), Error);
}

std::string tiny_json() {
  return R"({"name": "t", "clock_ghz": 1.0,
  "pcu": {"count": 8, "lanes": 4, "stages": 3, "pipeline_latency_cycles": 4},
  "pmu": {"count": 8, "capacity_bytes": 4096, "banks": 4, "addr_per_cycle": 1, "read_Bpc": 16, "write_Bpc": 16},
  "mesh": {"rows": 4, "cols": 4, "vector_link_Bpc": 16, "scalar_link_Bpc": 4, "hop_latency_cycles": 1},
  "agcu": {"count": 2, "max_outstanding_reqs": 8},
  "hbm": {"capacity_bytes": 16777216, "bw_Bpc": 64, "latency_cycles": 50},
  "ddr": {"capacity_bytes": 67108864, "bw_Bpc": 16, "latency_cycles": 100},
  "reconfig": {"section_switch_cycles": 100}})";
}

void expect_error(const std::string& json, const std::string& needle) {
  try {
    parse_arch(json, "chip.json");
    FAIL() << "accepted a chip with " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("chip.json"), std::string::npos) << e.what();
  }
}

TEST(RduArch, DefaultsAndErrorsNameTheField) {
  Arch a = parse_arch(tiny_json(), "chip.json");
  EXPECT_DOUBLE_EQ(a.pcu.bf16_flop_per_cycle, 24);  // 2 * lanes * stages
  EXPECT_DOUBLE_EQ(a.pcu.fp32_flop_per_cycle, 12);
  auto edit = [](std::string s, const std::string& from, const std::string& to) {
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  expect_error(edit(tiny_json(), "\"lanes\": 4, ", ""), "pcu.lanes");
  expect_error(edit(tiny_json(), "\"bw_Bpc\": 64", "\"bw_Bpc\": -1"), "hbm.bw_Bpc");
  expect_error(edit(tiny_json(), "\"banks\": 4", "\"bank\": 4"), "pmu.bank");           // misspelt field
  expect_error(edit(tiny_json(), "\"count\": 8, \"lanes\"", "\"count\": 9, \"lanes\""), "pcu.count");
  expect_error(edit(tiny_json(), "\"rows\": 4", "\"rows\": \"4\""), "mesh.rows");
  expect_error("{", "invalid JSON");
  EXPECT_THROW(load_arch("no_such_chip"), Error);
}

}  // namespace
}  // namespace tessera::rdu
