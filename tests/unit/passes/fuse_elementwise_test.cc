// fuse_elementwise: groups of float32 elementwise ops become one TsElementwise program; values
// used outside a group stay materialised.
#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::random_f32;
using testing::run_on;

const char* kChain = R"(
graph (x: float32[2,3], y: float32[3]) -> (out: r) {
  h = Const() {dtype=float32, value=float32[]{0.5}}
  m = Mul(x, y) {T=float32}
  a = AddV2(m, h) {T=float32}
  s = Sigmoid(a) {T=float32}
  w = Mul(a, s) {T=float32}
  l = LeakyRelu(w) {T=float32, alpha=0.1}
  r = Maximum(l, x) {T=float32}
}
)";

TEST(FuseElementwise, FusesADagOfElementwiseOps) {
  auto g = run_on(kChain, {"fuse_elementwise"});
  EXPECT_IR(*g, R"(
graph (x: float32[2,3], y: float32[3]) -> (out: r) {
  r = TsElementwise(x, y) {N=2, T=float32, program=["Mul $0 $1", "AddV2 %0 0.5", "Sigmoid %1", "Mul %1 %2", "LeakyRelu %3 0.1", "Maximum %4 $0"]}
})");
  EXPECT_SAME_RESULTS(kChain, *g, {random_f32({2, 3}, 1, -3, 3), random_f32({3}, 2)});
}

const char* kShared = R"(
graph (x: float32[4], k: float32[4]) -> (a: e, b: t, c: q) {
  e = Exp(x) {T=float32}
  n = Neg(e) {T=float32}
  t = Tanh(n) {T=float32}
  i = Cast(x) {SrcT=float32, DstT=int32}
  f = Cast(i) {SrcT=int32, DstT=float32}
  q = Mul(f, k) {T=float32}
}
)";

TEST(FuseElementwise, StopsAtValuesUsedElsewhereAndNonFloatOps) {
  auto g = run_on(kShared, {"fuse_elementwise"});
  // e is a result, so only Neg -> Tanh fuse; the Cast chain and a lone Mul are left alone.
  EXPECT_IR(*g, R"(
graph (x: float32[4], k: float32[4]) -> (a: e, b: t, c: q) {
  e = Exp(x) {T=float32}
  t = TsElementwise(e) {N=1, T=float32, program=["Neg $0", "Tanh %0"]}
  i = Cast(x) {SrcT=float32, DstT=int32}
  f = Cast(i) {SrcT=int32, DstT=float32}
  q = Mul(f, k) {T=float32}
})");
  EXPECT_SAME_RESULTS(kShared, *g, {random_f32({4}, 3, -3, 3), random_f32({4}, 4)});
}

}  // namespace
}  // namespace tessera
