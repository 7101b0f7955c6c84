// fold_constants: constant subgraphs and statically known shapes become Consts; stateful ops
// and nodes ordered after side effects stay.
#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::run_on;

const char* kGraph = R"(
graph (x: float32[?,2]) -> (y: y, n: n, p: p0, q: p1) {
  a = Const() {dtype=float32, value=float32[2]{1, 2}}
  b = Const() {dtype=float32, value=float32[2]{3, 4}}
  s = AddV2(a, b) {T=float32}
  e = Exp(s) {T=float32}
  y = Mul(x, e) {T=float32}
  sh = Shape(x) {T=float32}
  last = Const() {dtype=int32, value=int32[1]{-1}}
  one = Const() {dtype=int32, value=int32[1]{1}}
  n = StridedSlice(sh, last, one, one) {Index=int32, T=int32, shrink_axis_mask=1}
  axis = Const() {dtype=int32, value=int32[]{0}}
  p = Split(axis, s) {T=float32, num_split=2}
  p0 = Identity(p) {T=float32}
  p1 = Identity(p:1) {T=float32}
}
)";

TEST(FoldConstants, FoldsConstantsStaticShapesAndMultiOutputNodes) {
  auto g = run_on(kGraph, {"fold_constants", "prune"});
  EXPECT_IR(*g, R"(
graph (x: float32[?,2]) -> (y: y, n: n, p: p0, q: p1) {
  e = Const() {dtype=float32, value=float32[2]{54.59815, 403.4288}}
  y = Mul(x, e) {T=float32}
  n = Const() {dtype=int32, value=int32[]{2}}
  p0 = Const() {dtype=float32, value=float32[1]{4}}  # Split's outputs folded, then the Identities
  p1 = Const() {dtype=float32, value=float32[1]{6}}
})");
  EXPECT_SAME_RESULTS(kGraph, *g, {Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2})});
}

TEST(FoldConstants, NeverFoldsStatefulOrOrderedNodes) {
  const char* text = R"(
graph () -> (r: r, m: m) {
  v = VarHandleOp() {dtype=float32, shape=shape[], shared_name="v"}
  c = Const() {dtype=float32, value=float32[]{1}}
  assign = AssignVariableOp(v, c) {dtype=float32}
  r = ReadVariableOp(v) {dtype=float32}
  m = Neg(c, ^assign) {T=float32}
})";
  auto g = run_on(text, {"fold_constants"});
  EXPECT_IR(*g, text);
}

}  // namespace
}  // namespace tessera
