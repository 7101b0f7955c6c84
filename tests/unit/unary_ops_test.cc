// Unit tests for the unary op family: hand-computed values, TF's edge cases (NaN, signed
// zeros, integer wrap-around, Cast's conversion rules) and error messages.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "op_test_util.h"

namespace tessera {
namespace {

using testing::TestGraph;
using testing::vals;

// Runs `op` on a 1-D tensor of `in` and returns the output tensor.
template <typename T>
Tensor unary(const std::string& op, std::vector<T> in, AttrMap attrs = {}) {
  TestGraph t;
  Value x = t.input(Tensor::from_vector(in, {static_cast<int64_t>(in.size())}));
  if (!attrs.count("T")) attrs["T"] = dtype_of<T>;
  return t.run1(t.op(op, {x}, attrs)->out());
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(UnaryOps, ReluKeepsNaNAndNegativeZero) {
  Tensor y = unary<float>("Relu", {kNaN, -0.0f, -2.0f, 3.0f, kInf, -kInf});
  std::vector<float> v = vals<float>(y);
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], 0.0f);
  EXPECT_TRUE(std::signbit(v[1]));
  EXPECT_EQ(v[2], 0.0f);
  EXPECT_EQ(v[3], 3.0f);
  EXPECT_EQ(v[4], kInf);
  EXPECT_EQ(v[5], 0.0f);
  std::vector<float> r6 = vals<float>(unary<float>("Relu6", {kNaN, -1.0f, 7.0f, 5.5f}));
  EXPECT_TRUE(std::isnan(r6[0]));
  EXPECT_EQ(r6[1], 0.0f);
  EXPECT_EQ(r6[2], 6.0f);
  EXPECT_EQ(r6[3], 5.5f);
}

TEST(UnaryOps, IntegerAbsNegWrap) {
  const int32_t mn = std::numeric_limits<int32_t>::min();
  EXPECT_EQ(vals<int32_t>(unary<int32_t>("Abs", {mn, -3, 4})), (std::vector<int32_t>{mn, 3, 4}));
  EXPECT_EQ(vals<int8_t>(unary<int8_t>("Neg", {-128, 5})), (std::vector<int8_t>{-128, -5}));
  EXPECT_EQ(vals<int8_t>(unary<int8_t>("Square", {100, -100, 11})), (std::vector<int8_t>{16, 16, 121}));
  EXPECT_EQ(vals<uint8_t>(unary<uint8_t>("Square", {200})), (std::vector<uint8_t>{64}));
  EXPECT_EQ(vals<uint16_t>(unary<uint16_t>("Square", {65535})), (std::vector<uint16_t>{1}));
  EXPECT_EQ(vals<int32_t>(unary<int32_t>("Sign", {-7, 0, 9})), (std::vector<int32_t>{-1, 0, 1}));
  EXPECT_EQ(vals<uint8_t>(unary<uint8_t>("Invert", {0, 5})), (std::vector<uint8_t>{255, 250}));
}

TEST(UnaryOps, SignOfSpecialFloats) {
  std::vector<float> v = vals<float>(unary<float>("Sign", {kNaN, -0.0f, 0.0f, -3.0f, kInf}));
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], 0.0f);
  EXPECT_FALSE(std::signbit(v[1]));
  EXPECT_EQ(v[3], -1.0f);
  EXPECT_EQ(v[4], 1.0f);
}

TEST(UnaryOps, RoundHalfToEven) {
  EXPECT_EQ(vals<float>(unary<float>("Round", {0.5f, 1.5f, 2.5f, -2.5f, 2.4f})),
            (std::vector<float>{0.0f, 2.0f, 2.0f, -2.0f, 2.0f}));
  EXPECT_EQ(vals<double>(unary<double>("Rint", {3.5, -0.5})), (std::vector<double>{4.0, -0.0}));
  EXPECT_EQ(vals<int32_t>(unary<int32_t>("Round", {3, -4})), (std::vector<int32_t>{3, -4}));
}

TEST(UnaryOps, FloatFunctionsMatchLibm) {
  std::vector<double> in = {-0.7, 0.2, 0.9};
  struct Case { const char* op; double (*f)(double); };
  const Case cases[] = {{"Exp", [](double x) { return std::exp(x); }},
                        {"Tanh", [](double x) { return std::tanh(x); }},
                        {"Erf", [](double x) { return std::erf(x); }},
                        {"Atanh", [](double x) { return std::atanh(x); }},
                        {"Sigmoid", [](double x) { return 1 / (1 + std::exp(-x)); }},
                        {"Softsign", [](double x) { return x / (1 + std::fabs(x)); }},
                        {"Softplus", [](double x) { return std::log1p(std::exp(x)); }},
                        {"Elu", [](double x) { return x < 0 ? std::expm1(x) : x; }},
                        {"Rsqrt", [](double x) { return 1 / std::sqrt(x); }}};
  for (const Case& c : cases) {
    std::vector<double> got = vals<double>(unary<double>(c.op, in));
    for (size_t i = 0; i < in.size(); ++i) {
      double want = c.f(in[i]);
      if (std::isnan(want)) EXPECT_TRUE(std::isnan(got[i])) << c.op;
      else EXPECT_NEAR(got[i], want, 1e-12) << c.op << " " << in[i];
    }
  }
}

TEST(UnaryOps, SoftplusThresholds) {
  std::vector<float> v = vals<float>(unary<float>("Softplus", {20.0f, -20.0f, 0.0f, kNaN}));
  EXPECT_EQ(v[0], 20.0f);  // beyond -log(eps)-2 the input itself
  EXPECT_NEAR(v[1], std::exp(-20.0f), 1e-15);
  EXPECT_NEAR(v[2], std::log(2.0f), 1e-7);
  EXPECT_TRUE(std::isnan(v[3]));
}

TEST(UnaryOps, Float16ComputesInFloatAndRoundsOnce) {
  std::vector<float16> in = {float16(0.5f), float16(-1.25f), float16(12.0f)};
  Tensor y = unary<float16>("Exp", in);
  ASSERT_EQ(y.dtype(), DType::kFloat16);
  for (size_t i = 0; i < in.size(); ++i)
    EXPECT_EQ(y.data<float16>()[i].bits, float16(std::exp(static_cast<float>(in[i]))).bits);
  Tensor b = unary<bfloat16>("Square", {bfloat16(300.0f)});
  EXPECT_EQ(b.data<bfloat16>()[0].bits, bfloat16(90000.0f).bits);
}

TEST(UnaryOps, LeakyReluDefaultsAndLargeAlpha) {
  const OpDef* def = OpRegistry::global().find("LeakyRelu");
  ASSERT_TRUE(def);
  EXPECT_FLOAT_EQ(std::get<float>(def->attr_defaults.at("alpha")), 0.2f);
  EXPECT_EQ(vals<float>(unary<float>("LeakyRelu", {-1.0f, 2.0f}, {{"alpha", 0.2f}})),
            (std::vector<float>{-0.2f, 2.0f}));
  // alpha > 1 still selects x*alpha for negatives (not max(x, alpha*x)).
  EXPECT_EQ(vals<float>(unary<float>("LeakyRelu", {-1.0f}, {{"alpha", 2.0f}})), (std::vector<float>{-2.0f}));
}

TEST(UnaryOps, Predicates) {
  TestGraph t;
  Value x = t.input(Tensor::from_vector<float>({kNaN, kInf, -kInf, 1.0f}));
  EXPECT_EQ(vals<bool>(t.run1(t.op("IsNan", {x}, {{"T", DType::kFloat32}})->out())),
            (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(vals<bool>(t.run1(t.op("IsInf", {x}, {{"T", DType::kFloat32}})->out())),
            (std::vector<bool>{false, true, true, false}));
  EXPECT_EQ(vals<bool>(t.run1(t.op("IsFinite", {x}, {{"T", DType::kFloat32}})->out())),
            (std::vector<bool>{false, false, false, true}));
}

Tensor cast(const Tensor& x, DType dst, bool truncate = false) {
  TestGraph t;
  Value in = t.input(x);
  return t.run1(t.op("Cast", {in}, {{"SrcT", x.dtype()}, {"DstT", dst}, {"Truncate", truncate}})->out());
}

TEST(UnaryOps, CastFloatToIntFollowsTF) {
  Tensor f = Tensor::from_vector<float>({3.7f, -3.7f, 300.5f, -129.0f, 1e10f, kNaN, kInf});
  EXPECT_EQ(vals<int32_t>(cast(f, DType::kInt32)),
            (std::vector<int32_t>{3, -3, 300, -129, INT32_MIN, INT32_MIN, INT32_MIN}));
  // Narrow types go through int32 and saturate (TF's vectorised loop): INT32_MIN -> min.
  EXPECT_EQ(vals<int8_t>(cast(f, DType::kInt8)), (std::vector<int8_t>{3, -3, 127, -128, -128, -128, -128}));
  EXPECT_EQ(vals<uint8_t>(cast(f, DType::kUInt8)), (std::vector<uint8_t>{3, 0, 255, 0, 0, 0, 0}));
  EXPECT_EQ(vals<int16_t>(cast(f, DType::kInt16)), (std::vector<int16_t>{3, -3, 300, -129, -32768, -32768, -32768}));
  EXPECT_EQ(vals<int64_t>(cast(f, DType::kInt64)),
            (std::vector<int64_t>{3, -3, 300, -129, 10000000000, INT64_MIN, INT64_MIN}));
  EXPECT_EQ(vals<uint32_t>(cast(Tensor::from_vector<float>({3e9f, -1.0f, 1e10f}), DType::kUInt32)),
            (std::vector<uint32_t>{3000000000u, 4294967295u, 2147483648u}));
  EXPECT_EQ(vals<uint64_t>(cast(Tensor::from_vector<float>({-1.0f, kNaN}), DType::kUInt64)),
            (std::vector<uint64_t>{UINT64_MAX, uint64_t{1} << 63}));
}

TEST(UnaryOps, CastBoolAndFloats) {
  EXPECT_EQ(vals<bool>(cast(Tensor::from_vector<float>({kNaN, 0.0f, -0.0f, 0.1f}), DType::kBool)),
            (std::vector<bool>{true, false, false, true}));
  EXPECT_EQ(vals<float>(cast(Tensor::from_vector<bool>({true, false}), DType::kFloat32)),
            (std::vector<float>{1.0f, 0.0f}));
  EXPECT_EQ(vals<int8_t>(cast(Tensor::from_vector<int64_t>({300, -1}), DType::kInt8)),
            (std::vector<int8_t>{44, -1}));
  // double -> half rounds through float, as TF does (so 1 + 2^-11 + tiny ties to 1).
  Tensor h = cast(Tensor::from_vector<double>({1.0 + 0x1p-11 + 0x1p-40}), DType::kFloat16);
  EXPECT_EQ(static_cast<float>(h.data<float16>()[0]), 1.0f);
}

TEST(UnaryOps, CastTruncate) {
  Tensor x = Tensor::from_vector<float>({1.0f - 0.0001f, -1.0078f, 65519.0f, 65520.0f, 70000.0f});
  Tensor h = cast(x, DType::kFloat16, true);
  EXPECT_EQ(static_cast<float>(h.data<float16>()[0]), 0.99951171875f);
  EXPECT_EQ(static_cast<float>(h.data<float16>()[1]), -1.0068359375f);  // 1 + 7 * 2^-10
  EXPECT_EQ(static_cast<float>(h.data<float16>()[2]), 65504.0f);
  EXPECT_EQ(static_cast<float>(h.data<float16>()[3]), 65504.0f);
  EXPECT_TRUE(std::isinf(static_cast<float>(h.data<float16>()[4])));
  Tensor b = cast(x, DType::kBFloat16, true);
  EXPECT_EQ(static_cast<float>(b.data<bfloat16>()[0]), 0.99609375f);
  Tensor b2 = cast(x, DType::kBFloat16, false);
  EXPECT_EQ(static_cast<float>(b2.data<bfloat16>()[0]), 1.0f);
}

TEST(UnaryOps, CastStringIsUnimplemented) {
  TestGraph t;
  Value x = t.input(Tensor::string_scalar("1"));
  Node* n = t.op("Cast", {x}, {{"SrcT", DType::kString}, {"DstT", DType::kInt32}});
  try {
    t.run1(n->out());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnimplemented);
    EXPECT_NE(std::string(e.what()).find(n->name), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Cast string to int32 is not supported"), std::string::npos);
  }
}

TEST(UnaryOps, UnsupportedDtypeNamesNode) {
  TestGraph t;
  Value x = t.input(Tensor::from_vector<int32_t>({1, 2}));
  Node* n = t.op("Exp", {x}, {{"T", DType::kInt32}});
  try {
    t.run1(n->out());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("node '" + n->name + "' (Exp)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("int32"), std::string::npos) << e.what();
  }
}

TEST(UnaryOps, LikeOpsAndShapes) {
  TestGraph t;
  Value x = t.input(Tensor(DType::kFloat32, {2, 0, 3}), PartialShape({-1, 0, 3}));
  Node* z = t.op("OnesLike", {x}, {{"T", DType::kFloat32}});
  EXPECT_EQ(z->outputs[0].shape, PartialShape({-1, 0, 3}));
  EXPECT_EQ(t.run1(z->out()).shape(), (Shape{2, 0, 3}));
  Tensor strs(DType::kString, {2});
  strs.strings() = {"a", "b"};
  Value s = t.input(strs);
  Tensor zs = t.run1(t.op("ZerosLike", {s}, {{"T", DType::kString}})->out());
  EXPECT_EQ(zs.strings(), (std::vector<std::string>{"", ""}));
  Value b = t.input(Tensor::from_vector<bool>({false}));
  EXPECT_EQ(vals<bool>(t.run1(t.op("OnesLike", {b}, {{"T", DType::kBool}})->out())), std::vector<bool>{true});
  EXPECT_EQ(vals<bool>(t.run1(t.op("LogicalNot", {b})->out())), std::vector<bool>{true});
}

}  // namespace
}  // namespace tessera
