// Fast elementwise, softmax, reduction and layer-norm kernels vs the reference kernels, on
// every ISA path this processor has.
#include "cpu_test_util.h"

namespace tessera::cpu::testing {
namespace {

TEST(CpuElementwise, UnaryOpsMatchReference) {
  const std::vector<std::string> ops = {"Neg", "Abs", "Exp", "Log", "Sqrt", "Rsqrt", "Square", "Reciprocal",
                                        "Tanh", "Sigmoid", "Relu", "Relu6", "Elu", "Selu", "Erf",
                                        "Softplus", "Floor", "Ceil", "LeakyRelu"};
  const std::vector<Shape> shapes = {{1, 1}, {3, 37}, {2, 5, 33}, {1000}};
  for (const std::string& op : ops) {
    const bool positive = op == "Log" || op == "Sqrt" || op == "Rsqrt" || op == "Reciprocal";
    FnGraph fn;
    Value x = fn.arg(DType::kFloat32, PartialShape::unknown());
    AttrMap attrs = {{"T", DType::kFloat32}};
    if (op == "LeakyRelu") attrs["alpha"] = 0.3f;
    fn.result(fn.op(op, {x}, attrs)->out());
    std::vector<std::vector<Tensor>> runs;
    uint32_t seed = 1;
    for (const Shape& s : shapes)
      runs.push_back({positive ? random_tensor(s, seed++, 0.05f, 20.f) : random_tensor(s, seed++, -12.f, 12.f)});
    check_graph(fn, runs, op);
  }
}

TEST(CpuElementwise, BinaryOpsBroadcast) {
  const std::vector<std::string> ops = {"AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Pow",
                                        "SquaredDifference"};
  // (a, b) shape pairs: equal, bias-like, per-row, scalar both sides, general, batch 1.
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{5, 7}, {5, 7}}, {{5, 7}, {7}}, {{5, 7}, {5, 1}}, {{33}, {}}, {{}, {33}},
      {{2, 1, 3}, {1, 4, 1}}, {{1, 19}, {19}}, {{4, 3, 17}, {3, 1}}, {{3, 1000}, {1000}}};
  for (const std::string& op : ops) {
    for (const auto& [sa, sb] : pairs) {
      FnGraph fn;
      Value a = fn.arg(DType::kFloat32, PartialShape::unknown());
      Value b = fn.arg(DType::kFloat32, PartialShape::unknown());
      fn.result(fn.op(op, {a, b}, {{"T", DType::kFloat32}})->out());
      const bool pow = op == "Pow";
      Tensor ta = pow ? random_tensor(sa, 3, 0.1f, 3.f) : random_tensor(sa, 3);
      Tensor tb = op == "RealDiv" ? random_tensor(sb, 4, 0.5f, 2.f) : random_tensor(sb, 4);
      check_graph(fn, {{ta, tb}}, op + " " + shape_str(sa) + "," + shape_str(sb));
    }
  }
}

TEST(CpuElementwise, BiasAddAndChains) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 4, 4, 6}));
  Value bias = fn.constant(random_tensor({6}, 9));
  Node* b = fn.op("BiasAdd", {x, bias}, {{"T", DType::kFloat32}});
  Node* r = fn.op("Relu", {b->out()}, {{"T", DType::kFloat32}});
  Node* s = fn.op("Sigmoid", {r->out()}, {{"T", DType::kFloat32}});
  Node* m = fn.op("Mul", {s->out(), x}, {{"T", DType::kFloat32}});
  fn.result(m->out());
  check_graph(fn, {{random_tensor({1, 4, 4, 6}, 1)}, {random_tensor({3, 4, 4, 6}, 2)}}, "bias chain");
}

TEST(CpuElementwise, TsElementwiseProgram) {
  if (!has_op("TsElementwise")) GTEST_SKIP() << "TsElementwise not registered yet (fused ops branch)";
  FnGraph fn;
  Value a = fn.arg(DType::kFloat32, PartialShape({-1, 8}));
  Value b = fn.arg(DType::kFloat32, PartialShape({8}));
  Value c = fn.arg(DType::kFloat32, PartialShape({-1, 1}));
  fn.result(fn.op("TsElementwise", {a, b, c},
                  {{"T", DType::kFloat32}, {"N", int64_t(3)},
                   {"program", std::vector<std::string>{"AddV2 $0 $1", "Mul %0 $2", "Tanh %1", "LeakyRelu %2 0.1",
                                                        "Maximum %3 -0.5", "Sub %4 2.5"}}})->out());
  check_graph(fn, {{random_tensor({1, 8}, 1), random_tensor({8}, 2), random_tensor({1, 1}, 3)},
                   {random_tensor({7, 8}, 4), random_tensor({8}, 5), random_tensor({7, 1}, 6)}}, "TsElementwise");
}

TEST(CpuElementwise, TsGelu) {
  if (!has_op("TsGelu")) GTEST_SKIP() << "TsGelu not registered yet (fused ops branch)";
  for (bool approx : {false, true}) {
    FnGraph fn;
    Value x = fn.arg(DType::kFloat32, PartialShape({-1, 37}));
    fn.result(fn.op("TsGelu", {x}, {{"T", DType::kFloat32}, {"approximate", approx}})->out());
    check_graph(fn, {{random_tensor({1, 37}, 1, -6, 6)}, {random_tensor({5, 37}, 2, -6, 6)}}, "TsGelu");
  }
}

TEST(CpuSoftmax, RowsOfManySizes) {
  for (const char* op : {"Softmax", "LogSoftmax"})
    for (const Shape& s : std::vector<Shape>{{1, 10}, {7, 1000}, {3, 5, 17}, {2, 1}}) {
      FnGraph fn;
      Value x = fn.arg(DType::kFloat32, PartialShape::unknown());
      fn.result(fn.op(op, {x}, {{"T", DType::kFloat32}})->out());
      check_graph(fn, {{random_tensor(s, 5, -20, 20)}}, std::string(op) + shape_str(s));
    }
}

TEST(CpuReduce, ContiguousAxes) {
  struct Case {
    Shape shape;
    std::vector<int32_t> axes;
  };
  const std::vector<Case> cases = {{{4, 33}, {1}}, {{4, 33}, {-1}}, {{2, 5, 5, 7}, {1, 2}}, {{1, 3, 3, 64}, {1, 2}},
                                   {{6, 4, 3}, {0}}, {{6, 4, 3}, {0, 2}} /* not contiguous: reference */,
                                   {{3, 2000}, {1}}};
  for (const char* op : {"Mean", "Sum", "Max", "Min"})
    for (bool keep : {false, true})
      for (const Case& c : cases) {
        FnGraph fn;
        Value x = fn.arg(DType::kFloat32, PartialShape::unknown());
        fn.result(fn.op(op, {x, fn.ints(c.axes)}, {{"T", DType::kFloat32}, {"keep_dims", keep}})->out());
        check_graph(fn, {{random_tensor(c.shape, 7)}}, std::string(op) + shape_str(c.shape));
      }
}

TEST(CpuNorm, TsLayerNorm) {
  if (!has_op("TsLayerNorm")) GTEST_SKIP() << "TsLayerNorm not registered yet (fused ops branch)";
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 5, 48}));
  Value gamma = fn.constant(random_tensor({48}, 1));
  Value beta = fn.constant(random_tensor({48}, 2));
  fn.result(fn.op("TsLayerNorm", {x, gamma, beta}, {{"T", DType::kFloat32}, {"epsilon", 1e-5f}})->out());
  check_graph(fn, {{random_tensor({1, 5, 48}, 3, -3, 5)}, {random_tensor({4, 5, 48}, 4)}}, "TsLayerNorm");
}

}  // namespace
}  // namespace tessera::cpu::testing
