// CpuOptions::concurrent_runs: calls from several threads each run on a copy of the plan
// (runtime/executable.cc) and must give exactly what one run at a time gives, for every batch
// size each copy meets.
#include <gtest/gtest.h>

#include <thread>

#include "ir/interpreter.h"
#include "ir/parser.h"
#include "passes/pass_test_util.h"
#include "runtime/executable.h"

namespace tessera {
namespace {

using testing::random_f32;

const char* kModel = R"(
graph (x: float32[?,24], w: float32[24,16]) -> (y: s) {
  b = Const() {dtype=float32, value=float32[16]{-0.25}}
  m = MatMul(x, w) {T=float32, transpose_a=false, transpose_b=false}
  a = BiasAdd(m, b) {T=float32, data_format="NHWC"}
  r = Relu(a) {T=float32}
  s = Softmax(r) {T=float32}
}
)";

void run_side_by_side(int concurrent_runs, int callers) {
  auto g = parse_graph(kModel);
  cpu::CpuOptions options;
  options.threads = 1;
  options.concurrent_runs = concurrent_runs;
  auto exe = make_executable("cpu", g, options);
  // Inputs of several batch sizes (a plan each) and what one run at a time answers.
  const Tensor w = random_f32({24, 16}, 99);
  std::vector<Tensor> inputs, want;
  for (int i = 0; i < 12; ++i) {
    inputs.push_back(random_f32({1 + i % 5 * 7, 24}, 100 + i, -2, 2));
    want.push_back(exe->run({inputs.back(), w}, nullptr).at(0));
  }
  std::vector<std::string> errors(callers);
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 40 && errors[t].empty(); ++k) {
        const size_t i = static_cast<size_t>(t * 5 + k) % inputs.size();
        Tensor got = exe->run({inputs[i], w}, nullptr).at(0);
        if (got.shape() != want[i].shape() ||
            std::memcmp(got.raw(), want[i].raw(), static_cast<size_t>(got.num_elements()) * 4) != 0)
          errors[t] = "caller " + std::to_string(t) + " run " + std::to_string(k) + " input " + std::to_string(i);
      }
    });
  for (auto& th : threads) th.join();
  for (const std::string& e : errors) EXPECT_EQ(e, "") << "concurrent_runs " << concurrent_runs;
}

TEST(ConcurrentRuns, CallersOnCopiesGetWhatOneRunAtATimeGives) {
  run_side_by_side(2, 4);  // more callers than copies: some wait for a copy to come back
  run_side_by_side(4, 4);
}

TEST(ConcurrentRuns, OneCopySerialisesCallers) { run_side_by_side(1, 3); }

}  // namespace
}  // namespace tessera
