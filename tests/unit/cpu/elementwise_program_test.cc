// TsElementwise programs with several outputs, bool values (comparisons, logic, selects, bool
// inputs) and Erfc on the vector loops, against the reference interpreter on every ISA path;
// and the vector erfc against std::erfc.
#include <cfloat>
#include <limits>

#include "backend/cpu/vec.h"
#include "cpu_test_util.h"

namespace tessera::cpu::testing {
namespace {

Tensor random_bool(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor t(DType::kBool, shape);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<bool>()[i] = rng() % 3 != 0;
  return t;
}

AttrMap program_attrs(std::vector<std::string> program, int64_t n, std::vector<int64_t> outputs = {}) {
  AttrMap a = {{"T", DType::kFloat32}, {"N", n}, {"program", std::move(program)}};
  if (!outputs.empty()) a["outputs"] = std::move(outputs);
  return a;
}

void fetch_all(FnGraph& fn, Node* n) {
  for (int k = 0; k < n->num_outputs(); ++k) fn.result(n->out(k));
}

// Relative error <= 1e-6 wherever erfc is a normal float; below that (x > 9.19) at most the
// smallest normal away. Dense over [-10, 10], plus the special values.
TEST(CpuElementwiseProgram, VectorErfcMatchesStdErfc) {
  std::vector<float> xs;
  for (int i = -200000; i <= 200000; ++i) xs.push_back(static_cast<float>(i) * 5e-5f);
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 9.3f, 9.34f, 9.5f, 12.f, 30.f, -30.f}) xs.push_back(v);
  const float inf = std::numeric_limits<float>::infinity();
  xs.insert(xs.end(), {inf, -inf, std::numeric_limits<float>::quiet_NaN()});
  for (const std::string& isa : available_isas()) {
    const VecTable& vt = vec_table(resolve_isa(isa));
    std::vector<float> y(xs.size());
    vt.unary(UnaryOp::kErfc, xs.data(), y.data(), static_cast<int64_t>(xs.size()), 0.f);
    double worst = 0;
    float worst_x = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const double ref = std::erfc(static_cast<double>(xs[i]));
      if (std::isnan(xs[i])) {
        EXPECT_TRUE(std::isnan(y[i])) << isa;
        continue;
      }
      if (ref < FLT_MIN) {
        EXPECT_LE(std::fabs(y[i] - ref), FLT_MIN) << isa << " x=" << xs[i];
        continue;
      }
      const double rel = std::fabs(y[i] - ref) / ref;
      if (rel > worst) worst = rel, worst_x = xs[i];
    }
    EXPECT_LE(worst, 1e-6) << isa << ": worst relative error at x=" << worst_x;
    std::printf("erfc %s: worst relative error %.3g at x=%g\n", isa.c_str(), worst, static_cast<double>(worst_x));
  }
}

// Dropout forward as the fusion pass writes it: mask, scale, select, and gelu's intermediates
// exported; [7,33] rows plus a bias-like [33] operand and a broadcast bool.
TEST(CpuElementwiseProgram, MultiOutputWithBoolsAndBroadcasts) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 33}));
  Value b = fn.arg(DType::kFloat32, PartialShape({33}));
  Value u = fn.arg(DType::kFloat32, PartialShape({-1, 33}));
  Value m = fn.arg(DType::kBool, PartialShape({33}));
  Value k = fn.arg(DType::kBool, PartialShape({-1, 33}));
  std::vector<std::string> program = {
      "AddV2 $0 $1",       // 0 x + b
      "Mul 0.5 %0",        // 1
      "Neg %0",            // 2
      "Mul %2 0.70710677", // 3
      "Erfc %3",           // 4
      "Mul %1 %4",         // 5 gelu
      "GreaterEqual $2 0.3",
      "LogicalAnd %6 $3",  // 7 with the broadcast bool
      "LogicalNot $4",
      "LogicalOr %7 %8",   // 9
      "Mul %5 1.4285715",
      "ZerosLike %10",
      "SelectV2 %9 %10 %11",  // 12
      "NotEqual %5 %10",
      "Cast %13",
      "Equal %9 $4",
      "Cast %15",
      "AddV2 %14 %16",     // 17
      "OnesLike $1",
      "Maximum %17 %18"};  // 19 [?,33] through the [33] operand
  Node* n = fn.op("TsElementwise", {x, b, u, m, k}, program_attrs(program, 5, {12, 1, 4, 3, 19}));
  ASSERT_EQ(n->num_outputs(), 5);
  fetch_all(fn, n);
  check_graph(fn,
              {{random_tensor({7, 33}, 1, -6, 6), random_tensor({33}, 2), random_tensor({7, 33}, 3, 0, 1),
                random_bool({33}, 4), random_bool({7, 33}, 5)},
               {random_tensor({1, 33}, 6, -6, 6), random_tensor({33}, 7), random_tensor({1, 33}, 8, 0, 1),
                random_bool({33}, 9), random_bool({1, 33}, 10)},
               {random_tensor({600, 33}, 11, -6, 6), random_tensor({33}, 12), random_tensor({600, 33}, 13, 0, 1),
                random_bool({33}, 14), random_bool({600, 33}, 15)}},
              "dropout forward");
}

// An Adam update: m', v' and the new weight from one pass (one long row, a scalar operand).
TEST(CpuElementwiseProgram, AdamUpdate) {
  FnGraph fn;
  Value w = fn.arg(DType::kFloat32, PartialShape({70, 130}));
  Value lr = fn.arg(DType::kFloat32, PartialShape(std::vector<int64_t>{}));
  Value m = fn.arg(DType::kFloat32, PartialShape({70, 130}));
  Value v = fn.arg(DType::kFloat32, PartialShape({70, 130}));
  Value g = fn.arg(DType::kFloat32, PartialShape({70, 130}));
  std::vector<std::string> program = {"Sub $4 $2", "Mul %0 0.1", "AddV2 $2 %1", "Square $4", "Sub %3 $3",
                                      "Mul %4 0.001", "AddV2 $3 %5", "Mul %2 $1", "Sqrt %6", "AddV2 %8 1e-07",
                                      "RealDiv %7 %9", "Sub $0 %10"};
  fetch_all(fn, fn.op("TsElementwise", {w, lr, m, v, g}, program_attrs(program, 5, {11, 2, 6})));
  check_graph(fn, {{random_tensor({70, 130}, 1), Tensor::scalar<float>(0.01f), random_tensor({70, 130}, 2),
                    random_tensor({70, 130}, 3, 0, 1), random_tensor({70, 130}, 4)}},
              "adam");
}

// Inputs made by earlier kernels live in the arena, so outputs may be planned over them. Output
// 0 here is entry 0 and a later entry still reads the input: it must not be overwritten first.
// The same input read only up to output 0's entry may be.
TEST(CpuElementwiseProgram, InPlaceOnlyWhenNoLaterRead) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 40}));
  Value y = fn.arg(DType::kFloat32, PartialShape({-1, 40}));
  Value a = fn.op("Exp", {x}, {{"T", DType::kFloat32}})->out();
  Value c = fn.op("Tanh", {y}, {{"T", DType::kFloat32}})->out();
  Node* early = fn.op("TsElementwise", {a, c}, program_attrs({"Neg $0", "Mul $0 $1", "AddV2 %1 %0"}, 2, {0, 2}));
  fetch_all(fn, early);
  Value d = fn.op("Sigmoid", {x}, {{"T", DType::kFloat32}})->out();
  Node* late = fn.op("TsElementwise", {d, y}, program_attrs({"Mul $0 $1", "Neg %0"}, 2, {1, 0}));
  fetch_all(fn, late);
  check_graph(fn, {{random_tensor({3, 40}, 1), random_tensor({3, 40}, 2)},
                   {random_tensor({50, 40}, 3), random_tensor({50, 40}, 4)}},
              "in place");
}

// Unknown dims that turn out to broadcast: an output that reads only the [1,8] input is
// narrower than the [5,8] iteration space, so the kernel falls back to the reference.
TEST(CpuElementwiseProgram, NarrowOutputAtRunTime) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 8}));
  Value y = fn.arg(DType::kFloat32, PartialShape({-1, 8}));
  fetch_all(fn, fn.op("TsElementwise", {x, y}, program_attrs({"Exp $0", "Mul %0 $1"}, 2, {1, 0})));
  check_graph(fn, {{random_tensor({5, 8}, 1), random_tensor({5, 8}, 2)},
                   {random_tensor({1, 8}, 3), random_tensor({5, 8}, 4)}},
              "narrow output");
}

// Short NHWC rows widened with a per-channel bool operand tiled next to float ones.
TEST(CpuElementwiseProgram, PerChannelBoolOverNhwc) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 6, 6, 8}));
  Value s = fn.arg(DType::kFloat32, PartialShape({8}));
  Value m = fn.arg(DType::kBool, PartialShape({8}));
  fetch_all(fn, fn.op("TsElementwise", {x, s, m},
                      program_attrs({"Mul $0 $1", "Greater %0 0", "LogicalAnd %1 $2", "ZerosLike %0",
                                     "SelectV2 %2 %0 %3", "LogicalNot $2", "Cast %5", "AddV2 %4 %6"},
                                    3, {7, 0})));
  check_graph(fn, {{random_tensor({2, 6, 6, 8}, 1), random_tensor({8}, 2), random_bool({8}, 3)}}, "nhwc");
}

}  // namespace
}  // namespace tessera::cpu::testing
