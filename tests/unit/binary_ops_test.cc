// Unit tests for the binary op family and the shared broadcast iterator: broadcasting shapes
// (rank-0, empty, trailing/bias, middle), TF's integer division/modulo, NaN propagation,
// shifts, strings, BiasAdd, AddN, Select/SelectV2, ClipByValue and error messages.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "op_test_util.h"
#include "ops/elementwise_util.h"

namespace tessera {
namespace {

using testing::error_of;
using testing::strings;
using testing::tensor;
using testing::TestGraph;
using testing::vals;

// Runs a binary op on two tensors.
Tensor binary(const std::string& op, const Tensor& a, const Tensor& b, AttrMap attrs = {}) {
  TestGraph t;
  Value x = t.input(a), y = t.input(b);
  if (!attrs.count("T") && op.rfind("Logical", 0) != 0) attrs["T"] = a.dtype();
  return t.run1(t.op(op, {x, y}, attrs)->out());
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- broadcast iterator -------------------------------------------------------------------

// Checks apply2 against a naive index computation for many random shape pairs.
TEST(Broadcast, MatchesNaiveIndexing) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 300; ++iter) {
    const int rank = static_cast<int>(rng() % 5);
    Shape out(rank), a, b;
    for (auto& d : out) d = static_cast<int64_t>(rng() % 4);  // includes 0-sized dims
    const int ra = static_cast<int>(rng() % (rank + 1)), rb = static_cast<int>(rng() % (rank + 1));
    for (int i = rank - ra; i < rank; ++i) a.push_back(rng() % 3 == 0 ? 1 : out[i]);
    for (int i = rank - rb; i < rank; ++i) b.push_back(rng() % 3 == 0 ? 1 : out[i]);
    Tensor ta(DType::kInt64, a), tb(DType::kInt64, b);
    for (int64_t i = 0; i < ta.num_elements(); ++i) ta.data<int64_t>()[i] = i;
    for (int64_t i = 0; i < tb.num_elements(); ++i) tb.data<int64_t>()[i] = 1000 * i;
    ew::Broadcast p = ew::make_broadcast({&a, &b});
    std::vector<int64_t> got(static_cast<size_t>(p.out_count));
    ew::apply2(p, ta.data<int64_t>(), tb.data<int64_t>(), got.data(),
               [](int64_t x, int64_t y) { return x + y; });
    // Naive: unravel each output index and index each operand with broadcasting.
    const Shape& os = p.out_shape;
    for (int64_t flat = 0; flat < p.out_count; ++flat) {
      int64_t rem = flat, ia = 0, ib = 0, sa = 1, sb = 1;
      for (int d = static_cast<int>(os.size()) - 1; d >= 0; --d) {
        const int64_t idx = rem % os[d];
        rem /= os[d];
        const int da = d - (static_cast<int>(os.size()) - static_cast<int>(a.size()));
        const int db = d - (static_cast<int>(os.size()) - static_cast<int>(b.size()));
        if (da >= 0) {
          if (a[da] != 1) ia += idx * sa;
          sa *= a[da];
        }
        if (db >= 0) {
          if (b[db] != 1) ib += idx * sb;
          sb *= b[db];
        }
      }
      ASSERT_EQ(got[flat], ia + 1000 * ib) << shape_str(a) << " + " << shape_str(b) << " at " << flat;
    }
  }
}

TEST(Broadcast, CollapsesCommonCases) {
  Shape x{8, 4, 4, 16}, bias{16}, scalar{}, col{8, 1, 1, 1};
  EXPECT_EQ(ew::make_broadcast({&x, &x}).dims, (std::vector<int64_t>{8 * 4 * 4 * 16}));
  EXPECT_EQ(ew::make_broadcast({&x, &scalar}).dims, (std::vector<int64_t>{8 * 4 * 4 * 16}));
  ew::Broadcast b = ew::make_broadcast({&x, &bias});
  EXPECT_EQ(b.dims, (std::vector<int64_t>{8 * 4 * 4, 16}));
  EXPECT_EQ(b.inner[1], 1);
  ew::Broadcast c = ew::make_broadcast({&x, &col});
  EXPECT_EQ(c.dims, (std::vector<int64_t>{8, 4 * 4 * 16}));
  EXPECT_EQ(c.inner[1], 0);
  EXPECT_EQ(error_of([&] { Shape a{2}, b2{3}; ew::make_broadcast({&a, &b2}); }),
            "Incompatible shapes: [2] vs. [3]");
}

// ---- arithmetic ---------------------------------------------------------------------------

TEST(BinaryOps, BroadcastShapesAndInference) {
  TestGraph t;
  Value x = t.input(tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3}), PartialShape({-1, 3}));
  Value y = t.input(tensor<float>({10, 20, 30}, {3}));
  Value s = t.input(Tensor::scalar<float>(100));
  Node* add = t.op("AddV2", {x, y}, {{"T", DType::kFloat32}});
  EXPECT_EQ(add->outputs[0].shape, PartialShape({-1, 3}));
  EXPECT_EQ(vals<float>(t.run1(add->out())), (std::vector<float>{11, 22, 33, 14, 25, 36}));
  Node* sub = t.op("Sub", {s, x}, {{"T", DType::kFloat32}});
  EXPECT_EQ(vals<float>(t.run1(sub->out())), (std::vector<float>{99, 98, 97, 96, 95, 94}));
  Value col = t.input(tensor<float>({1, 2}, {2, 1}));
  Node* mul = t.op("Mul", {col, y}, {{"T", DType::kFloat32}});
  EXPECT_EQ(mul->outputs[0].shape, PartialShape({2, 3}));
  EXPECT_EQ(vals<float>(t.run1(mul->out())), (std::vector<float>{10, 20, 30, 20, 40, 60}));
  Value empty = t.input(Tensor(DType::kFloat32, {0, 3}));
  EXPECT_EQ(t.run1(t.op("Add", {empty, y}, {{"T", DType::kFloat32}})->out()).shape(), (Shape{0, 3}));
  // Incompatible static shapes fail at inference, naming the node.
  Value z = t.input(tensor<float>({1, 2}, {2}));
  EXPECT_NE(error_of([&] { t.op("Add", {y, z}, {{"T", DType::kFloat32}}); }).find("Incompatible shapes: [3] vs. [2]"),
            std::string::npos);
}

TEST(BinaryOps, IntegerDivisionFamily) {
  Tensor a = tensor<int32_t>({-7, 7, -7, 7, 0, INT32_MIN}, {6});
  Tensor b = tensor<int32_t>({2, -2, -2, 2, 3, -1}, {6});
  EXPECT_EQ(vals<int32_t>(binary("Div", a, b)), (std::vector<int32_t>{-3, -3, 3, 3, 0, INT32_MIN}));
  EXPECT_EQ(vals<int32_t>(binary("TruncateDiv", a, b)), (std::vector<int32_t>{-3, -3, 3, 3, 0, INT32_MIN}));
  EXPECT_EQ(vals<int32_t>(binary("FloorDiv", a, b)), (std::vector<int32_t>{-4, -4, 3, 3, 0, INT32_MIN}));
  EXPECT_EQ(vals<int32_t>(binary("FloorMod", a, b)), (std::vector<int32_t>{1, -1, -1, 1, 0, 0}));
  EXPECT_EQ(vals<int32_t>(binary("TruncateMod", a, b)), (std::vector<int32_t>{-1, 1, -1, 1, 0, 0}));
  EXPECT_EQ(vals<int32_t>(binary("Mod", a, b)), (std::vector<int32_t>{-1, 1, -1, 1, 0, 0}));
  Tensor zero = tensor<int32_t>({1, 0, 1, 1, 1, 1}, {6});
  for (const char* op : {"Div", "FloorDiv", "FloorMod", "TruncateDiv", "TruncateMod", "Mod"}) {
    std::string err = error_of([&] { binary(op, a, zero); });
    EXPECT_NE(err.find("Integer division by zero"), std::string::npos) << op << ": " << err;
    EXPECT_NE(err.find(std::string("(") + op + ")"), std::string::npos) << err;
  }
}

TEST(BinaryOps, FloatFloorModAndDivisions) {
  Tensor a = tensor<float>({-7, 7, -4, 5, 1, -0.0f}, {6});
  Tensor b = tensor<float>({2, -2, 2, INFINITY, 0, 2}, {6});
  std::vector<float> m = vals<float>(binary("FloorMod", a, b));
  EXPECT_EQ(m[0], 1);
  EXPECT_EQ(m[1], -1);
  EXPECT_EQ(m[2], 0);
  EXPECT_TRUE(std::signbit(m[2]));  // -4 mod 2 is -0 as in TF
  EXPECT_EQ(m[3], 5);
  EXPECT_TRUE(std::isnan(m[4]));
  EXPECT_EQ(vals<float>(binary("FloorDiv", a, b))[0], -4);
  EXPECT_EQ(vals<float>(binary("DivNoNan", tensor<float>({kNaN, 1}, {2}), tensor<float>({0, 0}, {2}))),
            (std::vector<float>{0, 0}));
  std::vector<float> mn = vals<float>(binary("MulNoNan", tensor<float>({INFINITY, 1}, {2}), tensor<float>({0, kNaN}, {2})));
  EXPECT_EQ(mn[0], 0);
  EXPECT_TRUE(std::isnan(mn[1]));
  std::vector<float> xl = vals<float>(binary("Xlogy", tensor<float>({0, 0, 2}, {3}), tensor<float>({0, kNaN, 1}, {3})));
  EXPECT_EQ(xl, (std::vector<float>{0, 0, 0}));
}

TEST(BinaryOps, IntegerPowAndWrap) {
  EXPECT_EQ(vals<int32_t>(binary("Pow", tensor<int32_t>({2, -3, 0, 2}, {4}), tensor<int32_t>({10, 3, 0, 31}, {4}))),
            (std::vector<int32_t>{1024, -27, 1, INT32_MIN}));
  EXPECT_EQ(vals<int8_t>(binary("Pow", tensor<int8_t>({3}, {1}), tensor<int8_t>({7}, {1}))), std::vector<int8_t>{-117});
  EXPECT_NE(error_of([] { binary("Pow", tensor<int32_t>({1}, {1}), tensor<int32_t>({-1}, {1})); })
                .find("Integers to negative integer powers are not allowed"),
            std::string::npos);
  EXPECT_EQ(vals<int32_t>(binary("AddV2", tensor<int32_t>({INT32_MAX}, {1}), tensor<int32_t>({1}, {1}))),
            std::vector<int32_t>{INT32_MIN});
  EXPECT_EQ(vals<uint16_t>(binary("Mul", tensor<uint16_t>({65535}, {1}), tensor<uint16_t>({65535}, {1}))),
            std::vector<uint16_t>{1});
  EXPECT_EQ(vals<int32_t>(binary("SquaredDifference", tensor<int32_t>({INT32_MAX, 5}, {2}), tensor<int32_t>({-1, 2}, {2}))),
            (std::vector<int32_t>{0, 9}));
}

TEST(BinaryOps, MaximumMinimumPropagateNaN) {
  Tensor a = tensor<float>({kNaN, 1, 3}, {3});
  Tensor b = tensor<float>({1, kNaN, 2}, {3});
  std::vector<float> mx = vals<float>(binary("Maximum", a, b));
  std::vector<float> mn = vals<float>(binary("Minimum", a, b));
  EXPECT_TRUE(std::isnan(mx[0]) && std::isnan(mx[1]) && std::isnan(mn[0]) && std::isnan(mn[1]));
  EXPECT_EQ(mx[2], 3);
  EXPECT_EQ(mn[2], 2);
}

TEST(BinaryOps, ComparisonsAndLogical) {
  Tensor a = tensor<float>({1, kNaN, 3}, {3});
  Tensor b = tensor<float>({2, kNaN, 3}, {3});
  EXPECT_EQ(vals<bool>(binary("Less", a, b)), (std::vector<bool>{true, false, false}));
  EXPECT_EQ(vals<bool>(binary("GreaterEqual", a, b)), (std::vector<bool>{false, false, true}));
  EXPECT_EQ(vals<bool>(binary("Equal", a, b)), (std::vector<bool>{false, false, true}));
  EXPECT_EQ(vals<bool>(binary("NotEqual", a, b)), (std::vector<bool>{true, true, false}));
  Tensor t = tensor<bool>({true, false}, {2}), u = tensor<bool>({true, false}, {2, 1});
  EXPECT_EQ(vals<bool>(binary("LogicalAnd", t, u)), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(vals<bool>(binary("LogicalOr", t, u)), (std::vector<bool>{true, true, true, false}));
}

TEST(BinaryOps, EqualityWithIncompatibleShapes) {
  Tensor a = tensor<int32_t>({1, 2}, {2}), b = tensor<int32_t>({1, 2, 3}, {3});
  Tensor eq = binary("Equal", a, b, {{"incompatible_shape_error", false}});
  EXPECT_EQ(eq.shape(), Shape{});
  EXPECT_FALSE(eq.data<bool>()[0]);
  EXPECT_TRUE(binary("NotEqual", a, b, {{"incompatible_shape_error", false}}).data<bool>()[0]);
  EXPECT_NE(error_of([&] { binary("Equal", a, b); }).find("Incompatible shapes"), std::string::npos);
  // Unknown dims: the output shape is only claimed when compatibility is certain.
  TestGraph t;
  Value x = t.input(a, PartialShape({-1})), y = t.input(b);
  Node* n = t.op("Equal", {x, y}, {{"T", DType::kInt32}, {"incompatible_shape_error", false}});
  EXPECT_FALSE(n->outputs[0].shape.known_rank);
  EXPECT_EQ(t.run1(n->out()).shape(), Shape{});
}

TEST(BinaryOps, Strings) {
  Tensor a = strings({"a", "b"}, {2}), b = strings({"c"}, {});
  EXPECT_EQ(binary("Add", a, b).strings(), (std::vector<std::string>{"ac", "bc"}));
  EXPECT_EQ(vals<bool>(binary("Equal", a, strings({"a"}, {}))), (std::vector<bool>{true, false}));
  EXPECT_EQ(vals<bool>(binary("NotEqual", a, strings({"a"}, {}))), (std::vector<bool>{false, true}));
}

TEST(BinaryOps, ShiftsClampTheAmount) {
  EXPECT_EQ(vals<int32_t>(binary("LeftShift", tensor<int32_t>({1, 1, 1, -1, 1}, {5}),
                                 tensor<int32_t>({3, 31, 32, 1, -1}, {5}))),
            (std::vector<int32_t>{8, INT32_MIN, INT32_MIN, -2, 1}));
  EXPECT_EQ(vals<int32_t>(binary("RightShift", tensor<int32_t>({-16, -16, 16, 16}, {4}),
                                  tensor<int32_t>({2, 40, 33, -1}, {4}))),
            (std::vector<int32_t>{-4, -1, 0, 16}));
  EXPECT_EQ(vals<int8_t>(binary("LeftShift", tensor<int8_t>({1, 1}, {2}), tensor<int8_t>({7, 9}, {2}))),
            (std::vector<int8_t>{-128, -128}));
  EXPECT_EQ(vals<uint8_t>(binary("BitwiseXor", tensor<uint8_t>({0xF0}, {1}), tensor<uint8_t>({0xFF}, {1}))),
            std::vector<uint8_t>{0x0F});
}

TEST(BinaryOps, BiasAdd) {
  TestGraph t;
  Value v = t.input(tensor<float>({1, 1, 1, 1, 1, 1, 1, 1}, {1, 2, 2, 2}));
  Value b = t.input(tensor<float>({10, 20}, {2}));
  Node* nhwc = t.op("BiasAdd", {v, b}, {{"T", DType::kFloat32}});
  EXPECT_EQ(vals<float>(t.run1(nhwc->out())), (std::vector<float>{11, 21, 11, 21, 11, 21, 11, 21}));
  Node* nchw = t.op("BiasAdd", {v, b}, {{"T", DType::kFloat32}, {"data_format", std::string("NCHW")}});
  EXPECT_EQ(vals<float>(t.run1(nchw->out())), (std::vector<float>{11, 11, 11, 11, 21, 21, 21, 21}));
  Node* v1 = t.op("BiasAddV1", {v, b}, {{"T", DType::kFloat32}});
  EXPECT_EQ(vals<float>(t.run1(v1->out())), vals<float>(t.run1(nhwc->out())));
  Value bad = t.input(tensor<float>({1, 2, 3}, {3}), PartialShape({-1}));
  Node* n = t.op("BiasAdd", {v, bad}, {{"T", DType::kFloat32}});
  EXPECT_NE(error_of([&] { t.run1(n->out()); }).find("Must provide as many biases"), std::string::npos);
  Value vec = t.input(tensor<float>({1, 2}, {2}));
  EXPECT_NE(error_of([&] { t.op("BiasAdd", {vec, b}, {{"T", DType::kFloat32}}); }).find("at least 2D"),
            std::string::npos);
}

TEST(BinaryOps, AddN) {
  TestGraph t;
  Value a = t.input(tensor<float16>({float16(1.0f), float16(2.0f)}, {2}));
  Value b = t.input(tensor<float16>({float16(0.25f), float16(1000.0f)}, {2}), PartialShape({-1}));
  Node* n = t.op("AddN", {a, b, a}, {{"T", DType::kFloat16}, {"N", int64_t{3}}});
  EXPECT_EQ(n->outputs[0].shape, PartialShape({2}));
  Tensor r = t.run1(n->out());
  EXPECT_EQ(static_cast<float>(r.data<float16>()[0]), 2.25f);
  EXPECT_EQ(static_cast<float>(r.data<float16>()[1]), 1004.0f);
  Value c = t.input(tensor<float16>({float16(1.0f)}, {1}), PartialShape({-1}));
  Node* bad = t.op("AddN", {a, c}, {{"T", DType::kFloat16}, {"N", int64_t{2}}});
  EXPECT_NE(error_of([&] { t.run1(bad->out()); }).find("must have the same size and shape"), std::string::npos);
}

TEST(BinaryOps, SelectAndSelectV2) {
  TestGraph t;
  Value cv = t.input(tensor<bool>({true, false}, {2}));
  Value x = t.input(tensor<int32_t>({1, 2, 3, 4}, {2, 2}));
  Value y = t.input(tensor<int32_t>({5, 6, 7, 8}, {2, 2}));
  EXPECT_EQ(vals<int32_t>(t.run1(t.op("Select", {cv, x, y}, {{"T", DType::kInt32}})->out())),
            (std::vector<int32_t>{1, 2, 7, 8}));
  Value cs = t.input(Tensor::scalar<bool>(false));
  EXPECT_EQ(vals<int32_t>(t.run1(t.op("Select", {cs, x, y}, {{"T", DType::kInt32}})->out())),
            (std::vector<int32_t>{5, 6, 7, 8}));
  Value cm = t.input(tensor<bool>({true, false, false, true}, {2, 2}));
  EXPECT_EQ(vals<int32_t>(t.run1(t.op("Select", {cm, x, y}, {{"T", DType::kInt32}})->out())),
            (std::vector<int32_t>{1, 6, 7, 4}));
  // SelectV2 broadcasts all three: a row condition against a column of "then" and a scalar.
  Value col = t.input(tensor<int32_t>({1, 2}, {2, 1}));
  Value nine = t.input(Tensor::scalar<int32_t>(9));
  Node* v2 = t.op("SelectV2", {cv, col, nine}, {{"T", DType::kInt32}});
  EXPECT_EQ(v2->outputs[0].shape, PartialShape({2, 2}));
  EXPECT_EQ(vals<int32_t>(t.run1(v2->out())), (std::vector<int32_t>{1, 9, 2, 9}));
  Value s = t.input(strings({"a", "b"}, {2}));
  Value u = t.input(strings({"z"}, {}));
  EXPECT_EQ(t.run1(t.op("SelectV2", {cv, s, u}, {{"T", DType::kString}})->out()).strings(),
            (std::vector<std::string>{"a", "z"}));
  Value c3 = t.input(tensor<bool>({true, false, true}, {3}), PartialShape({-1}));
  Node* bad = t.op("Select", {c3, x, y}, {{"T", DType::kInt32}});
  EXPECT_NE(error_of([&] { t.run1(bad->out()); }).find("Number of batches of 'then' must match size of 'cond'"),
            std::string::npos);
}

TEST(BinaryOps, ClipByValue) {
  TestGraph t;
  Value x = t.input(tensor<float>({kNaN, 1, -2, 0.25f}, {4}));
  Value lo = t.input(Tensor::scalar<float>(-1));
  Value hi = t.input(Tensor::scalar<float>(0.5f));
  std::vector<float> v = vals<float>(t.run1(t.op("ClipByValue", {x, lo, hi}, {{"T", DType::kFloat32}})->out()));
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], 0.5f);
  EXPECT_EQ(v[2], -1);
  EXPECT_EQ(v[3], 0.25f);
  // min > max gives min (clip to max first, then to min), as TF.
  Value lo2 = t.input(Tensor::scalar<float>(1)), hi2 = t.input(Tensor::scalar<float>(0));
  std::vector<float> w = vals<float>(t.run1(t.op("ClipByValue", {x, lo2, hi2}, {{"T", DType::kFloat32}})->out()));
  EXPECT_EQ(w[1], 1);
  EXPECT_EQ(w[2], 1);
  Value lov = t.input(tensor<float>({0, 0}, {2}));
  Node* bad = t.op("ClipByValue", {x, lov, hi}, {{"T", DType::kFloat32}});
  EXPECT_NE(error_of([&] { t.run1(bad->out()); }).find("clip_value_min and clip_value_max must be"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera
