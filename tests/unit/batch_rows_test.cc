// ir/batch_rows: which nodes keep the rows of a batch apart (OpDef::rowwise), and splitting a
// function into a head and a tail that compose to the original (checked on the interpreter).
#include <gtest/gtest.h>

#include "cpu/cpu_test_util.h"
#include "ir/batch_rows.h"

namespace tessera::cpu::testing {
namespace {

AttrMap conv_attrs(int64_t stride) {
  return {{"T", DType::kFloat32}, {"strides", std::vector<int64_t>{1, stride, stride, 1}},
          {"padding", std::string("SAME")}, {"data_format", std::string("NHWC")}};
}

// x[?,8,8,3] -> conv 3->4 -> relu -> mean over H,W -> reshape [-1,4] -> matmul 4->2, plus a
// side branch that sums over the batch.
struct Net {
  FnGraph fn;
  Node *conv, *relu, *mean, *reshape, *matmul, *batch_sum;
};

Net make_net() {
  Net n;
  FnGraph& f = n.fn;
  Value x = f.arg(DType::kFloat32, PartialShape({-1, 8, 8, 3}));
  n.conv = f.op("Conv2D", {x, f.constant(random_tensor({3, 3, 3, 4}, 1, -0.5f, 0.5f))}, conv_attrs(1));
  n.relu = f.op("Relu", {n.conv->out()}, {{"T", DType::kFloat32}});
  n.mean = f.op("Mean", {n.relu->out(), f.ints({1, 2})}, {{"T", DType::kFloat32}, {"keep_dims", true}});
  n.reshape = f.op("Reshape", {n.mean->out(), f.ints({-1, 4})}, {{"T", DType::kFloat32}});
  n.matmul = f.op("MatMul", {n.reshape->out(), f.constant(random_tensor({4, 2}, 2))}, {{"T", DType::kFloat32}});
  n.batch_sum = f.op("Sum", {n.relu->out(), f.ints({0})}, {{"T", DType::kFloat32}});
  f.result(n.matmul->out());
  f.result(n.batch_sum->out());
  return n;
}

TEST(BatchRows, FindsTheNodesThatKeepRowsApart) {
  Net n = make_net();
  BatchRows rows = find_batch_rows(*n.fn.g);
  EXPECT_EQ(rows.batched_args, std::vector<int>{0});
  for (Node* node : {n.conv, n.relu, n.mean, n.reshape}) EXPECT_TRUE(rows.rowwise.count(node)) << node->label();
  EXPECT_FALSE(rows.rowwise.count(n.matmul));     // MatMul declares no rowwise rule
  EXPECT_FALSE(rows.rowwise.count(n.batch_sum));  // sums over the batch
}

TEST(BatchRows, ReshapesAndReductionsOnlyWhenTheBatchStaysDimZero) {
  FnGraph f;
  Value x = f.arg(DType::kFloat32, PartialShape({-1, 4, 6}));
  Node* keep = f.op("Reshape", {x, f.ints({-1, 24})}, {{"T", DType::kFloat32}});
  Node* mix = f.op("Reshape", {x, f.ints({24, -1})}, {{"T", DType::kFloat32}});
  Node* last = f.op("Max", {x, f.ints({-1})}, {{"T", DType::kFloat32}});
  Node* first = f.op("Max", {x, f.ints({-3})}, {{"T", DType::kFloat32}});
  // A parameter that is not a constant (computed from the batch's shape) rules a node out.
  Node* shape = f.op("Shape", {x}, {{"T", DType::kFloat32}, {"out_type", DType::kInt32}});
  Node* dynamic = f.op("Reshape", {x, shape->out()}, {{"T", DType::kFloat32}});
  // Broadcasting a batched [?,6] against [?,4,6] lines it up with dim 1, not dim 0.
  Value y = f.arg(DType::kFloat32, PartialShape({-1, 6}));
  Node* skew = f.op("AddV2", {x, y}, {{"T", DType::kFloat32}});
  Node* bias = f.op("AddV2", {x, f.constant(random_tensor({1, 4, 6}, 3))}, {{"T", DType::kFloat32}});
  for (Node* r : {keep, mix, last, first, dynamic, skew, bias}) f.result(r->out());
  BatchRows rows = find_batch_rows(*f.g);
  EXPECT_EQ(rows.batched_args, (std::vector<int>{0, 1}));
  EXPECT_TRUE(rows.rowwise.count(keep));
  EXPECT_FALSE(rows.rowwise.count(mix));
  EXPECT_TRUE(rows.rowwise.count(last));
  EXPECT_FALSE(rows.rowwise.count(first));
  EXPECT_FALSE(rows.rowwise.count(dynamic));
  EXPECT_FALSE(rows.rowwise.count(skew));
  EXPECT_TRUE(rows.rowwise.count(bias));
}

TEST(BatchRows, AFixedBatchHasNoBatchedArgs) {
  FnGraph f;
  Value x = f.arg(DType::kFloat32, PartialShape({2, 3}));
  f.result(f.op("Relu", {x}, {{"T", DType::kFloat32}})->out());
  BatchRows rows = find_batch_rows(*f.g);
  EXPECT_TRUE(rows.batched_args.empty());
  EXPECT_TRUE(rows.rowwise.empty());
}

TEST(BatchRows, HeadThenTailComputesTheOriginal) {
  Net n = make_net();
  const Graph& g = *n.fn.g;
  SplitFunction split = split_function(g, {n.conv, n.relu, n.mean});
  // relu feeds the tail's batch sum, mean its reshape: two cut values.
  ASSERT_EQ(split.cut.size(), 2u);
  EXPECT_TRUE((split.cut[0].node == n.relu && split.cut[1].node == n.mean) ||
              (split.cut[0].node == n.mean && split.cut[1].node == n.relu));
  ASSERT_EQ(split.tail->args.size(), 3u);  // two cut values, then x
  Tensor x = random_tensor({5, 8, 8, 3}, 9);
  std::vector<Tensor> want = call_function(g, {x}, nullptr);
  std::vector<Tensor> cut = call_function(*split.head, {x}, nullptr);
  ASSERT_EQ(cut.size(), 2u);
  cut.push_back(x);
  std::vector<Tensor> got = call_function(*split.tail, cut, nullptr);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) expect_match(want[i], got[i], "result " + std::to_string(i));
}

TEST(BatchRows, SplitRefusesAHeadThatReadsTheTail) {
  Net n = make_net();
  // reshape reads mean, which is not in the head.
  try {
    split_function(*n.fn.g, {n.conv, n.reshape});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("neither a head node"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera::cpu::testing
