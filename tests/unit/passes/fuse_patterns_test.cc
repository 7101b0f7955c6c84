// fuse_patterns: layer norm (both Keras forms), gelu (any spelling, matched by value) and
// attention score blocks; near misses stay unfused.
#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::random_f32;
using testing::run_on;

const char* kLayerNormK3 = R"(
graph (x: float32[?,3,4]) -> (y: out) {
  axes = Const() {dtype=int32, value=int32[1]{-1}}
  mean = Mean(x, axes) {T=float32, keep_dims=true}
  sqd = SquaredDifference(x, mean) {T=float32}
  var = Mean(sqd, axes) {T=float32, keep_dims=true}
  eps = Const() {dtype=float32, value=float32[]{0.001}}
  add = AddV2(var, eps) {T=float32}
  rs = Rsqrt(add) {T=float32}
  gamma = Const() {dtype=float32, value=float32[1,1,4]{0.5, 2, -1, 3}}
  m = Mul(rs, gamma) {T=float32}
  xm = Mul(x, m) {T=float32}
  neg = Neg(mean) {T=float32}
  mm = Mul(neg, m) {T=float32}
  beta = Const() {dtype=float32, value=float32[1,1,4]{1, -2, 0.25, 0}}
  shift = AddV2(mm, beta) {T=float32}
  out = AddV2(xm, shift) {T=float32}
}
)";

const char* kLayerNormTfk = R"(
graph (x: float32[?,3,4]) -> (y: out) {
  axes = Const() {dtype=int32, value=int32[1]{2}}
  mean = Mean(x, axes) {T=float32, keep_dims=true}
  sqd = SquaredDifference(x, mean) {T=float32}
  var = Mean(sqd, axes) {T=float32, keep_dims=true}
  eps = Const() {dtype=float32, value=float32[]{0.001}}
  add = AddV2(var, eps) {T=float32}
  rs = Rsqrt(add) {T=float32}
  gamma = Const() {dtype=float32, value=float32[4]{0.5, 2, -1, 3}}
  m = Mul(rs, gamma) {T=float32}
  xm = Mul(x, m) {T=float32}
  mm = Mul(mean, m) {T=float32}
  beta = Const() {dtype=float32, value=float32[4]{1, -2, 0.25, 0}}
  shift = Sub(beta, mm) {T=float32}
  out = AddV2(xm, shift) {T=float32}
}
)";

TEST(FusePatterns, LayerNormBothKerasForms) {
  for (const char* text : {kLayerNormK3, kLayerNormTfk}) {
    auto g = run_on(text, {"fuse_patterns"});
    EXPECT_IR(*g, R"(
graph (x: float32[?,3,4]) -> (y: out/layer_norm) {
  out/gamma = Const() {dtype=float32, value=float32[4]{0.5, 2, -1, 3}}
  out/beta = Const() {dtype=float32, value=float32[4]{1, -2, 0.25, 0}}
  out/layer_norm = TsLayerNorm(x, out/gamma, out/beta) {epsilon=0.001}
})");
    EXPECT_SAME_RESULTS(text, *g, {random_f32({2, 3, 4}, 1, -3, 3)});
  }
}

TEST(FusePatterns, LayerNormOverAnotherAxisIsNotFused) {
  std::string text = kLayerNormTfk;
  text.replace(text.find("int32[1]{2}"), 11, "int32[1]{1}");
  text.replace(text.find("float32[4]{0.5, 2, -1, 3}"), 25, "float32[1]{2}");
  text.replace(text.find("float32[4]{1, -2, 0.25, 0}"), 26, "float32[1]{1}");
  auto g = run_on(text, {"fuse_patterns"});
  EXPECT_IR(*g, text);
}

// Three spellings of exact gelu, one of the tanh approximation, and a near miss.
const char* kGelus = R"(
graph (x: float32[?,5]) -> (a: a, b: b, c: c, d: d) {
  half = Const() {dtype=float32, value=float32[]{0.5}}
  rs2 = Const() {dtype=float32, value=float32[]{0.70710677}}
  one = Const() {dtype=float32, value=float32[]{1}}
  a0 = Mul(half, x) {T=float32}
  a1 = Neg(x) {T=float32}
  a2 = Mul(a1, rs2) {T=float32}
  a3 = Erfc(a2) {T=float32}
  a = Mul(a0, a3) {T=float32}
  s2 = Const() {dtype=float32, value=float32[]{1.4142135}}
  b0 = RealDiv(x, s2) {T=float32}
  b1 = Erf(b0) {T=float32}
  b2 = AddV2(b1, one) {T=float32}
  b3 = Mul(x, b2) {T=float32}
  b = Mul(b3, half) {T=float32}
  three = Const() {dtype=float32, value=float32[]{3}}
  k = Const() {dtype=float32, value=float32[]{0.044715}}
  sq = Const() {dtype=float32, value=float32[]{0.7978846}}
  c0 = Pow(x, three) {T=float32}
  c1 = Mul(k, c0) {T=float32}
  c2 = AddV2(x, c1) {T=float32}
  c3 = Mul(sq, c2) {T=float32}
  c4 = Tanh(c3) {T=float32}
  c5 = AddV2(one, c4) {T=float32}
  c6 = Mul(half, x) {T=float32}
  c = Mul(c6, c5) {T=float32}
  wrong = Const() {dtype=float32, value=float32[]{0.8}}
  d0 = Mul(x, wrong) {T=float32}
  d1 = Erf(d0) {T=float32}
  d2 = AddV2(d1, one) {T=float32}
  d3 = Mul(x, d2) {T=float32}
  d = Mul(d3, half) {T=float32}
}
)";

TEST(FusePatterns, GeluInAnySpellingButNotNearMisses) {
  auto g = run_on(kGelus, {"fuse_patterns"});
  std::string ir = testing::canonical_ir(*g);
  EXPECT_NE(ir.find("a/gelu = TsGelu(x) {T=float32, approximate=false}"), std::string::npos) << ir;
  EXPECT_NE(ir.find("b/gelu = TsGelu(x) {T=float32, approximate=false}"), std::string::npos) << ir;
  EXPECT_NE(ir.find("c/gelu = TsGelu(x) {T=float32, approximate=true}"), std::string::npos) << ir;
  EXPECT_NE(ir.find("d = Mul(d3, half)"), std::string::npos) << ir;
  EXPECT_EQ(ir.find("a3 = "), std::string::npos) << ir;  // the replaced ops are gone
  EXPECT_SAME_RESULTS(kGelus, *g, {random_f32({3, 5}, 2, -5, 5)});
}

// Keras MultiHeadAttention: tf_keras scales q first; Keras 3 scales the scores.
const char* kAttention = R"(
graph (q: float32[?,4,2,3], k: float32[?,5,2,3], v: float32[?,5,2,6]) -> (a: a, b: b) {
  c = Const() {dtype=float32, value=float32[]{0.57735026}}
  qs = Mul(q, c) {T=float32}
  s1 = Einsum(k, qs) {N=2, T=float32, equation="aecd,abcd->acbe"}
  p1 = Softmax(s1) {T=float32}
  a = Einsum(p1, v) {N=2, T=float32, equation="acbe,aecd->abcd"}
  s2 = Einsum(q, k) {N=2, T=float32, equation="BTNH,BSNH->BNTS"}
  m2 = Mul(s2, c) {T=float32}
  p2 = Softmax(m2) {T=float32}
  b = Einsum(p2, v) {N=2, T=float32, equation="BNTS,BSNH->BTNH"}
}
)";

TEST(FusePatterns, AttentionBothScalePlacements) {
  auto g = run_on(kAttention, {"fuse_patterns"});
  EXPECT_IR(*g, R"(
graph (q: float32[?,4,2,3], k: float32[?,5,2,3], v: float32[?,5,2,6]) -> (a: a/attention, b: b/attention) {
  a/attention = TsAttention(q, k, v) {scale=0.57735026}
  b/attention = TsAttention(q, k, v) {scale=0.57735026}
})");
  EXPECT_SAME_RESULTS(kAttention, *g,
                      {random_f32({2, 4, 2, 3}, 3), random_f32({2, 5, 2, 3}, 4), random_f32({2, 5, 2, 6}, 5)});
}

}  // namespace
}  // namespace tessera
