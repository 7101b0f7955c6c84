// fold_pad_into_conv: spatial zero Pads merge into VALID/EXPLICIT convolutions; pads of the
// batch or channel dimension, non-zero fills, SAME convs and shared Pads stay.
#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::random_f32;
using testing::run_on;

const char* kGraph = R"(
graph (x: float32[2,7,6,3]) -> (a: a, b: b, c: c, d: d) {
  w = Const() {dtype=float32, value=float32[2,2,3,2]{0.5, -1, 2, 0.25, 1, 1, -0.5, 0.75, 1.5, -2, 0.125, 1, 0.5, 0.5, -1, 2, 1, -1, 0.25, 0.5, -0.75, 1, 2, 1}}
  dw = Const() {dtype=float32, value=float32[2,2,3,1]{1, -1, 0.5, 2, 0.25, -0.5, 1, 1, -2, 0.75, 0.5, 1}}
  wc = Const() {dtype=float32, value=float32[1,1,4,2]{1, -1, 0.5, 2, 0.25, -0.5, 1, 1}}
  p1 = Const() {dtype=int32, value=int32[4,2]{0, 0, 1, 2, 0, 1, 0, 0}}
  pc = Const() {dtype=int32, value=int32[4,2]{0, 0, 1, 1, 1, 1, 1, 0}}
  xp = Pad(x, p1) {T=float32, Tpaddings=int32}
  a = Conv2D(xp, w) {T=float32, padding="VALID", strides=[1, 2, 2, 1]}
  xq = Pad(x, p1) {T=float32, Tpaddings=int32}
  b = DepthwiseConv2dNative(xq, dw) {T=float32, padding="EXPLICIT", explicit_paddings=[0, 0, 1, 0, 0, 1, 0, 0], strides=[1, 1, 1, 1]}
  xc = Pad(x, pc) {T=float32, Tpaddings=int32}
  c = Conv2D(xc, wc) {T=float32, padding="VALID", strides=[1, 1, 1, 1]}
  xs = Pad(x, p1) {T=float32, Tpaddings=int32}
  d0 = Conv2D(xs, w) {T=float32, padding="SAME", strides=[1, 1, 1, 1]}
  d = AddV2(d0, d0) {T=float32}
}
)";

TEST(FoldPadIntoConv, SpatialZeroPadsBecomeExplicitPadding) {
  auto g = run_on(kGraph, {"fold_pad_into_conv", "prune"});
  const Node* a = g->find("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->inputs[0].node->op, "_Arg");
  EXPECT_EQ(a->attr<std::string>("padding"), "EXPLICIT");
  EXPECT_EQ(a->attr<std::vector<int64_t>>("explicit_paddings"), (std::vector<int64_t>{0, 0, 1, 2, 0, 1, 0, 0}));
  const Node* b = g->find("b");
  EXPECT_EQ(b->inputs[0].node->op, "_Arg");
  EXPECT_EQ(b->attr<std::vector<int64_t>>("explicit_paddings"), (std::vector<int64_t>{0, 0, 2, 2, 0, 2, 0, 0}));
  EXPECT_EQ(g->find("c")->inputs[0].node->op, "Pad");  // pads the channels
  EXPECT_EQ(g->find("d0")->inputs[0].node->op, "Pad");  // SAME padding is not additive
  EXPECT_EQ(g->find("xp"), nullptr);
  EXPECT_SAME_RESULTS(kGraph, *g, {random_f32({2, 7, 6, 3}, 7)});
}

// ResNet's pool1: Relu -> zero Pad -> MaxPool VALID. Only a non-negative input folds (zero
// padding then equals the pool ignoring padded positions), and only while every window keeps
// a real element.
const char* kPoolGraph = R"(
graph (x: float32[2,7,6,3]) -> (a: a, b: b, c: c) {
  p1 = Const() {dtype=int32, value=int32[4,2]{0, 0, 1, 1, 1, 2, 0, 0}}
  p3 = Const() {dtype=int32, value=int32[4,2]{0, 0, 3, 0, 0, 0, 0, 0}}
  r = Relu(x) {T=float32}
  rp = Pad(r, p1) {T=float32, Tpaddings=int32}
  a = MaxPool(rp) {T=float32, ksize=[1, 3, 3, 1], padding="VALID", strides=[1, 2, 2, 1]}
  xp = Pad(x, p1) {T=float32, Tpaddings=int32}
  b = MaxPool(xp) {T=float32, ksize=[1, 3, 3, 1], padding="VALID", strides=[1, 2, 2, 1]}
  rq = Pad(r, p3) {T=float32, Tpaddings=int32}
  c = MaxPool(rq) {T=float32, ksize=[1, 3, 3, 1], padding="VALID", strides=[1, 1, 1, 1]}
}
)";

TEST(FoldPadIntoConv, ZeroPadOfNonNegativeInputFoldsIntoMaxPool) {
  auto g = run_on(kPoolGraph, {"fold_pad_into_conv", "prune"});
  const Node* a = g->find("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->inputs[0].node->op, "Relu");
  EXPECT_EQ(a->attr<std::string>("padding"), "EXPLICIT");
  EXPECT_EQ(a->attr<std::vector<int64_t>>("explicit_paddings"), (std::vector<int64_t>{0, 0, 1, 1, 1, 2, 0, 0}));
  EXPECT_EQ(g->find("b")->inputs[0].node->op, "Pad");  // x may be negative: zeros would win
  EXPECT_EQ(g->find("c")->inputs[0].node->op, "Pad");  // a window of padding only
  EXPECT_SAME_RESULTS(kPoolGraph, *g, {random_f32({2, 7, 6, 3}, 11)});
}

}  // namespace
}  // namespace tessera
