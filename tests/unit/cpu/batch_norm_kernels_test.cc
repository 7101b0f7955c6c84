// The cpu kernels of training-mode batch norm (TsBatchNormTraining, TsBatchNormTrainingGrad)
// and ReluGrad against their reference kernels, on every ISA path: channel counts with and
// without a partial 16-lane block, enough rows for several row blocks and parts per thread,
// and data far from zero (the statistics must not cancel; gradients are compared only at a
// moderate offset: at 1000 ± 2 the float mean's last bit already moves Σ dy·x̂ by ~1e-4 and
// a fused Relu's mask flips where |y| < 1e-4, in TF's float graph as much as here).
#include <cmath>
#include <cstdio>
#include <ctime>

#include "cpu_test_util.h"

namespace tessera::cpu::testing {
namespace {

AttrMap bn_attrs(const std::string& act, float eps = 1e-3f) {
  return {{"T", DType::kFloat32}, {"epsilon", eps}, {"activation", act}};
}

Tensor shifted(Tensor t, float by) {
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] += by;
  return t;
}

TEST(CpuBatchNormTraining, ForwardAndGradientMatchReference) {
  struct Case {
    Shape shape;
    float offset;
  };
  const std::vector<Case> cases = {{{2, 5, 5, 16}, 0},   {{64, 8, 8, 32}, 0}, {{3, 4, 20}, 0.5f},
                                   {{7, 3}, 0},          {{1, 1, 1, 5}, 0},   {{16, 9, 9, 16}, 1000.0f},
                                   {{130, 48}, -3.0f}};
  for (const std::string act : {"", "Relu"})
    for (const Case& c : cases) {
      const int64_t ch = c.shape.back();
      FnGraph fn;
      PartialShape ps(c.shape);
      ps.dims[0] = -1;
      Value x = fn.arg(DType::kFloat32, ps);
      Value dy = fn.arg(DType::kFloat32, ps);
      Value scale = fn.constant(random_tensor({ch}, 5, 0.5f, 1.5f));
      Value offset = fn.constant(random_tensor({ch}, 6));
      Node* bn = fn.op("TsBatchNormTraining", {x, scale, offset}, bn_attrs(act));
      std::vector<Value> gin = {dy, x, scale, bn->out(1), bn->out(2)};
      if (act == "Relu") gin.push_back(bn->out(0));
      Node* grad = fn.op("TsBatchNormTrainingGrad", gin, bn_attrs(act));
      for (int i = 0; i < 3; ++i) fn.result(bn->out(i));
      if (std::fabs(c.offset) < 100)
        for (int i = 0; i < 3; ++i) fn.result(grad->out(i));  // dx_sum: DxSumIsTheSumOfDx
      const std::string what = "TsBatchNormTraining " + act + " " + shape_str(c.shape);
      check_graph(fn, {{shifted(random_tensor(c.shape, 7, -2, 3), c.offset), random_tensor(c.shape, 8)}}, what);
      check_graph(fn, {{shifted(random_tensor(c.shape, 9, -1, 1), c.offset), random_tensor(c.shape, 10)}}, what, 1);
    }
}

// tf_keras' training-mode FusedBatchNorm (channels last): every output against the reference
// (moving averages with and without exponential_avg_factor, running statistics empty when
// the factor is 1, as TF allows), and its gradient (TsBatchNormTrainingGrad on outputs 3/4).
TEST(CpuFusedBatchNormTraining, MatchesReference) {
  struct Case {
    const char* op;
    Shape shape;
    float factor;
  };
  const std::vector<Case> cases = {{"FusedBatchNormV3", {4, 5, 5, 24}, 1.0f}, {"FusedBatchNormV3", {3, 6, 6, 16}, 0.1f},
                                   {"FusedBatchNorm", {2, 4, 4, 8}, 1.0f}, {"FusedBatchNormV2", {2, 3, 3, 3, 32}, 0.3f}};
  for (const Case& c : cases) {
    const int64_t ch = c.shape.back();
    FnGraph fn;
    PartialShape ps(c.shape);
    ps.dims[0] = -1;
    Value x = fn.arg(DType::kFloat32, ps);
    Value dy = fn.arg(DType::kFloat32, ps);
    Value scale = fn.constant(random_tensor({ch}, 1, 0.5f, 1.5f));
    Value offset = fn.constant(random_tensor({ch}, 2));
    const bool running = c.factor != 1.0f;
    Value mean = fn.constant(running ? random_tensor({ch}, 3) : Tensor(DType::kFloat32, {0}));
    Value var = fn.constant(running ? random_tensor({ch}, 4, 0.5f, 2.0f) : Tensor(DType::kFloat32, {0}));
    AttrMap attrs = {{"T", DType::kFloat32}, {"epsilon", 1e-3f}, {"is_training", true},
                     {"exponential_avg_factor", c.factor},
                     {"data_format", std::string(c.shape.size() == 5 ? "NDHWC" : "NHWC")}};
    if (std::string(c.op) != "FusedBatchNorm") attrs["U"] = DType::kFloat32;
    Node* bn = fn.op(c.op, {x, scale, offset, mean, var}, attrs);
    for (int i = 0; i < 5; ++i) fn.result(bn->out(i));
    Node* grad = fn.op("TsBatchNormTrainingGrad", {dy, x, scale, bn->out(3), bn->out(4)}, bn_attrs(""));
    for (int i = 0; i < 3; ++i) fn.result(grad->out(i));
    check_graph(fn, {{random_tensor(c.shape, 7, -1, 3), random_tensor(c.shape, 8)}}, std::string(c.op) + shape_str(c.shape));
  }
}

// dx_sum is the sum of the dx the kernel stored (the reference's own dx differ in the last
// bits, and the sum of a batch-norm dx is all cancellation, ~0: compared against the sum of
// magnitudes).
TEST(CpuBatchNormTraining, DxSumIsTheSumOfDx) {
  for (const Shape& s : std::vector<Shape>{{8, 9, 9, 16}, {130, 48}, {5, 7, 20}, {64, 4, 4, 3}})
    for (const std::string act : {"", "Relu"})
      for (int threads : {1, 2}) {
        const int64_t ch = s.back();
        FnGraph fn;
        Value x = fn.arg(DType::kFloat32, PartialShape(s));
        Value dy = fn.arg(DType::kFloat32, PartialShape(s));
        Value scale = fn.constant(random_tensor({ch}, 5, 0.5f, 1.5f));
        Node* bn = fn.op("TsBatchNormTraining", {x, scale, fn.constant(random_tensor({ch}, 6))}, bn_attrs(act));
        std::vector<Value> gin = {dy, x, scale, bn->out(1), bn->out(2)};
        if (act == "Relu") gin.push_back(bn->out(0));
        Node* grad = fn.op("TsBatchNormTrainingGrad", gin, bn_attrs(act));
        fn.result(grad->out(0));
        fn.result(grad->out(3));
        auto exe = CpuExecutable::compile(fn.g, {threads, ""});
        std::vector<Tensor> out = exe->run({random_tensor(s, 11, -1, 2), random_tensor(s, 12)}, nullptr);
        std::vector<double> sum(ch, 0.0), mag(ch, 0.0);
        for (int64_t i = 0; i < out[0].num_elements(); ++i) {
          sum[i % ch] += out[0].data<float>()[i];
          mag[i % ch] += std::fabs(out[0].data<float>()[i]);
        }
        for (int64_t j = 0; j < ch; ++j)
          EXPECT_NEAR(out[1].data<float>()[j], sum[j], 1e-6 * mag[j] + 1e-7)
              << shape_str(s) << " " << act << " channel " << j;
      }
}

// The sums run in a fixed order of parts: repeated runs give identical bits.
TEST(CpuBatchNormTraining, Deterministic) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 6, 6, 16}));
  Node* bn = fn.op("TsBatchNormTraining", {x, fn.constant(random_tensor({16}, 1)), fn.constant(random_tensor({16}, 2))},
                   bn_attrs(""));
  fn.result(bn->out(1));
  fn.result(bn->out(2));
  auto exe = CpuExecutable::compile(fn.g, {2, ""});
  Tensor in = random_tensor({50, 6, 6, 16}, 3);
  std::vector<Tensor> a = exe->run({in}, nullptr);
  for (int k = 0; k < 5; ++k) {
    std::vector<Tensor> b = exe->run({in}, nullptr);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(0, std::memcmp(a[i].raw(), b[i].raw(), a[i].nbytes()));
  }
}

TEST(CpuReluGrad, MatchesReference) {
  for (const Shape& s : std::vector<Shape>{{3, 7}, {128, 16, 16, 8}, {1}}) {
    FnGraph fn;
    Value g = fn.arg(DType::kFloat32, PartialShape(s));
    Value f = fn.arg(DType::kFloat32, PartialShape(s));
    fn.result(fn.op("ReluGrad", {g, f}, {{"T", DType::kFloat32}})->out());
    Tensor feat = random_tensor(s, 2);
    // Exact zeros and NaN features pass no gradient.
    feat.data<float>()[0] = 0.0f;
    if (feat.num_elements() > 2) feat.data<float>()[2] = std::nanf("");
    check_graph(fn, {{random_tensor(s, 1), feat}}, "ReluGrad " + shape_str(s));
    auto exe = CpuExecutable::compile(fn.g, {2, ""});
    Tensor out = exe->run({random_tensor(s, 1), feat}, nullptr)[0];
    EXPECT_EQ(out.data<float>()[0], 0.0f);
  }
}

double thread_ms() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

// Timing of the training CNN's shapes (not a test: --gtest_also_run_disabled_tests): one
// thread's CPU time, so the shared machine's other load does not count.
TEST(CpuBatchNormTraining, DISABLED_Bench) {
  for (const Shape& s : std::vector<Shape>{{128, 32, 32, 16}, {128, 16, 16, 32}}) {
    const int64_t ch = s.back();
    for (const char* part : {"forward", "backward", "relu_grad"}) {
      FnGraph fn;
      Value x = fn.arg(DType::kFloat32, PartialShape(s));
      Value dy = fn.arg(DType::kFloat32, PartialShape(s));
      Value scale = fn.constant(random_tensor({ch}, 5, 0.5f, 1.5f));
      Value offset = fn.constant(random_tensor({ch}, 6));
      Value out;
      if (std::string(part) == "forward") {
        out = fn.op("TsBatchNormTraining", {x, scale, offset}, bn_attrs("Relu"))->out();
      } else if (std::string(part) == "backward") {
        Value mean = fn.constant(random_tensor({ch}, 7));
        Value var = fn.constant(random_tensor({ch}, 8, 0.5f, 2.0f));
        out = fn.op("TsBatchNormTrainingGrad", {dy, x, scale, mean, var, dy}, bn_attrs("Relu"))->out();
      } else {
        out = fn.op("ReluGrad", {dy, x}, {{"T", DType::kFloat32}})->out();
      }
      // A one-element slice as the result keeps the big output an arena buffer, as in a step.
      std::vector<int32_t> zeros(s.size(), 0), ones(s.size(), 1);
      fn.result(fn.op("Slice", {out, fn.ints(zeros), fn.ints(ones)}, {{"T", DType::kFloat32}, {"Index", DType::kInt32}})->out());
      auto exe = CpuExecutable::compile(fn.g, {1, ""});
      std::vector<Tensor> in = {random_tensor(s, 1), random_tensor(s, 2)};
      double best = 1e9;
      for (int i = 0; i < 30; ++i) {
        const double t0 = thread_ms();
        exe->run(in, nullptr);
        best = std::min(best, thread_ms() - t0);
      }
      std::printf("%s %s: %.3f ms (thread CPU time, min of 30, 1 thread)\n", part, shape_str(s).c_str(), best);
    }
  }
}

}  // namespace
}  // namespace tessera::cpu::testing
