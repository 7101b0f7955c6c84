// The executor: memory plan, arena reuse across runs and shapes, aliasing outputs of reference
// kernels, results that outlive the next run, fallback ops, errors.
#include "backend/cpu/kernel.h"
#include "backend/cpu/memory_plan.h"
#include "backend/cpu/onednn.h"
#include "cpu_test_util.h"

namespace tessera::cpu::testing {
namespace {

TEST(CpuMemoryPlan, ReusesBuffersWhoseLifetimesDoNotOverlap) {
  // a chain: each buffer dies when the next is made, so two slots suffice.
  std::vector<BufferRequest> req = {{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}, {1000, 3, 4}};
  MemoryPlan p = plan_memory(req);
  EXPECT_EQ(p.total_requested, 4000);
  EXPECT_EQ(p.arena_bytes, 2 * 1024);  // 64-byte aligned slots
  for (size_t i = 0; i + 1 < req.size(); ++i) EXPECT_NE(p.offsets[i], p.offsets[i + 1]);
  EXPECT_EQ(p.offsets[0], p.offsets[2]);
}

TEST(CpuMemoryPlan, LiveBuffersNeverOverlap) {
  std::mt19937 rng(3);
  std::vector<BufferRequest> req;
  for (int i = 0; i < 200; ++i) {
    int first = static_cast<int>(rng() % 50);
    req.push_back({static_cast<int64_t>(rng() % 5000 + 1), first, first + static_cast<int>(rng() % 10)});
  }
  MemoryPlan p = plan_memory(req);
  for (size_t i = 0; i < req.size(); ++i) {
    EXPECT_EQ(p.offsets[i] % 64, 0);
    EXPECT_LE(p.offsets[i] + req[i].bytes, p.arena_bytes);
    for (size_t j = i + 1; j < req.size(); ++j) {
      bool time = !(req[i].last < req[j].first || req[j].last < req[i].first);
      bool space = p.offsets[i] < p.offsets[j] + req[j].bytes && p.offsets[j] < p.offsets[i] + req[i].bytes;
      EXPECT_FALSE(time && space) << i << " and " << j;
    }
  }
  EXPECT_LT(p.arena_bytes, p.total_requested);
}

// x -> Relu (arena) -> Reshape (reference kernel, aliases its input) -> Exp -> Transpose
// (reference) -> Add with the Relu output reshaped: aliasing must keep the Relu buffer alive.
FnGraph alias_graph() {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 6}));
  Node* relu = fn.op("Relu", {x}, {{"T", DType::kFloat32}});
  Node* rs = fn.op("Reshape", {relu->out(), fn.ints({-1, 3, 2})}, {{"T", DType::kFloat32}, {"Tshape", DType::kInt32}});
  Node* e = fn.op("Exp", {x}, {{"T", DType::kFloat32}});
  Node* t = fn.op("Neg", {e->out()}, {{"T", DType::kFloat32}});
  Node* t2 = fn.op("Reshape", {t->out(), fn.ints({-1, 3, 2})}, {{"T", DType::kFloat32}, {"Tshape", DType::kInt32}});
  Node* add = fn.op("AddV2", {rs->out(), t2->out()}, {{"T", DType::kFloat32}});
  Node* tr = fn.op("Transpose", {add->out(), fn.ints({0, 2, 1})}, {{"T", DType::kFloat32}, {"Tperm", DType::kInt32}});
  fn.result(tr->out());
  fn.result(rs->out());  // a result that aliases an arena buffer
  return fn;
}

TEST(CpuExecutor, AliasingReferenceOutputsAndResults) {
  FnGraph fn = alias_graph();
  check_graph(fn, {{random_tensor({1, 6}, 1)}, {random_tensor({4, 6}, 2)}, {random_tensor({1, 6}, 3)}}, "alias");
}

TEST(CpuExecutor, ResultsSurviveLaterRuns) {
  FnGraph fn = alias_graph();
  auto exe = CpuExecutable::compile(fn.g, {1, ""});
  Tensor x1 = random_tensor({2, 6}, 1), x2 = random_tensor({2, 6}, 2);
  exe->run({x1}, nullptr);                       // records the plan
  std::vector<Tensor> r1 = exe->run({x1}, nullptr);  // planned run
  std::vector<Tensor> keep = {r1[0].clone(), r1[1].clone()};
  exe->run({x2}, nullptr);  // reuses the arena
  for (size_t i = 0; i < r1.size(); ++i) expect_match(keep[i], r1[i], "result " + std::to_string(i));
}

TEST(CpuExecutor, FallbackOpsAndIntegerTensors) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 5}));
  Node* am = fn.op("ArgMax", {x, fn.constant(Tensor::scalar<int32_t>(1))},
                   {{"T", DType::kFloat32}, {"Tidx", DType::kInt32}, {"output_type", DType::kInt64}});
  Node* sh = fn.op("Shape", {x}, {{"T", DType::kFloat32}, {"out_type", DType::kInt32}});
  fn.result(am->out());
  fn.result(sh->out());
  check_graph(fn, {{random_tensor({3, 5}, 1)}, {random_tensor({1, 5}, 2)}}, "fallback");
}

TEST(CpuExecutor, FastKernelsCoverTheCommonOps) {
  std::vector<std::string> ops = kernel_ops();
  for (const char* op : {"MatMul", "BatchMatMulV2", "Conv2D", "DepthwiseConv2dNative", "TsFusedMatMul",
                         "TsFusedConv2D", "TsFusedDepthwiseConv2D", "TsElementwise", "TsLayerNorm", "TsGelu",
                         "Softmax", "Mean", "AddV2", "BiasAdd", "Relu"})
    EXPECT_NE(std::find(ops.begin(), ops.end(), op), ops.end()) << op;
}

TEST(CpuExecutor, RejectsWrongArguments) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 4}));
  fn.result(fn.op("Relu", {x}, {{"T", DType::kFloat32}})->out());
  auto exe = CpuExecutable::compile(fn.g, {1, ""});
  EXPECT_THROW(exe->run({}, nullptr), Error);
  EXPECT_THROW(exe->run({random_tensor({2, 5}, 1)}, nullptr), Error);
  EXPECT_THROW(exe->run({Tensor::from_vector<int32_t>({1, 2, 3, 4}, {1, 4})}, nullptr), Error);
  EXPECT_THROW(CpuExecutable::compile(fn.g, {1, "avx9000"}), Error);
}

TEST(CpuExecutor, ThreadCountsGiveTheSameAnswer) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 256}));
  Node* mm = fn.op("MatMul", {x, fn.constant(random_tensor({256, 300}, 1))}, {{"T", DType::kFloat32}});
  Node* sm = fn.op("Softmax", {mm->out()}, {{"T", DType::kFloat32}});
  fn.result(sm->out());
  for (int threads : {1, 2, 4}) check_graph(fn, {{random_tensor({64, 256}, 2)}}, "threads", threads);
}

}  // namespace
}  // namespace tessera::cpu::testing

namespace tessera::cpu::testing {
namespace {

TEST(CpuExecutor, OneDnnFollowsTheProcessIsa) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 8}));
  fn.result(fn.op("MatMul", {x, fn.constant(random_tensor({8, 8}, 1))}, {{"T", DType::kFloat32}})->out());
  auto exe = CpuExecutable::compile(fn.g, {1, ""});
  exe->run({random_tensor({2, 8}, 2)}, nullptr);
  EXPECT_EQ(exe->isa(), isa_name(resolve_isa("")));
  if (std::getenv("ONEDNN_MAX_CPU_ISA")) GTEST_SKIP() << "ONEDNN_MAX_CPU_ISA set by the environment";
  const std::string eff = onednn::effective_isa();
  switch (resolve_isa("")) {
    case Isa::kAvx512: EXPECT_EQ(eff.rfind("avx512", 0), 0u) << eff; break;
    case Isa::kAvx2: EXPECT_EQ(eff, "avx2"); break;
    case Isa::kScalar: EXPECT_EQ(eff, "sse41"); break;
  }
}

}  // namespace
}  // namespace tessera::cpu::testing
