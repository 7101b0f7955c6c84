// The rdu mapping codec: a stored mapping decodes to the same sections, placement, routes and
// cycles; corrupt or mismatched bytes fail with kDataLoss naming the field, never crash.
#include "backend/rdu/mapping_codec.h"

#include <gtest/gtest.h>

#include "rdu/rdu_test_util.h"
#include "runtime/artifact.h"

namespace tessera::rdu {
namespace {

// x [64, 32] · w [32, 32] → Relu → Relu: several kernels, one or three sections.
testing::FnGraph model() {
  testing::FnGraph f;
  Value x = f.arg(DType::kFloat32, PartialShape({64, 32}));
  Value w = f.constant(cpu::testing::random_tensor({32, 32}, 3));
  Value v = f.op("MatMul", {x, w}, {{"T", DType::kFloat32}, {"transpose_a", false}, {"transpose_b", false}})->out();
  for (int i = 0; i < 2; ++i) v = f.op("Relu", {v}, {{"T", DType::kFloat32}})->out();
  f.result(v);
  return f;
}

std::string encode(const RduMapping& m, const MapOptions& o) { return encode_mapping(m, o, simulate_timing(m)); }

void expect_data_loss(const std::string& bytes, const Graph& g, const std::string& needle) {
  try {
    decode_mapping(bytes, g, "test mapping");
    ADD_FAILURE() << "decoded, expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("test mapping"), std::string::npos) << e.what();
  }
}

TEST(RduMappingCodec, RoundTripKeepsPlacementAndCycles) {
  testing::FnGraph f = model();
  for (const char* chip : {"tiny", "small"}) {
    for (bool fused : {true, false}) {
      MapOptions o;
      o.partition.fused = fused;
      Arch arch = testing::preset(chip);
      RduMapping m = map_graph(*f.g, 4, arch, o);
      SimReport r = simulate_timing(m);
      StoredMapping s = decode_mapping(encode_mapping(m, o, r), *f.g, "rt");
      const RduMapping& d = s.mapping;
      EXPECT_TRUE(same_arch(d.arch, arch));
      EXPECT_EQ(d.batch, 4);
      EXPECT_EQ(s.options.partition.fused, fused);
      ASSERT_EQ(d.sections.size(), m.sections.size());
      EXPECT_EQ(d.sections.size() > 1, !fused) << chip;
      for (size_t i = 0; i < m.sections.size(); ++i) {
        EXPECT_EQ(d.partition.sections[i].kernels, m.partition.sections[i].kernels);
        EXPECT_EQ(d.partition.sections[i].pcus, m.partition.sections[i].pcus);
        EXPECT_EQ(d.partition.sections[i].pmus, m.partition.sections[i].pmus);
        EXPECT_EQ(d.partition.sections[i].hbm_read, m.partition.sections[i].hbm_read);
        EXPECT_EQ(d.sections[i].unit_cell, m.sections[i].unit_cell);
        EXPECT_EQ(d.sections[i].pcu_units, m.sections[i].pcu_units);
        EXPECT_EQ(d.sections[i].pmu_units, m.sections[i].pmu_units);
        EXPECT_EQ(d.sections[i].routes, m.sections[i].routes);
        EXPECT_EQ(d.sections[i].streams.size(), m.sections[i].streams.size());
        EXPECT_EQ(s.timing.sections[i].bottleneck, r.sections[i].bottleneck);
      }
      SimReport again = simulate_timing(d);
      EXPECT_EQ(again.cycles, r.cycles);
      EXPECT_EQ(s.timing.cycles, r.cycles);
      EXPECT_EQ(again.hbm_bytes, r.hbm_bytes);
      EXPECT_TRUE(validate_mapping(d, &again).empty());
      // Encoding the decoded mapping gives the same bytes (nothing lost on the way).
      EXPECT_EQ(encode_mapping(d, s.options, s.timing), encode_mapping(m, o, r));
    }
  }
}

TEST(RduMappingCodec, ArchJsonRoundTrips) {
  for (const char* chip : {"tiny", "small", "sn40l_like"}) {
    Arch a = testing::preset(chip);
    EXPECT_TRUE(same_arch(parse_arch(arch_to_json(a), "json"), a)) << chip;
    Arch b = a;
    set_arch_param(b, "hbm.bw_Bpc", a.hbm.bw_Bpc * 2);
    EXPECT_FALSE(same_arch(a, b));
  }
}

TEST(RduMappingCodec, TruncationAndByteFlipsFailCleanly) {
  testing::FnGraph f = model();
  MapOptions o;
  o.partition.fused = false;
  std::string bytes = encode(map_graph(*f.g, 2, testing::tiny(), o), o);
  for (size_t n = 0; n < bytes.size(); n += 7) expect_data_loss(bytes.substr(0, n), *f.g, "test mapping");
  int decoded = 0, rejected = 0;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    try {
      StoredMapping s = decode_mapping(bad, *f.g, "flip");
      // Whatever decodes is a valid mapping of this graph.
      EXPECT_TRUE(validate_mapping(s.mapping).empty());
      ++decoded;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(decoded + rejected, 100);
}

TEST(RduMappingCodec, RejectsBrokenMappingsNamingTheProblem) {
  testing::FnGraph f = model();
  MapOptions o;
  RduMapping good = map_graph(*f.g, 2, testing::tiny(), o);
  SimReport timing = simulate_timing(good);
  // Broken mappings are encoded with the good one's timing: simulating them is unsafe.
  auto encode = [&](const RduMapping& m, const MapOptions& opts) { return encode_mapping(m, opts, timing); };
  {
    RduMapping m = good;  // two units on one cell: the validator's double-booking
    ASSERT_GE(m.sections[0].unit_cell.size(), 3u);
    SectionMapping& sm = m.sections[0];
    int a = -1;
    for (const auto& units : sm.pcu_units)
      if (a < 0 && !units.empty()) a = units[0];
    ASSERT_GE(a, 0);
    for (size_t u = 0; u < sm.unit_cell.size(); ++u)
      if (static_cast<int>(u) != a && sm.unit_is_pcu[u]) {
        sm.unit_cell[u] = sm.unit_cell[a];
        break;
      }
    expect_data_loss(encode(m, o), *f.g, "fails the validator");
  }
  {
    RduMapping m = good;  // a route that jumps across the mesh
    auto& r = m.sections[0].routes.at(0);
    r.insert(r.begin() + 1, (r.front() + 10) % 16);
    expect_data_loss(encode(m, o), *f.g, "fails the validator");
  }
  {
    RduMapping m = good;  // a stream naming a unit that does not exist
    m.sections[0].streams.at(0).src_unit = static_cast<int>(m.sections[0].unit_cell.size());
    expect_data_loss(encode(m, o), *f.g, "stream source");
  }
  {
    RduMapping m = good;  // a compute kernel left without PCUs
    Section& s = m.partition.sections[0];
    for (size_t j = 0; j < s.kernels.size(); ++j)
      if (s.pcus[j] > 0) {
        s.pcus[j] = 0;
        m.sections[0].pcu_units[j].clear();
        break;
      }
    expect_data_loss(encode(m, o), *f.g, "below what it needs");
  }
  // Another graph (a different Relu count) or another batch's lowering does not fit.
  testing::FnGraph other = testing::relu_chain(64, 3);
  expect_data_loss(encode(good, o), *other.g, "another graph");
  std::string bytes = encode(good, o);
  expect_data_loss(bytes + "x", *f.g, "trailing");
  std::string bad_magic = bytes;
  bad_magic[10] = 'X';
  expect_data_loss(bad_magic, *f.g, "magic");
}

// The fuzzer's seed with an rdu_mapping section still loads and decodes (format drift would
// silently leave the fuzzer without a valid mapping to mutate).
TEST(RduMappingCodec, FuzzSeedArtifactDecodes) {
  Artifact a = read_artifact(std::string(TESSERA_SOURCE_DIR) + "/fuzz/corpus/tsr_fuzzer/rdu_cond_while_tiny.tsr");
  ASSERT_EQ(a.rdu_mappings.size(), 1u);
  const auto& [key, bytes] = *a.rdu_mappings.begin();
  StoredMapping m = decode_mapping(bytes, *a.signatures.at(key).graph, "seed");
  EXPECT_EQ(m.mapping.arch.name, "tiny");
  EXPECT_EQ(m.mapping.batch, 2);
  EXPECT_EQ(simulate_timing(m.mapping).cycles, m.timing.cycles);
}

}  // namespace
}  // namespace tessera::rdu
