// Variables read inside control-flow functions (Keras RNNs read their kernels in the While
// body): passes::variable_targets moves those reads out, so the variables get gradients,
// checked against finite differences on the variables' values in float64. A body that writes
// the variable is still refused.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "error_test_util.h"
#include "ir/interpreter.h"
#include "ir/parser.h"
#include "ops/op_helpers.h"
#include "passes/autodiff.h"

namespace tessera {
namespace {

// a = x; 3 times: a = a * v, then (iterations >= 1) a = a + u read inside a nested If, else
// sin(a). v and u are only ever read inside functions; v is read outside too.
const char* kLoop = R"(
graph (x: float64[3]) -> (r) {
  v = VarHandleOp() {dtype=float64, shape=shape[3], shared_name="v"}
  u = VarHandleOp() {dtype=float64, shape=shape[3], shared_name="u"}
  i0 = Const() {dtype=int32, value=int32[]{0}}
  w = While(i0, x, v, u) {T=[int32, float64, resource, resource], body=@body, cond=@cond}
  rv = ReadVariableOp(v) {dtype=float64}
  r = Mul(w:1, rv) {T=float64}
}
func cond (i: int32[], a: float64[3], v: resource[], u: resource[]) -> (c) {
  n = Const() {dtype=int32, value=int32[]{3}}
  c = Less(i, n) {T=int32}
}
func body (i: int32[], a: float64[3], v: resource[], u: resource[]) -> (j, b, v, u) {
  one = Const() {dtype=int32, value=int32[]{1}}
  j = AddV2(i, one) {T=int32}
  rv = ReadVariableOp(v) {dtype=float64}
  m = Mul(a, rv) {T=float64}
  zero = Const() {dtype=int32, value=int32[]{0}}
  p = Greater(i, zero) {T=int32}
  b = If(p, m, u) {Tcond=bool, Tin=[float64, resource], Tout=[float64], then_branch=@addu, else_branch=@sinm}
}
func addu (m: float64[3], u: resource[]) -> (s) {
  ru = ReadVariableOp(u) {dtype=float64}
  s = AddV2(m, ru) {T=float64}
}
func sinm (m: float64[3], u: resource[]) -> (s) {
  s = Sin(m) {T=float64}
}
)";

Value sum_all(Graph& g, Value v) {
  Node* ax = g.add("loss_axis", "Const", {}, {{"value", Tensor::from_vector<int32_t>({0}, {1})}, {"dtype", DType::kInt32}});
  infer_node(*ax);
  Node* s = g.add("loss_sin", "Sin", {v}, {{"T", DType::kFloat64}});
  infer_node(*s);
  Node* n = g.add("loss", "Sum", {s->out(), ax->out()}, {{"T", DType::kFloat64}});
  infer_node(*n);
  return n->out();
}

void check_variable_gradients(const std::string& text) {
  auto g = parse_graph(text);
  Value loss = sum_all(*g, g->results[0]);
  auto targets = passes::variable_targets(*g, loss);
  ASSERT_EQ(targets.size(), 2u);
  size_t first = g->results.size();
  passes::differentiate(*g, loss, targets);

  std::mt19937 rng(3);
  std::uniform_real_distribution<double> d(0.5, 1.5);
  auto random = [&] {
    Tensor t(DType::kFloat64, {3});
    for (int j = 0; j < 3; ++j) t.data<double>()[j] = d(rng);
    return t;
  };
  Tensor x = random();
  std::map<std::string, Tensor> values = {{targets[0].name, random()}, {targets[1].name, random()}};
  auto run = [&](const std::vector<Value>& fetches) {
    ResourceStore vars;
    for (const auto& [k, t] : values) vars.assign(k, t);
    return interpret(*g, {{g->args[0]->out(), x}}, fetches, {}, &vars);
  };
  std::vector<Tensor> analytic = run({g->results[first], g->results[first + 1]});
  const double step = 1e-6;
  for (size_t t = 0; t < targets.size(); ++t) {
    const std::string& key = targets[t].name;
    for (int j = 0; j < 3; ++j) {
      Tensor saved = values[key];
      values[key] = saved.clone();
      values[key].data<double>()[j] = saved.data<double>()[j] + step;
      double up = run({loss})[0].data<double>()[0];
      values[key].data<double>()[j] = saved.data<double>()[j] - step;
      double down = run({loss})[0].data<double>()[0];
      values[key] = saved;
      double numeric = (up - down) / (2 * step);
      EXPECT_GT(std::fabs(numeric), 1e-3) << key;
      EXPECT_NEAR(analytic[t].data<double>()[j], numeric, 1e-6 * (1 + std::fabs(numeric))) << key << "[" << j << "]";
    }
  }
}

TEST(WhileVariables, ReadsInsideTheLoopGetGradients) { check_variable_gradients(kLoop); }

TEST(WhileVariables, HandlePassedThroughAnIdentity) {
  std::string text = kLoop;
  text.replace(text.find("-> (j, b, v, u) {"), 17, "-> (j, b, v, ui) {\n  ui = Identity(u) {T=resource}");
  check_variable_gradients(text);
}

TEST(WhileVariables, ALoopThatWritesTheVariableIsRefused) {
  auto g = parse_graph(R"(
graph (x: float64[3]) -> (r) {
  v = VarHandleOp() {dtype=float64, shape=shape[3], shared_name="v"}
  i0 = Const() {dtype=int32, value=int32[]{0}}
  w = While(i0, x, v) {T=[int32, float64, resource], body=@body, cond=@cond}
  r = Identity(w:1) {T=float64}
}
func cond (i: int32[], a: float64[3], v: resource[]) -> (c) {
  n = Const() {dtype=int32, value=int32[]{3}}
  c = Less(i, n) {T=int32}
}
func body (i: int32[], a: float64[3], v: resource[]) -> (j, m, v) {
  one = Const() {dtype=int32, value=int32[]{1}}
  j = AddV2(i, one) {T=int32}
  rv = ReadVariableOp(v) {dtype=float64}
  m = Mul(a, rv) {T=float64}
  s = AssignAddVariableOp(v, m) {dtype=float64}
}
)");
  std::string err = testing::error_of([&] { passes::variable_targets(*g, g->results[0]); });
  EXPECT_NE(err.find("node 'w' (While) uses the variable handle v:0 directly"), std::string::npos) << err;
}

TEST(WhileVariables, StateReadInTheBodyIsSavedNotReread) {
  // The body bumps v before reading it, so iteration k reads v0 + k + 1. The gradient with
  // respect to x must use the values the forward pass read (saved per iteration), not
  // re-read (or re-bump) the variable: d/dx sum(sin(x (v0+1)(v0+2)(v0+3))).
  auto g = parse_graph(R"(
graph (x: float64[3]) -> (r) {
  v = VarHandleOp() {dtype=float64, shape=shape[3], shared_name="v"}
  i0 = Const() {dtype=int32, value=int32[]{0}}
  w = While(i0, x, v) {T=[int32, float64, resource], body=@body, cond=@cond}
  r = Identity(w:1) {T=float64}
}
func cond (i: int32[], a: float64[3], v: resource[]) -> (c) {
  n = Const() {dtype=int32, value=int32[]{3}}
  c = Less(i, n) {T=int32}
}
func body (i: int32[], a: float64[3], v: resource[]) -> (j, m, v) {
  one = Const() {dtype=int32, value=int32[]{1}}
  j = AddV2(i, one) {T=int32}
  d = Const() {dtype=float64, value=float64[3]{1, 1, 1}}
  s = AssignAddVariableOp(v, d) {dtype=float64}
  rv = ReadVariableOp(v, ^s) {dtype=float64}
  m = Mul(a, rv) {T=float64}
}
)");
  Value loss = sum_all(*g, g->results[0]);
  size_t first = g->results.size();
  passes::differentiate(*g, loss, passes::arg_targets(*g, {0}));
  Tensor x = Tensor::from_vector<double>({0.3, -0.2, 0.1}, {3}), v0 = Tensor::from_vector<double>({0.5, 1, 2}, {3});
  ResourceStore vars;
  const std::string key = ops::variable_handle_key(*g->find("v"));
  vars.assign(key, v0);
  auto out = interpret(*g, {{g->args[0]->out(), x}}, {g->results[first]}, {}, &vars);
  for (int j = 0; j < 3; ++j) {
    double v = v0.data<double>()[j], p = (v + 1) * (v + 2) * (v + 3);
    EXPECT_NEAR(out[0].data<double>()[j], std::cos(x.data<double>()[j] * p) * p, 1e-12) << j;
  }
  EXPECT_EQ(vars.read(key).data<double>()[0], 0.5 + 3);  // the forward loop ran once
}

}  // namespace
}  // namespace tessera
