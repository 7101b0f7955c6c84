// Pooling (oneDNN) and inference batch norm vs the reference kernels.
#include "cpu_test_util.h"

namespace tessera::cpu::testing {
namespace {

TEST(CpuPool, MaxAndAvg) {
  struct Case {
    Shape x;
    std::vector<int64_t> ksize, strides;
    std::string padding;
  };
  const std::vector<Case> cases = {{{1, 8, 8, 3}, {1, 2, 2, 1}, {1, 2, 2, 1}, "VALID"},
                                   {{2, 9, 7, 5}, {1, 3, 3, 1}, {1, 2, 2, 1}, "SAME"},
                                   {{1, 5, 5, 16}, {1, 3, 3, 1}, {1, 1, 1, 1}, "SAME"},
                                   {{3, 11, 11, 2}, {1, 3, 2, 1}, {1, 2, 3, 1}, "VALID"}};
  for (const char* op : {"MaxPool", "AvgPool"})
    for (const Case& c : cases) {
      FnGraph fn;
      Value x = fn.arg(DType::kFloat32, PartialShape({-1, c.x[1], c.x[2], c.x[3]}));
      fn.result(fn.op(op, {x}, {{"T", DType::kFloat32}, {"ksize", c.ksize}, {"strides", c.strides},
                                {"padding", c.padding}, {"data_format", std::string("NHWC")}})->out());
      check_graph(fn, {{random_tensor(c.x, 1)}, {random_tensor({4, c.x[1], c.x[2], c.x[3]}, 2)}},
                  std::string(op) + shape_str(c.x) + c.padding);
    }
}

TEST(CpuNorm, FusedBatchNormInference) {
  for (const char* op : {"FusedBatchNormV3", "FusedBatchNorm"}) {
    FnGraph fn;
    Value x = fn.arg(DType::kFloat32, PartialShape({-1, 5, 5, 24}));
    Value scale = fn.constant(random_tensor({24}, 1));
    Value offset = fn.constant(random_tensor({24}, 2));
    Value mean = fn.arg(DType::kFloat32, PartialShape({24}));
    Value var = fn.arg(DType::kFloat32, PartialShape({24}));
    AttrMap attrs = {{"T", DType::kFloat32}, {"epsilon", 1e-3f}, {"is_training", false}};
    if (std::string(op) == "FusedBatchNormV3") attrs["U"] = DType::kFloat32;
    Node* bn = fn.op(op, {x, scale, offset, mean, var}, attrs);
    for (int i = 0; i < bn->num_outputs(); ++i) fn.result(bn->out(i));
    Tensor m = random_tensor({24}, 3), v = random_tensor({24}, 4, 0.1f, 2.f);
    check_graph(fn, {{random_tensor({1, 5, 5, 24}, 5), m, v}, {random_tensor({3, 5, 5, 24}, 6), m, v}}, op);
  }
}

}  // namespace
}  // namespace tessera::cpu::testing

namespace tessera::cpu::testing {
namespace {

TEST(CpuAttention, TsAttentionWithAndWithoutMask) {
  if (!has_op("TsAttention")) GTEST_SKIP() << "TsAttention not registered";
  struct Case {
    int64_t sq, sk, h, d, dv;
    Shape mask;  // empty: no mask
  };
  const std::vector<Case> cases = {{5, 5, 2, 8, 8, {}},        {7, 9, 3, 4, 6, {}},
                                   {6, 6, 2, 8, 8, {1, 1, 6, 6}}, {4, 10, 2, 4, 4, {10}},
                                   {5, 5, 3, 4, 4, {-1, 3, 5, 5}}, {3, 8, 1, 16, 16, {-1, 1, 1, 8}}};
  for (const Case& c : cases) {
    const bool masked = !c.mask.empty();
    FnGraph fn;
    Value q = fn.arg(DType::kFloat32, PartialShape({-1, c.sq, c.h, c.d}));
    Value k = fn.arg(DType::kFloat32, PartialShape({-1, c.sk, c.h, c.d}));
    Value v = fn.arg(DType::kFloat32, PartialShape({-1, c.sk, c.h, c.dv}));
    std::vector<Value> in = {q, k, v};
    if (masked) in.push_back(fn.arg(DType::kFloat32, PartialShape::unknown()));
    fn.result(fn.op("TsAttention", in, {{"T", DType::kFloat32}, {"scale", 0.35f}, {"has_mask", masked}})->out());
    std::vector<std::vector<Tensor>> runs;
    for (int64_t b : {1, 3}) {
      std::vector<Tensor> args = {random_tensor({b, c.sq, c.h, c.d}, 1), random_tensor({b, c.sk, c.h, c.d}, 2),
                                  random_tensor({b, c.sk, c.h, c.dv}, 3)};
      if (masked) {
        Shape ms = c.mask;
        for (int64_t& d : ms) d = d < 0 ? b : d;
        args.push_back(random_tensor(ms, 4, -3, 0));
      }
      runs.push_back(args);
    }
    check_graph(fn, runs, "TsAttention sq=" + std::to_string(c.sq) + " mask=" + shape_str(c.mask));
  }
}

}  // namespace
}  // namespace tessera::cpu::testing

namespace tessera::cpu::testing {
namespace {

TEST(CpuArray, PadConstant) {
  struct Case {
    Shape x;
    std::vector<int32_t> pads;
  };
  const std::vector<Case> cases = {{{1, 5, 5, 3}, {0, 0, 1, 1, 1, 1, 0, 0}}, {{2, 7, 6, 4}, {0, 0, 0, 1, 2, 0, 0, 0}},
                                   {{3, 4}, {1, 2, 3, 0}}, {{5}, {2, 3}}, {{2, 3, 4}, {0, 0, 0, 0, 0, 0}}};
  for (bool v2 : {false, true})
    for (const Case& c : cases) {
      FnGraph fn;
      Value x = fn.arg(DType::kFloat32, PartialShape::unknown());
      std::vector<Value> in = {x, fn.constant(Tensor::from_vector<int32_t>(c.pads, {static_cast<int64_t>(c.x.size()), 2}))};
      if (v2) in.push_back(fn.constant(Tensor::scalar<float>(-1.5f)));
      fn.result(fn.op(v2 ? "PadV2" : "Pad", in, {{"T", DType::kFloat32}, {"Tpaddings", DType::kInt32}})->out());
      check_graph(fn, {{random_tensor(c.x, 1)}}, std::string(v2 ? "PadV2 " : "Pad ") + shape_str(c.x));
    }
}

}  // namespace
}  // namespace tessera::cpu::testing
