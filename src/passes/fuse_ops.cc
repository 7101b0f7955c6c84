// fuse_ops: a matmul or convolution followed by a bias, a residual add and an activation (each
// optional, in that order, each the only use of what it reads) becomes one TsFusedMatMul /
// TsFusedConv2D / TsFusedDepthwiseConv2D (docs/fused_ops.md). Matmul forms: MatMul, a
// BatchMatMul of a rank >= 2 input by a matrix, Einsum "...c,cd->...d" (Keras 3 Dense on
// rank-3 input), and Reshape -> MatMul -> Reshape that flattens and restores the leading axes
// (tf.tensordot as tf_keras writes it).
#include <algorithm>
#include <optional>

#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

// Shapes that are equal at run time given equal element counts (one unknown at most).
bool same_leading(const PartialShape& x, const PartialShape& y) {
  if (!x.known_rank || !y.known_rank || x.rank() != y.rank()) return false;
  int unknown = 0;
  for (size_t i = 0; i + 1 < x.dims.size(); ++i) {
    if (x.dims[i] != y.dims[i]) return false;
    unknown += x.dims[i] < 0;
  }
  return unknown <= 1 && x.dims.back() >= 0;
}

struct Base {
  std::string op;       // the Ts* op
  Value a, b;           // operands
  AttrMap attrs;        // op-specific attributes
  Value out;            // the value the epilogue continues from
  std::vector<Node*> nodes;  // nodes replaced (for control inputs)
  bool always = false;  // fuse even without an epilogue (a reshaping form)
};

bool f32_node(const Node& n) {
  return n.def && n.outputs.size() == 1 && n.outputs[0].dtype == DType::kFloat32;
}

// An Einsum that is a matmul of a by a matrix b: "<p>c,cd-><p>d" or "<p>c,dc-><p>d".
bool einsum_matmul(const Node& n, bool& transpose_b) {
  if (n.inputs.size() != 2) return false;
  std::string eq = n.attr_or<std::string>("equation", "");
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  size_t comma = eq.find(','), arrow = eq.find("->");
  if (comma == std::string::npos || arrow == std::string::npos || arrow < comma) return false;
  std::string a = eq.substr(0, comma), b = eq.substr(comma + 1, arrow - comma - 1), o = eq.substr(arrow + 2);
  if (eq.find('.') != std::string::npos || a.empty() || b.size() != 2) return false;
  const char k = a.back();
  std::string lead = a.substr(0, a.size() - 1);
  for (char ch : lead)
    if (ch == k || b.find(ch) != std::string::npos) return false;
  if (b[0] == k && b[1] != k && o == lead + b[1]) {
    transpose_b = false;
    return true;
  }
  if (b[1] == k && b[0] != k && o == lead + b[0]) {
    transpose_b = true;
    return true;
  }
  return false;
}

std::optional<Base> match_base(Node* n, const Uses& uses) {
  if (!f32_node(*n)) return std::nullopt;
  const PartialShape* bshape = n->inputs.size() >= 2 ? &shape_of(n->inputs[1]) : nullptr;
  if (n->op == "MatMul") {
    return Base{"TsFusedMatMul", n->inputs[0], n->inputs[1],
                {{"transpose_a", n->attr_or<bool>("transpose_a", false)},
                 {"transpose_b", n->attr_or<bool>("transpose_b", false)}},
                n->out(), {n}, false};
  }
  if (n->op == "BatchMatMul" || n->op == "BatchMatMulV2" || n->op == "BatchMatMulV3") {
    const PartialShape& a = shape_of(n->inputs[0]);
    if (n->attr_or<bool>("adj_x", false) || !a.known_rank || a.rank() < 2 || bshape->rank() != 2) return std::nullopt;
    if (n->op == "BatchMatMulV3" && (n->attr_or<DType>("Ta", DType::kFloat32) != DType::kFloat32 ||
                                     n->attr_or<DType>("Tb", DType::kFloat32) != DType::kFloat32))
      return std::nullopt;
    return Base{"TsFusedMatMul", n->inputs[0], n->inputs[1],
                {{"transpose_b", n->attr_or<bool>("adj_y", false)}}, n->out(), {n}, true};
  }
  if (n->op == "Einsum") {
    bool tb = false;
    if (!einsum_matmul(*n, tb) || bshape->rank() != 2) return std::nullopt;
    const PartialShape& a = shape_of(n->inputs[0]);
    if (!a.known_rank || a.rank() < 2) return std::nullopt;
    return Base{"TsFusedMatMul", n->inputs[0], n->inputs[1], {{"transpose_b", tb}}, n->out(), {n}, true};
  }
  if (n->op == "Conv2D" || n->op == "DepthwiseConv2dNative") {
    if (n->attr_or<std::string>("data_format", "NHWC") != "NHWC") return std::nullopt;
    AttrMap attrs;
    for (const char* k : {"strides", "padding", "explicit_paddings", "data_format", "dilations"})
      if (n->has_attr(k)) attrs[k] = n->attrs.at(k);
    return Base{n->op == "Conv2D" ? "TsFusedConv2D" : "TsFusedDepthwiseConv2D", n->inputs[0], n->inputs[1],
                attrs, n->out(), {n}, false};
  }
  if (n->op == "Reshape") {
    // Reshape(MatMul(Reshape(x, [rows, K]), W), x.shape[:-1] + [N])
    Node* mm = n->inputs[0].node;
    if (mm->op != "MatMul" || !f32_node(*mm) || mm->attr_or<bool>("transpose_a", false)) return std::nullopt;
    if (!uses.single_consumer(mm->out())) return std::nullopt;
    Node* r1 = mm->inputs[0].node;
    if (r1->op != "Reshape") return std::nullopt;
    Value x = r1->inputs[0];
    const PartialShape& xs = shape_of(x);
    const PartialShape& flat = r1->outputs[0].shape;
    if (!xs.known_rank || xs.rank() < 3 || flat.rank() != 2 || flat.dims[1] < 0 || flat.dims[1] != xs.dims.back())
      return std::nullopt;
    PartialShape want = xs;
    want.dims.back() = mm->outputs[0].shape.dims[1];
    if (!same_leading(want, n->outputs[0].shape) || n->outputs[0].shape.dims.back() != want.dims.back())
      return std::nullopt;
    return Base{"TsFusedMatMul", x, mm->inputs[1], {{"transpose_b", mm->attr_or<bool>("transpose_b", false)}},
                n->out(), {mm, n}, true};
  }
  return std::nullopt;
}

const std::vector<std::string> kActivations = {"Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh"};

// The one consumer of v, if v has exactly one use (and it is not a result).
Node* sole_user(const Value& v, const Uses& uses) {
  if (!uses.single_consumer(v)) return nullptr;
  return uses.users(v.node).front().first;
}

// The other operand of a binary node whose operands are v and something else.
std::optional<Value> other_operand(const Node& n, const Value& v) {
  if (n.inputs.size() != 2) return std::nullopt;
  if (n.inputs[0] == v && !(n.inputs[1] == v)) return n.inputs[1];
  if (n.inputs[1] == v && !(n.inputs[0] == v)) return n.inputs[0];
  return std::nullopt;
}

bool fuse_one(Graph& g, Node* n, const Uses& uses) {
  std::optional<Base> base = match_base(n, uses);
  if (!base) return false;
  const PartialShape& out_shape = shape_of(base->out);
  if (!out_shape.known_rank || out_shape.rank() < 1) return false;
  const int64_t channels = out_shape.dims.back();
  Value cur = base->out;
  std::vector<Node*> chain = base->nodes;
  std::optional<Value> bias, residual;
  std::string activation;
  float alpha = 0.2f;

  Node* u = sole_user(cur, uses);
  if (u && f32_node(*u) && (u->op == "BiasAdd" || u->op == "AddV2")) {
    std::optional<Value> b = other_operand(*u, cur);
    bool bias_form = u->op == "AddV2" || (u->inputs[0] == cur && u->attr_or<std::string>("data_format", "NHWC") == "NHWC");
    if (b && bias_form && is_f32(*b) && shape_of(*b) == PartialShape({channels}) && channels >= 0) {
      bias = b;
      cur = u->out();
      chain.push_back(u);
      u = sole_user(cur, uses);
    }
  }
  if (u && f32_node(*u) && u->op == "AddV2") {
    std::optional<Value> r = other_operand(*u, cur);
    if (r && is_f32(*r) && shape_of(*r) == shape_of(cur) && u->outputs[0].shape == shape_of(cur)) {
      residual = r;
      cur = u->out();
      chain.push_back(u);
      u = sole_user(cur, uses);
    }
  }
  if (u && f32_node(*u) && std::find(kActivations.begin(), kActivations.end(), u->op) != kActivations.end()) {
    activation = u->op;
    if (u->op == "LeakyRelu") alpha = u->attr_or<float>("alpha", 0.2f);
    cur = u->out();
    chain.push_back(u);
  } else if (u && u->op == "TsGelu") {
    activation = u->attr_or<bool>("approximate", false) ? "GeluTanh" : "GeluExact";
    cur = u->out();
    chain.push_back(u);
  } else if (!uses.is_result(cur) && uses.count(cur) == 2) {
    // Swish: Mul(cur, Sigmoid(cur)).
    const auto& us = uses.users(cur.node);
    Node* sig = nullptr;
    Node* mul = nullptr;
    for (const auto& [m, idx] : us) {
      if (m->op == "Sigmoid") sig = m;
      if (m->op == "Mul") mul = m;
    }
    if (sig && mul && f32_node(*sig) && f32_node(*mul) && sole_user(sig->out(), uses) == mul &&
        other_operand(*mul, cur) == std::optional<Value>(sig->out()) && cur.node->num_outputs() == 1) {
      activation = "Swish";
      cur = mul->out();
      chain.push_back(sig);
      chain.push_back(mul);
    }
  }
  if (!bias && !residual && activation.empty() && !base->always) return false;

  AttrMap attrs = base->attrs;
  attrs["has_bias"] = bias.has_value();
  attrs["has_residual"] = residual.has_value();
  attrs["activation"] = activation;
  attrs["alpha"] = alpha;
  attrs["T"] = DType::kFloat32;
  std::vector<Value> inputs = {base->a, base->b};
  if (bias) inputs.push_back(*bias);
  if (residual) inputs.push_back(*residual);
  Node* last = cur.node;
  std::string name = last->name;
  g.rename(last, g.unique_name(name + "/unfused"));
  Node* fused = g.add(name, base->op, inputs, attrs);
  for (Node* c : chain)
    for (Node* ctl : c->control_inputs)
      if (std::find(fused->control_inputs.begin(), fused->control_inputs.end(), ctl) == fused->control_inputs.end())
        fused->control_inputs.push_back(ctl);
  infer_node(*fused);
  // Keep what inference knew about the replaced value where the fused form knows less.
  PartialShape& fs = fused->outputs[0].shape;
  const PartialShape& ls = last->outputs[0].shape;
  if (!fs.known_rank) fs = ls;
  else if (ls.known_rank && ls.rank() == fs.rank())
    for (size_t i = 0; i < fs.dims.size(); ++i)
      if (fs.dims[i] < 0) fs.dims[i] = ls.dims[i];
  g.replace_all_uses(cur, fused->out());
  return true;
}

}  // namespace

void fuse_ops(Graph& g, const PassContext&) {
  bool any = false;
  Uses uses(g);
  for (Node* n : g.topo_order()) {
    if (!fuse_one(g, n, uses)) continue;
    any = true;
    uses = Uses(g);  // a fusion changes consumers
  }
  if (any) remove_unreachable(g);
}

}  // namespace tessera::passes
