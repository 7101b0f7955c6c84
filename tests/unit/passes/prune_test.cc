// prune: Identity/IdentityN/StopGradient/NoOp elimination that keeps what control edges
// meant, pure control edges dropped, dead nodes removed.
#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::run_on;

const char* kGraph = R"(
graph (x: float32[2]) -> (y: y, z: idn:1, ^noop) {
  v = VarHandleOp() {dtype=float32, shape=shape[2], shared_name="v"}
  assign = AssignVariableOp(v, x) {dtype=float32}
  noop = NoOp(^assign)
  i1 = Identity(x, ^noop) {T=float32}
  sg = StopGradient(i1) {T=float32}
  dead = Neg(x) {T=float32}
  dead_noop = NoOp(^dead)
  c = Const() {dtype=float32, value=float32[]{2}}
  y = Mul(sg, c, ^c) {T=float32}
  n = Neg(x, ^dead_noop) {T=float32}
  idn = IdentityN(y, n) {T=[float32, float32]}
}
)";

TEST(Prune, ForwardsIdentitiesKeepingSideEffectOrder) {
  auto g = run_on(kGraph, {"prune"});
  // y and n now wait on the assignment directly; the pure control edge (^c) and the dead
  // branch are gone; the NoOp control result became the assignment.
  EXPECT_IR(*g, R"(
graph (x: float32[2]) -> (y: y, z: n, ^assign) {
  v = VarHandleOp() {dtype=float32, shape=shape[2], shared_name="v"}
  assign = AssignVariableOp(v, x) {dtype=float32}
  c = Const() {dtype=float32, value=float32[]{2}}
  y = Mul(x, c, ^assign) {T=float32}
  n = Neg(x) {T=float32}
})");
  ResourceStore a, b;
  auto before = parse_graph(kGraph);
  Tensor x = Tensor::from_vector<float>({1, -3});
  auto ref = testing::call(*before, {x}, &a);
  auto got = testing::call(*g, {x}, &b);
  EXPECT_NUMERIC_MATCH(ref[0], got[0]);
  EXPECT_NUMERIC_MATCH(ref[1], got[1]);
  EXPECT_EQ(b.read("/v").data<float>()[1], -3.0f);  // the assignment still runs
}

TEST(Prune, ArgumentsStayEvenWhenUnused) {
  const char* text = R"(
graph (x: float32[2], unused: int32[]) -> (y: i) {
  i = Identity(x) {T=float32}
})";
  auto g = run_on(text, {"prune"});
  EXPECT_IR(*g, "graph (x: float32[2], unused: int32[]) -> (y: x) {\n}");
}

}  // namespace
}  // namespace tessera
