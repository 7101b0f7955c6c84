// Test-only helpers for the pass and fused-op tests: random inputs and the numeric-match rule
// (max|a-b| <= 1e-4 * max|ref| + 1e-6) from the shared design notes.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include <algorithm>
#include <sstream>
#include <vector>

#include "ir/interpreter.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/pass.h"

namespace tessera::testing {

inline Tensor random_f32(Shape shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

// Empty if `got` numerically matches `ref`, else a description of the mismatch.
inline std::string numeric_mismatch(const Tensor& ref, const Tensor& got) {
  if (ref.dtype() != got.dtype())
    return std::string("dtype ") + dtype_name(got.dtype()) + " vs " + dtype_name(ref.dtype());
  if (ref.shape() != got.shape()) return "shape " + shape_str(got.shape()) + " vs " + shape_str(ref.shape());
  if (ref.dtype() != DType::kFloat32) {
    if (is_pod(ref.dtype()) && std::memcmp(ref.raw(), got.raw(), ref.nbytes()) != 0) return "values differ";
    return "";
  }
  double scale = 0, diff = 0;
  const float* r = ref.data<float>();
  const float* g = got.data<float>();
  for (int64_t i = 0; i < ref.num_elements(); ++i) {
    scale = std::max(scale, std::fabs(static_cast<double>(r[i])));
    double d = std::fabs(static_cast<double>(r[i]) - g[i]);
    if (std::isnan(d) && !(std::isnan(r[i]) && std::isnan(g[i]))) d = INFINITY;
    if (!std::isnan(d)) diff = std::max(diff, d);
  }
  if (diff <= 1e-4 * scale + 1e-6) return "";
  return "max|diff| " + std::to_string(diff) + " > tolerance (max|ref| " + std::to_string(scale) + ")";
}

// The printed graph with its body lines sorted, so graphs compare regardless of node order.
inline std::string canonical_ir(const Graph& g) {
  std::istringstream in(print_graph(g, PrintOptions{.with_library = false, .max_inline_elements = 64}));
  std::string header, line;
  std::getline(in, header);
  std::vector<std::string> body;
  while (std::getline(in, line))
    if (line != "}") body.push_back(line);
  std::sort(body.begin(), body.end());
  std::string out = header + "\n";
  for (const auto& l : body) out += l + "\n";
  return out;
}

// Parses `text`, runs `passes` on it and returns the graph.
inline std::shared_ptr<Graph> run_on(const std::string& text, const std::vector<std::string>& passes,
                                     const passes::PassContext& ctx = {}) {
  auto g = parse_graph(text);
  passes::run_passes(*g, passes, ctx);
  return g;
}

inline std::vector<Tensor> call(const Graph& g, const std::vector<Tensor>& args, ResourceStore* vars = nullptr) {
  std::vector<Feed> feeds;
  for (size_t i = 0; i < args.size(); ++i) feeds.push_back({g.args.at(i)->out(), args[i]});
  return interpret(g, feeds, g.results, g.control_results, vars);
}

// Empty if `after` computes what `before_text` does on `args` (numeric match per result).
inline std::string results_mismatch(const std::string& before_text, const Graph& after,
                                    const std::vector<Tensor>& args, ResourceStore* vars = nullptr) {
  auto before = parse_graph(before_text);
  std::vector<Tensor> ref = call(*before, args, vars), got = call(after, args, vars);
  if (ref.size() != got.size()) return "result count differs";
  for (size_t i = 0; i < ref.size(); ++i) {
    std::string m = numeric_mismatch(ref[i], got[i]);
    if (!m.empty()) return "result " + std::to_string(i) + ": " + m;
  }
  return "";
}

#define EXPECT_IR(graph, text) \
  EXPECT_EQ(::tessera::testing::canonical_ir(graph), ::tessera::testing::canonical_ir(*::tessera::parse_graph(text)))
#define EXPECT_SAME_RESULTS(before_text, after, ...) \
  EXPECT_EQ(::tessera::testing::results_mismatch(before_text, after, __VA_ARGS__), "")

#define EXPECT_NUMERIC_MATCH(ref, got) EXPECT_EQ(::tessera::testing::numeric_mismatch(ref, got), "")

}  // namespace tessera::testing
