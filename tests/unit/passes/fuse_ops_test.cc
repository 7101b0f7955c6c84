// fuse_ops: matmul/conv + bias + residual + activation chains become one TsFused* node; chains
// whose intermediate values are used elsewhere stop early.
#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::random_f32;
using testing::run_on;

const char* kConvChain = R"(
graph (x: float32[?,4,4,2], r: float32[?,4,4,3]) -> (y: y) {
  w = Const() {dtype=float32, value=float32[3,3,2,3]{0.25}}
  c = Conv2D(x, w) {T=float32, padding="SAME", strides=[1, 1, 1, 1]}
  b = Const() {dtype=float32, value=float32[3]{1, -2, 0.5}}
  ba = BiasAdd(c, b) {T=float32}
  res = AddV2(r, ba) {T=float32}
  y = Relu6(res) {T=float32}
}
)";

TEST(FuseOps, ConvBiasResidualActivation) {
  auto g = run_on(kConvChain, {"fuse_ops"});
  EXPECT_IR(*g, R"(
graph (x: float32[?,4,4,2], r: float32[?,4,4,3]) -> (y: y) {
  w = Const() {dtype=float32, value=float32[3,3,2,3]{0.25}}
  b = Const() {dtype=float32, value=float32[3]{1, -2, 0.5}}
  y = TsFusedConv2D(x, w, b, r) {padding="SAME", strides=[1, 1, 1, 1], has_bias=true, has_residual=true, activation="Relu6", dilations=[1, 1, 1, 1], explicit_paddings=[], data_format="NHWC"}
})");
  EXPECT_SAME_RESULTS(kConvChain, *g, {random_f32({2, 4, 4, 2}, 1, -3, 3), random_f32({2, 4, 4, 3}, 2, -3, 3)});
}

// Keras 3 Dense on a rank-3 input (BatchMatMulV2 by a matrix), AddV2 bias, Swish; and a
// tensordot-style Reshape -> MatMul -> Reshape with a transposed weight.
const char* kDense = R"(
graph (x: float32[?,3,4]) -> (y: y, z: z) {
  w = Const() {dtype=float32, value=float32[4,2]{1, 2, 3, 4, 5, 6, 7, 8}}
  m = BatchMatMulV2(x, w) {T=float32}
  b = Const() {dtype=float32, value=float32[2]{0.5, -0.5}}
  a = AddV2(m, b) {T=float32}
  s = Sigmoid(a) {T=float32}
  y = Mul(a, s) {T=float32}
  flat_shape = Const() {dtype=int32, value=int32[2]{-1, 4}}
  flat = Reshape(x, flat_shape) {T=float32, Tshape=int32}
  wt = Const() {dtype=float32, value=float32[5,4]{0.5}}
  mm = MatMul(flat, wt) {T=float32, transpose_b=true}
  out_shape = Const() {dtype=int32, value=int32[3]{-1, 3, 5}}
  z = Reshape(mm, out_shape) {T=float32, Tshape=int32}
}
)";

TEST(FuseOps, DenseFormsOnRank3Inputs) {
  auto g = run_on(kDense, {"fuse_ops"});
  EXPECT_IR(*g, R"(
graph (x: float32[?,3,4]) -> (y: y, z: z) {
  w = Const() {dtype=float32, value=float32[4,2]{1, 2, 3, 4, 5, 6, 7, 8}}
  b = Const() {dtype=float32, value=float32[2]{0.5, -0.5}}
  y = TsFusedMatMul(x, w, b) {has_bias=true, activation="Swish"}
  wt = Const() {dtype=float32, value=float32[5,4]{0.5}}
  z = TsFusedMatMul(x, wt) {transpose_b=true}
})");
  EXPECT_SAME_RESULTS(kDense, *g, {random_f32({2, 3, 4}, 3)});
}

const char* kShared = R"(
graph (x: float32[2,3]) -> (y: y, pre: m, t: t, u: u) {
  w = Const() {dtype=float32, value=float32[3,3]{0.5}}
  m = MatMul(x, w) {T=float32}
  y = Relu(m) {T=float32}
  w2 = Const() {dtype=float32, value=float32[3,3]{2}}
  m2 = MatMul(x, w2) {T=float32}
  b2 = Const() {dtype=float32, value=float32[1,3]{1}}
  a2 = AddV2(m2, b2) {T=float32}
  t = Tanh(a2) {T=float32}
  u = Neg(a2) {T=float32}
}
)";

TEST(FuseOps, StopsWhereAValueHasOtherUses) {
  // m is also a result; a2 has two uses and its [1,3] add is not a [C] bias anyway.
  auto g = run_on(kShared, {"fuse_ops"});
  EXPECT_IR(*g, kShared);
  EXPECT_SAME_RESULTS(kShared, *g, {random_f32({2, 3}, 4)});
}

}  // namespace
}  // namespace tessera
