// simplify_algebra: batch norms and per-channel scales/shifts folded into weights and biases,
// neutral arithmetic removed, reshape/transpose chains collapsed.
#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::random_f32;
using testing::run_on;

const char* kConvBn = R"(
graph (x: float32[1,3,3,2]) -> (y: y) {
  w = Const() {dtype=float32, value=float32[1,1,2,2]{1, 2, 3, 4}}
  c = Conv2D(x, w) {T=float32, padding="VALID", strides=[1, 1, 1, 1]}
  scale = Const() {dtype=float32, value=float32[2]{2, 0.5}}
  offset = Const() {dtype=float32, value=float32[2]{1, -1}}
  mean = Const() {dtype=float32, value=float32[2]{0.5, 0.25}}
  var = Const() {dtype=float32, value=float32[2]{3, 0}}
  bn = FusedBatchNormV3(c, scale, offset, mean, var) {T=float32, U=float32, epsilon=1.0, is_training=false}
  y = Relu(bn) {T=float32}
}
)";

TEST(SimplifyAlgebra, FoldsFusedBatchNormIntoConv) {
  auto g = run_on(kConvBn, {"simplify_algebra"});
  // s = scale / sqrt(var + eps) = [1, 0.5]; t = offset - mean * s = [0.5, -1.125]
  EXPECT_IR(*g, R"(
graph (x: float32[1,3,3,2]) -> (y: y) {
  c/scaled_weight = Const() {dtype=float32, value=float32[1,1,2,2]{1, 1, 3, 2}}
  c = Conv2D(x, c/scaled_weight) {T=float32, padding="VALID", strides=[1, 1, 1, 1]}
  bn/shift_1/bias = Const() {dtype=float32, value=float32[2]{0.5, -1.125}}
  bn/shift_1 = BiasAdd(c, bn/shift_1/bias) {T=float32, data_format="NHWC"}
  y = Relu(bn/shift_1) {T=float32}
})");
  EXPECT_SAME_RESULTS(kConvBn, *g, {random_f32({1, 3, 3, 2}, 1)});
}

// The Keras 3 shape of the same thing once variables are constants: a biased layer, then a
// scale and a shift as separate broadcasting ops.
const char* kDenseScale = R"(
graph (x: float32[?,2]) -> (y: y) {
  w = Const() {dtype=float32, value=float32[2,3]{1, 2, 3, 4, 5, 6}}
  m = MatMul(x, w) {T=float32}
  b = Const() {dtype=float32, value=float32[3]{1, 2, 3}}
  ba = BiasAdd(m, b) {T=float32}
  two = Const() {dtype=float32, value=float32[]{2}}
  d = RealDiv(ba, two) {T=float32}
  k = Const() {dtype=float32, value=float32[1,3]{1, 1, 1}}
  y = Sub(d, k) {T=float32}
}
)";

TEST(SimplifyAlgebra, FoldsScalesAndShiftsIntoMatMulAndBias) {
  auto g = run_on(kDenseScale, {"simplify_algebra"});
  EXPECT_IR(*g, R"(
graph (x: float32[?,2]) -> (y: y_1) {
  m/scaled_weight = Const() {dtype=float32, value=float32[2,3]{0.5, 1, 1.5, 2, 2.5, 3}}
  m = MatMul(x, m/scaled_weight) {T=float32}
  y_1/bias = Const() {dtype=float32, value=float32[3]{-0.5, 0, 0.5}}
  y_1 = BiasAdd(m, y_1/bias) {T=float32, data_format="NHWC"}
})");
  EXPECT_SAME_RESULTS(kDenseScale, *g, {random_f32({4, 2}, 2)});
}

TEST(SimplifyAlgebra, LeavesSharedOrNonChannelConstantsAlone) {
  // The conv output has a second use, and the other scale varies along a non-channel axis.
  const char* text = R"(
graph (x: float32[1,2,2,1]) -> (a: a, b: c, d: d) {
  w = Const() {dtype=float32, value=float32[1,1,1,2]{1, 2}}
  c = Conv2D(x, w) {T=float32, padding="VALID", strides=[1, 1, 1, 1]}
  s = Const() {dtype=float32, value=float32[2]{3, 4}}
  a = Mul(c, s) {T=float32}
  w2 = Const() {dtype=float32, value=float32[1,1,1,2]{1, 2}}
  c2 = Conv2D(x, w2) {T=float32, padding="VALID", strides=[1, 1, 1, 1]}
  rows = Const() {dtype=float32, value=float32[2,1,1]{3, 4}}
  d = Mul(c2, rows) {T=float32}
})";
  auto g = run_on(text, {"simplify_algebra"});
  EXPECT_IR(*g, text);
}

const char* kNeutral = R"(
graph (x: float32[2,3]) -> (a: a, b: b, c: c, d: d, e: e) {
  one = Const() {dtype=float32, value=float32[3]{1}}
  a = Mul(x, one) {T=float32}
  big = Const() {dtype=float32, value=float32[2,2,3]{1}}
  b = Mul(x, big) {T=float32}
  s1 = Const() {dtype=int32, value=int32[2]{3, 2}}
  r1 = Reshape(x, s1) {T=float32, Tshape=int32}
  s2 = Const() {dtype=int32, value=int32[1]{6}}
  c = Reshape(r1, s2) {T=float32, Tshape=int32}
  p = Const() {dtype=int32, value=int32[2]{1, 0}}
  t1 = Transpose(x, p) {T=float32, Tperm=int32}
  d = Transpose(t1, p) {T=float32, Tperm=int32}
  zero = Const() {dtype=float32, value=float32[]{0}}
  e = Sub(x, zero) {T=float32}
}
)";

TEST(SimplifyAlgebra, DropsNeutralOpsAndCollapsesChains) {
  auto g = run_on(kNeutral, {"simplify_algebra"});
  // x*1 and x-0 go; the broadcasting Mul stays; Reshape(Reshape) and Transpose(Transpose) collapse.
  EXPECT_IR(*g, R"(
graph (x: float32[2,3]) -> (a: x, b: b, c: c, d: x, e: x) {
  big = Const() {dtype=float32, value=float32[2,2,3]{1}}
  b = Mul(x, big) {T=float32}
  s2 = Const() {dtype=int32, value=int32[1]{6}}
  c = Reshape(x, s2) {T=float32, Tshape=int32}
})");
  EXPECT_SAME_RESULTS(kNeutral, *g, {random_f32({2, 3}, 3)});
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// tf_keras EinsumDense projections ("abc,cde->abde", "abcd,cde->abe") with a [heads, depth]
// bias: after simplify_algebra and fuse_ops they are two TsFusedMatMuls, the bias inside.
std::string einsum_text() {
  auto values = [](int n, float scale) {
    std::string s;
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(((i * 7) % 11 - 5) * scale);
    return s;
  };
  return "graph (x: float32[?,3,4]) -> (q: q, o: o) {\n"
         "  w = Const() {dtype=float32, value=float32[4,2,3]{" + values(24, 0.1f) + "}}\n"
         "  e = Einsum(x, w) {N=2, T=float32, equation=\"abc,cde->abde\"}\n"
         "  b = Const() {dtype=float32, value=float32[2,3]{1, 2, 3, -4, 5, -6}}\n"
         "  q = AddV2(e, b) {T=float32}\n"
         "  wo = Const() {dtype=float32, value=float32[2,3,4]{" + values(24, 0.2f) + "}}\n"
         "  o = Einsum(q, wo) {N=2, T=float32, equation=\"abcd,cde->abe\"}\n"
         "}\n";
}

TEST(SimplifyAlgebra, EinsumDenseBecomesMatMulWithBias) {
  std::string text = einsum_text();
  auto g = testing::run_on(text, {"simplify_algebra", "fuse_ops", "prune"});
  std::map<std::string, int> ops;
  for (const auto& n : g->nodes()) ++ops[n->op];
  EXPECT_EQ(ops["Einsum"], 0);
  EXPECT_EQ(ops["AddV2"], 0);
  EXPECT_EQ(ops["TsFusedMatMul"], 2);
  EXPECT_NE(testing::canonical_ir(*g).find("has_bias=true"), std::string::npos) << testing::canonical_ir(*g);
  EXPECT_SAME_RESULTS(text, *g, {testing::random_f32({2, 3, 4}, 7)});
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

const char* kFlatten = R"(
graph (x: float32[?,2,3]) -> (y: y) {
  sh = Shape(x) {T=float32}
  b0 = Const() {dtype=int32, value=int32[1]{0}}
  b1 = Const() {dtype=int32, value=int32[1]{1}}
  n = StridedSlice(sh, b0, b1, b1) {Index=int32, T=int32, shrink_axis_mask=1}
  six = Const() {dtype=int32, value=int32[]{6}}
  p = Pack(n, six) {N=2, T=int32}
  y = Reshape(x, p) {T=float32, Tshape=int32}
}
)";

TEST(SimplifyAlgebra, ComputedReshapeTargetsBecomeConstants) {
  auto g = testing::run_on(kFlatten, {"simplify_algebra"});
  EXPECT_IR(*g, R"(
graph (x: float32[?,2,3]) -> (y: y) {
  y/shape = Const() {dtype=int32, value=int32[2]{-1, 6}}
  y = Reshape(x, y/shape) {T=float32, Tshape=int32}
})");
  EXPECT_SAME_RESULTS(kFlatten, *g, {testing::random_f32({4, 2, 3}, 9)});
}

}  // namespace
}  // namespace tessera
