// Unit tests for the reduction op family: axis handling (negative, empty, duplicates,
// keep_dims), TF's identities for empty reductions, NaN propagation, integer wrap and
// truncation, ArgMax ties/NaN, Softmax, Cumsum/Cumprod flags, TopKV2 and error messages.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "op_test_util.h"

namespace tessera {
namespace {

using testing::error_of;
using testing::tensor;
using testing::TestGraph;
using testing::vals;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Reduces `x` over constant `axes` with op; returns the node (for its inferred shape).
Node* reduce(TestGraph& t, const std::string& op, Value x, std::vector<int32_t> axes,
             bool keep = false, bool known_axes = true) {
  Tensor a = Tensor::from_vector(axes, {static_cast<int64_t>(axes.size())});
  Value av = known_axes ? t.constant(a) : t.input(a);
  AttrMap attrs = {{"keep_dims", keep}, {"Tidx", DType::kInt32}};
  if (op != "All" && op != "Any") attrs["T"] = t.g.find(x.node->name)->outputs[0].dtype;
  return t.op(op, {x, av}, attrs);
}

TEST(ReductionOps, SumMeanOverAxes) {
  TestGraph t;
  Value x = t.input(tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3}), PartialShape({-1, 3}));
  Node* s0 = reduce(t, "Sum", x, {0});
  EXPECT_EQ(s0->outputs[0].shape, PartialShape({3}));
  EXPECT_EQ(vals<float>(t.run1(s0->out())), (std::vector<float>{5, 7, 9}));
  Node* m1 = reduce(t, "Mean", x, {-1}, true);
  EXPECT_EQ(m1->outputs[0].shape, PartialShape({-1, 1}));
  EXPECT_EQ(vals<float>(t.run1(m1->out())), (std::vector<float>{2, 5}));
  Node* all = reduce(t, "Prod", x, {1, 0});
  EXPECT_EQ(all->outputs[0].shape, PartialShape(std::vector<int64_t>{}));
  EXPECT_EQ(vals<float>(t.run1(all->out())), std::vector<float>{720});
  Node* none = reduce(t, "Sum", x, {});
  EXPECT_EQ(vals<float>(t.run1(none->out())), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  // Axes known only at run time: keep_dims keeps the rank, otherwise rank - len(axes).
  Node* rt = reduce(t, "Max", x, {1}, false, false);
  EXPECT_EQ(rt->outputs[0].shape, PartialShape({-1}));
  EXPECT_EQ(vals<float>(t.run1(rt->out())), (std::vector<float>{3, 6}));
  Node* rtk = reduce(t, "Min", x, {1}, true, false);
  EXPECT_EQ(rtk->outputs[0].shape, PartialShape({-1, -1}));
  EXPECT_EQ(vals<float>(t.run1(rtk->out())), (std::vector<float>{1, 4}));
}

TEST(ReductionOps, MiddleAxisAndDoubleAccumulation) {
  TestGraph t;
  Tensor x(DType::kFloat32, {2, 3, 2});
  for (int i = 0; i < 12; ++i) x.data<float>()[i] = static_cast<float>(i);
  Value xv = t.input(x);
  EXPECT_EQ(vals<float>(t.run1(reduce(t, "Sum", xv, {1})->out())), (std::vector<float>{6, 9, 24, 27}));
  EXPECT_EQ(vals<float>(t.run1(reduce(t, "Sum", xv, {0, 2})->out())), (std::vector<float>{14, 22, 30}));
  // Float sums accumulate in double: 1e8 + 1 - 1e8 is exactly 1.
  Value y = t.input(tensor<float>({1e8f, 1, -1e8f}, {3}));
  EXPECT_EQ(vals<float>(t.run1(reduce(t, "Sum", y, {0})->out())), std::vector<float>{1});
}

TEST(ReductionOps, EmptyReductionsGiveIdentities) {
  TestGraph t;
  Value e = t.input(Tensor(DType::kFloat32, {0, 2}));
  EXPECT_EQ(vals<float>(t.run1(reduce(t, "Sum", e, {0})->out())), (std::vector<float>{0, 0}));
  EXPECT_EQ(vals<float>(t.run1(reduce(t, "Prod", e, {0})->out())), (std::vector<float>{1, 1}));
  EXPECT_EQ(vals<float>(t.run1(reduce(t, "Max", e, {0})->out())), (std::vector<float>{-kInf, -kInf}));
  EXPECT_EQ(vals<float>(t.run1(reduce(t, "Min", e, {0})->out())), (std::vector<float>{kInf, kInf}));
  std::vector<float> mean = vals<float>(t.run1(reduce(t, "Mean", e, {0})->out()));
  EXPECT_TRUE(std::isnan(mean[0]) && std::isnan(mean[1]));
  EXPECT_EQ(t.run1(reduce(t, "Sum", e, {1})->out()).shape(), Shape{0});
  Value ei = t.input(Tensor(DType::kInt32, {0}));
  EXPECT_EQ(vals<int32_t>(t.run1(reduce(t, "Max", ei, {0})->out())), std::vector<int32_t>{INT32_MIN});
  EXPECT_EQ(vals<int32_t>(t.run1(reduce(t, "Mean", ei, {0})->out())), std::vector<int32_t>{0});
  Value eu = t.input(Tensor(DType::kUInt8, {0}));
  EXPECT_EQ(vals<uint8_t>(t.run1(reduce(t, "Min", eu, {0})->out())), std::vector<uint8_t>{255});
  Value eb = t.input(Tensor(DType::kBool, {0}));
  EXPECT_EQ(vals<bool>(t.run1(reduce(t, "All", eb, {0})->out())), std::vector<bool>{true});
  EXPECT_EQ(vals<bool>(t.run1(reduce(t, "Any", eb, {0})->out())), std::vector<bool>{false});
}

TEST(ReductionOps, NaNPropagatesThroughMaxMin) {
  TestGraph t;
  Value x = t.input(tensor<float>({1, kNaN, 3, 2, 5, 0}, {2, 3}));
  std::vector<float> mx = vals<float>(t.run1(reduce(t, "Max", x, {1})->out()));
  EXPECT_TRUE(std::isnan(mx[0]));
  EXPECT_EQ(mx[1], 5);
  std::vector<float> mn = vals<float>(t.run1(reduce(t, "Min", x, {0})->out()));
  EXPECT_EQ(mn[0], 1);
  EXPECT_TRUE(std::isnan(mn[1]));
  EXPECT_EQ(mn[2], 0);
}

TEST(ReductionOps, IntegerSemantics) {
  TestGraph t;
  Value a = t.input(tensor<int8_t>({100, 100, 1}, {3}));
  EXPECT_EQ(vals<int8_t>(t.run1(reduce(t, "Sum", a, {0})->out())), std::vector<int8_t>{-55});  // wraps
  EXPECT_EQ(vals<int8_t>(t.run1(reduce(t, "Mean", a, {0})->out())), std::vector<int8_t>{67});  // wide sum
  Value b = t.input(tensor<int32_t>({-3, -4}, {2}));
  EXPECT_EQ(vals<int32_t>(t.run1(reduce(t, "Mean", b, {0})->out())), std::vector<int32_t>{-3});  // truncates
  Value c = t.input(tensor<int32_t>({3, 4, 1}, {3}));
  EXPECT_EQ(vals<int32_t>(t.run1(reduce(t, "EuclideanNorm", c, {0})->out())), std::vector<int32_t>{5});
  Value d = t.input(tensor<int8_t>({30, 40}, {2}));  // squares wrap to a negative sum: sqrt is NaN -> 0
  EXPECT_EQ(vals<int8_t>(t.run1(reduce(t, "EuclideanNorm", d, {0})->out())), std::vector<int8_t>{0});
}

TEST(ReductionOps, AxisErrors) {
  TestGraph t;
  Value x = t.input(tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  EXPECT_NE(error_of([&] { reduce(t, "Sum", x, {0, -2}); }).find("Axes contains duplicate dimension: 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] { reduce(t, "Sum", x, {2}); }).find("Invalid reduction dimension (2 for input with 2 dimension(s)"),
            std::string::npos);
  Node* n = reduce(t, "Sum", x, {-3}, false, false);
  std::string err = error_of([&] { t.run1(n->out()); });
  EXPECT_NE(err.find("node '" + n->name + "' (Sum)"), std::string::npos) << err;
  EXPECT_NE(err.find("Invalid reduction dimension"), std::string::npos) << err;
}

Node* arg(TestGraph& t, const std::string& op, Value x, int32_t axis, DType out = DType::kInt64) {
  return t.op(op, {x, t.constant(Tensor::scalar<int32_t>(axis))},
              {{"T", DType::kFloat32}, {"Tidx", DType::kInt32}, {"output_type", out}});
}

TEST(ReductionOps, ArgMaxTiesAndNaN) {
  TestGraph t;
  Value x = t.input(tensor<float>({1, 3, 3, kNaN, 2, kNaN, kNaN, kNaN, kNaN}, {3, 3}));
  Node* mx = arg(t, "ArgMax", x, 1);
  EXPECT_EQ(mx->outputs[0].shape, PartialShape({3}));
  EXPECT_EQ(vals<int64_t>(t.run1(mx->out())), (std::vector<int64_t>{1, 1, 0}));
  Node* mn = arg(t, "ArgMin", x, 0, DType::kInt32);
  EXPECT_EQ(mn->outputs[0].dtype, DType::kInt32);
  EXPECT_EQ(vals<int32_t>(t.run1(mn->out())), (std::vector<int32_t>{0, 1, 0}));
  Value e = t.input(Tensor(DType::kFloat32, {0, 3}));
  Node* bad = arg(t, "ArgMax", e, 0);
  EXPECT_NE(error_of([&] { t.run1(bad->out()); }).find("Reduction axis 0 is empty in shape [0,3]"),
            std::string::npos);
  EXPECT_EQ(t.run1(arg(t, "ArgMax", e, 1)->out()).shape(), Shape{0});
  const OpDef* def = OpRegistry::global().find("ArgMax");
  EXPECT_EQ(std::get<DType>(def->attr_defaults.at("output_type")), DType::kInt64);
}

TEST(ReductionOps, SoftmaxAndLogSoftmax) {
  TestGraph t;
  Value x = t.input(tensor<float>({1, 2, 3, 1000, 0, -1000}, {2, 3}));
  std::vector<float> s = vals<float>(t.run1(t.op("Softmax", {x}, {{"T", DType::kFloat32}})->out()));
  const double z = std::exp(-2.0) + std::exp(-1.0) + 1.0;
  EXPECT_NEAR(s[0], std::exp(-2.0) / z, 1e-7);
  EXPECT_NEAR(s[2], 1.0 / z, 1e-7);
  EXPECT_EQ(s[3], 1.0f);
  EXPECT_EQ(s[5], 0.0f);
  std::vector<float> l = vals<float>(t.run1(t.op("LogSoftmax", {x}, {{"T", DType::kFloat32}})->out()));
  EXPECT_NEAR(l[2], -std::log(z), 1e-6);
  EXPECT_EQ(l[3], 0.0f);
  EXPECT_EQ(l[5], -2000.0f);
  Value n = t.input(tensor<float>({1, kNaN}, {2}));
  std::vector<float> sn = vals<float>(t.run1(t.op("Softmax", {n}, {{"T", DType::kFloat32}})->out()));
  EXPECT_TRUE(std::isnan(sn[0]) && std::isnan(sn[1]));
}

TEST(ReductionOps, CumsumCumprodFlags) {
  TestGraph t;
  Value x = t.input(tensor<int32_t>({1, 2, 3, 4}, {4}));
  Value ax = t.constant(Tensor::scalar<int32_t>(0));
  auto scan = [&](const std::string& op, bool exclusive, bool reverse) {
    return vals<int32_t>(t.run1(t.op(op, {x, ax}, {{"T", DType::kInt32}, {"Tidx", DType::kInt32},
                                                   {"exclusive", exclusive}, {"reverse", reverse}})->out()));
  };
  EXPECT_EQ(scan("Cumsum", false, false), (std::vector<int32_t>{1, 3, 6, 10}));
  EXPECT_EQ(scan("Cumsum", true, true), (std::vector<int32_t>{9, 7, 4, 0}));
  EXPECT_EQ(scan("Cumprod", true, false), (std::vector<int32_t>{1, 1, 2, 6}));
  EXPECT_EQ(scan("Cumprod", false, true), (std::vector<int32_t>{24, 24, 12, 4}));
  Value m = t.input(tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
  Value neg = t.constant(Tensor::scalar<int64_t>(-2));
  Node* c0 = t.op("Cumsum", {m, neg}, {{"T", DType::kFloat32}, {"Tidx", DType::kInt64}});
  EXPECT_EQ(vals<float>(t.run1(c0->out())), (std::vector<float>{1, 2, 3, 5, 7, 9}));
  Value bad = t.input(Tensor::scalar<int32_t>(2));
  Node* nb = t.op("Cumsum", {m, bad}, {{"T", DType::kFloat32}, {"Tidx", DType::kInt32}});
  EXPECT_NE(error_of([&] { t.run1(nb->out()); }).find("Expected scan axis in the range [-2, 2), but got 2"),
            std::string::npos);
}

TEST(ReductionOps, TopKV2) {
  TestGraph t;
  Value x = t.input(tensor<float>({1, 3, 3, 1, 5, 0}, {2, 3}));
  Value k = t.constant(Tensor::scalar<int32_t>(2));
  Node* n = t.op("TopKV2", {x, k}, {{"T", DType::kFloat32}});
  EXPECT_EQ(n->outputs[0].shape, PartialShape({2, 2}));
  EXPECT_EQ(n->outputs[1].dtype, DType::kInt32);
  std::vector<Tensor> r = interpret(t.g, t.feeds, {n->out(0), n->out(1)}, {}, nullptr);
  EXPECT_EQ(vals<float>(r[0]), (std::vector<float>{3, 3, 5, 1}));
  EXPECT_EQ(vals<int32_t>(r[1]), (std::vector<int32_t>{1, 2, 1, 0}));  // ties: lower index first
  EXPECT_EQ(n->def->flat_output_index(*n, "indices", 0), 1);
  Value big = t.constant(Tensor::scalar<int32_t>(4));
  EXPECT_NE(error_of([&] { t.op("TopKV2", {x, big}, {{"T", DType::kFloat32}}); })
                .find("input must have at least k columns. Had 3, needed 4"),
            std::string::npos);
}

TEST(ReductionOps, L2Loss) {
  TestGraph t;
  Value x = t.input(tensor<double>({3, 4}, {2}));
  Node* n = t.op("L2Loss", {x}, {{"T", DType::kFloat64}});
  EXPECT_EQ(n->outputs[0].shape, PartialShape(std::vector<int64_t>{}));
  EXPECT_EQ(vals<double>(t.run1(n->out())), std::vector<double>{12.5});
}

}  // namespace
}  // namespace tessera
