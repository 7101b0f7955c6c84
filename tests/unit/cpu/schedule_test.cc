// Inter-op parallelism and in-place execution on the executor: graphs with independent
// branches give the reference's numbers at every inter_op, run after run; an elementwise chain
// runs in one buffer; errors in a concurrent step reach the caller.
#include <atomic>
#include <thread>

#include "backend/cpu/kernel.h"
#include "backend/cpu/threads.h"
#include "cpu_test_util.h"

namespace tessera::cpu::testing {
namespace {

CpuOptions options(int threads, int inter_op) {
  CpuOptions o;
  o.threads = threads;
  o.inter_op = inter_op;
  return o;
}

// x feeds `branches` independent chains (MatMul -> activation -> elementwise), summed at the
// end; one branch is also a result, so it must survive the others.
FnGraph branchy_graph(int branches) {
  FnGraph fn;
  const DType f = DType::kFloat32;
  Value x = fn.arg(f, PartialShape({-1, 128}));
  Value sum;
  for (int b = 0; b < branches; ++b) {
    Node* mm = fn.op("MatMul", {x, fn.constant(random_tensor({128, 128}, 100 + b, -0.2f, 0.2f))}, {{"T", f}});
    const char* act = b % 3 == 0 ? "Relu" : b % 3 == 1 ? "Tanh" : "Sigmoid";
    Node* a = fn.op(act, {mm->out()}, {{"T", f}});
    Node* m = fn.op("Mul", {a->out(), fn.constant(Tensor::scalar<float>(0.5f + b))}, {{"T", f}});
    Node* s = fn.op("Softmax", {m->out()}, {{"T", f}});
    if (b == 1) fn.result(s->out());
    sum = b == 0 ? s->out() : fn.op("AddV2", {sum, s->out()}, {{"T", f}})->out();
  }
  fn.result(fn.op("Exp", {sum}, {{"T", f}})->out());
  return fn;
}

// (threads 4 with inter_op 2: two OpenMP teams of two, one per worker, at the same time.)
TEST(CpuSchedule, IndependentBranchesMatchAtEveryInterOp) {
  FnGraph fn = branchy_graph(5);
  std::vector<std::vector<Tensor>> runs = {{random_tensor({1, 128}, 1)}, {random_tensor({7, 128}, 2)},
                                           {random_tensor({1, 128}, 3)}, {random_tensor({96, 128}, 4)}};
  const std::vector<std::pair<int, int>> configs = {{2, 1}, {2, 2}, {2, 3}, {4, 2}, {3, 4}};
  for (auto [threads, inter_op] : configs) {
    auto exe = CpuExecutable::compile(fn.g, options(threads, inter_op));
    EXPECT_EQ(exe->inter_op(), std::min(inter_op, kMaxInterOp));
    for (int pass = 0; pass < 3; ++pass)  // recording run, then planned runs
      for (size_t k = 0; k < runs.size(); ++k) {
        SCOPED_TRACE("threads " + std::to_string(threads) + " inter_op " + std::to_string(inter_op) + " pass " + std::to_string(pass) + " run " +
                     std::to_string(k));
        std::vector<Tensor> ref = call_function(*fn.g, runs[k], nullptr);
        std::vector<Tensor> got = exe->run(runs[k], nullptr);
        ASSERT_EQ(ref.size(), got.size());
        for (size_t i = 0; i < ref.size(); ++i) expect_match(ref[i], got[i], "result " + std::to_string(i));
      }
  }
}

// Concurrent runs may not share buffers, so the branchy plan needs more arena at inter_op 2.
TEST(CpuSchedule, ConcurrentPlanKeepsBranchesApart) {
  FnGraph fn = branchy_graph(4);
  Tensor x = random_tensor({16, 128}, 5);
  auto seq = CpuExecutable::compile(fn.g, options(2, 1));
  auto par = CpuExecutable::compile(fn.g, options(2, 2));
  seq->run({x}, nullptr);
  par->run({x}, nullptr);
  PlanStats s = seq->plan_stats({x.shape()}), p = par->plan_stats({x.shape()});
  EXPECT_GT(s.arena_bytes, 0);
  EXPECT_GT(p.arena_bytes, s.arena_bytes);
  EXPECT_EQ(s.requested_bytes, p.requested_bytes);
  EXPECT_EQ(seq->plan_stats({Shape{3, 128}}).arena_bytes, 0);  // no plan for shapes never run
}

// x -> Relu -> Exp -> Neg -> Sigmoid (result): the first is an arg, so Relu gets a buffer and
// each later op overwrites its input in place: one buffer for the whole chain.
TEST(CpuSchedule, ElementwiseChainRunsInOneBuffer) {
  FnGraph fn;
  const DType f = DType::kFloat32;
  Value v = fn.arg(f, PartialShape({-1, 100}));
  for (const char* op : {"Relu", "Exp", "Neg", "Sigmoid"}) v = fn.op(op, {v}, {{"T", f}})->out();
  fn.result(v);
  Tensor x = random_tensor({8, 100}, 6);
  for (int inter_op : {1, 2}) {
    auto exe = CpuExecutable::compile(fn.g, options(1, inter_op));
    std::vector<Tensor> ref = call_function(*fn.g, {x}, nullptr);
    exe->run({x}, nullptr);
    PlanStats st = exe->plan_stats({x.shape()});
    EXPECT_EQ(st.in_place, 3);
    EXPECT_EQ(st.arena_bytes, 8 * 100 * 4);
    EXPECT_EQ(st.requested_bytes, 4 * 8 * 100 * 4);
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<Tensor> got = exe->run({x}, nullptr);
      expect_match(ref[0], got[0], "chain");
    }
    expect_match(random_tensor({8, 100}, 6), x, "the arg is untouched");
  }
}

// An input read again after an in-place candidate (x -> Exp; y = Neg(e); out = e + y) must
// keep its value: Neg may not overwrite e.
TEST(CpuSchedule, InputReadLaterIsNotOverwritten) {
  FnGraph fn;
  const DType f = DType::kFloat32;
  Value x = fn.arg(f, PartialShape({-1, 50}));
  Value e = fn.op("Exp", {x}, {{"T", f}})->out();
  Value n = fn.op("Neg", {e}, {{"T", f}})->out();
  Value t = fn.op("Tanh", {e}, {{"T", f}})->out();
  fn.result(fn.op("AddV2", {n, fn.op("Mul", {t, e}, {{"T", f}})->out()}, {{"T", f}})->out());
  for (int inter_op : {1, 2})
    for (int threads : {1, 2}) {
      SCOPED_TRACE("inter_op " + std::to_string(inter_op) + " threads " + std::to_string(threads));
      auto exe = CpuExecutable::compile(fn.g, options(threads, inter_op));
      Tensor x1 = random_tensor({4, 50}, 7);
      std::vector<Tensor> ref = call_function(*fn.g, {x1}, nullptr);
      for (int pass = 0; pass < 3; ++pass) expect_match(ref[0], exe->run({x1}, nullptr)[0], "out");
    }
}

TEST(CpuSchedule, ErrorInAConcurrentStepReachesTheCaller) {
  FnGraph fn;
  const DType f = DType::kFloat32;
  Value x = fn.arg(f, PartialShape({-1, 6}));
  Node* ok = fn.op("Exp", {x}, {{"T", f}});
  Node* bad = fn.op("Reshape", {x, fn.ints({-1, 4})}, {{"T", f}, {"Tshape", DType::kInt32}});
  fn.result(ok->out());
  fn.result(bad->out());
  auto exe = CpuExecutable::compile(fn.g, options(2, 2));
  EXPECT_THROW(exe->run({random_tensor({1, 6}, 8)}, nullptr), Error);  // 6 values into [-1, 4]
  for (int pass = 0; pass < 2; ++pass) {  // still usable
    std::vector<Tensor> got = exe->run({random_tensor({2, 6}, 9)}, nullptr);
    EXPECT_EQ(shape_str(got[1].shape()), "[3,4]");
  }
}

TEST(CpuSchedule, WorkerPoolRunsEveryWorkerEachTime) {
  WorkerPool pool(3);
  EXPECT_EQ(pool.size(), 3);
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> mask{0};
    pool.run([&](int w) { mask.fetch_or(1 << w); });
    ASSERT_EQ(mask.load(), 7);
  }
}

}  // namespace
}  // namespace tessera::cpu::testing
