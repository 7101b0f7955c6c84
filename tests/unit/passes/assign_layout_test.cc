// assign_layout: NCHW convolutions, pools, BiasAdd and FusedBatchNorm become NHWC; the
// transposes this adds move down through elementwise ops and reductions and cancel in pairs,
// leaving transposes only where the graph's layout boundary is (its NCHW inputs and outputs).
#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::random_f32;
using testing::run_on;

int count_op(const Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes())
    if (node->op == op) ++n;
  return n;
}

int count_nchw(const Graph& g) {
  int n = 0;
  for (const auto& node : g.nodes())
    if (node->attr_or<std::string>("data_format", "NHWC") == "NCHW") ++n;
  return n;
}

const char* kConvRelu = R"(
graph (x: float32[1,2,4,5]) -> (y: y) {
  w = Const() {dtype=float32, value=float32[1,1,2,3]{1, -2, 0.5, 0.25, 1, -1}}
  c = Conv2D(x, w) {T=float32, data_format="NCHW", padding="VALID", strides=[1, 1, 1, 2]}
  y = Relu(c) {T=float32}
}
)";

TEST(AssignLayout, NchwConvBecomesNhwcBetweenTransposes) {
  auto g = run_on(kConvRelu, {"assign_layout"});
  // The stride moves with its dimension; the Relu runs channels-last and the transpose back
  // to NCHW moves behind it, to the result.
  EXPECT_IR(*g, R"(
graph (x: float32[1,2,4,5]) -> (y: y/transpose) {
  w = Const() {dtype=float32, value=float32[1,1,2,3]{1, -2, 0.5, 0.25, 1, -1}}
  c/to_nhwc/perm = Const() {dtype=int32, value=int32[4]{0, 2, 3, 1}}
  c/to_nhwc = Transpose(x, c/to_nhwc/perm) {T=float32, Tperm=int32}
  c = Conv2D(c/to_nhwc, w) {T=float32, data_format="NHWC", padding="VALID", strides=[1, 1, 2, 1]}
  y = Relu(c) {T=float32}
  y/transpose/perm = Const() {dtype=int32, value=int32[4]{0, 3, 1, 2}}
  y/transpose = Transpose(y, y/transpose/perm) {T=float32, Tperm=int32}
})");
  EXPECT_SAME_RESULTS(kConvRelu, *g, {random_f32({1, 2, 4, 5}, 1)});
}

// Conv -> BiasAdd -> BatchNorm -> Relu -> MaxPool -> depthwise (explicit padding) -> residual
// add -> per-channel scale (an NCHW-shaped [C,1,1] constant) -> AvgPool, then a spatial Mean,
// a channel Max and a Tanh as results.
const char* kNchwNet = R"(
graph (x: float32[2,3,9,8]) -> (y: y, m: m, z: z) {
  w = Const() {dtype=float32, value=float32[2,2,3,4]{-0.524, 0.088, -0.26, 0.208, 0.251, -0.869, -0.974, 0.675, -0.481, -0.531, 0.991, -0.059, 0.673, -0.047, 0.278, -0.699, 0.27, 0.736, 0.046, 0.483, 0.343, -0.872, 0.516, 0.182, -0.397, -0.938, 0.731, -0.055, 0.438, 0.758, 0.428, 0.842, -0.21, 0.602, -0.111, 0.871, 0.758, -0.805, -0.728, -0.566, 0.931, -0.128, 0.253, -0.398, 0.014, -0.228, -0.298, 0.17}}
  c = Conv2D(x, w) {T=float32, data_format="NCHW", dilations=[1, 1, 1, 1], padding="SAME", strides=[1, 1, 2, 1]}
  b = Const() {dtype=float32, value=float32[4]{0.169, 0.808, 0.364, 0.858}}
  ba = BiasAdd(c, b) {T=float32, data_format="NCHW"}
  scale = Const() {dtype=float32, value=float32[4]{1.785, 1.986, 1.507, 0.745}}
  offset = Const() {dtype=float32, value=float32[4]{0.721, 0.929, 0.809, 0.138}}
  mean = Const() {dtype=float32, value=float32[4]{0.428, -0.578, 0.663, 0.147}}
  var = Const() {dtype=float32, value=float32[4]{0.641, 0.221, 1.722, 1.981}}
  bn = FusedBatchNormV3(ba, scale, offset, mean, var) {T=float32, U=float32, data_format="NCHW", epsilon=0.001, is_training=false}
  r = Relu(bn) {T=float32}
  mp = MaxPool(r) {T=float32, data_format="NCHW", ksize=[1, 1, 3, 2], padding="SAME", strides=[1, 1, 1, 1]}
  dw = Const() {dtype=float32, value=float32[3,3,4,1]{-0.823, 0.601, -0.179, -0.698, -0.412, 0.538, 0.746, -0.912, 0.229, -0.91, 0.437, -0.338, 0.762, 0.961, 0.011, 0.997, -0.381, -0.846, 0.2, -0.937, -0.605, -0.184, 0.221, -0.688, -0.915, 0.736, -0.372, 0.917, 0.793, -0.244, -0.079, 0.04, 0.288, 0.191, 0.119, 0.24}}
  d = DepthwiseConv2dNative(mp, dw) {T=float32, data_format="NCHW", padding="EXPLICIT", explicit_paddings=[0, 0, 0, 0, 1, 1, 2, 0], strides=[1, 1, 1, 1]}
  s = AddV2(d, r) {T=float32}
  k = Const() {dtype=float32, value=float32[4,1,1]{0.881, 0.014, -0.138, 0.441}}
  sc = Mul(s, k) {T=float32}
  half = Const() {dtype=float32, value=float32[]{0.5}}
  sh = Sub(sc, half) {T=float32}
  ap = AvgPool(sh) {T=float32, data_format="NCHW", ksize=[1, 1, 2, 2], padding="VALID", strides=[1, 1, 2, 2]}
  ax = Const() {dtype=int32, value=int32[2]{2, 3}}
  m = Mean(ap, ax) {T=float32, Tidx=int32, keep_dims=false}
  ax1 = Const() {dtype=int32, value=int32[1]{1}}
  z = Max(sh, ax1) {T=float32, Tidx=int32, keep_dims=true}
  y = Tanh(ap) {T=float32}
}
)";

TEST(AssignLayout, NchwNetworkKeepsTransposesOnlyAtItsBoundaries) {
  auto g = run_on(kNchwNet, {"assign_layout", "fold_constants", "prune"});
  EXPECT_EQ(count_nchw(*g), 0);
  // One at the input; one before each of the NCHW results y and z; the Mean over H and W
  // needs none, and the constant operand's transpose is folded into it.
  EXPECT_EQ(count_op(*g, "Transpose"), 3);
  EXPECT_EQ(count_op(*g, "Reshape"), 0);
  // The spatial Mean reads the NHWC pool output directly, though its transpose is shared.
  EXPECT_EQ(g->results[1].node->op, "Mean");
  EXPECT_EQ(g->results[1].node->inputs[0].node->op, "AvgPool");
  EXPECT_SAME_RESULTS(kNchwNet, *g, {random_f32({2, 3, 9, 8}, 5)});
}

TEST(AssignLayout, DefaultPipelineRunsIt) {
  auto g = run_on(kNchwNet, passes::default_pipeline());
  EXPECT_EQ(count_nchw(*g), 0);
  EXPECT_EQ(count_op(*g, "Transpose"), 3);
  // The batch norm folded into the conv (possible only once both are NHWC) and fused.
  EXPECT_EQ(count_op(*g, "FusedBatchNormV3"), 0);
  EXPECT_EQ(count_op(*g, "TsFusedConv2D"), 1);
  EXPECT_SAME_RESULTS(kNchwNet, *g, {random_f32({2, 3, 9, 8}, 6)});
}

TEST(AssignLayout, NhwcGraphsAndTrainingBatchNormsStay) {
  const char* text = R"(
graph (x: float32[1,2,3,3]) -> (y: bn) {
  scale = Const() {dtype=float32, value=float32[2]{2, 0.5}}
  offset = Const() {dtype=float32, value=float32[2]{1, -1}}
  e = Const() {dtype=float32, value=float32[0]{}}
  bn = FusedBatchNormV3(x, scale, offset, e, e) {T=float32, U=float32, data_format="NCHW", epsilon=0.001, is_training=true}
}
)";
  auto g = run_on(text, {"assign_layout"});
  EXPECT_EQ(count_nchw(*g), 1);
  EXPECT_EQ(count_op(*g, "Transpose"), 0);
  auto h = run_on(kConvRelu, {"assign_layout", "assign_layout"});  // idempotent
  EXPECT_EQ(count_op(*h, "Transpose"), 2);
}

}  // namespace
}  // namespace tessera
