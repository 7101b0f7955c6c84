// Gradients through While loops (src/ops/control_flow_ops.cc "gradients"), checked against
// central finite differences in float64: a counter loop, a data-dependent trip count, an If
// nested in the body, a nested While, and a small RNN cell loop over TensorLists (Keras' form:
// inputs unstacked into a list, outputs written into a reserved list, weights as captures).
// The loss is sum(sin(result)) over every result, so each output element matters.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "ir/interpreter.h"
#include "ir/parser.h"
#include "passes/autodiff.h"

namespace tessera {
namespace {

struct LoopCase {
  std::string name;
  std::string text;  // graph + library functions
  double lo = -1, hi = 1;
  double tol = 1e-6;
};

Node* add(Graph& g, const std::string& name, const std::string& op, std::vector<Value> in, AttrMap attrs) {
  Node* n = g.add(g.unique_name(name), op, std::move(in), std::move(attrs));
  infer_node(*n);
  return n;
}

// loss = sum_k sum(sin(result_k)), for float64 results of any shape.
Value sin_sum_loss(Graph& g) {
  std::vector<Value> terms;
  for (const Value& r : g.results) {
    if (r.node->outputs.at(r.index).dtype != DType::kFloat64) continue;
    Node* flat_shape = add(g, "loss_shape", "Const", {},
                           {{"value", Tensor::from_vector<int32_t>({-1}, {1})}, {"dtype", DType::kInt32}});
    Node* flat = add(g, "loss_flat", "Reshape", {r, flat_shape->out()}, {{"T", DType::kFloat64}});
    Node* s = add(g, "loss_sin", "Sin", {flat->out()}, {{"T", DType::kFloat64}});
    Node* ax = add(g, "loss_axis", "Const", {}, {{"value", Tensor::scalar<int32_t>(0)}, {"dtype", DType::kInt32}});
    terms.push_back(add(g, "loss_sum", "Sum", {s->out(), ax->out()}, {{"T", DType::kFloat64}})->out());
  }
  if (terms.size() == 1) return terms[0];
  return add(g, "loss", "AddN", terms, {{"T", DType::kFloat64}, {"N", static_cast<int64_t>(terms.size())}})->out();
}

void check_case(const LoopCase& c) {
  SCOPED_TRACE(c.name);
  auto g = parse_graph(c.text);
  Value loss = sin_sum_loss(*g);
  std::vector<int> all;
  for (size_t i = 0; i < g->args.size(); ++i) all.push_back(static_cast<int>(i));
  size_t first = g->results.size();
  passes::differentiate(*g, loss, passes::arg_targets(*g, all));
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> d(c.lo, c.hi);
  std::vector<Tensor> inputs;
  for (Node* a : g->args) {
    Tensor t(DType::kFloat64, a->outputs[0].shape.dims);
    for (int64_t j = 0; j < t.num_elements(); ++j) t.data<double>()[j] = d(rng);
    inputs.push_back(t);
  }
  auto run = [&](const std::vector<Value>& fetches) {
    std::vector<Feed> feeds;
    for (size_t i = 0; i < inputs.size(); ++i) feeds.push_back({g->args[i]->out(), inputs[i]});
    return interpret(*g, feeds, fetches, {}, nullptr);
  };
  std::vector<Value> grads(g->results.begin() + static_cast<long>(first), g->results.end());
  std::vector<Tensor> analytic = run(grads);
  const double step = 1e-6;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(analytic[i].shape(), inputs[i].shape()) << "gradient of arg " << i;
    std::vector<double> numeric;
    double scale = 0;
    for (int64_t j = 0; j < inputs[i].num_elements(); ++j) {
      Tensor saved = inputs[i];
      inputs[i] = saved.clone();
      double x0 = saved.data<double>()[j];
      inputs[i].data<double>()[j] = x0 + step;
      double up = run({loss})[0].data<double>()[0];
      inputs[i].data<double>()[j] = x0 - step;
      double down = run({loss})[0].data<double>()[0];
      inputs[i] = saved;
      numeric.push_back((up - down) / (2 * step));
      scale = std::max(scale, std::fabs(numeric.back()));
    }
    EXPECT_GT(scale, 1e-3) << "degenerate case: d loss / d " << g->args[i]->name << " is ~0";
    for (int64_t j = 0; j < inputs[i].num_elements(); ++j)
      EXPECT_NEAR(analytic[i].data<double>()[j], numeric[static_cast<size_t>(j)], c.tol * (1 + scale))
          << "d loss / d " << g->args[i]->name << "[" << j << "]";
  }
}

// acc = y; repeat n times: acc *= x  (x is a loop-invariant capture).
std::string counter_loop(const std::string& op, int n) {
  return R"(
graph (x: float64[3], y: float64[3]) -> (r) {
  i0 = Const() {dtype=int32, value=int32[]{0}}
  w = )" + op + R"((i0, y, x) {T=[int32, float64, float64], body=@body, cond=@cond, output_shapes=[shape[], shape[3], shape[3]]}
  r = Identity(w:1) {T=float64}
}
func cond (i: int32[], a: float64[3], x: float64[3]) -> (c) {
  n = Const() {dtype=int32, value=int32[]{)" + std::to_string(n) + R"(}}
  c = Less(i, n) {T=int32}
}
func body (i: int32[], a: float64[3], x: float64[3]) -> (j, m, x) {
  one = Const() {dtype=int32, value=int32[]{1}}
  j = AddV2(i, one) {T=int32}
  m = Mul(a, x) {T=float64}
}
)";
}

TEST(WhileGrad, CounterLoopMultiplyingByX) {
  check_case({"While x3", counter_loop("While", 3)});
  check_case({"StatelessWhile x5", counter_loop("StatelessWhile", 5)});
}

TEST(WhileGrad, ZeroIterationsPassTheGradientThrough) {
  // d/dy is sin'(y); d/dx is exactly zero (FD agrees), so check the values directly.
  auto g = parse_graph(counter_loop("While", 0));
  Value loss = sin_sum_loss(*g);
  passes::differentiate(*g, loss, passes::arg_targets(*g, {0, 1}));
  Tensor x = Tensor::from_vector<double>({0.5, 1, 2}, {3}), y = Tensor::from_vector<double>({0.1, 0.2, 0.3}, {3});
  auto out = interpret(*g, {{g->args[0]->out(), x}, {g->args[1]->out(), y}}, {g->results[1], g->results[2]}, {}, nullptr);
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(out[0].data<double>()[j], 0.0);
    EXPECT_DOUBLE_EQ(out[1].data<double>()[j], std::cos(y.data<double>()[j]));
  }
}

TEST(WhileGrad, DataDependentTripCount) {
  // while sum(a) < 40: a = a * x + a. The trip count depends on x and y (5-8 here).
  check_case({"grow", R"(
graph (x: float64[3], y: float64[3]) -> (r) {
  w = While(y, x) {T=[float64, float64], body=@grow, cond=@small}
  r = Identity(w:0) {T=float64}
}
func small (a: float64[3], x: float64[3]) -> (c) {
  ax = Const() {dtype=int32, value=int32[1]{0}}
  s = Sum(a, ax) {T=float64}
  lim = Const() {dtype=float64, value=float64[]{40}}
  c = Less(s, lim) {T=float64}
}
func grow (a: float64[3], x: float64[3]) -> (n, x) {
  m = Mul(a, x) {T=float64}
  n = AddV2(m, a) {T=float64}
}
)", 0.5, 2});
}

TEST(WhileGrad, IfNestedInTheBody) {
  // Iterations 0 and 1 take sin(a) + x, later ones a * x.
  check_case({"if in while", R"(
graph (x: float64[3], y: float64[3]) -> (r) {
  i0 = Const() {dtype=int32, value=int32[]{0}}
  w = While(i0, y, x) {T=[int32, float64, float64], body=@body, cond=@cond}
  r = Identity(w:1) {T=float64}
}
func cond (i: int32[], a: float64[3], x: float64[3]) -> (c) {
  n = Const() {dtype=int32, value=int32[]{4}}
  c = Less(i, n) {T=int32}
}
func body (i: int32[], a: float64[3], x: float64[3]) -> (j, b, x) {
  one = Const() {dtype=int32, value=int32[]{1}}
  j = AddV2(i, one) {T=int32}
  p = Greater(i, one) {T=int32}
  b = StatelessIf(p, a, x) {Tcond=bool, Tin=[float64, float64], Tout=[float64], then_branch=@mulx, else_branch=@sinx}
}
func mulx (a: float64[3], x: float64[3]) -> (m) {
  m = Mul(a, x) {T=float64}
}
func sinx (a: float64[3], x: float64[3]) -> (s) {
  t = Sin(a) {T=float64}
  s = AddV2(t, x) {T=float64}
}
)"});
}

TEST(WhileGrad, NestedWhile) {
  // Outer: 3 times { inner: 2 times a = a * x }; then a = sin(a). Each level saves its own.
  check_case({"while in while", R"(
graph (x: float64[2], y: float64[2]) -> (r) {
  i0 = Const() {dtype=int32, value=int32[]{0}}
  w = While(i0, y, x) {T=[int32, float64, float64], body=@outer, cond=@outer_cond}
  r = Identity(w:1) {T=float64}
}
func outer_cond (i: int32[], a: float64[2], x: float64[2]) -> (c) {
  n = Const() {dtype=int32, value=int32[]{3}}
  c = Less(i, n) {T=int32}
}
func outer (i: int32[], a: float64[2], x: float64[2]) -> (j, s, x) {
  one = Const() {dtype=int32, value=int32[]{1}}
  j = AddV2(i, one) {T=int32}
  k0 = Const() {dtype=int32, value=int32[]{0}}
  v = StatelessWhile(k0, a, x) {T=[int32, float64, float64], body=@inner, cond=@inner_cond}
  s = Sin(v:1) {T=float64}
}
func inner_cond (k: int32[], a: float64[2], x: float64[2]) -> (c) {
  n = Const() {dtype=int32, value=int32[]{2}}
  c = Less(k, n) {T=int32}
}
func inner (k: int32[], a: float64[2], x: float64[2]) -> (l, m, x) {
  one = Const() {dtype=int32, value=int32[]{1}}
  l = AddV2(k, one) {T=int32}
  m = Mul(a, x) {T=float64}
}
)", 0.5, 1.5});
}

TEST(WhileGrad, RnnCellOverTensorLists) {
  // h_t = tanh(x_t W + h_{t-1} U + b), 4 steps; every h_t written to a list that is stacked
  // after the loop (Keras' return_sequences), plus the final h.
  check_case({"rnn", R"(
graph (xs: float64[4,2,3], h0: float64[2,5], W: float64[3,5], U: float64[5,5], b: float64[5]) -> (r, h) {
  es = Const() {dtype=int32, value=int32[2]{2, 3}}
  xl = TensorListFromTensor(xs, es) {element_dtype=float64, shape_type=int32}
  hs = Const() {dtype=int32, value=int32[2]{2, 5}}
  n = Const() {dtype=int32, value=int32[]{4}}
  ol = TensorListReserve(hs, n) {element_dtype=float64, shape_type=int32}
  t0 = Const() {dtype=int32, value=int32[]{0}}
  w = While(t0, h0, ol, xl, W, U, b) {T=[int32, float64, variant, variant, float64, float64, float64], body=@cell, cond=@steps}
  r = TensorListStack(w:2, hs) {element_dtype=float64, num_elements=4}
  h = Identity(w:1) {T=float64}
}
func steps (t: int32[], h: float64[2,5], o: variant[], x: variant[], W: float64[3,5], U: float64[5,5], b: float64[5]) -> (c) {
  n = Const() {dtype=int32, value=int32[]{4}}
  c = Less(t, n) {T=int32}
}
func cell (t: int32[], h: float64[2,5], o: variant[], x: variant[], W: float64[3,5], U: float64[5,5], b: float64[5]) -> (t1, hn, o1, x, W, U, b) {
  es = Const() {dtype=int32, value=int32[2]{2, 3}}
  xt = TensorListGetItem(x, t, es) {element_dtype=float64}
  a = MatMul(xt, W) {T=float64}
  c = MatMul(h, U) {T=float64}
  s = AddV2(a, c) {T=float64}
  z = BiasAdd(s, b) {T=float64}
  hn = Tanh(z) {T=float64}
  o1 = TensorListSetItem(o, t, hn) {element_dtype=float64}
  one = Const() {dtype=int32, value=int32[]{1}}
  t1 = AddV2(t, one) {T=int32}
}
)"});
}

TEST(WhileGrad, RandomValuesInTheBodyAreSavedNotRedrawn) {
  // z_k = a_{k-1} x + noise_k (unseeded: every run draws anew), a_k = sin(z_k), 2 steps.
  // The loop also returns a_1, z_2 and z_1, so d/dx sum(sin(a_2)) =
  // cos(a_2) cos(z_2) (a_1 + x cos(z_1) a_0) is checked within the same run; a gradient that
  // redrew the noise would see other z's.
  auto g = parse_graph(R"(
graph (x: float64[3], y: float64[3]) -> (r, a1, z2, z1) {
  i0 = Const() {dtype=int32, value=int32[]{0}}
  w = While(i0, y, x, y, y, y) {T=[int32, float64, float64, float64, float64, float64], body=@body, cond=@cond}
  r = Identity(w:1) {T=float64}
  a1 = Identity(w:3) {T=float64}
  z2 = Identity(w:4) {T=float64}
  z1 = Identity(w:5) {T=float64}
}
func cond (i: int32[], a: float64[3], x: float64[3], p: float64[3], z: float64[3], q: float64[3]) -> (c) {
  n = Const() {dtype=int32, value=int32[]{2}}
  c = Less(i, n) {T=int32}
}
func body (i: int32[], a: float64[3], x: float64[3], p: float64[3], z: float64[3], q: float64[3]) -> (j, n, x, a, zn, z) {
  one = Const() {dtype=int32, value=int32[]{1}}
  j = AddV2(i, one) {T=int32}
  s = Const() {dtype=int32, value=int32[1]{3}}
  noise = RandomUniform(s) {dtype=float64, T=int32}
  m = Mul(a, x) {T=float64}
  zn = AddV2(m, noise) {T=float64}
  n = Sin(zn) {T=float64}
}
)");
  Node* ax = g->add("ax", "Const", {}, {{"value", Tensor::from_vector<int32_t>({0}, {1})}, {"dtype", DType::kInt32}});
  infer_node(*ax);
  Node* sn = g->add("sn", "Sin", {g->results[0]}, {{"T", DType::kFloat64}});
  infer_node(*sn);
  Node* loss = g->add("loss", "Sum", {sn->out(), ax->out()}, {{"T", DType::kFloat64}});
  infer_node(*loss);
  passes::differentiate(*g, loss->out(), passes::arg_targets(*g, {0}));
  Tensor x = Tensor::from_vector<double>({0.5, -1, 2}, {3}), y = Tensor::from_vector<double>({0.1, 0.2, 0.3}, {3});
  for (int run = 0; run < 3; ++run) {
    auto out = interpret(*g, {{g->args[0]->out(), x}, {g->args[1]->out(), y}}, g->results, {}, nullptr);
    for (int j = 0; j < 3; ++j) {
      auto v = [&](int k) { return out[k].data<double>()[j]; };
      double xv = x.data<double>()[j], a0 = y.data<double>()[j];
      double want = std::cos(v(0)) * std::cos(v(2)) * (v(1) + xv * std::cos(v(3)) * a0);
      EXPECT_NEAR(v(4), want, 1e-12) << "run " << run << ", element " << j;
    }
  }
}

TEST(WhileGrad, DifferentiatingTwiceReusesTheAccumulators) {
  // A second differentiate() (e.g. another loss) must not rewrite the loop again.
  auto g = parse_graph(counter_loop("While", 3));
  Value loss = sin_sum_loss(*g);
  passes::differentiate(*g, loss, passes::arg_targets(*g, {0}));
  Node* w = g->find("w");
  ASSERT_NE(w, nullptr);
  int outputs = w->num_outputs();
  EXPECT_EQ(outputs, 3 + 1 + 2);  // + the count and accumulators for i and a (x is invariant)
  passes::differentiate(*g, loss, passes::arg_targets(*g, {1}));
  EXPECT_EQ(w->num_outputs(), outputs);
  Tensor x = Tensor::from_vector<double>({0.5, 1, 2}, {3}), y = Tensor::from_vector<double>({0.1, 0.2, 0.3}, {3});
  auto out = interpret(*g, {{g->args[0]->out(), x}, {g->args[1]->out(), y}},
                       {g->results[1], g->results[2]}, {}, nullptr);
  for (int j = 0; j < 3; ++j) {
    double xv = x.data<double>()[j], yv = y.data<double>()[j];
    double c = std::cos(yv * xv * xv * xv);
    EXPECT_NEAR(out[0].data<double>()[j], c * 3 * yv * xv * xv, 1e-12);  // d/dx
    EXPECT_NEAR(out[1].data<double>()[j], c * xv * xv * xv, 1e-12);       // d/dy
  }
}

}  // namespace
}  // namespace tessera
