// The differentiate transformation itself (passes/autodiff): summing over several uses,
// targets the loss does not reach, variables read several times, errors, and that only the
// needed input gradients are built.
#include <gtest/gtest.h>

#include "error_test_util.h"
#include "ir/grad.h"
#include "ir/interpreter.h"
#include "ir/parser.h"
#include "passes/autodiff.h"

namespace tessera {
namespace {

std::vector<Tensor> run(const Graph& g, const std::vector<Tensor>& args, ResourceStore* vars = nullptr) {
  std::vector<Feed> feeds;
  for (size_t i = 0; i < args.size(); ++i) feeds.push_back({g.args[i]->out(), args[i]});
  return interpret(g, feeds, g.results, {}, vars);
}

Tensor vec(std::vector<float> v) { return Tensor::from_vector<float>(v, {static_cast<int64_t>(v.size())}); }

int count_op(const Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes()) n += node->op == op;
  return n;
}

TEST(Autodiff, SumsGradientsOfValuesUsedTwiceAndZeroForUnreachedTargets) {
  auto g = parse_graph(R"(
graph (x: float32[3], y: float32[3]) -> (r) {
  m = Mul(x, x) {T=float32}
  r = AddV2(m, x) {T=float32}
})");
  passes::differentiate(*g, g->results[0], passes::arg_targets(*g, {0, 1}));
  ASSERT_EQ(g->results.size(), 3u);
  EXPECT_EQ(g->result_names[1], "grad/x");
  auto out = run(*g, {vec({1, -2, 0.5f}), vec({4, 5, 6})});
  // d/dx sum(x*x + x) = 2x + 1; y is not used: zeros.
  EXPECT_EQ(std::vector<float>(out[1].data<float>(), out[1].data<float>() + 3), (std::vector<float>{3, -3, 2}));
  EXPECT_EQ(std::vector<float>(out[2].data<float>(), out[2].data<float>() + 3), (std::vector<float>{0, 0, 0}));
}

TEST(Autodiff, BuildsOnlyTheInputGradientsTheTargetsNeed) {
  auto g = parse_graph(R"(
graph (x: float32[2,3], w: float32[3,4]) -> (r) {
  m = MatMul(x, w) {T=float32}
  r = Tanh(m) {T=float32}
})");
  passes::differentiate(*g, g->results[0], passes::arg_targets(*g, {1}));
  EXPECT_EQ(count_op(*g, "MatMul"), 2);  // the forward one and d/dw only (no d/dx)
}

TEST(Autodiff, IntegerPathsCarryNoGradient) {
  // The Size -> Cast path reaches the loss but is not differentiable; it must not need a
  // gradient (Size has none).
  auto g = parse_graph(R"(
graph (x: float32[?,3]) -> (r) {
  s = Size(x) {T=float32, out_type=int32}
  c = Cast(s) {SrcT=int32, DstT=float32}
  r = Mul(x, c) {T=float32}
})");
  passes::differentiate(*g, g->results[0], passes::arg_targets(*g, {0}));
  Tensor x(DType::kFloat32, {2, 3});
  auto out = run(*g, {x});
  EXPECT_EQ(out[1].data<float>()[0], 6.0f);
  EXPECT_EQ(out[1].data<float>()[5], 6.0f);
}

TEST(Autodiff, MissingGradientNamesTheNode) {
  auto g = parse_graph(R"(
graph (x: float32[4]) -> (r) {
  a = Const() {dtype=int32, value=int32[]{0}}
  r = Cumprod(x, a) {T=float32}
})");
  std::string err = testing::error_of([&] { passes::differentiate(*g, g->results[0], passes::arg_targets(*g, {0})); });
  EXPECT_NE(err.find("node 'r' (Cumprod): op 'Cumprod' has no gradient"), std::string::npos) << err;
}

TEST(Autodiff, VariableGradientSumsOverItsReads) {
  auto g = parse_graph(R"(
graph (x: float32[3]) -> (r) {
  v = VarHandleOp() {dtype=float32, shape=shape[3], shared_name="v"}
  a = ReadVariableOp(v) {dtype=float32}
  b = ReadVariableOp(v) {dtype=float32}
  m = Mul(a, x) {T=float32}
  r = AddV2(m, b) {T=float32}
})");
  auto targets = passes::variable_targets(*g, g->results[0]);
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets[0].values.size(), 2u);
  passes::differentiate(*g, g->results[0], targets);
  ResourceStore vars;
  vars.assign(targets[0].name, vec({1, 2, 3}));
  auto out = run(*g, {vec({5, 6, 7})}, &vars);
  // d/dv sum(v*x + v) = x + 1
  EXPECT_EQ(std::vector<float>(out[1].data<float>(), out[1].data<float>() + 3), (std::vector<float>{6, 7, 8}));
}

TEST(Autodiff, VariableUsedOtherThanByReadsIsRefused) {
  // ResourceGather (like a While body reading a captured handle) would hide the variable's
  // gradient: variable_targets must refuse instead of returning a partial gradient.
  auto g = parse_graph(R"(
graph (x: float32[3]) -> (r) {
  v = VarHandleOp() {dtype=float32, shape=shape[3], shared_name="v"}
  a = ReadVariableOp(v) {dtype=float32}
  i = Const() {dtype=int32, value=int32[1]{0}}
  h = ResourceGather(v, i) {dtype=float32, Tindices=int32}
  m = Mul(a, x) {T=float32}
  r = Mul(m, h) {T=float32}
})");
  std::string err = testing::error_of([&] { passes::variable_targets(*g, g->results[0]); });
  EXPECT_NE(err.find("node 'h' (ResourceGather) uses the variable handle v:0 directly"), std::string::npos) << err;
}

TEST(Autodiff, ChainThroughBroadcastWithUnknownBatch) {
  // Unknown batch: reduce_to works from run-time shapes (BroadcastGradientArgs).
  auto g = parse_graph(R"(
graph (x: float32[?,3], b: float32[3]) -> (r) {
  a = AddV2(x, b) {T=float32}
  r = Square(a) {T=float32}
})");
  passes::differentiate(*g, g->results[0], passes::arg_targets(*g, {1}));
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto out = run(*g, {x, vec({0, 0, 0})});
  // d/db sum((x+b)^2) = sum over rows of 2(x+b)
  EXPECT_EQ(std::vector<float>(out[1].data<float>(), out[1].data<float>() + 3), (std::vector<float>{10, 14, 18}));
}

}  // namespace
}  // namespace tessera
