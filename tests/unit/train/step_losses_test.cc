// Keras 3 losses and the accuracy metric as IR nodes, against the formulas evaluated here.
#include <gtest/gtest.h>

#include <cmath>

#include "ir/interpreter.h"
#include "passes/pass_util.h"
#include "train/losses.h"

namespace tessera::train {
namespace {

Tensor f32(std::vector<float> v, Shape s) { return Tensor::from_vector<float>(v, s); }

// Runs the per-sample loss (or accuracy sum) of `spec` on constant output/labels.
std::vector<float> run_loss(const LossSpec& spec, const Tensor& out, const Tensor& labels, bool softmax_node,
                            bool metric = false, bool wrap = false) {
  Graph g;
  GraphBuilder b(g, "t");
  Value o = passes::add_const(g, "out", out)->out();
  if (softmax_node) o = b.op("Softmax", {o});
  if (wrap) {  // as exports wrap outputs: IdentityN then Identity
    o = b.op("IdentityN", {b.scalar(0.0), o}, {{"T", std::vector<DType>{DType::kFloat32, DType::kFloat32}}});
    o.index = 1;
    o = b.op("Identity", {o});
  }
  Value y = passes::add_const(g, "labels", labels)->out();
  Value v = metric ? metric_sum(b, "accuracy", spec, o, y) : per_sample_loss(b, spec, o, y);
  Tensor t = interpret(g, {}, {v}, {}, nullptr).at(0);
  return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
}

TEST(StepLosses, SparseCrossEntropyFromProbabilitiesClipsAndRenormalises) {
  // Keras: logits = log(clip(p, 1e-7, 1 - 1e-7)), then softmax cross-entropy of those.
  Tensor p = f32({0.7f, 0.3f, 0.0f, 0.2f, 0.2f, 0.5f}, {2, 3});
  Tensor y = Tensor::from_vector<int64_t>({0, 2}, {2});
  std::vector<float> got = run_loss({"sparse_categorical_crossentropy", false, ""}, p, y, false);
  double c0 = 0.7 + 0.3 + 1e-7, c1 = 0.2 + 0.2 + 0.5;
  ASSERT_EQ(got.size(), 2u);
  EXPECT_NEAR(got[0], -std::log(0.7 / c0), 1e-6);
  EXPECT_NEAR(got[1], -std::log(0.5 / c1), 1e-6);
}

TEST(StepLosses, SoftmaxOutputIsReadAsLogitsLikeKeras) {
  Tensor z = f32({30.0f, 0.0f, -5.0f}, {1, 3});  // softmax underflows the last class below 1e-7
  Tensor y = Tensor::from_vector<int64_t>({2}, {1});
  std::vector<float> got = run_loss({"sparse_categorical_crossentropy", false, ""}, z, y, true);
  double lse = 30.0 + std::log(1.0 + std::exp(-30.0) + std::exp(-35.0));
  EXPECT_NEAR(got[0], lse + 5.0, 1e-4);  // not the clipped -log(1e-7) = 16.1
  // Through the IdentityN/Identity an export puts on its outputs, and with from_logits=True
  // (Keras warns, but still reads the logits).
  EXPECT_NEAR(run_loss({"sparse_categorical_crossentropy", false, ""}, z, y, true, false, true)[0], lse + 5.0, 1e-4);
  EXPECT_NEAR(run_loss({"sparse_categorical_crossentropy", true, ""}, z, y, true, false, true)[0], lse + 5.0, 1e-4);
}

TEST(StepLosses, CategoricalAndBinaryAndRegression) {
  Tensor p = f32({0.5f, 0.25f, 0.25f}, {1, 3});
  Tensor oh = f32({0.0f, 1.0f, 0.0f}, {1, 3});
  EXPECT_NEAR(run_loss({"categorical_crossentropy", false, ""}, p, oh, false)[0], -std::log(0.25), 1e-6);
  Tensor z = f32({1.0f, -2.0f, 0.5f}, {1, 3});
  double lse = std::log(std::exp(1.0) + std::exp(-2.0) + std::exp(0.5));
  EXPECT_NEAR(run_loss({"categorical_crossentropy", true, ""}, z, oh, false)[0], lse + 2.0, 1e-5);

  Tensor q = f32({0.9f, 0.2f}, {2, 1});
  Tensor t = f32({1.0f, 0.0f}, {2, 1});
  std::vector<float> bce = run_loss({"binary_crossentropy", false, ""}, q, t, false);
  EXPECT_NEAR(bce[0], -std::log(0.9), 1e-6);
  EXPECT_NEAR(bce[1], -std::log(0.8), 1e-6);
  Tensor x = f32({2.0f, -1.0f}, {2, 1});
  std::vector<float> bl = run_loss({"binary_crossentropy", true, ""}, x, t, false);
  EXPECT_NEAR(bl[0], std::log1p(std::exp(-2.0)), 1e-6);
  EXPECT_NEAR(bl[1], std::log1p(std::exp(-1.0)), 1e-6);

  Tensor a = f32({1.0f, 2.0f, 3.0f, 4.0f}, {2, 2});
  Tensor bt = f32({0.0f, 2.0f, 5.0f, 1.0f}, {2, 2});
  std::vector<float> mse = run_loss({"mse", false, ""}, a, bt, false);
  EXPECT_NEAR(mse[0], 0.5, 1e-6);
  EXPECT_NEAR(mse[1], (4.0 + 9.0) / 2, 1e-6);
  std::vector<float> mae = run_loss({"mae", false, ""}, a, bt, false);
  EXPECT_NEAR(mae[1], 2.5, 1e-6);
}

TEST(StepLosses, AccuracyFollowsTheLossKind) {
  Tensor p = f32({0.1f, 0.9f, 0.8f, 0.2f, 0.3f, 0.7f}, {3, 2});
  Tensor y = Tensor::from_vector<int64_t>({1, 1, 1}, {3});
  EXPECT_EQ(run_loss({"sparse_categorical_crossentropy", false, ""}, p, y, false, true)[0], 2.0f);
  Tensor oh = f32({0, 1, 1, 0, 1, 0}, {3, 2});
  EXPECT_EQ(run_loss({"categorical_crossentropy", false, ""}, p, oh, false, true)[0], 2.0f);
  Tensor q = f32({0.6f, 0.4f, 0.5f}, {3, 1});
  Tensor t = f32({1, 1, 0}, {3, 1});
  EXPECT_EQ(run_loss({"binary_crossentropy", false, ""}, q, t, false, true)[0], 2.0f);  // 0.5 is not > 0.5
}

TEST(StepLosses, UnknownLossIsRefused) {
  EXPECT_THROW(check_loss({"hinge", false, ""}), std::exception);
}

}  // namespace
}  // namespace tessera::train
