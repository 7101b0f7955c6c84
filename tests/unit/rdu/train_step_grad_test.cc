// rdu::simulate_step on training-step-shaped graphs: forward and backward matmuls/convs are
// systolic kernels whose analytic FLOPs add up to 3x the forward's, and time grows with batch.
#include <gtest/gtest.h>

#include "backend/rdu/train_step.h"
#include "ir/op_registry.h"

namespace tessera::rdu {
namespace {

struct G {
  std::shared_ptr<Graph> g = std::make_shared<Graph>();
  int counter = 0;
  Value arg(PartialShape s) {
    Node* n = g->add("a" + std::to_string(counter++), "_Arg", {},
                     {{"T", DType::kFloat32}, {"_shape", std::move(s)}, {"index", int64_t(g->args.size())}});
    infer_node(*n);
    g->args.push_back(n);
    return n->out();
  }
  Value cst(const Tensor& t) {
    Node* n = g->add("c" + std::to_string(counter++), "Const", {}, {{"value", t}, {"dtype", t.dtype()}});
    infer_node(*n);
    return n->out();
  }
  Value op(const std::string& op, std::vector<Value> in, AttrMap attrs) {
    Node* n = g->add("n" + std::to_string(counter++), op, std::move(in), std::move(attrs));
    infer_node(*n);
    return n->out();
  }
};

TEST(RduTrainStep, DenseStepFlopsAreThreeTimesForward) {
  // y = x W; dW = x^T dy; dx = dy W^T  (the three GEMMs of a dense layer's step)
  G b;
  Value x = b.arg(PartialShape({-1, 256}));
  Value w = b.arg(PartialShape({256, 128}));
  Value dy = b.arg(PartialShape({-1, 128}));
  AttrMap mm = {{"T", DType::kFloat32}, {"transpose_a", false}, {"transpose_b", false}};
  Value y = b.op("MatMul", {x, w}, mm);
  AttrMap ta = mm, tb = mm;
  ta["transpose_a"] = true;
  tb["transpose_b"] = true;
  Value dw = b.op("MatMul", {x, dy}, ta);
  Value dx = b.op("MatMul", {dy, w}, tb);
  b.g->results = {y, dw, dx};
  b.g->result_names = {"y", "dw", "dx"};
  StepSimulation s32 = simulate_step(*b.g, 32, "tiny");
  StepSimulation s256 = simulate_step(*b.g, 256, "tiny");
  EXPECT_NEAR(s32.flops, 3 * 2.0 * 32 * 256 * 128, 1e-6 * s32.flops);
  EXPECT_GT(s32.seconds, 0);
  EXPECT_GT(s256.seconds, s32.seconds);
  EXPECT_GT(s32.sections, 0);
}

TEST(RduTrainStep, ConvGradientsAreSystolicWithConvFlops) {
  G b;
  Value x = b.arg(PartialShape({-1, 16, 16, 8}));
  Value f = b.arg(PartialShape({3, 3, 8, 16}));
  Value dy = b.arg(PartialShape({-1, 16, 16, 16}));
  AttrMap conv = {{"T", DType::kFloat32}, {"strides", std::vector<int64_t>{1, 1, 1, 1}},
                  {"padding", std::string("SAME")}, {"data_format", std::string("NHWC")}};
  Value sizes_x = b.cst(Tensor::from_vector<int32_t>({4, 16, 16, 8}, {4}));
  Value sizes_f = b.cst(Tensor::from_vector<int32_t>({3, 3, 8, 16}, {4}));
  Value y = b.op("Conv2D", {x, f}, conv);
  Value dx = b.op("Conv2DBackpropInput", {sizes_x, f, dy}, conv);
  Value df = b.op("Conv2DBackpropFilter", {x, sizes_f, dy}, conv);
  b.g->results = {y, dx, df};
  b.g->result_names = {"y", "dx", "df"};
  StepSimulation s = simulate_step(*b.g, 4, "tiny");
  const double fwd = 2.0 * 4 * 16 * 16 * 16 * 3 * 3 * 8;
  EXPECT_NEAR(s.flops, 3 * fwd, 1e-6 * s.flops);
  EXPECT_GT(s.seconds, 0);
  EXPECT_GT(s.fraction_of_peak, 0);
}

}  // namespace
}  // namespace tessera::rdu
