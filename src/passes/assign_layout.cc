// assign_layout: every kernel of the cpu backend (oneDNN convolution and pooling, our batch
// norm and bias loops) wants channels-last activations, so NCHW convolutions, pools, BiasAdd
// and FusedBatchNorm (TF1 graphs and some exports use data_format NCHW) are rewritten to NHWC
// with a Transpose in front and one behind. The transposes are then pushed down through
// layout-agnostic ops (elementwise ops, reductions, pads) and adjacent inverse pairs cancel, so a
// chain of NCHW layers keeps one transpose at each boundary of the chain. A transpose of a
// constant operand stays a Transpose node here; fold_constants folds it into the constant.
#include <algorithm>
#include <set>

#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

using Perm = std::vector<int64_t>;
const Perm kToNhwc = {0, 2, 3, 1};  // transpose(nchw, kToNhwc) is NHWC
const Perm kToNchw = {0, 3, 1, 2};

bool is_identity(const Perm& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != static_cast<int64_t>(i)) return false;
  return true;
}

Perm inverse(const Perm& p) {
  Perm q(p.size());
  for (size_t i = 0; i < p.size(); ++i) q[static_cast<size_t>(p[i])] = static_cast<int64_t>(i);
  return q;
}

Value perm_const(Graph& g, const std::string& base, const Perm& p) {
  std::vector<int32_t> v(p.begin(), p.end());
  return add_const(g, base + "/perm", Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())}))->out();
}

Node* add_transpose(Graph& g, const std::string& base, Value x, const Perm& p) {
  return add_node(g, base, "Transpose", {x, perm_const(g, base, p)},
                  {{"T", x.node->outputs[x.index].dtype}, {"Tperm", DType::kInt32}});
}

// The constant permutation of a Transpose without control inputs, else empty.
Perm transpose_perm(const Node& n) {
  if (n.op != "Transpose" || !n.control_inputs.empty()) return {};
  const Tensor* p = const_value(n.inputs.at(1));
  if (!p) return {};
  Perm perm = p->to_int_vector();
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  return is_identity(sorted) ? perm : Perm{};
}

// ---- Rewriting NCHW nodes ---------------------------------------------------------------

const std::set<std::string> kLayoutOps = {"Conv2D",         "DepthwiseConv2dNative", "MaxPool",         "AvgPool",
                                          "BiasAdd",        "FusedBatchNorm",        "FusedBatchNormV2", "FusedBatchNormV3"};

// A 4-entry per-dimension attribute (strides, ksize, dilations) from NCHW to NHWC order.
void permute_dims_attr(Node& n, const std::string& key) {
  if (!n.has_attr(key)) return;
  std::vector<int64_t> v = n.attr<std::vector<int64_t>>(key);
  if (v.size() != 4) return;
  n.attrs[key] = std::vector<int64_t>{v[0], v[2], v[3], v[1]};
}

bool rewrite_nchw(Graph& g, Node* n) {
  if (!kLayoutOps.count(n->op) || n->attr_or<std::string>("data_format", "NHWC") != "NCHW") return false;
  if (n->inputs.empty() || n->outputs.empty()) return false;
  const PartialShape& xs = shape_of(n->inputs[0]);
  if (!xs.known_rank || xs.rank() != 4) return false;
  if (n->op == "FusedBatchNorm" || n->op == "FusedBatchNormV2" || n->op == "FusedBatchNormV3") {
    // Training mode's batch statistics and the exponential average are layout-free too, but
    // only inference-form batch norms are worth the risk here.
    if (n->attr_or<bool>("is_training", true)) return false;
  }
  for (const char* key : {"strides", "ksize", "dilations"}) permute_dims_attr(*n, key);
  if (n->has_attr("explicit_paddings")) {
    std::vector<int64_t> p = n->attr<std::vector<int64_t>>("explicit_paddings");
    if (p.size() == 8) n->attrs["explicit_paddings"] = std::vector<int64_t>{p[0], p[1], p[4], p[5], p[6], p[7], p[2], p[3]};
  }
  n->attrs["data_format"] = std::string("NHWC");
  Node* in = add_transpose(g, n->name + "/to_nhwc", n->inputs[0], kToNhwc);
  n->inputs[0] = in->out();
  infer_node(*n);
  Node* out = add_transpose(g, n->name + "/to_nchw", n->out(0), kToNchw);
  g.replace_all_uses(n->out(0), out->out());
  out->inputs[0] = n->out(0);  // replace_all_uses rewired the new transpose to itself too
  infer_node(*out);
  return true;
}

// ---- Moving transposes down and cancelling them -----------------------------------------

const std::set<std::string> kUnary = {"Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "Softplus", "Softsign",
                                      "Neg",  "Abs",   "Exp", "Log",  "Sqrt",    "Rsqrt", "Square",   "Reciprocal",
                                      "Erf",  "Floor", "Ceil", "Round", "Sign",  "Identity", "Cast", "LeakyRelu"};
const std::set<std::string> kBinary = {"Add", "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum",
                                       "SquaredDifference", "Pow", "DivNoNan"};
const std::set<std::string> kReduce = {"Mean", "Sum", "Max", "Min", "Prod"};

class Sinker {
 public:
  explicit Sinker(Graph& g) : g_(g), uses_(g) {}

  bool step(Node* n) {
    if (!n->control_inputs.empty()) return false;
    if (n->op == "Transpose") return cancel(n);
    if (kUnary.count(n->op) && n->inputs.size() == 1) return sink_unary(n);
    if (kBinary.count(n->op) && n->inputs.size() == 2) return sink_binary(n);
    if (kReduce.count(n->op) && n->inputs.size() == 2) return sink_reduce(n);
    if ((n->op == "Pad" || n->op == "PadV2" || n->op == "MirrorPad") && n->inputs.size() >= 2) return sink_pad(n);
    return false;
  }

 private:
  // The permutation of `v` when it is a transpose that can move below its consumers: every
  // consumer is an op a transpose moves through (or a transpose that cancels it), so each
  // copy made moves on in turn instead of staying behind as an extra transpose.
  Perm movable(const Value& v) const {
    if (v.index != 0 || uses_.count(v) == 0 || uses_.is_result(v)) return {};
    Perm p = transpose_perm(*v.node);
    if (p.empty() || uses_.count(v) == 1) return p;
    for (const auto& [user, slot] : uses_.users(v.node)) {
      if (!user->control_inputs.empty()) return {};
      const std::string& op = user->op;
      const bool passes = kUnary.count(op) || kBinary.count(op) || op == "Transpose" ||
                          ((kReduce.count(op) || op == "Pad" || op == "PadV2" || op == "MirrorPad") && slot == 0);
      if (!passes) return {};
    }
    return p;
  }

  // n now computes on the un-transposed input; its old value is transpose(n, perm).
  void put_transpose_after(Node* n, const Perm& perm) {
    infer_node(*n);
    Node* t = add_transpose(g_, n->name + "/transpose", n->out(0), perm);
    g_.replace_all_uses(n->out(0), t->out());
    t->inputs[0] = n->out(0);
    infer_node(*t);
  }

  bool cancel(Node* n) {
    Perm outer = transpose_perm(*n);
    if (outer.empty()) return false;
    if (is_identity(outer)) {
      g_.replace_all_uses(n->out(), n->inputs[0]);
      return true;
    }
    Perm inner = transpose_perm(*n->inputs[0].node);
    if (inner.size() != outer.size()) return false;
    Perm both(outer.size());
    for (size_t i = 0; i < outer.size(); ++i) both[i] = inner[static_cast<size_t>(outer[i])];
    if (is_identity(both)) {
      g_.replace_all_uses(n->out(), n->inputs[0].node->inputs[0]);
      return true;
    }
    return false;  // a non-identity chain is simplify_algebra's to collapse
  }

  bool sink_unary(Node* n) {
    if (n->num_outputs() != 1) return false;
    Perm p = movable(n->inputs[0]);
    if (p.empty()) return false;
    n->inputs[0] = n->inputs[0].node->inputs[0];
    put_transpose_after(n, p);
    return true;
  }

  // op(transpose(a, p), transpose(b, p)) or op(transpose(a, p), constant): broadcasting is
  // per dimension, so it commutes with permuting both operands' dimensions alike once the
  // constant has the same rank (leading 1s, as broadcasting would add).
  bool sink_binary(Node* n) {
    Perm p;
    int transposed = 0;
    for (const Value& v : n->inputs) {
      Perm q = movable(v);
      if (q.empty()) continue;
      if (!p.empty() && q != p) return false;
      p = q;
      ++transposed;
    }
    if (p.empty()) return false;
    const int64_t rank = static_cast<int64_t>(p.size());
    std::vector<Value> ins = n->inputs;
    for (Value& v : ins) {
      if (movable(v) == p) {
        v = v.node->inputs[0];
        continue;
      }
      const Tensor* c = const_value(v);
      if (!c || c->rank() > rank) return false;
      if (c->num_elements() == 1 && c->rank() == 0) continue;  // a scalar broadcasts anywhere
      Value r = v;
      if (c->rank() < rank) {
        std::vector<int64_t> dims(static_cast<size_t>(rank - c->rank()), 1);
        dims.insert(dims.end(), c->shape().begin(), c->shape().end());
        std::vector<int32_t> d32(dims.begin(), dims.end());
        Value shape = add_const(g_, n->name + "/rank", Tensor::from_vector<int32_t>(d32, {rank}))->out();
        r = add_node(g_, n->name + "/operand", "Reshape", {v, shape}, {{"T", c->dtype()}, {"Tshape", DType::kInt32}})->out();
      }
      v = add_transpose(g_, n->name + "/operand", r, inverse(p))->out();
    }
    if (transposed == 0) return false;
    n->inputs = ins;
    put_transpose_after(n, p);
    return true;
  }

  // reduce(transpose(a, p), axes): reduce a over p[axes]; the kept dimensions come out in
  // a's order, which may need a (smaller) transpose to restore the original order.
  bool sink_reduce(Node* n) {
    // A shared transpose moves too when the reduction then needs none (a spatial mean of an
    // NCHW tensor reads the NHWC one): that adds nothing and skips a transpose's read.
    const bool own = !movable(n->inputs[0]).empty();
    Perm p = transpose_perm(*n->inputs[0].node);
    const Tensor* axes_t = const_value(n->inputs[1]);
    if (p.empty() || n->inputs[0].index != 0 || !axes_t) return false;
    const int64_t rank = static_cast<int64_t>(p.size());
    std::set<int64_t> reduced;
    for (int64_t a : axes_t->to_int_vector()) {
      if (a < -rank || a >= rank) return false;
      reduced.insert(p[static_cast<size_t>(a < 0 ? a + rank : a)]);
    }
    const bool keep = n->attr_or<bool>("keep_dims", false);
    Perm after;
    if (keep) {
      after = p;
    } else {
      std::vector<int64_t> kept;  // a's axes, in the order the original result had them
      for (int64_t i = 0; i < rank; ++i)
        if (!reduced.count(p[static_cast<size_t>(i)])) kept.push_back(p[static_cast<size_t>(i)]);
      std::vector<int64_t> sorted = kept;
      std::sort(sorted.begin(), sorted.end());
      for (int64_t k : kept)
        after.push_back(std::find(sorted.begin(), sorted.end(), k) - sorted.begin());
    }
    if (!own && !is_identity(after)) return false;
    std::vector<int32_t> new_axes(reduced.begin(), reduced.end());
    Value axes = add_const(g_, n->name + "/axes",
                           Tensor::from_vector<int32_t>(new_axes, {static_cast<int64_t>(new_axes.size())}))->out();
    n->inputs = {n->inputs[0].node->inputs[0], axes};
    n->attrs["Tidx"] = DType::kInt32;
    if (is_identity(after)) {
      infer_node(*n);
      return true;
    }
    put_transpose_after(n, after);
    return true;
  }

  // pad(transpose(x, p), paddings): dimension i of the transpose is x's dimension p[i], so
  // x's padding row p[i] is the given row i (ResNet's pool pad, an NCHW Pad before MaxPool).
  bool sink_pad(Node* n) {
    Perm p = movable(n->inputs[0]);
    const Tensor* pads = const_value(n->inputs[1]);
    if (p.empty() || !pads || pads->shape() != Shape{static_cast<int64_t>(p.size()), 2}) return false;
    std::vector<int64_t> old = pads->to_int_vector();
    Tensor moved(pads->dtype(), pads->shape());
    for (size_t i = 0; i < p.size(); ++i)
      for (size_t j = 0; j < 2; ++j) {
        const int64_t v = old[i * 2 + j];
        const size_t at = static_cast<size_t>(p[i]) * 2 + j;
        if (pads->dtype() == DType::kInt32) moved.data<int32_t>()[at] = static_cast<int32_t>(v);
        else if (pads->dtype() == DType::kInt64) moved.data<int64_t>()[at] = v;
        else return false;
      }
    n->inputs[0] = n->inputs[0].node->inputs[0];
    n->inputs[1] = add_const(g_, n->name + "/paddings", moved)->out();
    put_transpose_after(n, p);
    return true;
  }

  Graph& g_;
  Uses uses_;
};

}  // namespace

void assign_layout(Graph& g, const PassContext&) {
  bool any = false;
  for (Node* n : g.topo_order()) any = rewrite_nchw(g, n) || any;
  if (!any) return;  // transposes a graph already had are simplify_algebra's business
  // Each step changes one node and invalidates use counts, so rebuild them per change.
  for (int round = 0; round < 4096; ++round) {
    bool changed = false;
    Sinker s(g);
    for (Node* n : g.topo_order())
      if (s.step(n)) {
        changed = true;
        break;
      }
    if (!changed) break;
  }
  remove_unreachable(g);
}

}  // namespace tessera::passes
