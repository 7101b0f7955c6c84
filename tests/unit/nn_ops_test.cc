// Unit tests for the nn op family (matmul/einsum, conv, pooling, batch norm, LRN, resize):
// hand-computed values plus comparisons with naive reference loops written here.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "op_test_util.h"

namespace tessera {
namespace {

using testing::TestGraph;

Tensor random_tensor(Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

void expect_close(const Tensor& got, const std::vector<double>& want, const Shape& shape, double tol = 1e-4) {
  ASSERT_EQ(got.shape(), shape);
  ASSERT_EQ(static_cast<size_t>(got.num_elements()), want.size());
  double scale = 0;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got.data<float>()[i], want[i], tol * std::max(scale, 1.0)) << "at " << i;
}

AttrMap f32() { return {{"T", DType::kFloat32}}; }
AttrMap with(AttrMap m, const std::string& k, AttrValue v) {
  m[k] = std::move(v);
  return m;
}

// ---- MatMul / BatchMatMul / Einsum ----

TEST(NnOps, MatMulByHand) {
  TestGraph t;
  Value a = t.input(Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  Value b = t.input(Tensor::from_vector<float>({1, 0, 0, 1, 1, 1}, {3, 2}));
  Node* mm = t.op("mm", "MatMul", {a, b}, f32());
  EXPECT_EQ(mm->outputs[0].shape, PartialShape({2, 2}));
  expect_close(t.run1(mm->out()), {4, 5, 10, 11}, {2, 2});
  Node* mt = t.op("mt", "MatMul", {a, a}, with(f32(), "transpose_b", true));
  expect_close(t.run1(mt->out()), {14, 32, 32, 77}, {2, 2});
  Node* ta = t.op("ta", "MatMul", {a, a}, with(f32(), "transpose_a", true));
  expect_close(t.run1(ta->out()), {17, 22, 27, 22, 29, 36, 27, 36, 45}, {3, 3});
}

TEST(NnOps, MatMulInt32Wraps) {
  TestGraph t;
  Value a = t.input(Tensor::from_vector<int32_t>({65536, 3}, {1, 2}));
  Value b = t.input(Tensor::from_vector<int32_t>({65536, 5}, {2, 1}));
  Node* mm = t.op("mm", "MatMul", {a, b}, {{"T", DType::kInt32}});
  Tensor r = t.run1(mm->out());
  EXPECT_EQ(r.data<int32_t>()[0], 15);  // 2^32 wraps to 0
}

TEST(NnOps, MatMulLargeMatchesNaive) {
  // Sizes straddle the GEMM's block and tile edges.
  int64_t m = 133, k = 301, n = 37;
  Tensor a = random_tensor({k, m}, 1), b = random_tensor({k, n}, 2);
  TestGraph t;
  Node* mm = t.op("mm", "MatMul", {t.input(a), t.input(b)}, with(f32(), "transpose_a", true));
  std::vector<double> want(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t p = 0; p < k; ++p)
        want[i * n + j] += double(a.data<float>()[p * m + i]) * b.data<float>()[p * n + j];
  expect_close(t.run1(mm->out()), want, {m, n});
}

TEST(NnOps, MatMulShapeErrorNamesNode) {
  TestGraph t;
  Value a = t.input(Tensor(DType::kFloat32, {2, 3}));
  Value b = t.input(Tensor(DType::kFloat32, {4, 2}));
  try {
    t.op("bad_mm", "MatMul", {a, b}, f32());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad_mm"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("size-incompatible"), std::string::npos) << e.what();
  }
}

TEST(NnOps, BatchMatMulV2Broadcasts) {
  Tensor x = random_tensor({2, 1, 2, 3}, 3), y = random_tensor({3, 2, 3}, 4);
  TestGraph t;
  Node* bm = t.op("bm", "BatchMatMulV2", {t.input(x), t.input(y)}, with(f32(), "adj_y", true));
  EXPECT_EQ(bm->outputs[0].shape, PartialShape({2, 3, 2, 2}));
  std::vector<double> want;
  for (int b0 = 0; b0 < 2; ++b0)
    for (int b1 = 0; b1 < 3; ++b1)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) {
          double s = 0;
          for (int p = 0; p < 3; ++p)
            s += double(x.data<float>()[(b0 * 2 + i) * 3 + p]) * y.data<float>()[(b1 * 2 + j) * 3 + p];
          want.push_back(s);
        }
  expect_close(t.run1(bm->out()), want, {2, 3, 2, 2});
}

TEST(NnOps, EinsumAttentionPatterns) {
  // "aecd,abcd->acbe": scores of attention; checked against direct loops.
  Tensor q = random_tensor({2, 3, 4, 5}, 5), k = random_tensor({2, 6, 4, 5}, 6);
  TestGraph t;
  Node* e = t.op("e", "Einsum", {t.input(q), t.input(k)},
                 {{"T", DType::kFloat32}, {"N", int64_t{2}}, {"equation", std::string("aecd,abcd->acbe")}});
  EXPECT_EQ(e->outputs[0].shape, PartialShape({2, 4, 6, 3}));
  std::vector<double> want;
  for (int a = 0; a < 2; ++a)
    for (int c = 0; c < 4; ++c)
      for (int b = 0; b < 6; ++b)
        for (int ee = 0; ee < 3; ++ee) {
          double s = 0;
          for (int d = 0; d < 5; ++d)
            s += double(q.data<float>()[((a * 3 + ee) * 4 + c) * 5 + d]) * k.data<float>()[((a * 6 + b) * 4 + c) * 5 + d];
          want.push_back(s);
        }
  expect_close(t.run1(e->out()), want, {2, 4, 6, 3});
}

TEST(NnOps, EinsumDiagonalSumAndEllipsis) {
  TestGraph t;
  Value m = t.input(Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3}));
  auto einsum1 = [&](const char* name, const char* eq, std::vector<Value> in) {
    return t.op(name, "Einsum", in, {{"T", DType::kFloat32}, {"N", int64_t(in.size())}, {"equation", std::string(eq)}});
  };
  expect_close(t.run1(einsum1("diag", "ii->i", {m})->out()), {1, 5, 9}, {3});
  expect_close(t.run1(einsum1("total", "ij->", {m})->out()), {45}, {});
  expect_close(t.run1(einsum1("tr", "ij->ji", {m})->out()), {1, 4, 7, 2, 5, 8, 3, 6, 9}, {3, 3});
  // Ellipsis batch broadcasting: [2,1,1,3] x [4,3,1] -> [2,4,1,1].
  Value x = t.input(Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 1, 1, 3}));
  Value y = t.input(Tensor::from_vector<float>({1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 2}, {4, 3, 1}));
  Node* e = einsum1("ell", "...ij,...jk->...ik", {x, y});
  EXPECT_EQ(e->outputs[0].shape, PartialShape({2, 4, 1, 1}));
  expect_close(t.run1(e->out()), {6, 2, 1, 6, 15, 5, 4, 12}, {2, 4, 1, 1});
  EXPECT_THROW(einsum1("noell", "...ij,...jk->ik", {x, y}), Error);
}

// ---- Convolutions ----

// Naive NHWC conv with stride, dilation and explicit padding (pt, pl) and groups.
std::vector<double> naive_conv(const Tensor& x, const Tensor& f, int sh, int sw, int dh, int dw,
                               int pt, int pl, int oh, int ow) {
  int64_t N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  int64_t KH = f.dim(0), KW = f.dim(1), FC = f.dim(2), OC = f.dim(3), G = C / FC;
  std::vector<double> y;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j)
        for (int64_t o = 0; o < OC; ++o) {
          int64_t g = o / (OC / G);
          double s = 0;
          for (int64_t a = 0; a < KH; ++a)
            for (int64_t b = 0; b < KW; ++b)
              for (int64_t ci = 0; ci < FC; ++ci) {
                int64_t ih = i * sh - pt + a * dh, iw = j * sw - pl + b * dw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += double(x.data<float>()[((n * H + ih) * W + iw) * C + g * FC + ci]) *
                     f.data<float>()[((a * KW + b) * FC + ci) * OC + o];
              }
          y.push_back(s);
        }
  return y;
}

AttrMap conv_attrs(std::vector<int64_t> strides, const std::string& padding) {
  return {{"T", DType::kFloat32}, {"strides", strides}, {"padding", padding}};
}

TEST(NnOps, Conv2DByHand) {
  TestGraph t;
  Value x = t.input(Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 3, 3, 1}));
  Value f = t.input(Tensor::from_vector<float>({1, 1, 1, 1}, {2, 2, 1, 1}));
  Node* valid = t.op("valid", "Conv2D", {x, f}, conv_attrs({1, 1, 1, 1}, "VALID"));
  expect_close(t.run1(valid->out()), {12, 16, 24, 28}, {1, 2, 2, 1});
  // SAME with an even kernel pads after: the last row/column see zeros.
  Node* same = t.op("same", "Conv2D", {x, f}, conv_attrs({1, 1, 1, 1}, "SAME"));
  expect_close(t.run1(same->out()), {12, 16, 9, 24, 28, 15, 15, 17, 9}, {1, 3, 3, 1});
}

TEST(NnOps, Conv2DMatchesNaive) {
  struct Case { Shape x, f; int sh, sw, dh, dw; std::string pad; std::vector<int64_t> explicit_pads; };
  std::vector<Case> cases = {
      {{2, 7, 6, 3}, {3, 3, 3, 5}, 1, 1, 1, 1, "SAME", {}},
      {{1, 9, 8, 4}, {3, 2, 4, 6}, 2, 3, 1, 1, "SAME", {}},
      {{1, 9, 9, 2}, {3, 3, 2, 3}, 1, 1, 2, 2, "VALID", {}},
      {{1, 5, 6, 2}, {2, 3, 2, 4}, 2, 1, 1, 2, "EXPLICIT", {0, 0, 1, 2, 3, 0, 0, 0}},
      {{2, 4, 4, 6}, {1, 1, 6, 5}, 1, 1, 1, 1, "VALID", {}},   // pointwise fast path
      {{1, 6, 6, 4}, {3, 3, 2, 6}, 1, 1, 1, 1, "SAME", {}},    // 2 groups
  };
  int seed = 10;
  for (const Case& cs : cases) {
    Tensor x = random_tensor(cs.x, seed++), f = random_tensor(cs.f, seed++);
    TestGraph t;
    AttrMap attrs = conv_attrs({1, cs.sh, cs.sw, 1}, cs.pad);
    attrs["dilations"] = std::vector<int64_t>{1, cs.dh, cs.dw, 1};
    if (!cs.explicit_pads.empty()) attrs["explicit_paddings"] = cs.explicit_pads;
    Node* conv = t.op("conv", "Conv2D", {t.input(x), t.input(f)}, attrs);
    Tensor y = t.run1(conv->out());
    int64_t H = cs.x[1], W = cs.x[2], ekh = (cs.f[0] - 1) * cs.dh + 1, ekw = (cs.f[1] - 1) * cs.dw + 1;
    int64_t oh, ow, pt = 0, pl = 0;
    if (cs.pad == "SAME") {
      oh = (H + cs.sh - 1) / cs.sh;
      ow = (W + cs.sw - 1) / cs.sw;
      pt = std::max<int64_t>((oh - 1) * cs.sh + ekh - H, 0) / 2;
      pl = std::max<int64_t>((ow - 1) * cs.sw + ekw - W, 0) / 2;
    } else if (cs.pad == "VALID") {
      oh = (H - ekh) / cs.sh + 1;
      ow = (W - ekw) / cs.sw + 1;
    } else {
      pt = cs.explicit_pads[2];
      pl = cs.explicit_pads[4];
      oh = (H + cs.explicit_pads[2] + cs.explicit_pads[3] - ekh) / cs.sh + 1;
      ow = (W + cs.explicit_pads[4] + cs.explicit_pads[5] - ekw) / cs.sw + 1;
    }
    SCOPED_TRACE(shape_str(cs.x) + " " + shape_str(cs.f) + " " + cs.pad);
    EXPECT_EQ(conv->outputs[0].shape, PartialShape({cs.x[0], oh, ow, cs.f[3]}));
    expect_close(y, naive_conv(x, f, cs.sh, cs.sw, cs.dh, cs.dw, pt, pl, oh, ow), {cs.x[0], oh, ow, cs.f[3]});
  }
}

TEST(NnOps, Conv2DNchwMatchesNhwc) {
  Tensor x = random_tensor({2, 3, 5, 4}, 40), f = random_tensor({3, 3, 3, 2}, 41);  // x is NCHW
  if (!OpRegistry::global().find("Transpose")) GTEST_SKIP() << "Transpose not registered in this build";
  TestGraph t;
  Value xin = t.input(x);
  AttrMap nchw = conv_attrs({1, 1, 2, 1}, "SAME");
  nchw["data_format"] = std::string("NCHW");
  Node* a = t.op("nchw", "Conv2D", {xin, t.input(f)}, nchw);
  Node* xt = t.op("xt", "Transpose", {xin, t.constant(Tensor::from_vector<int32_t>({0, 2, 3, 1}))},
                  {{"T", DType::kFloat32}, {"Tperm", DType::kInt32}});
  Node* b = t.op("nhwc", "Conv2D", {xt->out(), t.input(f)}, conv_attrs({1, 2, 1, 1}, "SAME"));
  auto r = t.run({a->out(), b->out()});
  ASSERT_EQ(r[0].shape(), Shape({2, 2, 3, 4}));  // stride 2 along H (5 -> 3)
  ASSERT_EQ(r[1].shape(), Shape({2, 3, 4, 2}));
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 2; ++c)
      for (int h = 0; h < 3; ++h)
        for (int w = 0; w < 4; ++w)
          EXPECT_NEAR(r[0].data<float>()[((n * 2 + c) * 3 + h) * 4 + w],
                      r[1].data<float>()[((n * 3 + h) * 4 + w) * 2 + c], 1e-5);
}

TEST(NnOps, Conv2DBackpropInputIsTheAdjoint) {
  // <conv(x, f), dy> == <x, conv_backprop_input(dy, f)> for every padding/stride.
  for (const char* pad : {"SAME", "VALID"}) {
    Tensor x = random_tensor({2, 7, 8, 3}, 50), f = random_tensor({3, 2, 3, 4}, 51);
    TestGraph t;
    Value xin = t.input(x), fin = t.input(f);
    Node* conv = t.op("conv", "Conv2D", {xin, fin}, conv_attrs({1, 2, 3, 1}, pad));
    Tensor y = t.run1(conv->out());
    Tensor dy = random_tensor(y.shape(), 52);
    Node* bp = t.op("bp", "Conv2DBackpropInput",
                    {t.constant(Tensor::from_vector<int32_t>({2, 7, 8, 3})), fin, t.input(dy)},
                    conv_attrs({1, 2, 3, 1}, pad));
    EXPECT_EQ(bp->outputs[0].shape, PartialShape({2, 7, 8, 3}));
    Tensor dx = t.run1(bp->out());
    ASSERT_EQ(dx.shape(), x.shape());
    double lhs = 0, rhs = 0;
    for (int64_t i = 0; i < y.num_elements(); ++i) lhs += double(y.data<float>()[i]) * dy.data<float>()[i];
    for (int64_t i = 0; i < x.num_elements(); ++i) rhs += double(x.data<float>()[i]) * dx.data<float>()[i];
    EXPECT_NEAR(lhs, rhs, 1e-3 * std::max(1.0, std::fabs(lhs))) << pad;
  }
}

TEST(NnOps, DepthwiseMatchesNaive) {
  Tensor x = random_tensor({1, 5, 6, 3}, 60), f = random_tensor({3, 3, 3, 2}, 61);
  TestGraph t;
  Node* dw = t.op("dw", "DepthwiseConv2dNative", {t.input(x), t.input(f)}, conv_attrs({1, 2, 1, 1}, "SAME"));
  EXPECT_EQ(dw->outputs[0].shape, PartialShape({1, 3, 6, 6}));
  std::vector<double> want;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 6; ++j)
      for (int c = 0; c < 3; ++c)
        for (int m = 0; m < 2; ++m) {
          double s = 0;
          for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) {
              int ih = i * 2 - 1 + a, iw = j - 1 + b;  // SAME: pad_top 1 (total 2), pad_left 1
              if (ih < 0 || ih >= 5 || iw < 0 || iw >= 6) continue;
              s += double(x.data<float>()[(ih * 6 + iw) * 3 + c]) * f.data<float>()[((a * 3 + b) * 3 + c) * 2 + m];
            }
          want.push_back(s);
        }
  expect_close(t.run1(dw->out()), want, {1, 3, 6, 6});
}

// ---- Pooling ----

TEST(NnOps, PoolingByHand) {
  TestGraph t;
  Value x = t.input(Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 3, 3, 1}));
  AttrMap attrs = {{"T", DType::kFloat32}, {"ksize", std::vector<int64_t>{1, 2, 2, 1}},
                   {"strides", std::vector<int64_t>{1, 2, 2, 1}}, {"padding", std::string("SAME")}};
  Node* mx = t.op("max", "MaxPool", {x}, attrs);
  Node* avg = t.op("avg", "AvgPool", {x}, attrs);
  EXPECT_EQ(mx->outputs[0].shape, PartialShape({1, 2, 2, 1}));
  expect_close(t.run1(mx->out()), {5, 6, 8, 9}, {1, 2, 2, 1});
  // Padding is excluded from the average: the corner window holds only 9.
  expect_close(t.run1(avg->out()), {3, 4.5, 7.5, 9}, {1, 2, 2, 1});
  Node* v2 = t.op("v2", "MaxPoolV2",
                  {x, t.constant(Tensor::from_vector<int32_t>({1, 2, 2, 1})),
                   t.constant(Tensor::from_vector<int32_t>({1, 1, 1, 1}))},
                  {{"T", DType::kFloat32}, {"padding", std::string("VALID")}});
  EXPECT_EQ(v2->outputs[0].shape, PartialShape({1, 2, 2, 1}));
  expect_close(t.run1(v2->out()), {5, 6, 8, 9}, {1, 2, 2, 1});
}

TEST(NnOps, MaxPoolIgnoresNaN) {
  TestGraph t;
  Value x = t.input(Tensor::from_vector<float>({NAN, 1, 2, NAN}, {1, 2, 2, 1}));
  Node* mx = t.op("max", "MaxPool", {x}, {{"T", DType::kFloat32}, {"ksize", std::vector<int64_t>{1, 2, 2, 1}},
                                         {"strides", std::vector<int64_t>{1, 1, 1, 1}}, {"padding", std::string("VALID")}});
  EXPECT_EQ(t.run1(mx->out()).data<float>()[0], 2.0f);
}

TEST(NnOps, Pool3D) {
  Tensor x = random_tensor({1, 2, 3, 4, 2}, 70);
  TestGraph t;
  AttrMap attrs = {{"T", DType::kFloat32}, {"ksize", std::vector<int64_t>{1, 2, 3, 4, 1}},
                   {"strides", std::vector<int64_t>{1, 1, 1, 1, 1}}, {"padding", std::string("VALID")}};
  Node* mx = t.op("max", "MaxPool3D", {t.input(x)}, attrs);
  Node* avg = t.op("avg", "AvgPool3D", {mx->inputs[0]}, attrs);
  auto r = t.run({mx->out(), avg->out()});
  for (int c = 0; c < 2; ++c) {
    double m = -1e30, s = 0;
    for (int i = 0; i < 24; ++i) {
      m = std::max<double>(m, x.data<float>()[i * 2 + c]);
      s += x.data<float>()[i * 2 + c];
    }
    EXPECT_NEAR(r[0].data<float>()[c], m, 1e-6);
    EXPECT_NEAR(r[1].data<float>()[c], s / 24, 1e-5);
  }
}

// ---- Batch norm, LRN ----

TEST(NnOps, FusedBatchNormInferenceAndTraining) {
  TestGraph t;
  Value x = t.input(Tensor::from_vector<float>({1, 10, 3, 20, 5, 30, 7, 40}, {1, 2, 2, 2}));
  Value scale = t.input(Tensor::from_vector<float>({2, 1}));
  Value offset = t.input(Tensor::from_vector<float>({0, 1}));
  Value mean = t.input(Tensor::from_vector<float>({4, 25}));
  Value var = t.input(Tensor::from_vector<float>({4, 100}));
  AttrMap attrs = {{"T", DType::kFloat32}, {"U", DType::kFloat32}, {"epsilon", 0.0f}, {"is_training", false}};
  Node* inf = t.op("bn", "FusedBatchNormV3", {x, scale, offset, mean, var}, attrs);
  ASSERT_EQ(inf->num_outputs(), 6);
  auto r = t.run({inf->out(0), inf->out(1), inf->out(5)});
  expect_close(r[0], {-3, -0.5, -1, 0.5, 1, 1.5, 3, 2.5}, {1, 2, 2, 2});
  expect_close(r[1], {4, 25}, {2});
  EXPECT_EQ(r[2].shape(), Shape({0}));
  attrs["is_training"] = true;
  Node* tr = t.op("bn_train", "FusedBatchNormV3", {x, scale, offset, mean, var}, attrs);
  auto s = t.run({tr->out(1), tr->out(2), tr->out(3), tr->out(4)});
  expect_close(s[0], {4, 25}, {2});
  expect_close(s[1], {20.0 / 3, 500.0 / 3}, {2});  // unbiased
  expect_close(s[2], {4, 25}, {2});
  expect_close(s[3], {5, 125}, {2});  // biased
}

TEST(NnOps, LRNByHand) {
  TestGraph t;
  Value x = t.input(Tensor::from_vector<float>({1, 2, 3}, {1, 1, 1, 3}));
  Node* lrn = t.op("lrn", "LRN", {x}, {{"depth_radius", int64_t{1}}, {"bias", 1.0f}, {"alpha", 1.0f}, {"beta", 1.0f}});
  expect_close(t.run1(lrn->out()), {1.0 / 6, 2.0 / 15, 3.0 / 14}, {1, 1, 1, 3});
}

// ---- Resize ----

TEST(NnOps, ResizeByHand) {
  TestGraph t;
  Value img = t.input(Tensor::from_vector<float>({0, 1, 2, 3}, {1, 2, 2, 1}));
  Value size = t.constant(Tensor::from_vector<int32_t>({3, 4}));
  Node* bl = t.op("bl", "ResizeBilinear", {img, size}, f32());
  EXPECT_EQ(bl->outputs[0].shape, PartialShape({1, 3, 4, 1}));
  // Legacy mapping: in = out * (in_size / out_size).
  expect_close(t.run1(bl->out()), {0, 0.5, 1, 1, 4.0 / 3, 11.0 / 6, 7.0 / 3, 7.0 / 3, 2, 2.5, 3, 3}, {1, 3, 4, 1});
  Node* nn = t.op("nn", "ResizeNearestNeighbor", {img, size}, f32());
  expect_close(t.run1(nn->out()), {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3}, {1, 3, 4, 1});
  Node* ac = t.op("ac", "ResizeBilinear", {img, size}, with(f32(), "align_corners", true));
  expect_close(t.run1(ac->out()), {0, 1.0 / 3, 2.0 / 3, 1, 1, 4.0 / 3, 5.0 / 3, 2, 2, 7.0 / 3, 8.0 / 3, 3}, {1, 3, 4, 1});
  AttrMap both = with(with(f32(), "align_corners", true), "half_pixel_centers", true);
  EXPECT_THROW(t.op("both", "ResizeBilinear", {img, size}, both), Error);
}

}  // namespace
}  // namespace tessera
