// oneDNN-backed kernels (MatMul, BatchMatMulV2, Conv2D, DepthwiseConv2dNative and the fused
// Ts* forms) vs the reference kernels: constant (packed) and runtime weights, odd sizes,
// several batch sizes through one executable.
#include "cpu_test_util.h"

namespace tessera::cpu::testing {
namespace {

TEST(CpuMatMul, ConstAndRuntimeWeights) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool const_b : {true, false}) {
        const int64_t k = 37, n = 19;
        FnGraph fn;
        Value a = fn.arg(DType::kFloat32, ta ? PartialShape({k, -1}) : PartialShape({-1, k}));
        Tensor wb = random_tensor(tb ? Shape{n, k} : Shape{k, n}, 11);
        Value b = const_b ? fn.constant(wb) : fn.arg(DType::kFloat32, PartialShape(wb.shape()));
        fn.result(fn.op("MatMul", {a, b}, {{"T", DType::kFloat32}, {"transpose_a", ta}, {"transpose_b", tb}})->out());
        std::vector<std::vector<Tensor>> runs;
        for (int64_t m : {1, 3, 32}) {
          std::vector<Tensor> args = {random_tensor(ta ? Shape{k, m} : Shape{m, k}, static_cast<uint32_t>(m))};
          if (!const_b) args.push_back(wb);
          runs.push_back(args);
        }
        check_graph(fn, runs, "MatMul ta=" + std::to_string(ta) + " tb=" + std::to_string(tb) +
                                  " const=" + std::to_string(const_b));
      }
}

TEST(CpuMatMul, PackedWeightsReported) {
  FnGraph fn;
  Value a = fn.arg(DType::kFloat32, PartialShape({-1, 64}));
  fn.result(fn.op("MatMul", {a, fn.constant(random_tensor({64, 48}, 1))}, {{"T", DType::kFloat32}})->out());
  auto exe = CpuExecutable::compile(fn.g, {1, ""});
  std::vector<PackedWeight> packed = exe->packed_weights();
  if (packed.empty()) GTEST_SKIP() << "oneDNN keeps the plain layout on this ISA: nothing to pack";
  EXPECT_EQ(packed[0].key, "c1");
  EXPECT_NE(packed[0].layout.find("onednn:"), std::string::npos);
  // An executable given these packs reuses them and computes the same thing.
  auto again = CpuExecutable::compile(fn.g, {1, ""}, packed);
  Tensor x = random_tensor({5, 64}, 2);
  expect_match(call_function(*fn.g, {x}, nullptr)[0], again->run({x}, nullptr)[0], "prepacked");
  ASSERT_FALSE(again->packed_weights().empty());
  EXPECT_EQ(again->packed_weights()[0].data.raw(), packed[0].data.raw());  // shared, not repacked
}

TEST(CpuMatMul, BatchMatMul) {
  struct Case {
    Shape x, y;
    bool adj_x, adj_y;
  };
  const std::vector<Case> cases = {{{2, 3, 4, 5}, {2, 3, 5, 6}, false, false}, {{2, 3, 4, 5}, {5, 6}, false, false},
                                   {{4, 5}, {3, 5, 6}, false, false},          {{2, 5, 4}, {2, 6, 5}, true, true},
                                   {{1, 7, 9}, {1, 9, 1}, false, false},       {{2, 1, 4, 5}, {1, 3, 5, 2}, false, false}};
  for (const Case& c : cases) {
    FnGraph fn;
    Value x = fn.arg(DType::kFloat32, PartialShape::unknown());
    Value y = fn.arg(DType::kFloat32, PartialShape::unknown());
    fn.result(fn.op("BatchMatMulV2", {x, y}, {{"T", DType::kFloat32}, {"adj_x", c.adj_x}, {"adj_y", c.adj_y}})->out());
    check_graph(fn, {{random_tensor(c.x, 1), random_tensor(c.y, 2)}}, "BatchMatMulV2 " + shape_str(c.x) + shape_str(c.y));
  }
}

TEST(CpuMatMul, TsFusedMatMul) {
  if (!has_op("TsFusedMatMul")) GTEST_SKIP() << "TsFusedMatMul not registered yet (fused ops branch)";
  for (const char* act : {"", "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh", "Swish", "GeluExact", "GeluTanh"})
    for (bool residual : {false, true}) {
      FnGraph fn;
      Value a = fn.arg(DType::kFloat32, PartialShape({-1, 5, 24}));
      Value b = fn.constant(random_tensor({24, 10}, 1));
      Value bias = fn.constant(random_tensor({10}, 2));
      std::vector<Value> in = {a, b, bias};
      if (residual) in.push_back(fn.arg(DType::kFloat32, PartialShape({-1, 5, 10})));
      fn.result(fn.op("TsFusedMatMul", in,
                      {{"T", DType::kFloat32}, {"transpose_a", false}, {"transpose_b", false}, {"has_bias", true},
                       {"has_residual", residual}, {"activation", std::string(act)}, {"alpha", 0.1f}})->out());
      std::vector<std::vector<Tensor>> runs;
      for (int64_t bsz : {1, 3}) {
        std::vector<Tensor> args = {random_tensor({bsz, 5, 24}, 3)};
        if (residual) args.push_back(random_tensor({bsz, 5, 10}, 4));
        runs.push_back(args);
      }
      check_graph(fn, runs, std::string("TsFusedMatMul ") + act + (residual ? " residual" : ""));
    }
}

struct ConvCase {
  Shape x, f;
  std::vector<int64_t> strides, dilations;
  std::string padding;
};

AttrMap conv_attrs(const ConvCase& c) {
  AttrMap a = {{"T", DType::kFloat32}, {"strides", c.strides}, {"dilations", c.dilations},
               {"padding", c.padding}, {"data_format", std::string("NHWC")}};
  if (c.padding == "EXPLICIT") a["explicit_paddings"] = std::vector<int64_t>{0, 0, 1, 2, 0, 1, 0, 0};
  return a;
}

TEST(CpuConv, Conv2DShapes) {
  const std::vector<ConvCase> cases = {
      {{1, 9, 9, 3}, {3, 3, 3, 8}, {1, 1, 1, 1}, {1, 1, 1, 1}, "SAME"},
      {{2, 10, 7, 5}, {3, 2, 5, 7}, {1, 2, 2, 1}, {1, 1, 1, 1}, "VALID"},
      {{1, 11, 11, 4}, {3, 3, 4, 6}, {1, 1, 1, 1}, {1, 2, 2, 1}, "SAME"},
      {{2, 8, 8, 16}, {1, 1, 16, 32}, {1, 1, 1, 1}, {1, 1, 1, 1}, "VALID"},
      {{1, 7, 7, 6}, {3, 3, 3, 4}, {1, 1, 1, 1}, {1, 1, 1, 1}, "SAME"},  // 2 groups
      {{1, 6, 5, 3}, {2, 2, 3, 4}, {1, 1, 1, 1}, {1, 1, 1, 1}, "EXPLICIT"},
      {{1, 15, 15, 3}, {7, 7, 3, 8}, {1, 2, 2, 1}, {1, 1, 1, 1}, "SAME"}};
  for (const ConvCase& c : cases)
    for (bool const_f : {true, false}) {
      FnGraph fn;
      PartialShape xs({-1, c.x[1], c.x[2], c.x[3]});
      Value x = fn.arg(DType::kFloat32, xs);
      Tensor f = random_tensor(c.f, 5);
      Value fv = const_f ? fn.constant(f) : fn.arg(DType::kFloat32, PartialShape(c.f));
      fn.result(fn.op("Conv2D", {x, fv}, conv_attrs(c))->out());
      std::vector<std::vector<Tensor>> runs;
      for (int64_t n : {c.x[0], int64_t{3}}) {
        std::vector<Tensor> args = {random_tensor({n, c.x[1], c.x[2], c.x[3]}, static_cast<uint32_t>(n))};
        if (!const_f) args.push_back(f);
        runs.push_back(args);
      }
      check_graph(fn, runs, "Conv2D " + shape_str(c.x) + shape_str(c.f) + c.padding);
    }
}

TEST(CpuConv, Depthwise) {
  const std::vector<ConvCase> cases = {
      {{1, 9, 9, 8}, {3, 3, 8, 1}, {1, 1, 1, 1}, {1, 1, 1, 1}, "SAME"},
      {{2, 10, 10, 3}, {3, 3, 3, 2}, {1, 2, 2, 1}, {1, 1, 1, 1}, "SAME"},
      {{1, 12, 12, 5}, {5, 5, 5, 1}, {1, 2, 2, 1}, {1, 1, 1, 1}, "VALID"}};
  for (const ConvCase& c : cases) {
    FnGraph fn;
    Value x = fn.arg(DType::kFloat32, PartialShape({-1, c.x[1], c.x[2], c.x[3]}));
    fn.result(fn.op("DepthwiseConv2dNative", {x, fn.constant(random_tensor(c.f, 6))}, conv_attrs(c))->out());
    check_graph(fn, {{random_tensor(c.x, 1)}, {random_tensor({4, c.x[1], c.x[2], c.x[3]}, 2)}},
                "Depthwise " + shape_str(c.x) + shape_str(c.f));
  }
}

TEST(CpuConv, FusedConvs) {
  if (!has_op("TsFusedConv2D") || !has_op("TsFusedDepthwiseConv2D"))
    GTEST_SKIP() << "fused conv ops not registered yet (fused ops branch)";
  for (const char* op : {"TsFusedConv2D", "TsFusedDepthwiseConv2D"})
    for (const char* act : {"", "Relu", "Relu6", "Swish"})
      for (bool residual : {false, true}) {
        const bool dw = std::string(op) == "TsFusedDepthwiseConv2D";
        ConvCase c{{1, 8, 8, 6}, dw ? Shape{3, 3, 6, 1} : Shape{3, 3, 6, 6}, {1, 1, 1, 1}, {1, 1, 1, 1}, "SAME"};
        FnGraph fn;
        Value x = fn.arg(DType::kFloat32, PartialShape({-1, 8, 8, 6}));
        std::vector<Value> in = {x, fn.constant(random_tensor(c.f, 1)), fn.constant(random_tensor({6}, 2))};
        if (residual) in.push_back(fn.arg(DType::kFloat32, PartialShape({-1, 8, 8, 6})));
        AttrMap attrs = conv_attrs(c);
        attrs["has_bias"] = true;
        attrs["has_residual"] = residual;
        attrs["activation"] = std::string(act);
        attrs["alpha"] = 0.2f;
        fn.result(fn.op(op, in, attrs)->out());
        std::vector<std::vector<Tensor>> runs;
        for (int64_t n : {1, 2}) {
          std::vector<Tensor> args = {random_tensor({n, 8, 8, 6}, 3)};
          if (residual) args.push_back(random_tensor({n, 8, 8, 6}, 4));
          runs.push_back(args);
        }
        check_graph(fn, runs, std::string(op) + " " + act + (residual ? " residual" : ""));
      }
}

}  // namespace
}  // namespace tessera::cpu::testing
