// The HTML report of `tessera simulate --report`: its structure (one mesh per section with every
// unit of the chip, roofline points for each section of both mappings, the sweep plot),
// escaping of model-derived names, and that it references nothing outside itself.
#include "backend/rdu/report.h"

#include <gtest/gtest.h>

#include "rdu/rdu_test_util.h"

namespace tessera::rdu {
namespace {

using testing::matmul_graph;
using testing::relu_chain;
using testing::tiny;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + what.size())) ++n;
  return n;
}

// Both mappings of a graph and their timings, kept alive for the report's pointers.
struct Runs {
  RduMapping fused, unfused;
  SimReport fused_t, unfused_t;
  Runs(const Graph& g, const Arch& a) {
    fused = map_graph(g, 1, a);
    MapOptions o;
    o.partition.fused = false;
    unfused = map_graph(g, 1, a, o);
    fused_t = simulate_timing(fused);
    unfused_t = simulate_timing(unfused);
  }
  ReportInput input(bool main_is_fused) const {
    ReportInput in;
    in.model = "relu<chain>.tsr";
    in.signature = "serving_default";
    in.fused = {&fused, &fused_t};
    in.unfused = {&unfused, &unfused_t};
    in.main_is_fused = main_is_fused;
    return in;
  }
};

// A chain of three Relus whose middle node has a name full of HTML metacharacters.
cpu::testing::FnGraph evil_chain() {
  auto f = relu_chain(4096, 3);
  for (Node* n : f.g->topo_order())
    if (n->name == "n2") n->name = "block/<b>relu</b>&\"q\"";
  return f;
}

TEST(RduReport, EscapesHtml) {
  EXPECT_EQ(html_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
  EXPECT_EQ(html_escape("plain/name_1"), "plain/name_1");
}

TEST(RduReport, OneMeshPerSectionWithEveryUnit) {
  auto f = evil_chain();
  Arch a = tiny();
  Runs runs(*f.g, a);
  ASSERT_EQ(runs.unfused_t.sections.size(), 3u);
  ASSERT_EQ(runs.fused_t.sections.size(), 1u);
  std::string html = render_report(runs.input(false));  // the unfused mapping drawn in detail
  ASSERT_EQ(count(html, "<div class=\"mesh\""), 3u);
  // Each mesh draws every unit of tiny: PCUs as squares, PMUs as circles.
  size_t first = html.find("<div class=\"mesh\"");
  size_t end = html.find("<h2>Roofline");
  ASSERT_LT(first, end);
  std::string meshes = html.substr(first, end - first);
  EXPECT_EQ(count(meshes, "<rect"), 3u * a.pcu.count);
  EXPECT_EQ(count(meshes, "<circle"), 3u * a.pmu.count);
  // A used unit carries a hover title naming its op.
  EXPECT_GE(count(meshes, "[Relu]"), 3u);

  std::string fused = render_report(runs.input(true));
  EXPECT_EQ(count(fused, "<div class=\"mesh\""), 1u);
}

TEST(RduReport, MeshesAreCappedToTheSlowestSections) {
  auto f = relu_chain(4096, 5);
  Runs runs(*f.g, tiny());
  ASSERT_EQ(runs.unfused_t.sections.size(), 5u);
  ReportInput in = runs.input(false);
  in.max_meshes = 2;
  std::string html = render_report(in);
  EXPECT_EQ(count(html, "<div class=\"mesh\""), 2u);
  EXPECT_NE(html.find("Showing the 2 slowest of 5 sections"), std::string::npos);
  EXPECT_EQ(count(html, "<tr><td>"), 5u);  // the section table still lists all five
}

TEST(RduReport, RooflineHasEverySectionOfBothMappings) {
  auto f = evil_chain();
  Runs runs(*f.g, tiny());
  std::string html = render_report(runs.input(true));
  EXPECT_EQ(count(html, "class=\"pt-main\""), runs.fused_t.sections.size());
  EXPECT_EQ(count(html, "class=\"pt-base\""), runs.unfused_t.sections.size());
  EXPECT_NE(html.find("id=\"roofline\""), std::string::npos);
  EXPECT_NE(html.find("peak 192 GFLOP/s"), std::string::npos) << "tiny's bf16 peak: 8 PCUs x 24 FLOP/cycle at 1 GHz";
}

TEST(RduReport, NamesAreEscapedAndNothingIsExternal) {
  auto f = evil_chain();
  Runs runs(*f.g, tiny());
  for (bool main_fused : {true, false}) {
    std::string html = render_report(runs.input(main_fused));
    EXPECT_EQ(html.find("<b>relu</b>"), std::string::npos);
    EXPECT_EQ(html.find("<chain>"), std::string::npos);
    EXPECT_NE(html.find("&lt;b&gt;relu&lt;/b&gt;&amp;&quot;q&quot;"), std::string::npos);
    EXPECT_NE(html.find("relu&lt;chain&gt;.tsr"), std::string::npos);
    EXPECT_EQ(html.find("http://"), std::string::npos);
    EXPECT_EQ(html.find("https://"), std::string::npos);
    EXPECT_EQ(html.find("<script"), std::string::npos);
    EXPECT_EQ(html.find("src="), std::string::npos);
    EXPECT_EQ(html.find("@import"), std::string::npos);
    EXPECT_EQ(count(html, "url("), count(html, "url(#"));  // only in-page gradient references
    EXPECT_EQ(html.rfind("</html>"), html.size() - 8);
  }
}

TEST(RduReport, FusedAgainstUnfusedAndSweep) {
  auto f = evil_chain();
  Runs runs(*f.g, tiny());
  ReportInput in = runs.input(true);
  std::string plain = render_report(in);
  EXPECT_EQ(plain.find("id=\"sweep\""), std::string::npos);
  char speedup[32];
  std::snprintf(speedup, sizeof speedup, "%.3g&times;", runs.unfused_t.cycles / runs.fused_t.cycles);
  EXPECT_NE(plain.find(std::string("<b id=\"speedup\">") + speedup), std::string::npos) << speedup;
  EXPECT_GT(runs.unfused_t.cycles, runs.fused_t.cycles);

  in.sweep_param = "pcu.count";
  in.sweep = {{2, 100, 0.1, 1, true}, {4, 180, 0.1, 1, true}, {8, 300, 0.1, 1, false}};
  std::string swept = render_report(in);
  EXPECT_NE(swept.find("id=\"sweep\""), std::string::npos);
  EXPECT_EQ(count(swept, "class=\"sweep-pt\""), 3u);
  EXPECT_NE(swept.find("INVALID"), std::string::npos);  // the invalid point says so

  ReportInput alone = runs.input(true);
  alone.unfused = {};
  std::string single = render_report(alone);
  EXPECT_NE(single.find("Only one mapping was simulated"), std::string::npos);
  EXPECT_EQ(count(single, "class=\"pt-base\""), 0u);
}

TEST(RduReport, UtilisationOfAWholeChipGemmIsHigh) {
  // The hand-checked GEMM of simulator_test: every PCU computes >= 85% of the section.
  auto f = matmul_graph(4096, 96, 64);
  RduMapping m = map_graph(*f.g, 1, tiny());
  SimReport r = simulate_timing(m);
  SlotUtilisation u = slot_utilisation(m, 0, r.sections[0]);
  const Section& sec = m.partition.sections[0];
  bool saw_gemm = false;
  for (size_t j = 0; j < sec.kernels.size(); ++j) {
    EXPECT_GE(u.pcu[j], 0);
    EXPECT_LE(u.pcu[j], 1);
    EXPECT_GE(u.pmu[j], 0);
    EXPECT_LE(u.pmu[j], 1);
    if (sec.pcus[j] == 8) {
      saw_gemm = true;
      EXPECT_GE(u.pcu[j], 0.85);
    }
  }
  EXPECT_TRUE(saw_gemm);
}

}  // namespace
}  // namespace tessera::rdu
