// MaxPoolGrad's direct-write path (windows that tile the image: stride == window, no padding
// before) against the reference, including rows/columns past the last window (VALID
// remainders), SAME pools that tile exactly or not, a partial channel block, ties, and
// 1-thread runs.
#include <ctime>
#include <cmath>
#include <cstdio>

#include "cpu_test_util.h"

namespace tessera::cpu::testing {
namespace {

TEST(CpuMaxPoolGradTiled, MatchesReference) {
  struct Case {
    Shape x;
    int64_t k;
    std::string padding;
  };
  const std::vector<Case> cases = {{{3, 9, 7, 20}, 2, "VALID"}, {{2, 8, 8, 16}, 2, "SAME"}, {{2, 9, 9, 16}, 2, "SAME"},
                                   {{2, 10, 11, 3}, 3, "VALID"}, {{4, 32, 32, 16}, 2, "VALID"}, {{1, 6, 6, 80}, 2, "VALID"}};
  for (const Case& c : cases)
    for (bool ties : {false, true})
      for (int threads : {1, 2}) {
        FnGraph fn;
        Value x = fn.arg(DType::kFloat32, PartialShape({-1, c.x[1], c.x[2], c.x[3]}));
        AttrMap attrs = {{"T", DType::kFloat32}, {"ksize", std::vector<int64_t>{1, c.k, c.k, 1}},
                         {"strides", std::vector<int64_t>{1, c.k, c.k, 1}}, {"padding", c.padding},
                         {"data_format", std::string("NHWC")}};
        Node* pool = fn.op("MaxPool", {x}, attrs);
        Value dy = fn.arg(DType::kFloat32, pool->outputs[0].shape);
        fn.result(fn.op("MaxPoolGrad", {x, pool->out(), dy}, attrs)->out());
        Tensor xv = random_tensor(c.x, 17);
        if (ties)  // equal maxima in a window: the first one gets the gradient
          for (int64_t i = 0; i < xv.num_elements(); ++i) xv.data<float>()[i] = std::round(xv.data<float>()[i]);
        FnGraph probe;
        Value px = probe.arg(DType::kFloat32, PartialShape(c.x));
        probe.result(probe.op("MaxPool", {px}, attrs)->out());
        Shape ys = call_function(*probe.g, {xv}, nullptr)[0].shape();
        check_graph(fn, {{xv, random_tensor(ys, 18)}},
                    "MaxPoolGrad " + shape_str(c.x) + " k" + std::to_string(c.k) + c.padding + (ties ? " ties" : ""),
                    threads);
      }
}

double thread_ms() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

// Timing of the training CNN's shapes (not a test: --gtest_also_run_disabled_tests).
TEST(CpuMaxPoolGradTiled, DISABLED_Bench) {
  for (const Shape& s : std::vector<Shape>{{128, 32, 32, 16}, {128, 16, 16, 32}, {128, 32, 32, 32}, {128, 16, 16, 16}, {64, 32, 32, 16}}) {
    FnGraph fn;
    Value x = fn.arg(DType::kFloat32, PartialShape(s));
    AttrMap attrs = {{"T", DType::kFloat32}, {"ksize", std::vector<int64_t>{1, 2, 2, 1}},
                     {"strides", std::vector<int64_t>{1, 2, 2, 1}}, {"padding", std::string("VALID")},
                     {"data_format", std::string("NHWC")}};
    const Shape ys = {s[0], s[1] / 2, s[2] / 2, s[3]};
    Value y = fn.arg(DType::kFloat32, PartialShape(ys));  // only its shape matters to the kernel
    Value dy = fn.arg(DType::kFloat32, PartialShape(ys));
    // A one-element slice as the result: the gradient stays an arena buffer, as in a step.
    Value dx = fn.op("MaxPoolGrad", {x, y, dy}, attrs)->out();
    fn.result(fn.op("Slice", {dx, fn.ints({0, 0, 0, 0}), fn.ints({1, 1, 1, 1})},
                    {{"T", DType::kFloat32}, {"Index", DType::kInt32}})->out());
    // One thread, its CPU time: the shared machine's other load does not count.
    auto exe = CpuExecutable::compile(fn.g, {1, ""});
    std::vector<Tensor> in = {random_tensor(s, 1), random_tensor(ys, 2), random_tensor(ys, 3)};
    double best = 1e9;
    for (int i = 0; i < 30; ++i) {
      const double t0 = thread_ms();
      exe->run(in, nullptr);
      best = std::min(best, thread_ms() - t0);
    }
    std::printf("MaxPoolGrad %s: %.3f ms (thread CPU time, min of 30, 1 thread)\n", shape_str(s).c_str(), best);
  }
}

}  // namespace
}  // namespace tessera::cpu::testing
