// fuse_elementwise: groups of elementwise ops become one TsElementwise program. Values also
// used outside a group are exported as extra outputs (multi-output fusion) when they span the
// group; bool values stay inside programs (a bool needed elsewhere is recomputed there), and so
// does a float value whose export would close a cycle; no group may sit on a cycle.
#include <gtest/gtest.h>

#include <set>

#include "ir/interpreter.h"
#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::random_f32;
using testing::run_on;

// The TsElementwise nodes of `g`.
std::vector<const Node*> fused_nodes(const Graph& g) {
  std::vector<const Node*> out;
  for (const auto& n : g.nodes())
    if (n->op == "TsElementwise") out.push_back(n.get());
  return out;
}
int count_op(const Graph& g, const std::string& op) {
  int k = 0;
  for (const auto& n : g.nodes()) k += n->op == op;
  return k;
}

const char* kChain = R"(
graph (x: float32[2,3], y: float32[3]) -> (out: r) {
  h = Const() {dtype=float32, value=float32[]{0.5}}
  m = Mul(x, y) {T=float32}
  a = AddV2(m, h) {T=float32}
  s = Sigmoid(a) {T=float32}
  w = Mul(a, s) {T=float32}
  l = LeakyRelu(w) {T=float32, alpha=0.1}
  r = Maximum(l, x) {T=float32}
}
)";

TEST(FuseElementwise, FusesADagOfElementwiseOps) {
  auto g = run_on(kChain, {"fuse_elementwise"});
  EXPECT_IR(*g, R"(
graph (x: float32[2,3], y: float32[3]) -> (out: r) {
  r = TsElementwise(x, y) {N=2, T=float32, program=["Mul $0 $1", "AddV2 %0 0.5", "Sigmoid %1", "Mul %1 %2", "LeakyRelu %3 0.1", "Maximum %4 $0"]}
})");
  EXPECT_SAME_RESULTS(kChain, *g, {random_f32({2, 3}, 1, -3, 3), random_f32({3}, 2)});
}

const char* kShared = R"(
graph (x: float32[4], k: float32[4]) -> (a: e, b: t, c: q) {
  e = Exp(x) {T=float32}
  n = Neg(e) {T=float32}
  t = Tanh(n) {T=float32}
  i = Cast(x) {SrcT=float32, DstT=int32}
  f = Cast(i) {SrcT=int32, DstT=float32}
  q = Mul(f, k) {T=float32}
}
)";

TEST(FuseElementwise, ExportsValuesUsedElsewhereAndStopsAtNonFloatOps) {
  auto g = run_on(kShared, {"fuse_elementwise"});
  // e is a result too: one pass computes it and t (outputs: t, then e). The int Cast chain
  // and a lone Mul are left alone.
  EXPECT_IR(*g, R"(
graph (x: float32[4], k: float32[4]) -> (a: t:1, b: t, c: q) {
  t = TsElementwise(x) {N=1, T=float32, outputs=[2, 0], program=["Exp $0", "Neg %0", "Tanh %1"]}
  i = Cast(x) {SrcT=float32, DstT=int32}
  f = Cast(i) {SrcT=int32, DstT=float32}
  q = Mul(f, k) {T=float32}
})");
  EXPECT_SAME_RESULTS(kShared, *g, {random_f32({4}, 3, -3, 3), random_f32({4}, 4)});
}

// Keras 3's Adam step for one variable (the train graph's update): m' and v' are assigned and
// also feed the new weight, so all three leave one kernel.
const char* kAdam = R"(
graph (g: float32[6,5], lr: float32[]) -> (loss: g, ^am, ^av, ^aw) {
  wv = VarHandleOp() {dtype=float32, shape=shape[6,5], shared_name="w"}
  mv = VarHandleOp() {dtype=float32, shape=shape[6,5], shared_name="m"}
  vv = VarHandleOp() {dtype=float32, shape=shape[6,5], shared_name="v"}
  w = ReadVariableOp(wv) {dtype=float32}
  m = ReadVariableOp(mv) {dtype=float32}
  v = ReadVariableOp(vv) {dtype=float32}
  b1 = Const() {dtype=float32, value=float32[]{0.1}}
  b2 = Const() {dtype=float32, value=float32[]{0.001}}
  eps = Const() {dtype=float32, value=float32[]{1e-07}}
  d = Sub(g, m) {T=float32}
  dm = Mul(d, b1) {T=float32}
  m2 = AddV2(m, dm) {T=float32}
  am = AssignVariableOp(mv, m2) {dtype=float32}
  g2 = Square(g) {T=float32}
  e = Sub(g2, v) {T=float32}
  dv = Mul(e, b2) {T=float32}
  v2 = AddV2(v, dv) {T=float32}
  av = AssignVariableOp(vv, v2) {dtype=float32}
  s = Sqrt(v2) {T=float32}
  se = AddV2(s, eps) {T=float32}
  lm = Mul(m2, lr) {T=float32}
  st = RealDiv(lm, se) {T=float32}
  w2 = Sub(w, st) {T=float32}
  aw = AssignVariableOp(wv, w2, ^w) {dtype=float32}
}
)";

std::map<std::string, Tensor> run_with_vars(const Graph& g, const std::vector<Tensor>& args) {
  ResourceStore vars;
  vars.assign("/w", random_f32({6, 5}, 10));
  vars.assign("/m", random_f32({6, 5}, 11));
  vars.assign("/v", random_f32({6, 5}, 12, 0.f, 1.f));
  testing::call(g, args, &vars);
  return vars.snapshot();
}

TEST(FuseElementwise, AdamUpdateIsOneKernelWithThreeOutputs) {
  auto g = run_on(kAdam, {"fuse_elementwise"});
  auto fused = fused_nodes(*g);
  ASSERT_EQ(fused.size(), 1u);
  EXPECT_EQ(fused[0]->num_outputs(), 3);
  EXPECT_EQ(fused[0]->attr<std::vector<int64_t>>("outputs").size(), 3u);
  EXPECT_EQ(fused[0]->inputs.size(), 5u);  // g, lr, w, m, v
  for (const auto& n : g->nodes())
    if (n->op == "AssignVariableOp") EXPECT_EQ(n->inputs[1].node, fused[0]) << n->name;
  // The variables end up with the same values.
  std::vector<Tensor> args = {random_f32({6, 5}, 13), Tensor::scalar<float>(0.01f)};
  auto before = run_with_vars(*parse_graph(kAdam), args), after = run_with_vars(*g, args);
  for (const char* key : {"/w", "/m", "/v"}) EXPECT_NUMERIC_MATCH(before.at(key), after.at(key)) << key;
}

// a feeds a reduction whose result comes back into the group: exporting a would close a
// cycle (group -> Sum -> group), so a stays a separate kernel for Sum and the group
// recomputes it from x (no more input streams than reading a).
const char* kCycle = R"(
graph (x: float32[4,3]) -> (out: r) {
  ax = Const() {dtype=int32, value=int32[1]{1}}
  a = Exp(x) {T=float32}
  s = Sum(a, ax) {T=float32, Tidx=int32, keep_dims=true}
  n = Neg(a) {T=float32}
  q = Mul(n, s) {T=float32}
  r = Tanh(q) {T=float32}
}
)";

TEST(FuseElementwise, NeverFusesAcrossACycle) {
  auto g = run_on(kCycle, {"fuse_elementwise"});
  auto fused = fused_nodes(*g);
  ASSERT_EQ(fused.size(), 1u);
  EXPECT_EQ(fused[0]->name, "r");
  EXPECT_EQ(fused[0]->num_outputs(), 1);
  EXPECT_EQ(fused[0]->attr<std::vector<std::string>>("program").size(), 4u);  // Exp, Neg, Mul, Tanh
  std::set<std::string> ops;
  for (const Value& v : fused[0]->inputs) ops.insert(v.node->op);
  EXPECT_EQ(ops, (std::set<std::string>{"_Arg", "Sum"}));
  EXPECT_EQ(count_op(*g, "Exp"), 1);
  EXPECT_SAME_RESULTS(kCycle, *g, {random_f32({4, 3}, 5)});
}

// t = Exp(b) is [3] and the group runs over [4,3]: exporting t would compute it four times
// and write it at the wrong shape, so it stays outside. u = Exp(x) spans the group and goes.
const char* kNarrow = R"(
graph (x: float32[4,3], b: float32[3]) -> (o1: r, o2: t, o3: u) {
  t = Exp(b) {T=float32}
  u = Exp(x) {T=float32}
  m = Mul(u, t) {T=float32}
  r = Neg(m) {T=float32}
}
)";

TEST(FuseElementwise, ExportsOnlyValuesSpanningTheGroup) {
  auto g = run_on(kNarrow, {"fuse_elementwise"});
  auto fused = fused_nodes(*g);
  ASSERT_EQ(fused.size(), 1u);
  EXPECT_EQ(fused[0]->num_outputs(), 2);  // r and u
  EXPECT_EQ(fused[0]->outputs[1].shape, PartialShape({4, 3}));
  EXPECT_EQ(count_op(*g, "Exp"), 1);  // t
  EXPECT_SAME_RESULTS(kNarrow, *g, {random_f32({4, 3}, 6), random_f32({3}, 7)});
}

// Dropout forward and backward share one bool mask; a ReLU gradient casts a comparison. The
// mask is recomputed inside each group (no bool tensor is written), Shape(member) is taken
// from the member's inputs, and the selects, casts and ZerosLike fuse.
const char* kMasks = R"(
graph (x: float32[?,8], u: float32[?,8], g: float32[?,8]) -> (y: y, dx: dx, rg: rg) {
  rate = Const() {dtype=float32, value=float32[]{0.3}}
  scale = Const() {dtype=float32, value=float32[]{1.4285715}}
  zero = Const() {dtype=float32, value=float32[]{0}}
  keep = GreaterEqual(u, rate) {T=float32}
  xs = Mul(x, scale) {T=float32}
  y = SelectV2(keep, xs, zero) {T=float32}
  shp = Shape(xs) {T=float32, out_type=int32}
  gz = ZerosLike(g) {T=float32}
  gs = SelectV2(keep, g, gz) {T=float32}
  gb = BroadcastTo(gs, shp) {T=float32, Tidx=int32}
  dx = Mul(gb, scale) {T=float32}
  pos = Greater(x, zero) {T=float32}
  pf = Cast(pos) {SrcT=bool, DstT=float32}
  rg = Mul(g, pf) {T=float32}
}
)";

TEST(FuseElementwise, BoolMasksStayInsidePrograms) {
  auto g = run_on(kMasks, {"fuse_elementwise"});
  EXPECT_EQ(count_op(*g, "GreaterEqual"), 0);
  EXPECT_EQ(count_op(*g, "Greater"), 0);
  EXPECT_EQ(count_op(*g, "SelectV2"), 0);
  EXPECT_EQ(count_op(*g, "Cast"), 0);
  EXPECT_EQ(count_op(*g, "ZerosLike"), 0);
  for (const Node* f : fused_nodes(*g))
    for (const ValueInfo& o : f->outputs) EXPECT_EQ(o.dtype, DType::kFloat32) << f->name;
  for (const auto& n : g->nodes())
    if (n->op == "Shape") EXPECT_NE(n->inputs[0].node->op, "TsElementwise") << n->name;
  std::vector<Tensor> args = {random_f32({5, 8}, 8), random_f32({5, 8}, 9, 0, 1), random_f32({5, 8}, 10)};
  EXPECT_SAME_RESULTS(kMasks, *g, args);
}

// A bool needed as a result stays a node (also recomputed inside the group that uses it).
const char* kBoolResult = R"(
graph (x: float32[6], y: float32[6]) -> (m: both, r: r) {
  zero = Const() {dtype=float32, value=float32[]{0}}
  a = Less(x, zero) {T=float32}
  b = NotEqual(y, zero) {T=float32}
  both = LogicalAnd(a, b)
  nb = LogicalNot(both)
  e = Equal(both, nb) {T=bool}
  either = LogicalOr(e, a)
  c = Cast(either) {SrcT=bool, DstT=float32}
  s = Select(both, x, y) {T=float32}
  r = Mul(c, s) {T=float32}
}
)";

TEST(FuseElementwise, BoolResultsStayAndLogicalOpsFuse) {
  auto g = run_on(kBoolResult, {"fuse_elementwise"});
  auto fused = fused_nodes(*g);
  ASSERT_EQ(fused.size(), 1u);
  EXPECT_EQ(fused[0]->num_outputs(), 1);
  EXPECT_EQ(fused[0]->attr<std::vector<std::string>>("program").size(), 9u);
  EXPECT_EQ(count_op(*g, "LogicalAnd"), 1);  // the result
  EXPECT_EQ(count_op(*g, "Select"), 0);
  Tensor x = random_f32({6}, 11), y = random_f32({6}, 12);
  y.data<float>()[2] = 0;
  EXPECT_SAME_RESULTS(kBoolResult, *g, {x, y});
}

// Select (v1) with a vector condition picks rows: not elementwise, not fused.
const char* kRowSelect = R"(
graph (c: bool[3], x: float32[3,4], y: float32[3,4]) -> (out: r) {
  s = Select(c, x, y) {T=float32}
  r = Neg(s) {T=float32}
}
)";

TEST(FuseElementwise, RowSelectIsNotFused) {
  auto g = run_on(kRowSelect, {"fuse_elementwise"});
  EXPECT_EQ(count_op(*g, "Select"), 1);
  EXPECT_TRUE(fused_nodes(*g).empty());
}

// Erfc joins groups: Keras 3's exact gelu and the values its gradient reads (0.5x, erfc and
// the scaled input) leave one kernel.
const char* kGelu = R"(
graph (x: float32[?,16], dy: float32[?,16]) -> (y: y, d1: d1, d2: d2) {
  half = Const() {dtype=float32, value=float32[]{0.5}}
  r2 = Const() {dtype=float32, value=float32[]{0.70710677}}
  h = Mul(half, x) {T=float32}
  n = Neg(x) {T=float32}
  t = Mul(n, r2) {T=float32}
  e = Erfc(t) {T=float32}
  y = Mul(h, e) {T=float32}
  d1 = Mul(dy, e) {T=float32}
  d2 = Mul(h, t) {T=float32}
}
)";

TEST(FuseElementwise, GeluForwardExportsWhatItsGradientReads) {
  auto g = run_on(kGelu, {"fuse_elementwise"});
  auto fused = fused_nodes(*g);
  ASSERT_EQ(fused.size(), 1u);
  EXPECT_EQ(fused[0]->num_outputs(), 3);  // y, d1, d2: nothing else is needed outside
  EXPECT_EQ(count_op(*g, "Erfc"), 0);
  EXPECT_EQ(count_op(*g, "Mul"), 0);
  EXPECT_SAME_RESULTS(kGelu, *g, {random_f32({3, 16}, 13, -4, 4), random_f32({3, 16}, 14)});
}

// A training step's shape: e is a forward value the backward product d reads after the
// matmul. Exporting e from d's group would close a cycle (e -> h -> MatMul -> d), so d's
// group recomputes e from x, and the forward group writes h alone instead of h and e.
const char* kForwardBackward = R"(
graph (x: float32[4,8], w: float32[8,8]) -> (y: r, dx: d) {
  half = Const() {dtype=float32, value=float32[]{0.5}}
  e = Exp(x) {T=float32}
  h = Mul(e, half) {T=float32}
  m = MatMul(h, w) {T=float32, transpose_a=false, transpose_b=false}
  r = Tanh(m) {T=float32}
  d = Mul(m, e) {T=float32}
}
)";

TEST(FuseElementwise, TheBackwardRecomputesAForwardValueRatherThanCloseACycle) {
  auto g = run_on(kForwardBackward, {"fuse_elementwise"});
  const Node* forward = nullptr;
  const Node* backward = nullptr;
  for (const Node* n : fused_nodes(*g)) (n->name == "d" ? backward : forward) = n;
  ASSERT_NE(forward, nullptr);
  ASSERT_NE(backward, nullptr);
  EXPECT_EQ(forward->num_outputs(), 1);  // h only
  std::set<std::string> ops;
  for (const Value& v : backward->inputs) ops.insert(v.node->op);
  EXPECT_EQ(ops, (std::set<std::string>{"_Arg", "MatMul"}));
  EXPECT_EQ(backward->attr<std::vector<std::string>>("program")[0], "Exp $1");
  EXPECT_SAME_RESULTS(kForwardBackward, *g, {random_f32({4, 8}, 21), random_f32({8, 8}, 22)});
}

// Shape(member) of a member reading two inputs: the shapes of both, broadcast (BroadcastArgs),
// so the member need not be written out; the random-like tensor shaped by it still feeds the
// group without a cycle.
const char* kShapeOfMember = R"(
graph (a: float32[?,4], b: float32[?,4]) -> (out: r) {
  m = Mul(a, b) {T=float32}
  t = Tanh(m) {T=float32}
  half = Const() {dtype=float32, value=float32[]{0.5}}
  s = Shape(m) {T=float32, out_type=int64}
  f = Fill(s, half) {T=float32, index_type=int64}
  r = AddV2(t, f) {T=float32}
}
)";

TEST(FuseElementwise, ShapeOfAMemberComesFromItsInputs) {
  auto g = run_on(kShapeOfMember, {"fuse_elementwise"});
  auto fused = fused_nodes(*g);
  ASSERT_EQ(fused.size(), 1u);
  EXPECT_EQ(fused[0]->num_outputs(), 1);
  EXPECT_EQ(count_op(*g, "BroadcastArgs"), 1);
  for (const auto& n : g->nodes())
    if (n->op == "Shape") EXPECT_EQ(n->inputs[0].node->op, "_Arg") << n->name;
  EXPECT_SAME_RESULTS(kShapeOfMember, *g, {random_f32({3, 4}, 17), random_f32({3, 4}, 18)});
  EXPECT_SAME_RESULTS(kShapeOfMember, *g, {random_f32({1, 4}, 19), random_f32({3, 4}, 20)});
}

// Gradient accumulation (AddN) joins as a chain of AddV2 entries.
const char* kAddN = R"(
graph (x: float32[?,5], g: float32[?,5]) -> (out: s) {
  a = Exp(x) {T=float32}
  b = Mul(g, a) {T=float32}
  c = Neg(g) {T=float32}
  s = AddN(a, b, c) {N=3, T=float32}
}
)";

TEST(FuseElementwise, AddNIsAChainOfAdds) {
  auto g = run_on(kAddN, {"fuse_elementwise"});
  EXPECT_IR(*g, R"(
graph (x: float32[?,5], g: float32[?,5]) -> (out: s) {
  s = TsElementwise(x, g) {N=2, T=float32, program=["Exp $0", "Mul $1 %0", "Neg $1", "AddV2 %0 %1", "AddV2 %3 %2"]}
})");
  EXPECT_SAME_RESULTS(kAddN, *g, {random_f32({3, 5}, 15), random_f32({3, 5}, 16)});
}

}  // namespace
}  // namespace tessera
