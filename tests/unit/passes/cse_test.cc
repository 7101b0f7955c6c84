// cse: identical pure nodes merge; stateful ones and nodes with different attrs do not.
#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::run_on;

const char* kGraph = R"(
graph (x: float32[2,2]) -> (a: a, b: b, c: c, d: d, e: e, f: f) {
  k1 = Const() {dtype=float32, value=float32[]{2}}
  k2 = Const() {dtype=float32, value=float32[]{2}}
  k3 = Const() {dtype=float32, value=float32[]{3}}
  m1 = Mul(x, k1) {T=float32}
  m2 = Mul(x, k2) {T=float32}
  m3 = Mul(x, k3) {T=float32}
  a = Relu(m1) {T=float32}
  b = Relu(m2) {T=float32}
  c = Relu(m3) {T=float32}
  d = MatMul(x, x) {T=float32}
  e = MatMul(x, x) {T=float32, transpose_a=true}
  v = VarHandleOp() {dtype=float32, shape=shape[2,2], shared_name="v"}
  r1 = ReadVariableOp(v) {dtype=float32}
  r2 = ReadVariableOp(v) {dtype=float32}
  f = AddV2(r1, r2) {T=float32}
}
)";

TEST(Cse, MergesIdenticalPureNodesOnly) {
  auto g = run_on(kGraph, {"cse"});
  EXPECT_IR(*g, R"(
graph (x: float32[2,2]) -> (a: a, b: a, c: c, d: d, e: e, f: f) {
  k1 = Const() {dtype=float32, value=float32[]{2}}
  k3 = Const() {dtype=float32, value=float32[]{3}}
  m1 = Mul(x, k1) {T=float32}
  m3 = Mul(x, k3) {T=float32}
  a = Relu(m1) {T=float32}
  c = Relu(m3) {T=float32}
  d = MatMul(x, x) {T=float32}
  e = MatMul(x, x) {T=float32, transpose_a=true}
  v = VarHandleOp() {dtype=float32, shape=shape[2,2], shared_name="v"}
  r1 = ReadVariableOp(v) {dtype=float32}
  r2 = ReadVariableOp(v) {dtype=float32}
  f = AddV2(r1, r2) {T=float32}
})");
  ResourceStore a, b;
  a.assign("/v", Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2}));
  b.assign("/v", Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2}));
  Tensor x = Tensor::from_vector<float>({1, -2, 3, 4}, {2, 2});
  auto ref = testing::call(*parse_graph(kGraph), {x}, &a);
  auto got = testing::call(*g, {x}, &b);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NUMERIC_MATCH(ref[i], got[i]);
}

}  // namespace
}  // namespace tessera
