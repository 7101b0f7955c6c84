// The Ts* fused ops (src/ops/fused_ops.cc) against the unfused TensorFlow-op subgraphs they
// replace, both run on the reference interpreter.
#include <gtest/gtest.h>

#include <cmath>

#include "op_test_util.h"
#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::random_f32;
using testing::TestGraph;

AttrMap f32(AttrMap m = {}) {
  m["T"] = DType::kFloat32;
  return m;
}
Value fconst(TestGraph& t, float v) { return t.constant(Tensor::scalar<float>(v)); }

// The unfused activation as TF ops (what the fusion passes match).
Value unfused_activation(TestGraph& t, Value x, const std::string& act, float alpha) {
  if (act.empty()) return x;
  if (act == "LeakyRelu") return t.op("LeakyRelu", {x}, f32({{"alpha", alpha}}))->out();
  if (act == "Swish") return t.op("Mul", {x, t.op("Sigmoid", {x}, f32())->out()}, f32())->out();
  if (act == "GeluExact") {
    Value s = t.op("Mul", {x, fconst(t, static_cast<float>(M_SQRT1_2))}, f32())->out();
    Value e = t.op("AddV2", {fconst(t, 1.0f), t.op("Erf", {s}, f32())->out()}, f32())->out();
    return t.op("Mul", {t.op("Mul", {fconst(t, 0.5f), x}, f32())->out(), e}, f32())->out();
  }
  if (act == "GeluTanh") {
    Value x3 = t.op("Mul", {fconst(t, 0.044715f), t.op("Pow", {x, fconst(t, 3.0f)}, f32())->out()}, f32())->out();
    Value in = t.op("Mul", {fconst(t, std::sqrt(2.0f / static_cast<float>(M_PI))),
                            t.op("AddV2", {x, x3}, f32())->out()}, f32())->out();
    Value e = t.op("AddV2", {fconst(t, 1.0f), t.op("Tanh", {in}, f32())->out()}, f32())->out();
    return t.op("Mul", {t.op("Mul", {fconst(t, 0.5f), x}, f32())->out(), e}, f32())->out();
  }
  return t.op(act, {x}, f32())->out();
}

const std::vector<std::string> kActs = {"",        "Relu", "Relu6",   "Elu",       "Selu",    "LeakyRelu",
                                        "Sigmoid", "Tanh", "Swish",   "GeluExact", "GeluTanh"};

TEST(FusedOps, MatMulEveryActivationWithBiasAndResidual) {
  for (const std::string& act : kActs) {
    SCOPED_TRACE(act);
    TestGraph t;
    Value a = t.input(random_f32({5, 7}, 1, -2, 2), PartialShape({-1, 7}));
    Value b = t.constant(random_f32({7, 3}, 2));
    Value bias = t.constant(random_f32({3}, 3));
    Value res = t.input(random_f32({5, 3}, 4));
    Value mm = t.op("MatMul", {a, b}, f32())->out();
    Value ba = t.op("BiasAdd", {mm, bias}, f32())->out();
    Value ad = t.op("AddV2", {ba, res}, f32())->out();
    Value ref = unfused_activation(t, ad, act, 0.3f);
    Node* fused = t.op("TsFusedMatMul", {a, b, bias, res},
                       {{"has_bias", true}, {"has_residual", true}, {"activation", act}, {"alpha", 0.3f}});
    EXPECT_EQ(fused->outputs[0].shape, PartialShape({5, 3}));  // residual fills in the batch
    auto out = t.run({ref, fused->out()});
    EXPECT_NUMERIC_MATCH(out[0], out[1]);
  }
}

TEST(FusedOps, MatMulRank3AndTransposes) {
  TestGraph t;
  Value a = t.input(random_f32({2, 4, 6}, 5), PartialShape({-1, 4, 6}));
  Value b = t.constant(random_f32({3, 6}, 6));  // [N, K]: transpose_b
  Value ref = t.op("Einsum", {a, b}, f32({{"equation", std::string("abc,dc->abd")}, {"N", int64_t{2}}}))->out();
  Node* fused = t.op("TsFusedMatMul", {a, b}, {{"transpose_b", true}});
  EXPECT_EQ(fused->outputs[0].shape, PartialShape({-1, 4, 3}));
  auto out = t.run({ref, fused->out()});
  EXPECT_NUMERIC_MATCH(out[0], out[1]);

  Value a2 = t.input(random_f32({6, 4}, 7));
  Value b2 = t.constant(random_f32({6, 3}, 8));
  Value ref2 = t.op("MatMul", {a2, b2}, f32({{"transpose_a", true}}))->out();
  Node* f2 = t.op("TsFusedMatMul", {a2, b2}, {{"transpose_a", true}});
  auto out2 = t.run({ref2, f2->out()});
  EXPECT_NUMERIC_MATCH(out2[0], out2[1]);
}

TEST(FusedOps, Conv2DBiasResidualActivation) {
  for (const char* padding : {"SAME", "VALID"}) {
    TestGraph t;
    AttrMap conv = f32({{"strides", std::vector<int64_t>{1, 2, 2, 1}}, {"padding", std::string(padding)}});
    Value x = t.input(random_f32({2, 9, 8, 3}, 10), PartialShape({-1, 9, 8, 3}));
    Value w = t.constant(random_f32({3, 3, 3, 4}, 11));
    Value bias = t.constant(random_f32({4}, 12));
    Value c = t.op("Conv2D", {x, w}, conv)->out();
    Value res = t.input(Tensor(DType::kFloat32, [&] {
      Shape s;
      for (int64_t d : c.node->outputs[0].shape.dims) s.push_back(d < 0 ? 2 : d);
      return s;
    }()));
    Value ref = t.op("Relu6", {t.op("AddV2", {t.op("BiasAdd", {c, bias}, f32())->out(), res}, f32())->out()}, f32())->out();
    AttrMap fa = conv;
    fa.insert({{"has_bias", true}, {"has_residual", true}, {"activation", std::string("Relu6")}});
    Node* fused = t.op("TsFusedConv2D", {x, w, bias, res}, fa);
    EXPECT_EQ(fused->outputs[0].shape, c.node->outputs[0].shape.dims[0] < 0
                                           ? res.node->outputs[0].shape
                                           : c.node->outputs[0].shape);
    auto out = t.run({ref, fused->out()});
    EXPECT_NUMERIC_MATCH(out[0], out[1]);
  }
}

TEST(FusedOps, DepthwiseConvBiasSwish) {
  TestGraph t;
  AttrMap conv = f32({{"strides", std::vector<int64_t>{1, 1, 1, 1}}, {"padding", std::string("SAME")}});
  Value x = t.input(random_f32({1, 6, 6, 4}, 20));
  Value w = t.constant(random_f32({3, 3, 4, 2}, 21));
  Value bias = t.constant(random_f32({8}, 22));
  Value c = t.op("DepthwiseConv2dNative", {x, w}, conv)->out();
  Value ref = unfused_activation(t, t.op("AddV2", {c, bias}, f32())->out(), "Swish", 0);
  AttrMap fa = conv;
  fa.insert({{"has_bias", true}, {"activation", std::string("Swish")}});
  Node* fused = t.op("TsFusedDepthwiseConv2D", {x, w, bias}, fa);
  EXPECT_EQ(fused->outputs[0].shape, PartialShape({1, 6, 6, 8}));
  auto out = t.run({ref, fused->out()});
  EXPECT_NUMERIC_MATCH(out[0], out[1]);
}

TEST(FusedOps, ElementwiseProgramMatchesChain) {
  TestGraph t;
  Value x = t.input(random_f32({3, 4}, 30));
  Value y = t.input(random_f32({4}, 31, 0.5f, 2.0f));
  // ((x * y) + 0.5) -> Sigmoid -> max with x -> LeakyRelu(0.1) -> / y
  Value m = t.op("Mul", {x, y}, f32())->out();
  Value a = t.op("AddV2", {m, fconst(t, 0.5f)}, f32())->out();
  Value s = t.op("Sigmoid", {a}, f32())->out();
  Value mx = t.op("Maximum", {s, x}, f32())->out();
  Value lr = t.op("LeakyRelu", {mx}, f32({{"alpha", 0.1f}}))->out();
  Value ref = t.op("RealDiv", {lr, y}, f32())->out();
  std::vector<std::string> program = {"Mul $0 $1", "AddV2 %0 0.5", "Sigmoid %1", "Maximum %2 $0",
                                      "LeakyRelu %3 0.1", "RealDiv %4 $1"};
  Node* fused = t.op("TsElementwise", {x, y}, {{"program", program}, {"N", int64_t{2}}});
  EXPECT_EQ(fused->outputs[0].shape, PartialShape({3, 4}));
  auto out = t.run({ref, fused->out()});
  EXPECT_EQ(testing::vals<float>(out[0]), testing::vals<float>(out[1]));  // same kernels: exact

  // An output has the shape its own operands broadcast to (what the unfused op produced),
  // not that of inputs it does not read.
  Node* bc = t.op("TsElementwise", {y, x}, {{"program", std::vector<std::string>{"Exp $0"}}, {"N", int64_t{2}}});
  EXPECT_EQ(bc->outputs[0].shape, PartialShape({4}));
  EXPECT_EQ(t.run1(bc->out()).shape(), (Shape{4}));
}

TEST(FusedOps, ElementwiseExportsSeveralEntries) {
  TestGraph t;
  Value x = t.input(random_f32({3, 4}, 32));
  Value b = t.input(random_f32({4}, 33));
  Value u = t.input(random_f32({3, 4}, 34, 0, 1));
  // y = select(u >= 0.3, x * b, 0); exported: y, x*b, erfc(x), exp(b) (narrower: [4]).
  Value xb = t.op("Mul", {x, b}, f32())->out();
  Value keep = t.op("GreaterEqual", {u, fconst(t, 0.3f)}, f32())->out();
  Value y = t.op("SelectV2", {keep, xb, fconst(t, 0.f)}, f32())->out();
  Value ec = t.op("Erfc", {x}, f32())->out();
  Value eb = t.op("Exp", {b}, f32())->out();
  std::vector<std::string> program = {"Mul $0 $1", "GreaterEqual $2 0.3", "SelectV2 %1 %0 0", "Erfc $0", "Exp $1"};
  Node* fused = t.op("TsElementwise", {x, b, u},
                     {{"program", program}, {"N", int64_t{3}}, {"outputs", std::vector<int64_t>{2, 0, 3, 4}}});
  ASSERT_EQ(fused->num_outputs(), 4);
  EXPECT_EQ(fused->outputs[0].shape, PartialShape({3, 4}));
  EXPECT_EQ(fused->outputs[3].shape, PartialShape({4}));
  auto out = t.run({y, xb, ec, eb, fused->out(0), fused->out(1), fused->out(2), fused->out(3)});
  for (int k = 0; k < 4; ++k) EXPECT_EQ(testing::vals<float>(out[k]), testing::vals<float>(out[4 + k])) << k;
}

TEST(FusedOps, ElementwiseBoolOperandsAndLogic) {
  TestGraph t;
  Value x = t.input(random_f32({2, 5}, 35));
  Tensor mask(DType::kBool, {5});
  for (int i = 0; i < 5; ++i) mask.data<bool>()[i] = i % 2 == 0;
  Value m = t.input(mask);
  // r = Cast(LogicalOr(LogicalNot(m), x > 0) == (x < 0.5)) * OnesLike(x) + ZerosLike(x)
  Value gt = t.op("Greater", {x, fconst(t, 0.f)}, f32())->out();
  Value nm = t.op("LogicalNot", {m})->out();
  Value lo = t.op("LogicalOr", {nm, gt})->out();
  Value lt = t.op("Less", {x, fconst(t, 0.5f)}, f32())->out();
  Value eq = t.op("Equal", {lo, lt}, {{"T", DType::kBool}})->out();
  Value c = t.op("Cast", {eq}, {{"SrcT", DType::kBool}, {"DstT", DType::kFloat32}})->out();
  Value ones = t.op("OnesLike", {x}, f32())->out();
  Value zeros = t.op("ZerosLike", {x}, f32())->out();
  Value ref = t.op("AddV2", {t.op("Mul", {c, ones}, f32())->out(), zeros}, f32())->out();
  std::vector<std::string> program = {"Greater $0 0", "LogicalNot $1", "LogicalOr %1 %0", "Less $0 0.5",
                                      "Equal %2 %3", "Cast %4", "OnesLike $0", "Mul %5 %6", "ZerosLike $0",
                                      "AddV2 %7 %8"};
  Node* fused = t.op("TsElementwise", {x, m}, {{"program", program}, {"N", int64_t{2}}});
  EXPECT_EQ(fused->outputs[0].shape, PartialShape({2, 5}));
  auto out = t.run({ref, fused->out()});
  EXPECT_EQ(testing::vals<float>(out[0]), testing::vals<float>(out[1]));
}

TEST(FusedOps, ElementwiseRejectsBadPrograms) {
  using testing::expect_error;
  TestGraph t;
  Value x = t.symbolic(DType::kFloat32, PartialShape({2}));
  auto bad = [&](std::vector<std::string> program, const std::string& frag) {
    expect_error([&] { t.op("TsElementwise", {x}, {{"program", program}, {"N", int64_t{1}}}); },
                 ErrorCode::kInvalidArgument, {frag});
  };
  bad({"Frobnicate $0"}, "unknown op 'Frobnicate'");
  bad({"AddV2 $0"}, "takes 2 operands");
  bad({"Exp $1"}, "input $1 out of range");
  bad({"Exp %0"}, "not an earlier entry");
  bad({"Exp x7"}, "bad operand 'x7'");
  bad({}, "empty program");
  // Types: bool values cannot feed arithmetic or be outputs; a select's condition is bool.
  bad({"Greater $0 0", "Exp %0"}, "operand 1 of Exp must be float32, got bool");
  bad({"SelectV2 $0 $0 $0"}, "operand 1 of SelectV2 must be bool");
  bad({"Cast $0"}, "operand 1 of Cast must be bool");
  bad({"Less $0 1"}, "is bool: outputs are float32");
  expect_error([&] {
    t.op("TsElementwise", {x}, {{"program", std::vector<std::string>{"Exp $0"}}, {"N", int64_t{1}},
                               {"outputs", std::vector<int64_t>{1}}});
  }, ErrorCode::kInvalidArgument, {"output entry 1 out of range"});
}

TEST(FusedOps, LayerNormMatchesKerasMoments) {
  TestGraph t;
  Value x = t.input(random_f32({2, 3, 8}, 40, -3, 3), PartialShape({-1, 3, 8}));
  Value gamma = t.constant(random_f32({8}, 41));
  Value beta = t.constant(random_f32({8}, 42));
  Value axis = t.ints({-1});
  AttrMap mean_attrs = f32({{"keep_dims", true}, {"Tidx", DType::kInt32}});
  Value mean = t.op("Mean", {x, axis}, mean_attrs)->out();
  Value var = t.op("Mean", {t.op("SquaredDifference", {x, mean}, f32())->out(), axis}, mean_attrs)->out();
  Value inv = t.op("Rsqrt", {t.op("AddV2", {var, fconst(t, 1e-3f)}, f32())->out()}, f32())->out();
  Value scaled = t.op("Mul", {inv, gamma}, f32())->out();
  Value ref = t.op("AddV2", {t.op("Mul", {x, scaled}, f32())->out(),
                             t.op("Sub", {beta, t.op("Mul", {mean, scaled}, f32())->out()}, f32())->out()},
                   f32())->out();
  Node* fused = t.op("TsLayerNorm", {x, gamma, beta}, {{"epsilon", 1e-3f}});
  EXPECT_EQ(fused->outputs[0].shape, PartialShape({-1, 3, 8}));
  auto out = t.run({ref, fused->out()});
  EXPECT_NUMERIC_MATCH(out[0], out[1]);
}

// Keras 3's training-mode BatchNormalization (tf.nn.moments + tf.nn.batch_normalization, then
// ReLU) against "TsBatchNormTraining" (outputs y, batch mean, population variance), and the
// closed-form batch-norm backward in TF ops (and a Sum of its dx) against
// "TsBatchNormTrainingGrad".
TEST(FusedOps, BatchNormTrainingMatchesMomentsAndBatchNormalization) {
  for (const std::string act : {"", "Relu"}) {
    SCOPED_TRACE(act);
    TestGraph t;
    Value x = t.input(random_f32({4, 3, 3, 5}, 70, -2, 3), PartialShape({-1, 3, 3, 5}));
    Value dy = t.input(random_f32({4, 3, 3, 5}, 71));
    Value gamma = t.constant(random_f32({5}, 72, 0.5f, 1.5f));
    Value beta = t.constant(random_f32({5}, 73));
    Value axes = t.ints({0, 1, 2});
    AttrMap keep = f32({{"keep_dims", true}, {"Tidx", DType::kInt32}});
    AttrMap squeeze = f32({{"squeeze_dims", std::vector<int64_t>{0, 1, 2}}});
    Value mean4 = t.op("Mean", {x, axes}, keep)->out();
    Value sd = t.op("SquaredDifference", {x, t.op("StopGradient", {mean4}, f32())->out()}, f32())->out();
    Value var4 = t.op("Mean", {sd, axes}, keep)->out();
    Value mean = t.op("Squeeze", {mean4}, squeeze)->out();
    Value var = t.op("Squeeze", {var4}, squeeze)->out();
    Value rstd = t.op("Rsqrt", {t.op("AddV2", {var, fconst(t, 1e-3f)}, f32())->out()}, f32())->out();
    Value inv = t.op("Mul", {rstd, gamma}, f32())->out();
    Value y = t.op("AddV2", {t.op("Mul", {x, inv}, f32())->out(),
                             t.op("Sub", {beta, t.op("Mul", {mean, inv}, f32())->out()}, f32())->out()},
                   f32())->out();
    y = unfused_activation(t, y, act, 0);
    // Backward: g = dy (masked by y > 0 under Relu), x̂ = (x − mean)·rstd,
    // dx = gamma·rstd·(g − mean(g) − x̂·mean(g·x̂)), dgamma = Σ g·x̂, dbeta = Σ g.
    Value g = dy;
    if (act == "Relu") g = t.op("ReluGrad", {dy, y}, f32())->out();
    Value xhat = t.op("Mul", {t.op("Sub", {x, mean}, f32())->out(), rstd}, f32())->out();
    Value gx = t.op("Mul", {g, xhat}, f32())->out();
    Value inner = t.op("Sub", {t.op("Sub", {g, t.op("Mean", {g, axes}, keep)->out()}, f32())->out(),
                               t.op("Mul", {xhat, t.op("Mean", {gx, axes}, keep)->out()}, f32())->out()},
                       f32())->out();
    Value dx = t.op("Mul", {t.op("Mul", {gamma, rstd}, f32())->out(), inner}, f32())->out();
    AttrMap sum = f32({{"Tidx", DType::kInt32}});
    Value dgamma = t.op("Sum", {gx, axes}, sum)->out();
    Value dbeta = t.op("Sum", {g, axes}, sum)->out();

    AttrMap attrs = {{"epsilon", 1e-3f}, {"activation", act}};
    Node* fused = t.op("TsBatchNormTraining", {x, gamma, beta}, attrs);
    std::vector<Value> gin = {dy, x, gamma, fused->out(1), fused->out(2)};
    if (act == "Relu") gin.push_back(fused->out(0));
    Node* fgrad = t.op("TsBatchNormTrainingGrad", gin, attrs);
    EXPECT_EQ(fused->outputs[0].shape, PartialShape({-1, 3, 3, 5}));
    EXPECT_EQ(fgrad->outputs[1].shape, PartialShape({5}));
    Value dx_sum = t.op("Sum", {dx, axes}, sum)->out();
    std::vector<Value> ref = {y, mean, var, dx, dgamma, dbeta, dx_sum};
    std::vector<Value> got = {fused->out(0), fused->out(1), fused->out(2), fgrad->out(0), fgrad->out(1), fgrad->out(2),
                              fgrad->out(3)};
    std::vector<Value> all = ref;
    all.insert(all.end(), got.begin(), got.end());
    auto out = t.run(all);
    for (size_t i = 0; i < ref.size(); ++i) EXPECT_NUMERIC_MATCH(out[i], out[i + ref.size()]) << "output " << i;
  }
}

TEST(FusedOps, GeluBothForms) {
  for (bool approximate : {false, true}) {
    TestGraph t;
    Value x = t.input(random_f32({4, 5}, 50, -4, 4));
    Value ref = unfused_activation(t, x, approximate ? "GeluTanh" : "GeluExact", 0);
    Node* fused = t.op("TsGelu", {x}, {{"approximate", approximate}});
    auto out = t.run({ref, fused->out()});
    EXPECT_NUMERIC_MATCH(out[0], out[1]);
  }
}

// Keras MultiHeadAttention's score block: einsum, scale, (mask), softmax, einsum.
TEST(FusedOps, AttentionMatchesKerasEinsums) {
  for (bool with_mask : {false, true}) {
    TestGraph t;
    const int64_t B = 2, Sq = 3, Sk = 5, H = 2, D = 4, Dv = 6;
    Value q = t.input(random_f32({B, Sq, H, D}, 60));
    Value k = t.input(random_f32({B, Sk, H, D}, 61));
    Value v = t.input(random_f32({B, Sk, H, Dv}, 62));
    Value mask = t.input(random_f32({B, 1, Sq, Sk}, 63, -5, 0));
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    AttrMap e2 = f32({{"N", int64_t{2}}});
    Value qs = t.op("Mul", {q, fconst(t, scale)}, f32())->out();
    e2["equation"] = std::string("aecd,abcd->acbe");
    Value scores = t.op("Einsum", {k, qs}, e2)->out();
    if (with_mask) scores = t.op("AddV2", {scores, mask}, f32())->out();
    Value probs = t.op("Softmax", {scores}, f32())->out();
    e2["equation"] = std::string("acbe,aecd->abcd");
    Value ref = t.op("Einsum", {probs, v}, e2)->out();
    std::vector<Value> ins = {q, k, v};
    if (with_mask) ins.push_back(mask);
    Node* fused = t.op("TsAttention", ins, {{"scale", scale}, {"has_mask", with_mask}});
    EXPECT_EQ(fused->outputs[0].shape, PartialShape({B, Sq, H, Dv}));
    auto out = t.run({ref, fused->out()});
    EXPECT_NUMERIC_MATCH(out[0], out[1]);
  }
}

TEST(FusedOps, InferenceErrorsNameTheProblem) {
  using testing::expect_error;
  TestGraph t;
  Value a = t.symbolic(DType::kFloat32, PartialShape({2, 3}));
  Value b = t.symbolic(DType::kFloat32, PartialShape({4, 5}));
  Value bias = t.symbolic(DType::kFloat32, PartialShape({7}));
  expect_error([&] { t.op("TsFusedMatMul", {a, b}); }, ErrorCode::kInvalidArgument, {"size-incompatible"});
  Value b2 = t.symbolic(DType::kFloat32, PartialShape({3, 5}));
  expect_error([&] { t.op("TsFusedMatMul", {a, b2, bias}, {{"has_bias", true}}); },
               ErrorCode::kInvalidArgument, {"bias has [7]"});
  expect_error([&] { t.op("TsFusedMatMul", {a, b2, bias}); }, ErrorCode::kInvalidArgument, {"expected 2 inputs"});
  expect_error([&] { t.op("TsFusedMatMul", {a, b2}, {{"activation", std::string("Relu7")}}); },
               ErrorCode::kInvalidArgument, {"unknown activation 'Relu7'"});
  expect_error([&] { t.op("TsAttention", {a, a, a}); }, ErrorCode::kInvalidArgument, {"[B, S, H, D]"});
}

}  // namespace
}  // namespace tessera
