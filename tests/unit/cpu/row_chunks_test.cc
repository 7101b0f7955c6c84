// The cpu executable's row chunks (backend/cpu/row_chunks.h): which graphs get a head, and a
// chunked run computing what the one-plan run and the reference interpreter compute, for
// batches split into uneven chunks, batches that fit one chunk, and two batched args.
#include <gtest/gtest.h>

#include "backend/cpu/row_chunks.h"
#include "cpu_test_util.h"

namespace tessera::cpu::testing {
namespace {

AttrMap conv_attrs() {
  return {{"T", DType::kFloat32}, {"strides", std::vector<int64_t>{1, 1, 1, 1}}, {"padding", std::string("SAME")},
          {"data_format", std::string("NHWC")}};
}

// An image model's shape: convolutions on a [?,h,w,c] input (a residual arg added to the
// second's output), global average pooling, then a dense layer.
FnGraph conv_net(int64_t hw, int64_t c, bool residual_arg) {
  FnGraph f;
  Value x = f.arg(DType::kFloat32, PartialShape({-1, hw, hw, 3}));
  Node* a = f.op("Conv2D", {x, f.constant(random_tensor({3, 3, 3, c}, 1, -0.5f, 0.5f))}, conv_attrs());
  Node* r = f.op("Relu", {a->out()}, {{"T", DType::kFloat32}});
  Node* b = f.op("Conv2D", {r->out(), f.constant(random_tensor({1, 1, c, c}, 2, -0.5f, 0.5f))}, conv_attrs());
  Value y = b->out();
  if (residual_arg) {
    Value res = f.arg(DType::kFloat32, PartialShape({-1, hw, hw, c}));
    y = f.op("AddV2", {y, res}, {{"T", DType::kFloat32}})->out();
  }
  Node* m = f.op("Mean", {y, f.ints({1, 2})}, {{"T", DType::kFloat32}});
  f.result(f.op("MatMul", {m->out(), f.constant(random_tensor({c, 5}, 3))}, {{"T", DType::kFloat32}})->out());
  return f;
}

std::vector<Tensor> args_for(int64_t n, int64_t hw, int64_t c, bool residual_arg, uint32_t seed) {
  std::vector<Tensor> args = {random_tensor({n, hw, hw, 3}, seed)};
  if (residual_arg) args.push_back(random_tensor({n, hw, hw, c}, seed + 100));
  return args;
}

TEST(CpuRowChunks, ChunkedRunsMatchOnePlanAndTheReference) {
  for (bool residual : {false, true}) {
    FnGraph f = conv_net(12, 8, residual);
    CpuOptions chunked{2};
    chunked.chunk_rows = 3;
    CpuOptions whole{2};
    whole.chunk_rows = 0;
    auto a = CpuExecutable::compile(f.g, chunked);
    auto b = CpuExecutable::compile(f.g, whole);
    EXPECT_EQ(a->chunk_rows(), 3);
    EXPECT_EQ(b->chunk_rows(), 0);
    // 7 rows: chunks of 3, 2, 2; 3 rows: one chunk; 1 row.
    for (int64_t n : {7, 3, 1, 7}) {
      SCOPED_TRACE("residual " + std::to_string(residual) + " batch " + std::to_string(n));
      std::vector<Tensor> args = args_for(n, 12, 8, residual, static_cast<uint32_t>(n));
      std::vector<Tensor> ref = call_function(*f.g, args, nullptr);
      std::vector<Tensor> got = a->run(args, nullptr), one = b->run(args, nullptr);
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(shape_str(got[0].shape()), shape_str(Shape{n, 5}));
      expect_match(ref[0], got[0], "chunked vs reference");
      expect_match(one[0], got[0], "chunked vs one plan");
    }
    std::vector<Shape> key = {Shape{7, 12, 12, 3}};
    if (residual) key.push_back(Shape{7, 12, 12, 8});
    EXPECT_GT(a->plan_stats(key).arena_bytes, 0);  // head and tail plans, after runs with 7 rows
  }
}

TEST(CpuRowChunks, AGraphThatIsAllHeadPassesItsCutThrough) {
  // Every node keeps rows apart: the tail only returns the cut values it is given.
  FnGraph f;
  Value x = f.arg(DType::kFloat32, PartialShape({-1, 10, 10, 3}));
  Node* a = f.op("Conv2D", {x, f.constant(random_tensor({3, 3, 3, 6}, 5, -0.5f, 0.5f))}, conv_attrs());
  Node* r = f.op("Relu", {a->out()}, {{"T", DType::kFloat32}});
  f.result(r->out());
  f.result(a->out());
  CpuOptions chunked{2};
  chunked.chunk_rows = 2;
  auto exe = CpuExecutable::compile(f.g, chunked);
  ASSERT_EQ(exe->chunk_rows(), 2);
  std::vector<Tensor> args = {random_tensor({5, 10, 10, 3}, 6)};
  std::vector<Tensor> ref = call_function(*f.g, args, nullptr);
  std::vector<Tensor> got = exe->run(args, nullptr);
  ASSERT_EQ(got.size(), 2u);
  for (size_t i = 0; i < 2; ++i) expect_match(ref[i], got[i], "result " + std::to_string(i));
}

TEST(CpuRowChunks, TheCacheRulePicksImageLayersNotDenseOnes) {
  // 64x64x16 activations: 256 KiB per row for one node, over a MiB across the head.
  FnGraph image = conv_net(64, 16, false);
  RowChunkPlan p = plan_row_chunks(*image.g);
  EXPECT_FALSE(p.head.empty());
  EXPECT_GE(p.rows, 1);
  EXPECT_GE(p.head_row_bytes, kMinHeadRowBytes);
  EXPECT_LE(p.rows * p.max_row_bytes, kChunkBytes);
  // A small image's layers move too little per row to be worth a split.
  EXPECT_TRUE(plan_row_chunks(*conv_net(8, 4, false).g).head.empty());
  EXPECT_EQ(CpuExecutable::compile(conv_net(8, 4, false).g, {2})->chunk_rows(), 0);
  // Dense layers declare no row rule: nothing to split.
  FnGraph mlp;
  Value x = mlp.arg(DType::kFloat32, PartialShape({-1, 784}));
  Node* h = mlp.op("MatMul", {x, mlp.constant(random_tensor({784, 512}, 4))}, {{"T", DType::kFloat32}});
  mlp.result(mlp.op("Relu", {h->out()}, {{"T", DType::kFloat32}})->out());
  EXPECT_TRUE(plan_row_chunks(*mlp.g).head.empty());
}

TEST(CpuRowChunks, BadArgumentsGetTheOnePlanErrors) {
  FnGraph f = conv_net(12, 8, true);
  CpuOptions chunked{2};
  chunked.chunk_rows = 2;
  auto exe = CpuExecutable::compile(f.g, chunked);
  // Batches that disagree: the head runs once and the residual's shape is rejected by name.
  std::vector<Tensor> args = {random_tensor({5, 12, 12, 3}, 1), random_tensor({4, 12, 12, 8}, 2)};
  EXPECT_THROW(exe->run(args, nullptr), Error);
  // A wrong argument count.
  EXPECT_THROW(exe->run({random_tensor({5, 12, 12, 3}, 1)}, nullptr), Error);
}

}  // namespace
}  // namespace tessera::cpu::testing
