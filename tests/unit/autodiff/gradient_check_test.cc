// Finite-difference checks of every op gradient (ir/grad.h), in float64 where the op's
// reference kernel has a float64 form. Each case is a small function graph; the loss is the
// sum of each result times fixed random weights, so every output element's gradient matters.
// The registry walk at the end fails when an op has a gradient but no case here.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

#include "ir/grad.h"
#include "ir/interpreter.h"
#include "ir/parser.h"
#include "passes/autodiff.h"

namespace tessera {
namespace {

struct GradCase {
  std::string op;      // the op whose gradient this checks
  std::string header;  // "(x: float64[2,3]) -> (r)"
  std::string body;    // node lines
  double lo = -1, hi = 1;        // random input range
  double step = 1e-6, tol = 1e-6;  // central-difference step; |analytic - numeric| <= tol·(1 + max|numeric|)
  std::set<std::string> stopped;   // args behind a gradient stop: their gradient must be exactly zero
  std::string library;             // library functions ("func f (...) -> (...) {...}")
};

GradCase f32(GradCase c) {  // ops whose reference kernels are float32 only
  c.step = 3e-3;
  c.tol = 5e-3;
  return c;
}

std::vector<GradCase> cases() {
  std::vector<GradCase> v;
  auto unary = [&](const std::string& op, double lo = -1, double hi = 1) {
    v.push_back({op, "(x: float64[2,3]) -> (r)", "r = " + op + "(x) {T=float64}", lo, hi});
  };
  for (const char* op : {"Neg", "Abs", "Square", "Exp", "Expm1", "Sin", "Cos", "Tanh", "Sigmoid", "Erf",
                         "Erfc", "Relu", "Elu", "Selu", "Softplus", "Softsign"})
    unary(op);
  for (const char* op : {"Log", "Log1p", "Sqrt", "Rsqrt", "Reciprocal", "Inv"}) unary(op, 0.5, 2);
  unary("Relu6", -2, 8);
  for (const char* op : {"Tan", "Sinh", "Cosh", "Atan", "Asinh"}) unary(op);
  for (const char* op : {"Asin", "Acos", "Atanh"}) unary(op, -0.8, 0.8);
  unary("Acosh", 1.5, 3);
  // Piecewise-constant ops: the gradient is zero (and so is the finite difference).
  for (const char* op : {"Sign", "Floor", "Ceil", "Round", "Rint"}) unary(op, -3, 3);
  v.push_back({"LeakyRelu", "(x: float64[2,3]) -> (r)", "r = LeakyRelu(x) {T=float64, alpha=0.3}"});
  v.push_back({"Cast", "(x: float64[2,3]) -> (r)",
               "c = Cast(x) {SrcT=float64, DstT=float32}\n  s = Square(c) {T=float32}\n"
               "  r = Cast(s) {SrcT=float32, DstT=float64}", -1, 1, 1e-3, 1e-4});
  v.push_back({"ZerosLike", "(x: float64[3]) -> (r)", "z = ZerosLike(x) {T=float64}\n  r = AddV2(z, x) {T=float64}"});
  v.push_back({"OnesLike", "(x: float64[3]) -> (r)", "o = OnesLike(x) {T=float64}\n  r = Mul(o, x) {T=float64}"});

  // Broadcasting binary ops: x [2,3] against y [3] and [2,1].
  auto binary = [&](const std::string& op, double lo = -1, double hi = 1) {
    v.push_back({op, "(x: float64[2,3], y: float64[3]) -> (r)", "r = " + op + "(x, y) {T=float64}", lo, hi});
    v.push_back({op, "(x: float64[2,1], y: float64[1,3]) -> (r)", "r = " + op + "(x, y) {T=float64}", lo, hi});
  };
  for (const char* op : {"Add", "AddV2", "Sub", "Mul", "Maximum", "Minimum", "SquaredDifference"}) binary(op);
  for (const char* op : {"RealDiv", "Div", "Pow"}) binary(op, 0.5, 2);
  v.push_back({"AddN", "(x: float64[2,3], y: float64[2,3]) -> (r)", "r = AddN(x, y, x) {T=float64, N=3}"});
  v.push_back({"BiasAdd", "(x: float64[2,2,3], b: float64[3]) -> (r)", "r = BiasAdd(x, b) {T=float64}"});
  v.push_back({"BiasAdd", "(x: float64[2,3,2], b: float64[3]) -> (r)",
               "r = BiasAdd(x, b) {T=float64, data_format=\"NCHW\"}"});
  v.push_back({"BiasAddV1", "(x: float64[2,3], b: float64[3]) -> (r)", "r = BiasAddV1(x, b) {T=float64}"});
  v.push_back({"Select", "(x: float64[2,3], y: float64[2,3]) -> (r)",
               "c = Const() {dtype=bool, value=bool[2]{true, false}}\n  r = Select(c, x, y) {T=float64}"});
  v.push_back({"SelectV2", "(x: float64[2,3], y: float64[3]) -> (r)",
               "c = Const() {dtype=bool, value=bool[3]{true, false, true}}\n  r = SelectV2(c, x, y) {T=float64}"});
  // x in [-3, 3] against lo in [-2, 0] and hi in [0, 2]: some elements clip on each side.
  v.push_back({"ClipByValue", "(x: float64[3,4], lo: float64[], hi: float64[]) -> (r)",
               "k1 = Const() {dtype=float64, value=float64[]{1}}\n  k3 = Const() {dtype=float64, value=float64[]{3}}\n"
               "  t = Mul(x, k3) {T=float64}\n  l = Sub(lo, k1) {T=float64}\n  h = AddV2(hi, k1) {T=float64}\n"
               "  r = ClipByValue(t, l, h) {T=float64}"});

  // Reductions and softmax.
  auto reduce = [&](const std::string& op) {
    v.push_back({op, "(x: float64[2,3,2]) -> (r)",
                 "a = Const() {dtype=int32, value=int32[2]{0, -1}}\n  r = " + op + "(x, a) {T=float64}"});
    v.push_back({op, "(x: float64[2,3]) -> (r)",
                 "a = Const() {dtype=int32, value=int32[]{1}}\n  r = " + op + "(x, a) {T=float64, keep_dims=true}"});
  };
  for (const char* op : {"Sum", "Mean", "Max", "Min"}) reduce(op);
  for (const char* flags : {"", ", exclusive=true", ", reverse=true", ", exclusive=true, reverse=true"})
    v.push_back({"Cumsum", "(x: float64[2,4]) -> (r)",
                 std::string("a = Const() {dtype=int32, value=int32[]{1}}\n  r = Cumsum(x, a) {T=float64") + flags + "}"});
  v.push_back({"L2Loss", "(x: float64[2,3]) -> (r)", "r = L2Loss(x) {T=float64}"});
  v.push_back({"Softmax", "(x: float64[2,4]) -> (r)", "r = Softmax(x) {T=float64}", -2, 2});
  v.push_back({"LogSoftmax", "(x: float64[2,4]) -> (r)", "r = LogSoftmax(x) {T=float64}", -2, 2});

  // Forwarding ops.
  for (const char* op : {"Identity", "Snapshot"})
    v.push_back({op, "(x: float64[2,3]) -> (r)", std::string("r = ") + op + "(x) {T=float64}"});
  for (const char* op : {"StopGradient", "PreventGradient"}) {
    GradCase c{op, "(x: float64[2,3], c: float64[2,3]) -> (r)",
               std::string("s = ") + op + "(c) {T=float64}\n  r = Mul(s, x) {T=float64}"};
    c.stopped = {"c"};
    v.push_back(c);
  }
  v.push_back({"IdentityN", "(x: float64[2], y: float64[3]) -> (r0, r1)",
               "n = IdentityN(x, y) {T=[float64, float64]}\n  r0 = Square(n:0) {T=float64}\n  r1 = Identity(n:1) {T=float64}"});
  v.push_back({"EnsureShape", "(x: float64[2,3]) -> (r)", "r = EnsureShape(x) {T=float64, shape=shape[2,3]}"});

  // Shapes, slicing, joining.
  v.push_back({"Reshape", "(x: float64[2,3]) -> (r)",
               "s = Const() {dtype=int32, value=int32[2]{3, 2}}\n  r = Reshape(x, s) {T=float64}"});
  v.push_back({"ExpandDims", "(x: float64[2,3]) -> (r)",
               "a = Const() {dtype=int32, value=int32[]{1}}\n  r = ExpandDims(x, a) {T=float64}"});
  v.push_back({"Squeeze", "(x: float64[2,1,3]) -> (r)", "r = Squeeze(x) {T=float64, squeeze_dims=[1]}"});
  v.push_back({"Transpose", "(x: float64[2,3,4]) -> (r)",
               "p = Const() {dtype=int32, value=int32[3]{2, 0, 1}}\n  r = Transpose(x, p) {T=float64}"});
  v.push_back({"Tile", "(x: float64[2,3]) -> (r)",
               "m = Const() {dtype=int32, value=int32[2]{2, 3}}\n  r = Tile(x, m) {T=float64}"});
  v.push_back({"BroadcastTo", "(x: float64[3]) -> (r)",
               "s = Const() {dtype=int32, value=int32[2]{2, 3}}\n  r = BroadcastTo(x, s) {T=float64}"});
  v.push_back({"Pad", "(x: float64[2,3]) -> (r)",
               "p = Const() {dtype=int32, value=int32[2,2]{1, 0, 2, 1}}\n  r = Pad(x, p) {T=float64}"});
  v.push_back({"PadV2", "(x: float64[2,3]) -> (r)",
               "p = Const() {dtype=int64, value=int64[2,2]{0, 1, 1, 1}}\n"
               "  k = Const() {dtype=float64, value=float64[]{0.5}}\n  r = PadV2(x, p, k) {T=float64, Tpaddings=int64}"});
  v.push_back({"ReverseV2", "(x: float64[2,3]) -> (r)",
               "a = Const() {dtype=int32, value=int32[1]{1}}\n  r = ReverseV2(x, a) {T=float64}"});
  v.push_back({"Slice", "(x: float64[3,4]) -> (r)",
               "b = Const() {dtype=int32, value=int32[2]{1, 1}}\n  s = Const() {dtype=int32, value=int32[2]{2, -1}}\n"
               "  r = Slice(x, b, s) {T=float64, Index=int32}"});
  v.push_back({"StridedSlice", "(x: float64[4,5]) -> (r)",
               "b = Const() {dtype=int32, value=int32[2]{1, 4}}\n  e = Const() {dtype=int32, value=int32[2]{0, 0}}\n"
               "  s = Const() {dtype=int32, value=int32[2]{2, -2}}\n"
               "  r = StridedSlice(x, b, e, s) {T=float64, Index=int32, end_mask=1}"});
  v.push_back({"StridedSlice", "(x: float64[3,4]) -> (r)",  // shrink axis (x[1]) as Keras' shape code does
               "b = Const() {dtype=int32, value=int32[1]{1}}\n  e = Const() {dtype=int32, value=int32[1]{2}}\n"
               "  s = Const() {dtype=int32, value=int32[1]{1}}\n"
               "  r = StridedSlice(x, b, e, s) {T=float64, Index=int32, shrink_axis_mask=1}"});
  v.push_back({"ConcatV2", "(x: float64[2,3], y: float64[2,1]) -> (r)",
               "a = Const() {dtype=int32, value=int32[]{-1}}\n  r = ConcatV2(x, y, a) {T=float64, N=2}"});
  v.push_back({"Concat", "(x: float64[2,3], y: float64[1,3]) -> (r)",
               "a = Const() {dtype=int32, value=int32[]{0}}\n  r = Concat(a, x, y) {T=float64, N=2}"});
  v.push_back({"Pack", "(x: float64[3], y: float64[3]) -> (r)", "r = Pack(x, y) {T=float64, N=2, axis=1}"});
  v.push_back({"Unpack", "(x: float64[2,3]) -> (r0, r1)",
               "u = Unpack(x) {T=float64, num=3, axis=1}\n  r0 = Identity(u:0) {T=float64}\n  r1 = Identity(u:2) {T=float64}"});
  v.push_back({"Split", "(x: float64[2,4]) -> (r0)",  // one output unused: its gradient is zero
               "a = Const() {dtype=int32, value=int32[]{1}}\n  s = Split(a, x) {T=float64, num_split=2}\n"
               "  r0 = Identity(s:1) {T=float64}"});
  v.push_back({"SplitV", "(x: float64[5,2]) -> (r0, r1)",
               "z = Const() {dtype=int32, value=int32[2]{2, 3}}\n  a = Const() {dtype=int32, value=int32[]{0}}\n"
               "  s = SplitV(x, z, a) {T=float64, Tlen=int32, num_split=2}\n"
               "  r0 = Identity(s:0) {T=float64}\n  r1 = Identity(s:1) {T=float64}"});
  v.push_back({"GatherV2", "(p: float64[4,3]) -> (r)",  // repeated index: contributions add up
               "i = Const() {dtype=int32, value=int32[2,2]{3, 0, 3, 1}}\n  a = Const() {dtype=int32, value=int32[]{0}}\n"
               "  r = GatherV2(p, i, a) {Tparams=float64, Tindices=int32, Taxis=int32}"});
  v.push_back({"Gather", "(p: float64[4,2]) -> (r)",
               "i = Const() {dtype=int64, value=int64[3]{2, 2, 0}}\n  r = Gather(p, i) {Tparams=float64, Tindices=int64}"});

  // Linear algebra and nn.
  for (const char* ta : {"false", "true"})
    for (const char* tb : {"false", "true"}) {
      std::string a = std::string(ta) == "true" ? "float64[3,2]" : "float64[2,3]";
      std::string b = std::string(tb) == "true" ? "float64[4,3]" : "float64[3,4]";
      v.push_back({"MatMul", "(a: " + a + ", b: " + b + ") -> (r)",
                   std::string("r = MatMul(a, b) {T=float64, transpose_a=") + ta + ", transpose_b=" + tb + "}"});
    }
  v.push_back({"BatchMatMulV2", "(a: float64[2,2,3], b: float64[3,4]) -> (r)",  // broadcast batch
               "r = BatchMatMulV2(a, b) {T=float64}"});
  v.push_back({"BatchMatMulV2", "(a: float64[2,3,2], b: float64[2,4,3]) -> (r)",
               "r = BatchMatMulV2(a, b) {T=float64, adj_x=true, adj_y=true}"});
  v.push_back({"BatchMatMul", "(a: float64[2,2,3], b: float64[2,3,2]) -> (r)", "r = BatchMatMul(a, b) {T=float64}"});
  // Keras MultiHeadAttention's projections and attention products.
  for (const char* eq : {"abc,cde->abde", "aecd,abcd->acbe", "acbe,aecd->abcd", "abcd,cde->abe"}) {
    std::map<char, int> size = {{'a', 2}, {'b', 3}, {'c', 2}, {'d', 3}, {'e', 2}};
    std::string e(eq), a_sub = e.substr(0, e.find(',')), b_sub = e.substr(e.find(',') + 1, e.find('-') - e.find(',') - 1);
    auto shape = [&](const std::string& sub) {
      std::string t = "float64[";
      for (size_t k = 0; k < sub.size(); ++k) t += (k ? "," : "") + std::to_string(size[sub[k]]);
      return t + "]";
    };
    v.push_back({"Einsum", "(a: " + shape(a_sub) + ", b: " + shape(b_sub) + ") -> (r)",
                 std::string("r = Einsum(a, b) {T=float64, N=2, equation=\"") + eq + "\"}"});
  }
  v.push_back({"Conv2D", "(x: float64[2,5,5,2], f: float64[3,3,2,3]) -> (r)",
               "r = Conv2D(x, f) {T=float64, padding=\"SAME\", strides=[1, 2, 2, 1]}"});
  v.push_back({"Conv2D", "(x: float64[1,6,5,2], f: float64[2,3,2,2]) -> (r)",
               "r = Conv2D(x, f) {T=float64, padding=\"VALID\", strides=[1, 1, 1, 1], dilations=[1, 2, 1, 1]}"});
  v.push_back({"Conv2D", "(x: float64[1,2,4,4], f: float64[3,3,2,2]) -> (r)",
               "r = Conv2D(x, f) {T=float64, padding=\"SAME\", strides=[1, 1, 1, 1], data_format=\"NCHW\"}"});
  v.push_back({"Conv2DBackpropInput", "(f: float64[3,3,2,3], dy: float64[1,3,3,3]) -> (r)",
               "s = Const() {dtype=int32, value=int32[4]{1, 5, 5, 2}}\n"
               "  r = Conv2DBackpropInput(s, f, dy) {T=float64, padding=\"SAME\", strides=[1, 2, 2, 1]}"});
  v.push_back({"DepthwiseConv2dNative", "(x: float64[2,5,5,2], f: float64[3,3,2,2]) -> (r)",
               "r = DepthwiseConv2dNative(x, f) {T=float64, padding=\"SAME\", strides=[1, 2, 2, 1]}"});
  v.push_back({"DepthwiseConv2dNative", "(x: float64[1,3,5,4], f: float64[2,2,3,1]) -> (r)",
               "r = DepthwiseConv2dNative(x, f) {T=float64, padding=\"VALID\", strides=[1, 1, 1, 1], data_format=\"NCHW\"}"});
  v.push_back({"MaxPool", "(x: float64[2,4,5,2]) -> (r)",
               "r = MaxPool(x) {T=float64, ksize=[1, 2, 3, 1], strides=[1, 2, 2, 1], padding=\"SAME\"}"});
  v.push_back({"MaxPool", "(x: float64[1,2,4,4]) -> (r)",
               "r = MaxPool(x) {T=float64, ksize=[1, 1, 2, 2], strides=[1, 1, 2, 2], padding=\"VALID\", data_format=\"NCHW\"}"});
  v.push_back({"AvgPool", "(x: float64[2,4,5,2]) -> (r)",
               "r = AvgPool(x) {T=float64, ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1], padding=\"SAME\"}"});
  for (const char* version : {"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"}) {
    std::string u = std::string(version) == "FusedBatchNorm" ? "" : ", U=float32";
    for (const char* training : {"true", "false"})
      v.push_back(f32({version,
                       "(x: float32[2,3,3,2], s: float32[2], o: float32[2], m: float32[2], var: float32[2]) -> (r)",
                       std::string("b = ") + version + "(x, s, o, m, var) {T=float32" + u +
                           ", epsilon=0.001, is_training=" + training + "}\n  r = Identity(b:0) {T=float32}",
                       0.5, 2}));
  }
  v.push_back(f32({"FusedBatchNormV3",  // channels-first, training
                   "(x: float32[2,2,3,3], s: float32[2], o: float32[2], m: float32[0], var: float32[0]) -> (r)",
                   "b = FusedBatchNormV3(x, s, o, m, var) {T=float32, U=float32, data_format=\"NCHW\"}\n"
                   "  r = Identity(b:0) {T=float32}",
                   0.5, 2}));
  // Training-mode batch norm (TsBatchNormTrainingGrad), with a fused Relu, and with the
  // statistics outputs in the loss too.
  for (const char* act : {"", "Relu"})
    v.push_back({"TsBatchNormTraining", "(x: float64[3,2,2,3], s: float64[3], o: float64[3]) -> (r)",
                 std::string("b = TsBatchNormTraining(x, s, o) {T=float64, epsilon=0.001, activation=\"") + act +
                     "\"}\n  r = Identity(b:0) {T=float64}"});
  v.push_back({"TsBatchNormTraining", "(x: float64[4,3], s: float64[3], o: float64[3]) -> (r0, r1, r2)",
               "b = TsBatchNormTraining(x, s, o) {T=float64, epsilon=0.01}\n  r0 = Identity(b:0) {T=float64}\n"
               "  r1 = Identity(b:1) {T=float64}\n  r2 = Identity(b:2) {T=float64}"});
  // Conditionals: the taken branch's gradient; an argument one branch ignores gets zeros.
  const std::string branches =
      "func mul (a: float64[3], b: float64[3]) -> (m, n) {\n  m = Mul(a, b) {T=float64}\n  n = Identity(a) {T=float64}\n}\n"
      "func sin (a: float64[3], b: float64[3]) -> (s, a) {\n  s = Sin(a) {T=float64}\n}\n";
  for (const char* cond : {"true", "false"}) {
    GradCase c{"If", "(x: float64[3], y: float64[3]) -> (r0, r1)",
               std::string("c = Const() {dtype=bool, value=bool[]{") + cond + "}}\n"
               "  i = If(c, x, y) {Tcond=bool, Tin=[float64, float64], Tout=[float64, float64], "
               "then_branch=@mul, else_branch=@sin, "
               "output_shapes=[shape[3], shape[3]]}\n  r0 = Identity(i:0) {T=float64}\n  r1 = Square(i:1) {T=float64}"};
    c.library = branches;
    v.push_back(c);
    c.op = "StatelessIf";
    c.body.replace(c.body.find("If("), 3, "StatelessIf(");
    v.push_back(c);
  }
  for (int index : {0, 1, 5}) {  // 5: out of range runs the last branch
    GradCase c{"Case", "(x: float64[3], y: float64[3]) -> (r0, r1)",
               "k = Const() {dtype=int32, value=int32[]{" + std::to_string(index) + "}}\n"
               "  i = Case(k, x, y) {Tin=[float64, float64], Tout=[float64, float64], branches=[@mul, @sin], "
               "output_shapes=[shape[3], shape[3]]}\n"
               "  r0 = Identity(i:0) {T=float64}\n  r1 = Identity(i:1) {T=float64}"};
    c.library = branches;
    v.push_back(c);
    c.op = "StatelessCase";
    c.body.replace(c.body.find("Case("), 5, "StatelessCase(");
    v.push_back(c);
  }
  // Loops (more in while_grad_test.cc): a = y; 3 times a *= x.
  for (const char* op : {"While", "StatelessWhile"}) {
    GradCase c{op, "(x: float64[3], y: float64[3]) -> (r)",
               std::string("i0 = Const() {dtype=int32, value=int32[]{0}}\n  w = ") + op +
                   "(i0, y, x) {T=[int32, float64, float64], body=@loop_body, cond=@loop_cond, "
                   "output_shapes=[shape[], shape[3], shape[3]]}\n  r = Identity(w:1) {T=float64}"};
    c.library =
        "func loop_cond (i: int32[], a: float64[3], x: float64[3]) -> (c) {\n"
        "  n = Const() {dtype=int32, value=int32[]{3}}\n  c = Less(i, n) {T=int32}\n}\n"
        "func loop_body (i: int32[], a: float64[3], x: float64[3]) -> (j, m, x) {\n"
        "  one = Const() {dtype=int32, value=int32[]{1}}\n  j = AddV2(i, one) {T=int32}\n"
        "  m = Mul(a, x) {T=float64}\n}\n";
    v.push_back(c);
  }
  // TensorLists: gradients are lists of the items' gradients.
  const std::string list = "es = Const() {dtype=int32, value=int32[1]{2}}\n"
                           "  l = TensorListFromTensor(x, es) {element_dtype=float64, shape_type=int32}\n  ";
  const std::string idx = "k0 = Const() {dtype=int32, value=int32[]{0}}\n  k2 = Const() {dtype=int32, value=int32[]{2}}\n  ";
  v.push_back({"TensorListFromTensor", "(x: float64[3,2]) -> (r)",
               list + "r = TensorListStack(l, es) {element_dtype=float64, num_elements=3}"});
  v.push_back({"TensorListStack", "(x: float64[3,2]) -> (r)",
               list + "s = TensorListStack(l, es) {element_dtype=float64, num_elements=3}\n  r = Square(s) {T=float64}"});
  v.push_back({"TensorListGetItem", "(x: float64[3,2]) -> (r0, r1)",  // two reads: list gradients add
               list + idx + "r0 = TensorListGetItem(l, k0, es) {element_dtype=float64}\n"
                            "  r1 = TensorListGetItem(l, k2, es) {element_dtype=float64}"});
  v.push_back({"TensorListSetItem", "(x: float64[3,2], y: float64[2]) -> (r)",
               list + idx + "m = TensorListSetItem(l, k2, y) {element_dtype=float64}\n"
                            "  r = TensorListStack(m, es) {element_dtype=float64, num_elements=3}"});
  v.push_back({"TensorListGather", "(x: float64[3,2]) -> (r)",  // a repeated index: contributions add
               list + "i = Const() {dtype=int32, value=int32[3]{2, 0, 2}}\n"
                      "  r = TensorListGather(l, i, es) {element_dtype=float64}"});
  const std::string scatter_idx = "i = Const() {dtype=int32, value=int32[2]{3, 1}}\n  ";
  v.push_back({"TensorListScatter", "(y: float64[2,2]) -> (r)",
               "es = Const() {dtype=int32, value=int32[1]{2}}\n  " + scatter_idx +
                   "m = TensorListScatter(y, i, es) {element_dtype=float64, shape_type=int32}\n"
                   "  r = TensorListStack(m, es) {element_dtype=float64, num_elements=4}"});
  v.push_back({"TensorListScatterV2", "(y: float64[2,2]) -> (r)",
               "es = Const() {dtype=int32, value=int32[1]{2}}\n  " + scatter_idx +
                   "n = Const() {dtype=int32, value=int32[]{5}}\n"
                   "  m = TensorListScatterV2(y, i, es, n) {element_dtype=float64, shape_type=int32}\n"
                   "  r = TensorListStack(m, es) {element_dtype=float64, num_elements=5}"});
  v.push_back({"TensorListScatterIntoExistingList", "(x: float64[3,2], y: float64[2,2]) -> (r)",
               list + "i = Const() {dtype=int32, value=int32[2]{2, 0}}\n"
                      "  m = TensorListScatterIntoExistingList(l, y, i) {element_dtype=float64}\n"
                      "  r = TensorListStack(m, es) {element_dtype=float64, num_elements=3}"});
  for (bool stack : {true, false}) {  // with and without a gradient for the popped list
    v.push_back({stack ? "TensorListPushBack" : "TensorListPopBack", "(x: float64[3,2], y: float64[2]) -> (r0, r1)",
                 list + "m = TensorListPushBack(l, y) {element_dtype=float64}\n"
                        "  p = TensorListPopBack(m, es) {element_dtype=float64}\n"
                        "  q = TensorListPushBack(p:0, y) {element_dtype=float64}\n" +
                     (stack ? std::string("  r0 = TensorListStack(q, es) {element_dtype=float64, num_elements=4}\n")
                            : std::string("  r0 = Identity(x) {T=float64}\n")) +
                     "  r1 = Square(p:1) {T=float64}"});
  }
  return v;
}

std::string label(const GradCase& c) { return c.op + " " + c.header; }

Tensor random_tensor(DType t, const Shape& s, std::mt19937& rng, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  Tensor out(t, s);
  for (int64_t i = 0; i < out.num_elements(); ++i) {
    if (t == DType::kFloat64) out.data<double>()[i] = d(rng);
    else out.data<float>()[i] = static_cast<float>(d(rng));
  }
  return out;
}

double at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::kFloat64 ? t.data<double>()[i] : t.data<float>()[i];
}
void set(Tensor& t, int64_t i, double v) {
  if (t.dtype() == DType::kFloat64) t.data<double>()[i] = v;
  else t.data<float>()[i] = static_cast<float>(v);
}

// gtest prints parameters of failing cases with this.
void PrintTo(const GradCase& c, std::ostream* os) { *os << label(c); }

class GradientCheck : public ::testing::TestWithParam<GradCase> {};

TEST_P(GradientCheck, MatchesFiniteDifferences) {
  const GradCase& c = GetParam();
  auto g = parse_graph("graph " + c.header + " {\n  " + c.body + "\n}\n" + c.library);
  std::mt19937 rng(1234);
  // loss = sum_k sum(result_k * w_k)
  std::vector<Value> terms;
  for (size_t k = 0; k < g->results.size(); ++k) {
    Value r = g->results[k];
    const ValueInfo& info = r.node->outputs.at(r.index);
    ASSERT_TRUE(info.shape.fully_known()) << label(c);
    Node* w = g->add("loss_w" + std::to_string(k), "Const", {},
                     {{"value", random_tensor(info.dtype, info.shape.dims, rng, -1, 1)}, {"dtype", info.dtype}});
    infer_node(*w);
    Node* m = g->add("loss_m" + std::to_string(k), "Mul", {r, w->out()}, {{"T", info.dtype}});
    infer_node(*m);
    std::vector<int32_t> axes;
    for (int32_t i = 0; i < info.shape.rank(); ++i) axes.push_back(i);
    Node* ax = g->add("loss_a" + std::to_string(k), "Const", {},
                      {{"value", Tensor::from_vector<int32_t>(axes, {info.shape.rank()})}, {"dtype", DType::kInt32}});
    infer_node(*ax);
    Node* s = g->add("loss_s" + std::to_string(k), "Sum", {m->out(), ax->out()}, {{"T", info.dtype}});
    infer_node(*s);
    terms.push_back(s->out());
  }
  Value loss = terms[0];
  if (terms.size() > 1) {
    Node* n = g->add("loss", "AddN", terms, {{"T", loss.node->outputs[0].dtype}, {"N", static_cast<int64_t>(terms.size())}});
    infer_node(*n);
    loss = n->out();
  }
  std::vector<int> all;
  for (size_t i = 0; i < g->args.size(); ++i) all.push_back(static_cast<int>(i));
  size_t first = g->results.size();
  passes::differentiate(*g, loss, passes::arg_targets(*g, all));

  std::vector<Tensor> inputs;
  for (Node* a : g->args) inputs.push_back(random_tensor(a->outputs[0].dtype, a->outputs[0].shape.dims, rng, c.lo, c.hi));
  auto run = [&](const std::vector<Value>& fetches) {
    std::vector<Feed> feeds;
    for (size_t i = 0; i < inputs.size(); ++i) feeds.push_back({g->args[i]->out(), inputs[i]});
    return interpret(*g, feeds, fetches, {}, nullptr);
  };
  std::vector<Value> grads(g->results.begin() + static_cast<long>(first), g->results.end());
  std::vector<Tensor> analytic = run(grads);
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSERT_EQ(analytic[i].shape(), inputs[i].shape()) << label(c) << ": gradient of arg " << i;
    if (c.stopped.count(g->args[i]->name)) {
      for (int64_t j = 0; j < inputs[i].num_elements(); ++j)
        EXPECT_EQ(at(analytic[i], j), 0.0) << label(c) << ": " << g->args[i]->name << " is behind a stop";
      continue;
    }
    std::vector<double> numeric(static_cast<size_t>(inputs[i].num_elements()));
    double scale = 0;
    for (int64_t j = 0; j < inputs[i].num_elements(); ++j) {
      Tensor saved = inputs[i];
      inputs[i] = saved.clone();
      double x0 = at(saved, j);
      set(inputs[i], j, x0 + c.step);
      double up = at(run({loss})[0], 0);
      set(inputs[i], j, x0 - c.step);
      double down = at(run({loss})[0], 0);
      inputs[i] = saved;
      numeric[static_cast<size_t>(j)] = (up - down) / (2 * c.step);
      scale = std::max(scale, std::fabs(numeric[static_cast<size_t>(j)]));
    }
    for (int64_t j = 0; j < inputs[i].num_elements(); ++j)
      EXPECT_NEAR(at(analytic[i], j), numeric[static_cast<size_t>(j)], c.tol * (1 + scale))
          << label(c) << ": d loss / d " << g->args[i]->name << "[" << j << "]";
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, GradientCheck, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<GradCase>& info) {
                           return info.param.op + "_" + std::to_string(info.index);
                         });

// Like tests/py/check_op_coverage.py for kernels: a gradient without a check fails here.
TEST(GradientCheckCoverage, EveryOpWithAGradientHasACase) {
  std::set<std::string> checked;
  for (const GradCase& c : cases()) checked.insert(c.op);
  for (const std::string& op : ops_with_grad())
    EXPECT_TRUE(checked.count(op)) << "op " << op << " has a gradient but no finite-difference case";
}

}  // namespace
}  // namespace tessera
