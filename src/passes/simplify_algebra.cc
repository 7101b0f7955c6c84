// simplify_algebra: constant per-channel arithmetic after a conv/matmul moves into its weights.
//   FusedBatchNorm (inference)      -> Mul(x, s) + t          (then folded as below)
//   Mul/RealDiv(W(x), c)            -> W'(x)                  (filter scaled per output channel)
//   Mul(BiasAdd(W(x), b), c)        -> BiasAdd(W'(x), b*c)
//   AddV2/Sub(W(x), c)              -> BiasAdd(W(x), +-c)
//   AddV2/Sub(BiasAdd(W(x), b), c)  -> BiasAdd(W(x), b +- c)
//   AddV2(Reshape(W(x)), c)         -> Reshape(BiasAdd(W(x), flat c))  (split channel axis)
//   Einsum(x, w) "PK,KM->PM"        -> Reshape(BatchMatMulV2(Reshape(x), w as a matrix))
//   Reshape(x, computed shape)      -> Reshape(x, constant) when inference pins all dims but one
// where W is Conv2D/DepthwiseConv2dNative (NHWC), MatMul or a BatchMatMul with a rank-2 weight,
// its weight a float32 Const, and c a constant varying only along the channel (last) axis.
// Keras 3's BatchNorm (Rsqrt/Mul/Sub/Add on variables) becomes exactly these Mul/Add forms once
// variables are frozen and constants folded. Also: x*1, x/1, x+0, x-0 removed; Reshape of a
// Reshape and Transpose of a Transpose collapsed; identity Reshapes/Transposes dropped.
#include <algorithm>
#include <climits>
#include <cmath>
#include <optional>

#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

bool is_bmm(const std::string& op) {
  return op == "BatchMatMul" || op == "BatchMatMulV2" || op == "BatchMatMulV3";
}

// Output channels of a weight op whose weight (input 1) is a float32 Const; 0 if not one.
int64_t weight_channels(const Node& w) {
  const Tensor* f = w.inputs.size() == 2 ? const_value(w.inputs[1]) : nullptr;
  if (!f || f->dtype() != DType::kFloat32 || w.outputs.size() != 1) return 0;
  if (w.outputs[0].dtype != DType::kFloat32 || !w.control_inputs.empty()) return 0;
  if (w.op == "Conv2D" || w.op == "DepthwiseConv2dNative") {
    if (w.attr_or<std::string>("data_format", "NHWC") != "NHWC" || f->rank() != 4) return 0;
    return w.op == "Conv2D" ? f->dim(3) : f->dim(2) * f->dim(3);
  }
  if (w.op == "MatMul") {
    if (f->rank() != 2) return 0;
    return w.attr_or<bool>("transpose_b", false) ? f->dim(0) : f->dim(1);
  }
  if (is_bmm(w.op)) {
    if (f->rank() != 2 || w.attr_or<bool>("adj_x", false)) return 0;
    const PartialShape& x = shape_of(w.inputs[0]);
    if (!x.known_rank || x.rank() < 2) return 0;
    return w.attr_or<bool>("adj_y", false) ? f->dim(0) : f->dim(1);
  }
  return 0;
}

// The weight scaled by s[output channel].
Tensor scale_weight(const Node& w, const Tensor& f, const std::vector<float>& s) {
  Tensor out(DType::kFloat32, f.shape());
  const float* in = f.data<float>();
  float* o = out.data<float>();
  const int64_t n = static_cast<int64_t>(s.size()), total = f.num_elements();
  bool rows = (w.op == "MatMul" && w.attr_or<bool>("transpose_b", false)) ||
              (is_bmm(w.op) && w.attr_or<bool>("adj_y", false));
  const int64_t k = rows ? total / n : 0;
  for (int64_t i = 0; i < total; ++i) o[i] = in[i] * s[static_cast<size_t>(rows ? i / k : i % n)];
  return out;
}

// c as a per-channel vector of length n, if broadcasting it against a rank-`rank` tensor with
// n channels (last axis) only ever varies along that axis and adds no dimensions.
std::optional<std::vector<float>> channel_vector(const Tensor* c, int64_t rank, int64_t n) {
  if (!c || c->dtype() != DType::kFloat32 || c->rank() > rank || n <= 0) return std::nullopt;
  for (int64_t i = 0; i + 1 < c->rank(); ++i)
    if (c->dim(i) != 1) return std::nullopt;
  int64_t last = c->rank() ? c->shape().back() : 1;
  if (last != 1 && last != n) return std::nullopt;
  std::vector<float> s(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) s[static_cast<size_t>(i)] = c->data<float>()[last == 1 ? 0 : i];
  return s;
}

Tensor vec(const std::vector<float>& v) { return Tensor::from_vector<float>(v, {static_cast<int64_t>(v.size())}); }

// Shapes known to be equal at run time: same rank, equal dims, at most one unknown at the same
// place (element counts then force it), as for a Reshape that keeps the element count.
bool same_static_shape(const PartialShape& a, const PartialShape& b) {
  if (!a.known_rank || a != b) return false;
  int unknown = 0;
  for (int64_t d : a.dims) unknown += d < 0;
  return unknown <= 1;
}

// The constant operand of a binary node (and the other one), if exactly one side is Const.
bool split_const(const Node& n, Value& x, const Tensor*& c, bool commutative) {
  if (n.inputs.size() != 2 || !n.control_inputs.empty()) return false;
  if (const Tensor* t = const_value(n.inputs[1]); t && !is_const(n.inputs[0])) {
    x = n.inputs[0];
    c = t;
    return true;
  }
  if (!commutative) return false;
  if (const Tensor* t = const_value(n.inputs[0]); t && !is_const(n.inputs[1])) {
    x = n.inputs[1];
    c = t;
    return true;
  }
  return false;
}

bool all_equal(const Tensor& t, float v) {
  if (t.dtype() != DType::kFloat32) return false;
  for (int64_t i = 0; i < t.num_elements(); ++i)
    if (t.data<float>()[i] != v) return false;
  return true;
}

// c broadcast against x leaves x's shape unchanged.
bool broadcast_keeps(const PartialShape& x, const Tensor& c) {
  if (!x.known_rank || c.rank() > x.rank()) return false;
  for (int64_t i = 0; i < c.rank(); ++i) {
    int64_t cd = c.dim(c.rank() - 1 - i), xd = x.dims[x.dims.size() - 1 - i];
    if (cd != 1 && cd != xd) return false;
  }
  return true;
}

class Simplifier {
 public:
  explicit Simplifier(Graph& g) : g_(g), uses_(g) {}

  bool rewrite(Node* n) {
    if (dead(n)) return false;
    return batch_norm(n) || einsum_dense(n) || neutral(n) || scale_into_weights(n) || add_into_bias(n) ||
           bias_through_reshape(n) || reshape_chain(n) || transpose_chain(n);
  }
  void refresh() { uses_ = Uses(g_); }

 private:
  bool dead(const Node* n) const {
    for (int i = 0; i < n->num_outputs(); ++i)
      if (uses_.count({const_cast<Node*>(n), i})) return false;
    return true;
  }
  bool f32_op(const Node* n) const { return n->outputs.size() == 1 && n->outputs[0].dtype == DType::kFloat32; }

  bool batch_norm(Node* n) {
    if (n->op != "FusedBatchNorm" && n->op != "FusedBatchNormV2" && n->op != "FusedBatchNormV3") return false;
    if (n->attr_or<bool>("is_training", true) || n->attr_or<std::string>("data_format", "NHWC") != "NHWC") return false;
    if (n->outputs[0].dtype != DType::kFloat32 || !n->control_inputs.empty()) return false;
    for (int i = 1; i < n->num_outputs(); ++i)
      if (uses_.count(n->out(i))) return false;
    const Tensor* p[4];
    for (int i = 0; i < 4; ++i) {
      p[i] = const_value(n->inputs[1 + i]);
      if (!p[i] || p[i]->dtype() != DType::kFloat32 || p[i]->rank() != 1) return false;
    }
    const int64_t ch = p[0]->dim(0);
    for (int i = 1; i < 4; ++i)
      if (p[i]->dim(0) != ch) return false;
    const double eps = n->attr<float>("epsilon");
    std::vector<float> s(static_cast<size_t>(ch)), t(static_cast<size_t>(ch));
    for (int64_t c = 0; c < ch; ++c) {
      double scale = p[0]->data<float>()[c] / std::sqrt(static_cast<double>(p[3]->data<float>()[c]) + eps);
      s[c] = static_cast<float>(scale);
      t[c] = static_cast<float>(p[1]->data<float>()[c] - p[2]->data<float>()[c] * scale);
    }
    Node* mul = add_node(g_, n->name + "/scale", "Mul", {n->inputs[0], add_const(g_, n->name + "/s", vec(s))->out()},
                         {{"T", DType::kFloat32}});
    Node* add = add_node(g_, n->name + "/shift", "AddV2", {mul->out(), add_const(g_, n->name + "/t", vec(t))->out()},
                         {{"T", DType::kFloat32}});
    g_.replace_all_uses(n->out(0), add->out());
    return true;
  }

  // The weight op producing v with v as its only use, and its channel count.
  Node* sole_weight_op(const Value& v, int64_t& n) {
    if (!uses_.single_consumer(v)) return nullptr;
    n = weight_channels(*v.node);
    return n > 0 ? v.node : nullptr;
  }

  // BiasAdd(W(x), b) / AddV2(W(x), b) with b a constant channel vector; v its only use.
  Node* sole_biased_weight_op(const Value& v, int64_t& n, std::vector<float>& bias) {
    Node* b = v.node;
    if (!uses_.single_consumer(v) || !f32_op(b)) return nullptr;
    Value x;
    const Tensor* c = nullptr;
    if (b->op == "BiasAdd") {
      if (b->attr_or<std::string>("data_format", "NHWC") != "NHWC" || !split_const(*b, x, c, false)) return nullptr;
    } else if (b->op == "AddV2") {
      if (!split_const(*b, x, c, true)) return nullptr;
    } else {
      return nullptr;
    }
    Node* w = sole_weight_op(x, n);
    if (!w) return nullptr;
    auto cv = channel_vector(c, shape_of(x).rank(), n);
    if (!cv) return nullptr;
    bias = *cv;
    return w;
  }

  void set_weight(Node* w, const std::vector<float>& s) {
    Tensor scaled = scale_weight(*w, *const_value(w->inputs[1]), s);
    w->inputs[1] = add_const(g_, w->name + "/scaled_weight", scaled)->out();
    infer_node(*w);
  }

  Node* bias_add(const std::string& base, Value x, const std::vector<float>& b) {
    std::string name = g_.unique_name(base);
    return add_node(g_, name, "BiasAdd", {x, add_const(g_, name + "/bias", vec(b))->out()},
                    {{"T", DType::kFloat32}, {"data_format", std::string("NHWC")}});
  }

  bool scale_into_weights(Node* n) {
    if ((n->op != "Mul" && n->op != "RealDiv") || !f32_op(n)) return false;
    Value x;
    const Tensor* c = nullptr;
    if (!split_const(*n, x, c, n->op == "Mul")) return false;
    int64_t ch = 0;
    std::vector<float> bias;
    Node* w = sole_weight_op(x, ch);
    Node* w2 = w ? nullptr : sole_biased_weight_op(x, ch, bias);
    if (!w && !w2) return false;
    auto s = channel_vector(c, shape_of(x).rank(), ch);
    if (!s) return false;
    if (n->op == "RealDiv")
      for (float& v : *s) v = 1.0f / v;
    if (w) {
      set_weight(w, *s);
      g_.replace_all_uses(n->out(), x);
      return true;
    }
    for (size_t i = 0; i < bias.size(); ++i) bias[i] *= (*s)[i];
    set_weight(w2, *s);
    Node* b = bias_add(n->name, w2->out(), bias);
    g_.replace_all_uses(n->out(), b->out());
    return true;
  }

  bool add_into_bias(Node* n) {
    if ((n->op != "AddV2" && n->op != "Sub") || !f32_op(n)) return false;
    Value x;
    const Tensor* c = nullptr;
    if (!split_const(*n, x, c, n->op == "AddV2")) return false;
    const float sign = n->op == "Sub" ? -1.0f : 1.0f;
    int64_t ch = 0;
    std::vector<float> bias;
    Node* w = sole_weight_op(x, ch);
    if (!w) {
      // Only a BiasAdd folds further (an AddV2 bias is itself this rule's input form).
      if (x.node->op != "BiasAdd") return false;
      w = sole_biased_weight_op(x, ch, bias);
      if (!w) return false;
    }
    auto cv = channel_vector(c, shape_of(x).rank(), ch);
    if (!cv) return false;
    if (bias.empty()) bias.assign(cv->size(), 0.0f);
    for (size_t i = 0; i < bias.size(); ++i) bias[i] += sign * (*cv)[i];
    Node* b = bias_add(n->name, w->out(), bias);
    g_.replace_all_uses(n->out(), b->out());
    return true;
  }

  // A shape constant for `dims` (at most one unknown, written -1); nullopt otherwise.
  std::optional<Value> shape_const(const std::string& base, const std::vector<int64_t>& dims) {
    int unknown = 0;
    std::vector<int32_t> v;
    for (int64_t d : dims) {
      unknown += d < 0;
      if (d > INT32_MAX) return std::nullopt;
      v.push_back(static_cast<int32_t>(d < 0 ? -1 : d));
    }
    if (unknown > 1) return std::nullopt;
    return add_const(g_, base, Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())}))->out();
  }

  // Einsum "P K, K M -> P M" by a constant weight (tf_keras' EinsumDense, e.g. "abc,cde->abde"
  // and "abcd,cde->abe") -> Reshape(BatchMatMulV2(Reshape(x, P + [|K|]), W as [|K|, |M|]), P + M),
  // so the weight folding above and fuse_ops see a plain matmul.
  bool einsum_dense(Node* n) {
    if (n->op != "Einsum" || !f32_op(n) || n->inputs.size() != 2 || !n->control_inputs.empty()) return false;
    const Tensor* w = const_value(n->inputs[1]);
    if (!w || w->dtype() != DType::kFloat32 || is_const(n->inputs[0])) return false;
    std::string eq = n->attr_or<std::string>("equation", "");
    eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
    size_t comma = eq.find(','), arrow = eq.find("->");
    if (comma == std::string::npos || arrow == std::string::npos || arrow < comma || eq.find('.') != std::string::npos)
      return false;
    std::string a = eq.substr(0, comma), b = eq.substr(comma + 1, arrow - comma - 1), o = eq.substr(arrow + 2);
    size_t k = 0;  // length of the contracted suffix of a = prefix of b
    while (k < a.size() && k < b.size() && a[a.size() - 1 - k] != 0 && o.find(a[a.size() - 1 - k]) == std::string::npos) ++k;
    if (k == 0 || k >= a.size() || k >= b.size()) return false;
    std::string P = a.substr(0, a.size() - k), K = a.substr(a.size() - k), M = b.substr(k);
    if (b.substr(0, k) != K || o != P + M) return false;
    std::string all = P + K + M;
    for (size_t i = 0; i < all.size(); ++i)
      if (all.find(all[i], i + 1) != std::string::npos) return false;
    if (K.size() == 1 && M.size() == 1) return false;  // already a plain matmul for fuse_ops
    const PartialShape& xs = shape_of(n->inputs[0]);
    if (!xs.known_rank || xs.rank() != static_cast<int64_t>(a.size()) || w->rank() != static_cast<int64_t>(b.size()))
      return false;
    int64_t kk = 1, mm = 1;
    for (size_t i = 0; i < K.size(); ++i) {
      if (xs.dims[P.size() + i] >= 0 && xs.dims[P.size() + i] != w->dim(static_cast<int64_t>(i))) return false;
      kk *= w->dim(static_cast<int64_t>(i));
    }
    for (size_t i = K.size(); i < b.size(); ++i) mm *= w->dim(static_cast<int64_t>(i));
    std::vector<int64_t> lead(xs.dims.begin(), xs.dims.begin() + static_cast<long>(P.size()));
    if (P.size() < 1 || lead.size() + 1 < 2) return false;
    Value x = n->inputs[0];
    if (K.size() > 1) {
      std::vector<int64_t> dims = lead;
      dims.push_back(kk);
      auto s = shape_const(n->name + "/flat_shape", dims);
      if (!s) return false;
      x = add_node(g_, n->name + "/flat", "Reshape", {x, *s}, {{"T", DType::kFloat32}, {"Tshape", DType::kInt32}})->out();
    }
    Node* w2 = add_const(g_, n->name + "/weight", w->reshaped({kk, mm}));
    Node* mmn = add_node(g_, n->name + "/matmul", lead.size() == 1 ? "MatMul" : "BatchMatMulV2", {x, w2->out()},
                         {{"T", DType::kFloat32}});
    Value out = mmn->out();
    if (M.size() > 1) {
      std::vector<int64_t> dims = lead;
      for (size_t i = K.size(); i < b.size(); ++i) dims.push_back(w->dim(static_cast<int64_t>(i)));
      auto s = shape_const(n->name + "/split_shape", dims);
      if (!s) return false;
      out = add_node(g_, n->name + "/split", "Reshape", {out, *s}, {{"T", DType::kFloat32}, {"Tshape", DType::kInt32}})->out();
    }
    if (shape_of(out).rank() != n->outputs[0].shape.rank()) return false;
    g_.replace_all_uses(n->out(), out);
    return true;
  }

  // AddV2(Reshape(W(x)), c) where the Reshape only splits W's channel axis and c is constant
  // over the split axes (Keras 3 MultiHeadAttention's [heads, depth] bias)
  //   -> Reshape(BiasAdd(W(x), flat c)).
  bool bias_through_reshape(Node* n) {
    if (n->op != "AddV2" || !f32_op(n)) return false;
    Value r;
    const Tensor* c = nullptr;
    if (!split_const(*n, r, c, true) || r.node->op != "Reshape" || !uses_.single_consumer(r)) return false;
    int64_t ch = 0;
    Value y = r.node->inputs[0];
    std::vector<float> bias;  // an existing constant bias on W merges with c
    Node* w = sole_weight_op(y, ch);
    if (!w && y.node->op == "BiasAdd") w = sole_biased_weight_op(y, ch, bias);
    if (!w) return false;
    const PartialShape& in = shape_of(y);
    const PartialShape& out = r.node->outputs[0].shape;
    if (!in.known_rank || !out.known_rank || out.rank() <= in.rank()) return false;
    const size_t lead = static_cast<size_t>(in.rank() - 1);
    int unknown = 0;
    for (size_t i = 0; i < lead; ++i) {
      if (in.dims[i] != out.dims[i]) return false;
      unknown += in.dims[i] < 0;
    }
    int64_t split = 1;
    for (size_t i = lead; i < out.dims.size(); ++i) {
      if (out.dims[i] < 0) return false;
      split *= out.dims[i];
    }
    if (unknown > 1 || split != ch || c->dtype() != DType::kFloat32) return false;
    // c must broadcast over exactly the split axes: trailing dims equal, leading ones 1.
    const int64_t tail = out.rank() - static_cast<int64_t>(lead);
    if (c->rank() < tail || c->rank() > out.rank() || c->num_elements() != ch) return false;
    for (int64_t i = 0; i < tail; ++i)
      if (c->dim(c->rank() - tail + i) != out.dims[lead + static_cast<size_t>(i)]) return false;
    std::vector<float> flat(c->data<float>(), c->data<float>() + ch);
    for (size_t i = 0; i < bias.size(); ++i) flat[i] += bias[i];
    Node* b = bias_add(n->name + "/bias_add", w->out(), flat);
    Node* reshaped = add_node(g_, n->name, "Reshape", {b->out(), r.node->inputs[1]},
                              {{"T", DType::kFloat32}, {"Tshape", r.node->attr_or<DType>("Tshape", DType::kInt32)}});
    g_.replace_all_uses(n->out(), reshaped->out());
    return true;
  }

  // x*1, x/1, x+0, x-0 (only where the constant does not change x's shape).
  bool neutral(Node* n) {
    Value x;
    const Tensor* c = nullptr;
    if (!f32_op(n)) return false;
    bool mul = n->op == "Mul" || n->op == "RealDiv";
    bool add = n->op == "AddV2" || n->op == "Sub";
    if (!(mul || add) || !split_const(*n, x, c, n->op == "Mul" || n->op == "AddV2")) return false;
    if (!all_equal(*c, mul ? 1.0f : 0.0f) || !broadcast_keeps(shape_of(x), *c)) return false;
    if (shape_of(x) != n->outputs[0].shape || !is_f32(x)) return false;
    g_.replace_all_uses(n->out(), x);
    return true;
  }

  bool reshape_chain(Node* n) {
    if (n->op != "Reshape" || !n->control_inputs.empty()) return false;
    Value x = n->inputs[0];
    if (same_static_shape(shape_of(x), n->outputs[0].shape)) {
      g_.replace_all_uses(n->out(), x);
      return true;
    }
    if (x.node->op == "Reshape" && x.node->control_inputs.empty()) {
      n->inputs[0] = x.node->inputs[0];
      infer_node(*n);
      return true;
    }
    // A target computed at run time (Shape -> StridedSlice -> Pack, as Flatten and Keras'
    // squeeze-excite write it) is a constant when inference pins every dim but one.
    const PartialShape& out = n->outputs[0].shape;
    if (!is_const(n->inputs[1]) && out.known_rank) {
      int unknown = 0;
      bool positive = true;
      for (int64_t d : out.dims) {
        unknown += d < 0;
        positive = positive && d != 0;
      }
      if (unknown <= 1 && positive) {
        if (auto c = shape_const(n->name + "/shape", out.dims)) {
          n->inputs[1] = *c;
          n->attrs["Tshape"] = DType::kInt32;
          infer_node(*n);
          return true;
        }
      }
    }
    return false;
  }

  bool transpose_chain(Node* n) {
    if (n->op != "Transpose" || !n->control_inputs.empty()) return false;
    const Tensor* p = const_value(n->inputs[1]);
    if (!p) return false;
    std::vector<int64_t> perm = p->to_int_vector();
    auto identity = [](const std::vector<int64_t>& q) {
      for (size_t i = 0; i < q.size(); ++i)
        if (q[i] != static_cast<int64_t>(i)) return false;
      return true;
    };
    if (identity(perm)) {
      g_.replace_all_uses(n->out(), n->inputs[0]);
      return true;
    }
    Node* inner = n->inputs[0].node;
    if (inner->op != "Transpose" || !inner->control_inputs.empty()) return false;
    const Tensor* q = const_value(inner->inputs[1]);
    if (!q) return false;
    std::vector<int64_t> first = q->to_int_vector();
    if (first.size() != perm.size()) return false;
    std::vector<int32_t> combined(perm.size());
    std::vector<int64_t> check(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) {
      if (perm[i] < 0 || perm[i] >= static_cast<int64_t>(first.size())) return false;
      check[i] = first[static_cast<size_t>(perm[i])];
      combined[i] = static_cast<int32_t>(check[i]);
    }
    if (identity(check)) {
      g_.replace_all_uses(n->out(), inner->inputs[0]);
      return true;
    }
    Node* c = add_const(g_, n->name + "/perm", Tensor::from_vector<int32_t>(combined, {static_cast<int64_t>(combined.size())}));
    n->inputs = {inner->inputs[0], c->out()};
    n->attrs["Tperm"] = DType::kInt32;
    infer_node(*n);
    return true;
  }

  Graph& g_;
  Uses uses_;
};

}  // namespace

void simplify_algebra(Graph& g, const PassContext&) {
  Simplifier s(g);
  for (int round = 0; round < 16; ++round) {
    bool changed = false;
    for (Node* n : g.topo_order()) {
      if (s.rewrite(n)) {
        changed = true;
        s.refresh();
      }
    }
    if (!changed) break;
  }
  remove_unreachable(g);
}

}  // namespace tessera::passes
