// The cpu kernels that training graphs need, against the reference kernels: convolution
// gradients (oneDNN backward data / weights), MaxPoolGrad (ties and overlapping windows),
// reductions whose axes arrive at run time, comparison masks and bool casts, elementwise
// programs with per-channel operands over NHWC (short rows widened), assigned values kept
// out of the arena.
#include "backend/cpu/kernel.h"
#include "cpu_test_util.h"
#include "ir/parser.h"

namespace tessera::cpu::testing {
namespace {

struct ConvCase {
  Shape x, f;
  std::vector<int64_t> strides, dilations;
  std::string padding;
};

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {{2, 8, 8, 3}, {3, 3, 3, 16}, {1, 1, 1, 1}, {1, 1, 1, 1}, "SAME"},
      {{3, 9, 7, 16}, {3, 3, 16, 32}, {1, 2, 2, 1}, {1, 1, 1, 1}, "SAME"},
      {{1, 10, 10, 8}, {3, 2, 8, 5}, {1, 2, 3, 1}, {1, 1, 1, 1}, "VALID"},
      {{2, 11, 11, 4}, {3, 3, 4, 6}, {1, 1, 1, 1}, {1, 2, 2, 1}, "SAME"},
      {{2, 6, 6, 8}, {1, 1, 8, 8}, {1, 1, 1, 1}, {1, 1, 1, 1}, "VALID"},
      {{2, 7, 7, 6}, {3, 3, 2, 9}, {1, 1, 1, 1}, {1, 1, 1, 1}, "SAME"},  // grouped: 3 groups
  };
  return cases;
}

AttrMap conv_attrs(const ConvCase& c) {
  return {{"T", DType::kFloat32}, {"strides", c.strides}, {"dilations", c.dilations},
          {"padding", c.padding}, {"data_format", std::string("NHWC")}};
}

// The output shape of the forward convolution, from the reference Conv2D's inference.
Shape conv_out_shape(const ConvCase& c) {
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape(c.x));
  Value f = fn.arg(DType::kFloat32, PartialShape(c.f));
  Node* conv = fn.op("Conv2D", {x, f}, conv_attrs(c));
  fn.result(conv->out());
  return call_function(*fn.g, {random_tensor(c.x, 1), random_tensor(c.f, 2)}, nullptr)[0].shape();
}

Tensor ints(const Shape& s) {
  std::vector<int32_t> v(s.begin(), s.end());
  return Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())});
}

TEST(CpuGradKernels, RegisteredForTrainingOps) {
  for (const char* op : {"Conv2DBackpropInput", "Conv2DBackpropFilter", "MaxPoolGrad", "Greater", "Cast", "Erfc",
                         "SelectV2", "AddN"})
    EXPECT_NE(find_kernel(op), nullptr) << op;
}

TEST(CpuGradKernels, Conv2DBackpropInput) {
  for (const ConvCase& c : conv_cases()) {
    Shape y = conv_out_shape(c);
    for (bool const_sizes : {true, false}) {
      FnGraph fn;
      // input_sizes as a constant (static shapes) or fed at run time (what Shape gives
      // when the batch is unknown).
      Value sizes = const_sizes ? fn.constant(ints(c.x)) : fn.arg(DType::kInt32, PartialShape({4}));
      Value f = fn.arg(DType::kFloat32, PartialShape(c.f));
      Value dy = fn.arg(DType::kFloat32, PartialShape({-1, y[1], y[2], y[3]}));
      fn.result(fn.op("Conv2DBackpropInput", {sizes, f, dy}, conv_attrs(c))->out());
      std::vector<Tensor> args;
      if (!const_sizes) args.push_back(ints(c.x));
      args.push_back(random_tensor(c.f, 3));
      args.push_back(random_tensor(y, 4));
      check_graph(fn, {args}, "Conv2DBackpropInput x" + shape_str(c.x) + " f" + shape_str(c.f) + " " + c.padding);
    }
  }
}

TEST(CpuGradKernels, Conv2DBackpropFilter) {
  for (const ConvCase& c : conv_cases()) {
    Shape y = conv_out_shape(c);
    FnGraph fn;
    Value x = fn.arg(DType::kFloat32, PartialShape({-1, c.x[1], c.x[2], c.x[3]}));
    Value sizes = fn.constant(ints(c.f));
    Value dy = fn.arg(DType::kFloat32, PartialShape({-1, y[1], y[2], y[3]}));
    fn.result(fn.op("Conv2DBackpropFilter", {x, sizes, dy}, conv_attrs(c))->out());
    check_graph(fn, {{random_tensor(c.x, 5), random_tensor(y, 6)}},
                "Conv2DBackpropFilter x" + shape_str(c.x) + " f" + shape_str(c.f) + " " + c.padding);
  }
}

TEST(CpuGradKernels, MaxPoolGrad) {
  struct Case {
    Shape x;
    std::vector<int64_t> ksize, strides;
    std::string padding;
  };
  const std::vector<Case> cases = {{{2, 8, 8, 16}, {1, 2, 2, 1}, {1, 2, 2, 1}, "VALID"},
                                   {{2, 9, 7, 5}, {1, 3, 3, 1}, {1, 2, 2, 1}, "SAME"},   // overlapping
                                   {{1, 5, 5, 70}, {1, 3, 3, 1}, {1, 1, 1, 1}, "SAME"},  // > one channel block
                                   {{3, 11, 11, 2}, {1, 3, 2, 1}, {1, 2, 3, 1}, "VALID"}};
  for (const Case& c : cases)
    for (bool ties : {false, true}) {
      FnGraph fn;
      Value x = fn.arg(DType::kFloat32, PartialShape({-1, c.x[1], c.x[2], c.x[3]}));
      AttrMap attrs = {{"T", DType::kFloat32}, {"ksize", c.ksize}, {"strides", c.strides},
                       {"padding", c.padding}, {"data_format", std::string("NHWC")}};
      Node* pool = fn.op("MaxPool", {x}, attrs);
      Value dy = fn.arg(DType::kFloat32, pool->outputs[0].shape);
      fn.result(fn.op("MaxPoolGrad", {x, pool->out(), dy}, attrs)->out());
      Tensor xv = random_tensor(c.x, 7);
      // Ties: values rounded to a few levels, so windows hold equal maxima; the gradient must
      // go to the first one, as in the reference kernel.
      if (ties)
        for (int64_t i = 0; i < xv.num_elements(); ++i) xv.data<float>()[i] = std::round(xv.data<float>()[i]);
      FnGraph probe;  // the pooled shape for the gradient operand
      Value px = probe.arg(DType::kFloat32, PartialShape(c.x));
      probe.result(probe.op("MaxPool", {px}, attrs)->out());
      Shape ys = call_function(*probe.g, {xv}, nullptr)[0].shape();
      check_graph(fn, {{xv, random_tensor(ys, 8)}}, "MaxPoolGrad " + shape_str(c.x) + c.padding + (ties ? " ties" : ""));
    }
}

TEST(CpuGradKernels, SumWithRunTimeAxes) {
  // The bias/per-channel gradient: Sum over axes computed at run time, incl. short rows
  // (inner 16: the widened path), long rows, the last axis, and no axes at all (a copy).
  struct Case {
    Shape x;
    std::vector<int32_t> axes;
  };
  const std::vector<Case> cases = {{{64, 32, 32, 16}, {0, 1, 2}}, {{4, 5, 300}, {0, 1}}, {{256, 10}, {0}},
                                   {{6, 7, 8}, {2}},             {{6, 7, 8}, {}},        {{3, 2048, 5}, {1}}};
  for (const Case& c : cases)
    for (const char* op : {"Sum", "Mean", "Max"}) {
      FnGraph fn;
      Value x = fn.arg(DType::kFloat32, PartialShape(std::vector<int64_t>(c.x.size(), -1)));
      Value axes = fn.arg(DType::kInt32, PartialShape({-1}));
      fn.result(fn.op(op, {x, axes}, {{"T", DType::kFloat32}, {"Tidx", DType::kInt32}, {"keep_dims", false}})->out());
      Tensor a = Tensor::from_vector<int32_t>(c.axes, {static_cast<int64_t>(c.axes.size())});
      check_graph(fn, {{random_tensor(c.x, 9), a}}, std::string(op) + shape_str(c.x));
    }
}

TEST(CpuGradKernels, ReluMaskChain) {
  // g * Cast(Greater(x, 0)) as autodiff writes ReLU's gradient; also Less/GreaterEqual and a
  // same-shaped comparison operand.
  for (const char* cmp : {"Greater", "GreaterEqual", "Less", "LessEqual"})
    for (bool scalar : {true, false}) {
      FnGraph fn;
      Value x = fn.arg(DType::kFloat32, PartialShape({-1, 6, 6, 8}));
      Value g = fn.arg(DType::kFloat32, PartialShape({-1, 6, 6, 8}));
      Value t = scalar ? fn.constant(Tensor::from_vector<float>({0.f}, {})) : g;
      Value mask = fn.op(cmp, {x, t}, {{"T", DType::kFloat32}})->out();
      fn.result(mask);
      Value m = fn.op("Cast", {mask}, {{"SrcT", DType::kBool}, {"DstT", DType::kFloat32}, {"Truncate", false}})->out();
      fn.result(fn.op("Mul", {g, m}, {{"T", DType::kFloat32}})->out());
      Tensor xv = random_tensor({3, 6, 6, 8}, 10);
      xv.data<float>()[0] = 0.f;  // the boundary itself
      check_graph(fn, {{xv, random_tensor({3, 6, 6, 8}, 11)}}, std::string(cmp) + (scalar ? " scalar" : " tensor"));
    }
}

TEST(CpuGradKernels, DropoutSelectAndAddN) {
  // keep ? x * scale : 0 (scalar else), its gradient (tensor else), a scalar condition, and
  // the AddN that sums a value's gradients; NaN in the unselected operand must not leak.
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 40}));
  Value y = fn.arg(DType::kFloat32, PartialShape({-1, 40}));
  Value u = fn.arg(DType::kFloat32, PartialShape({-1, 40}));
  Value keep = fn.op("GreaterEqual", {u, fn.constant(Tensor::from_vector<float>({0.3f}, {}))}, {{"T", DType::kFloat32}})->out();
  Value zero = fn.constant(Tensor::from_vector<float>({0.f}, {}));
  Value one_cond = fn.constant(Tensor::scalar<bool>(false));
  fn.result(fn.op("SelectV2", {keep, x, zero}, {{"T", DType::kFloat32}})->out());
  fn.result(fn.op("SelectV2", {keep, x, y}, {{"T", DType::kFloat32}})->out());
  fn.result(fn.op("SelectV2", {one_cond, x, zero}, {{"T", DType::kFloat32}})->out());
  fn.result(fn.op("AddN", {x, y, u}, {{"T", DType::kFloat32}, {"N", int64_t(3)}})->out());
  Tensor xv = random_tensor({7, 40}, 16);
  xv.data<float>()[3] = std::nanf("");
  check_graph(fn, {{xv, random_tensor({7, 40}, 17), random_tensor({7, 40}, 18, 0.f, 1.f)}}, "select/addn");
}

TEST(CpuGradKernels, PerChannelElementwiseOverNhwc) {
  // BatchNorm-style programs: NHWC tensors with [C] operands and scalars (short rows that the
  // kernel widens), plus a [N,1,1,C] operand it must not widen, and Erfc.
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 9, 7, 16}));
  Value scale = fn.arg(DType::kFloat32, PartialShape({16}));
  Value shift = fn.arg(DType::kFloat32, PartialShape({16}));
  Value per_image = fn.arg(DType::kFloat32, PartialShape({-1, 1, 1, 16}));
  std::vector<std::string> program = {"Mul $0 $1", "AddV2 %0 $2", "Mul %1 0.5", "Sub %2 $0"};
  fn.result(fn.op("TsElementwise", {x, scale, shift},
                  {{"T", DType::kFloat32}, {"N", int64_t(3)}, {"program", program}})->out());
  fn.result(fn.op("Mul", {x, per_image}, {{"T", DType::kFloat32}})->out());
  fn.result(fn.op("Erfc", {x}, {{"T", DType::kFloat32}})->out());
  for (int64_t n : {1, 5, 64})
    check_graph(fn, {{random_tensor({n, 9, 7, 16}, 12), random_tensor({16}, 13), random_tensor({16}, 14),
                      random_tensor({n, 1, 1, 16}, 15)}},
                "per-channel n=" + std::to_string(n));
}

}  // namespace
}  // namespace tessera::cpu::testing

namespace tessera::cpu::testing {
namespace {

TEST(CpuGradKernels, AssignedValuesSurviveLaterSteps) {
  // A training step assigns freshly computed values (kept out of the arena, not cloned); later
  // steps of the same run, and the next runs, must not overwrite them. y and r have the size of
  // the assigned value, so an arena slot shared with it would show up in v.
  auto g = parse_graph(R"(
graph (x: float32[64,256]) -> (r, ^assign) {
  v = VarHandleOp() {dtype=float32, shape=shape[64,256], shared_name="v"}
  a = ReadVariableOp(v) {dtype=float32}
  n = Mul(a, a) {T=float32}
  assign = AssignVariableOp(v, n) {dtype=float32}
  y = AddV2(x, x) {T=float32}
  r = Mul(y, y) {T=float32}
})");
  ResourceStore vars;
  Tensor v0 = random_tensor({64, 256}, 19, 0.9f, 1.1f);
  vars.assign("/v", v0);
  auto exe = CpuExecutable::compile(g, {2, ""});
  Tensor x = random_tensor({64, 256}, 20);
  std::vector<float> want(v0.data<float>(), v0.data<float>() + v0.num_elements());
  for (int run = 0; run < 3; ++run) {
    std::vector<Tensor> out = exe->run({x}, &vars);
    for (float& w : want) w = w * w;
    Tensor v = vars.read("/v");
    for (int64_t i = 0; i < v.num_elements(); ++i) {
      ASSERT_FLOAT_EQ(v.data<float>()[i], want[static_cast<size_t>(i)]) << "run " << run << " at " << i;
      const float xx = 2 * x.data<float>()[i];
      ASSERT_FLOAT_EQ(out[0].data<float>()[i], xx * xx) << "run " << run << " at " << i;
    }
  }
}

}  // namespace
}  // namespace tessera::cpu::testing

namespace tessera::cpu::testing {
namespace {

// A training step reads a weight through the forward's handle node and assigns it through
// the update's own handle node with the same shared_name: one variable, so the matmul must not
// keep packed copies of it (it repacked every run: 0.3 ms of the seed MLP's 4.7 ms step), and
// every run must see the value the previous run assigned.
TEST(CpuGradKernels, VariableWrittenThroughAnotherHandleIsNotPacked) {
  auto g = parse_graph(R"(
graph (x: float32[8,16]) -> (y, ^assign) {
  w = VarHandleOp() {dtype=float32, shape=shape[16,4], shared_name="w"}
  w_update = VarHandleOp() {dtype=float32, shape=shape[16,4], shared_name="w"}
  a = ReadVariableOp(w) {dtype=float32}
  y = MatMul(x, a) {T=float32, transpose_a=false, transpose_b=false}
  half = Mul(a, a) {T=float32}
  assign = AssignVariableOp(w_update, half) {dtype=float32}
})");
  ResourceStore vars;
  Tensor w0 = random_tensor({16, 4}, 23, 0.5f, 1.0f);
  vars.assign("/w", w0);
  auto exe = CpuExecutable::compile(g, {2, ""});
  Tensor x = random_tensor({8, 16}, 24);
  std::vector<float> w(w0.data<float>(), w0.data<float>() + w0.num_elements());
  for (int run = 0; run < 3; ++run) {
    std::vector<Tensor> out = exe->run({x}, &vars);
    for (int64_t i = 0; i < 8; ++i)
      for (int64_t j = 0; j < 4; ++j) {
        float want = 0;
        for (int64_t k = 0; k < 16; ++k) want += x.data<float>()[i * 16 + k] * w[static_cast<size_t>(k * 4 + j)];
        ASSERT_NEAR(out[0].data<float>()[i * 4 + j], want, 1e-4f) << "run " << run;
      }
    for (float& v : w) v = v * v;
  }
  EXPECT_TRUE(exe->packed_weights().empty()) << "a written variable was packed as a constant weight";

  // Read-only, the same weight is packed once.
  auto ro = parse_graph(R"(
graph (x: float32[8,16]) -> (y) {
  w = VarHandleOp() {dtype=float32, shape=shape[16,4], shared_name="w"}
  a = ReadVariableOp(w) {dtype=float32}
  y = MatMul(x, a) {T=float32, transpose_a=false, transpose_b=false}
})");
  auto exe_ro = CpuExecutable::compile(ro, {2, ""});
  exe_ro->run({x}, &vars);
  EXPECT_EQ(exe_ro->packed_weights().size(), 1u);
}

TEST(CpuGradKernels, MatMulRowBlocksOnOurPool) {
  // TESSERA_MATMUL_SPLIT=1 (read when kernels are built): row blocks of single-threaded oneDNN
  // matmuls on parallel_for's pool, incl. a transposed `a` (the weight gradient x^T dy) and
  // bias + residual + activation post-ops on each block.
  setenv("TESSERA_MATMUL_SPLIT", "1", 1);
  FnGraph fn;
  Value x = fn.arg(DType::kFloat32, PartialShape({-1, 160}));
  Value w = fn.arg(DType::kFloat32, PartialShape({160, 40}));
  Value dy = fn.arg(DType::kFloat32, PartialShape({-1, 40}));
  Value bias = fn.constant(random_tensor({40}, 21));
  AttrMap mm = {{"T", DType::kFloat32}, {"transpose_a", false}, {"transpose_b", false}};
  AttrMap ta = mm, tb = mm;
  ta["transpose_a"] = true;
  tb["transpose_b"] = true;
  fn.result(fn.op("MatMul", {x, w}, mm)->out());
  fn.result(fn.op("MatMul", {x, dy}, ta)->out());  // [160, 40]: rows split over x's columns
  fn.result(fn.op("MatMul", {dy, w}, tb)->out());
  AttrMap fused = mm;
  fused["has_bias"] = true;
  fused["has_residual"] = true;
  fused["activation"] = std::string("Relu");
  fn.result(fn.op("TsFusedMatMul", {x, w, bias, dy}, fused)->out());
  check_graph(fn, {{random_tensor({300, 160}, 22), random_tensor({160, 40}, 23), random_tensor({300, 40}, 24)},
                   {random_tensor({7, 160}, 25), random_tensor({160, 40}, 26), random_tensor({7, 40}, 27)}},
              "matmul row blocks", 2);
  unsetenv("TESSERA_MATMUL_SPLIT");
}

}  // namespace
}  // namespace tessera::cpu::testing
