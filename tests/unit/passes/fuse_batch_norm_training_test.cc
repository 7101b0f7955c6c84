// fuse_batch_norm_training: Keras 3's training-mode BatchNormalization subgraph (tf.nn.moments
// + tf.nn.batch_normalization, the moving-average updates reading the squeezed statistics)
// becomes one TsBatchNormTraining; the rewritten graph computes the same outputs, moving
// statistics and gradients on the reference interpreter; near misses stay unfused.
#include <gtest/gtest.h>

#include "ir/interpreter.h"
#include "passes/autodiff.h"
#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::random_f32;
using testing::run_on;

// Keras 3 (TF backend) BatchNormalization(training=True) + ReLU, momentum 0.99, eps 1e-3:
// outputs the activation and the new moving mean and variance.
const char* kKeras3 = R"(
graph (x: float32[?,4,5,3], gamma: float32[3], beta: float32[3], mm: float32[3], mv: float32[3]) -> (y: r, mm2: upd_m, mv2: upd_v) {
  ax = Const() {dtype=int32, value=int32[3]{0, 1, 2}}
  ax2 = Const() {dtype=int32, value=int32[3]{0, 1, 2}}
  mean = Mean(x, ax) {T=float32, Tidx=int32, keep_dims=true}
  sg = StopGradient(mean) {T=float32}
  sd = SquaredDifference(x, sg) {T=float32}
  var = Mean(sd, ax2) {T=float32, Tidx=int32, keep_dims=true}
  var_s = Squeeze(var) {T=float32, squeeze_dims=[0, 1, 2]}
  mean_s = Squeeze(mean) {T=float32, squeeze_dims=[0, 1, 2]}
  eps = Const() {dtype=float32, value=float32[]{0.001}}
  add = AddV2(var_s, eps) {T=float32}
  rsqrt = Rsqrt(add) {T=float32}
  mul = Mul(rsqrt, gamma) {T=float32}
  mul_1 = Mul(x, mul) {T=float32}
  mul_2 = Mul(mean_s, mul) {T=float32}
  sub = Sub(beta, mul_2) {T=float32}
  out = AddV2(mul_1, sub) {T=float32}
  r = Relu(out) {T=float32}
  k99 = Const() {dtype=float32, value=float32[]{0.99}}
  k01 = Const() {dtype=float32, value=float32[]{0.01}}
  um1 = Mul(mm, k99) {T=float32}
  um2 = Mul(mean_s, k01) {T=float32}
  upd_m = AddV2(um1, um2) {T=float32}
  uv1 = Mul(mv, k99) {T=float32}
  uv2 = Mul(var_s, k01) {T=float32}
  upd_v = AddV2(uv1, uv2) {T=float32}
}
)";

std::vector<Tensor> inputs(int64_t batch, uint32_t seed, float offset = 0) {
  Tensor x = random_f32({batch, 4, 5, 3}, seed, -2 + offset, 3 + offset);
  return {x, random_f32({3}, seed + 1, 0.5f, 1.5f), random_f32({3}, seed + 2), random_f32({3}, seed + 3),
          random_f32({3}, seed + 4, 0.5f, 2.0f)};
}

int count_op(const Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes()) n += node->op == op;
  return n;
}

TEST(FuseBatchNormTraining, Keras3BlockBecomesOneOpWithRelu) {
  auto g = run_on(kKeras3, {"fuse_batch_norm_training"});
  ASSERT_EQ(count_op(*g, "TsBatchNormTraining"), 1);
  for (const char* gone : {"Mean", "SquaredDifference", "Rsqrt", "Relu", "Squeeze", "StopGradient"})
    EXPECT_EQ(count_op(*g, gone), 0) << gone;
  for (const auto& n : g->nodes())
    if (n->op == "TsBatchNormTraining") {
      EXPECT_EQ(n->attr<std::string>("activation"), "Relu");
      EXPECT_FLOAT_EQ(n->attr<float>("epsilon"), 0.001f);
      EXPECT_EQ(n->outputs[0].shape, PartialShape({-1, 4, 5, 3}));
    }
  // Same activations and moving statistics (population variance) at two batch sizes, and
  // with a large offset in the data.
  EXPECT_SAME_RESULTS(kKeras3, *g, inputs(2, 10));
  EXPECT_SAME_RESULTS(kKeras3, *g, inputs(7, 20));
  EXPECT_SAME_RESULTS(kKeras3, *g, inputs(3, 30, 100.0f));
}

// d sum(y·w) / d {x, gamma, beta} of the fused graph (TsBatchNormTrainingGrad) against the
// gradient of the unfused TF ops.
TEST(FuseBatchNormTraining, GradientsMatchTheUnfusedGraph) {
  auto grads = [](const std::string& text, bool fuse, const std::vector<Tensor>& in, const Tensor& w) {
    auto g = parse_graph(text);
    if (fuse) passes::run_passes(*g, {"fuse_batch_norm_training"});
    Value y = g->results[0];
    Node* wc = g->add("w", "Const", {}, {{"value", w}, {"dtype", DType::kFloat32}});
    infer_node(*wc);
    Node* m = g->add("loss_m", "Mul", {y, wc->out()}, {{"T", DType::kFloat32}});
    infer_node(*m);
    Node* ax = g->add("loss_ax", "Const", {}, {{"value", Tensor::from_vector<int32_t>({0, 1, 2, 3}, {4})}, {"dtype", DType::kInt32}});
    infer_node(*ax);
    Node* s = g->add("loss", "Sum", {m->out(), ax->out()}, {{"T", DType::kFloat32}, {"Tidx", DType::kInt32}});
    infer_node(*s);
    size_t first = g->results.size();
    passes::differentiate(*g, s->out(), passes::arg_targets(*g, {0, 1, 2}));
    std::vector<Feed> feeds;
    for (size_t i = 0; i < in.size(); ++i) feeds.push_back({g->args[i]->out(), in[i]});
    std::vector<Value> fetch(g->results.begin() + static_cast<long>(first), g->results.end());
    return std::make_pair(interpret(*g, feeds, fetch, {}, nullptr), count_op(*g, "TsBatchNormTrainingGrad"));
  };
  std::vector<Tensor> in = inputs(6, 40);
  Tensor w = random_f32({6, 4, 5, 3}, 50);
  auto [ref, unfused_count] = grads(kKeras3, false, in, w);
  auto [got, fused_count] = grads(kKeras3, true, in, w);
  EXPECT_EQ(unfused_count, 0);
  EXPECT_EQ(fused_count, 1);
  ASSERT_EQ(ref.size(), 3u);
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NUMERIC_MATCH(ref[i], got[i]) << "gradient " << i;
}

// Without gamma/beta (scale=False, center=False: TF writes −mean·inv as Neg(mean)·inv) and
// without StopGradient; `shape`, `axes`
// and `dims` set the input and the reduction.
std::string no_scale_text(const std::string& shape, const std::string& axes, const std::string& dims) {
  return R"(
graph (x: float32)" + shape + R"() -> (y: r, z: out, m: mean_s, v: var_s) {
  ax = Const() {dtype=int32, value=int32[2]{)" + axes + R"(}}
  mean = Mean(x, ax) {T=float32, Tidx=int32, keep_dims=true}
  sd = SquaredDifference(x, mean) {T=float32}
  var = Mean(sd, ax) {T=float32, Tidx=int32, keep_dims=true}
  var_s = Squeeze(var) {T=float32, squeeze_dims=)" + dims + R"(}
  mean_s = Squeeze(mean) {T=float32, squeeze_dims=)" + dims + R"(}
  eps = Const() {dtype=float32, value=float32[]{0.01}}
  add = AddV2(eps, var_s) {T=float32}
  rsqrt = Rsqrt(add) {T=float32}
  mul_1 = Mul(rsqrt, x) {T=float32}
  neg = Neg(mean_s) {T=float32}
  mul_2 = Mul(neg, rsqrt) {T=float32}
  out = AddV2(mul_2, mul_1) {T=float32}
  r = Relu(out) {T=float32}
}
)";
}

// The normalised value has another consumer, so the Relu stays a Relu.
TEST(FuseBatchNormTraining, NoScaleNoCenterAndSharedOutput) {
  const std::string text = no_scale_text("[2,3,4]", "1, 0", "[0, 1]");
  auto g = run_on(text, {"fuse_batch_norm_training"});
  ASSERT_EQ(count_op(*g, "TsBatchNormTraining"), 1);
  EXPECT_EQ(count_op(*g, "Relu"), 1);
  for (const auto& n : g->nodes()) {
    if (n->op == "TsBatchNormTraining") {
      EXPECT_EQ(n->attr<std::string>("activation"), "");
    }
  }
  EXPECT_SAME_RESULTS(text, *g, {random_f32({2, 3, 4}, 60, -1, 2)});
}

TEST(FuseBatchNormTraining, NearMissesStayUnfused) {
  // Statistics over axes 0 and 2 of a [2,3,3] input: [3] vectors that broadcast against the
  // last axis, but they are not that axis's statistics.
  const std::string text = no_scale_text("[2,3,3]", "0, 2", "[0, 2]");
  auto g = run_on(text, {"fuse_batch_norm_training"});
  EXPECT_EQ(count_op(*g, "TsBatchNormTraining"), 0);
  // Another tensor normalised with x's statistics.
  std::string text2 = kKeras3;
  const std::string mul1 = "mul_1 = Mul(x, mul) {T=float32}";
  text2.replace(text2.find(mul1), mul1.size(), "nx = Neg(x) {T=float32}\n  mul_1 = Mul(nx, mul) {T=float32}");
  auto g2 = run_on(text2, {"fuse_batch_norm_training"});
  EXPECT_EQ(count_op(*g2, "TsBatchNormTraining"), 0);
}

// After differentiation: the bias gradient Sum(dx, batch axes) becomes the grad op's dx_sum;
// a Sum over other axes, or of another output, stays.
TEST(FoldBatchNormGradSum, BiasGradientSumBecomesOutput3) {
  const char* text = R"(
graph (dy: float32[?,3,4,5], x: float32[?,3,4,5], s: float32[5], m: float32[5], v: float32[5]) -> (b: b, keep: k, other: o) {
  g = TsBatchNormTrainingGrad(dy, x, s, m, v) {T=float32, epsilon=0.001}
  ax = Const() {dtype=int32, value=int32[3]{2, 0, 1}}
  ax2 = Const() {dtype=int32, value=int32[2]{0, 1}}
  b = Sum(g, ax) {T=float32, Tidx=int32, keep_dims=false}
  k = Sum(g, ax2) {T=float32, Tidx=int32, keep_dims=false}
  ax3 = Const() {dtype=int32, value=int32[1]{0}}
  o = Sum(g:1, ax3) {T=float32, Tidx=int32, keep_dims=false}
}
)";
  auto g = run_on(text, {"fold_batch_norm_grad_sum", "prune"});
  EXPECT_EQ(count_op(*g, "Sum"), 2);
  EXPECT_EQ(g->results[0].node->op, "TsBatchNormTrainingGrad");
  EXPECT_EQ(g->results[0].index, 3);
  std::vector<Tensor> in = {random_f32({2, 3, 4, 5}, 80), random_f32({2, 3, 4, 5}, 81, -1, 3),
                            random_f32({5}, 82), random_f32({5}, 83), random_f32({5}, 84, 0.5f, 2)};
  EXPECT_SAME_RESULTS(text, *g, in);
}

}  // namespace
}  // namespace tessera
