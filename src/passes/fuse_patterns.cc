// fuse_patterns: multi-op idioms become Tessera ops (docs/fused_ops.md).
//  - Layer norm over the last axis, in tf_keras' form (x*m + (beta - mean*m)) and Keras 3's
//    (x*m + (-mean*m + beta)), m = rsqrt(var + eps) * gamma  -> TsLayerNorm.
//  - Gelu in any elementwise spelling (erf, erfc or tanh forms): a single-input region of
//    elementwise ops with scalar constants is evaluated on probe values and, when it computes
//    gelu (exact or tanh) to float precision, replaced -> TsGelu. Matching by value makes every
//    algebraic variant match and cannot accept a different function on those probes.
//  - Attention score blocks as Keras MultiHeadAttention writes them: Einsum(q, k) (scaled before
//    or after), Softmax, Einsum(probs, v), layouts [B,T,N,H] -> TsAttention.
#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "ir/interpreter.h"
#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

const std::set<std::string> kUnaryEw = {"Neg", "Abs", "Exp", "Log", "Sqrt", "Rsqrt", "Square",
                                        "Reciprocal", "Tanh", "Sigmoid", "Erf", "Erfc", "Softplus",
                                        "Relu", "Expm1", "Log1p"};
const std::set<std::string> kBinaryEw = {"AddV2", "Sub", "Mul", "RealDiv", "Pow", "Maximum",
                                         "Minimum", "SquaredDifference"};

bool f32_out(const Node& n) { return n.def && n.outputs.size() == 1 && n.outputs[0].dtype == DType::kFloat32; }
bool elementwise(const Node& n) {
  return f32_out(n) && n.control_inputs.empty() && (kUnaryEw.count(n.op) || kBinaryEw.count(n.op));
}
const Tensor* scalar_const(const Value& v) {
  const Tensor* t = const_value(v);
  return t && t->dtype() == DType::kFloat32 && t->num_elements() == 1 ? t : nullptr;
}
std::optional<float> scalar_of(const Value& v) {
  const Tensor* t = scalar_const(v);
  if (!t || t->rank() > 0) return std::nullopt;
  return t->data<float>()[0];
}

// The consumers of v (nodes; a result makes this fail).
std::optional<std::vector<Node*>> consumers(const Value& v, const Uses& uses) {
  if (uses.is_result(v)) return std::nullopt;
  std::vector<Node*> out;
  for (const auto& [n, i] : uses.users(v.node))
    if (n->inputs[i] == v) out.push_back(n);
  return out;
}
Node* only_consumer(const Value& v, const Uses& uses) {
  auto c = consumers(v, uses);
  return c && c->size() == 1 ? c->front() : nullptr;
}
// Binary node n with operands {a, other}: returns other.
std::optional<Value> other(const Node& n, const Value& a) {
  if (n.inputs.size() != 2) return std::nullopt;
  if (n.inputs[0] == a) return n.inputs[1];
  if (n.inputs[1] == a) return n.inputs[0];
  return std::nullopt;
}
Node* node_of(const std::optional<Value>& v) { return v ? v->node : nullptr; }

// A channel vector for the last axis (length c), from a Const of shape [c] or [1,...,1,c].
std::optional<Tensor> channel_const(const Value& v, int64_t c) {
  const Tensor* t = const_value(v);
  if (!t || t->dtype() != DType::kFloat32 || t->rank() < 1 || t->shape().back() != c) return std::nullopt;
  for (int64_t i = 0; i + 1 < t->rank(); ++i)
    if (t->dim(i) != 1) return std::nullopt;
  return t->reshaped({c});
}

bool last_axis_mean(const Node& n, const Value& x) {
  if (n.op != "Mean" || !f32_out(n) || !(n.inputs[0] == x) || !n.attr_or<bool>("keep_dims", false)) return false;
  const Tensor* axes = const_value(n.inputs[1]);
  int64_t rank = shape_of(x).rank();
  if (!axes || rank < 1 || axes->num_elements() != 1) return false;
  int64_t a = axes->scalar_int();
  return a == -1 || a == rank - 1;
}

// ---- layer norm ----------------------------------------------------------------------------

bool fuse_layer_norm(Graph& g, Node* rs, const Uses& uses) {
  if (rs->op != "Rsqrt" || !f32_out(*rs)) return false;
  Node* add = rs->inputs[0].node;
  if (add->op != "AddV2" || !only_consumer(add->out(), uses)) return false;
  Value var_v;
  std::optional<float> eps;
  for (int i = 0; i < 2 && !eps; ++i) {
    eps = scalar_of(add->inputs[i]);
    var_v = add->inputs[1 - i];
  }
  if (!eps || !only_consumer(var_v, uses)) return false;
  Node* var = var_v.node;
  if (var->op != "Mean") return false;
  Node* sqd = var->inputs[0].node;
  if (sqd->op != "SquaredDifference" || !only_consumer(sqd->out(), uses)) return false;
  // SquaredDifference(x, mean) with mean = Mean(x) over the last axis (either operand order).
  Value x, mean_v;
  bool found = false;
  for (int i = 0; i < 2 && !found; ++i) {
    x = sqd->inputs[i];
    mean_v = sqd->inputs[1 - i];
    found = last_axis_mean(*mean_v.node, x);
  }
  if (!found || !last_axis_mean(*var, sqd->out()) || !is_f32(x)) return false;
  const int64_t c = shape_of(x).known_rank ? shape_of(x).dims.back() : -1;
  if (c <= 0) return false;
  // m = rs * gamma (or rs alone without gamma).
  Value m = rs->out();
  Tensor gamma = Tensor::from_vector<float>(std::vector<float>(static_cast<size_t>(c), 1.0f), {c});
  std::vector<Node*> internal = {add, var, sqd, mean_v.node};
  if (Node* gm = only_consumer(rs->out(), uses); gm && gm->op == "Mul") {
    if (auto gv = other(*gm, rs->out())) {
      if (auto gt = channel_const(*gv, c)) {
        gamma = *gt;
        internal.push_back(rs);
        m = gm->out();
      }
    }
  }
  auto m_users = consumers(m, uses);
  auto mean_users = consumers(mean_v, uses);
  if (!m_users || m_users->size() != 2 || !mean_users || mean_users->size() != 2) return false;
  // xm = x * m; the other user of m involves the mean.
  Node* xm = nullptr;
  Node* mm = nullptr;
  for (Node* u : *m_users) {
    if (u->op != "Mul") return false;
    if (other(*u, m) == std::optional<Value>(x)) xm = u;
    else mm = u;
  }
  if (!xm || !mm || !only_consumer(xm->out(), uses) || !only_consumer(mm->out(), uses)) return false;
  Node* out = nullptr;
  std::optional<Tensor> beta;
  Node* mean_user = mean_users->at(0) == sqd ? mean_users->at(1) : mean_users->at(0);
  Node* tail = only_consumer(mm->out(), uses);
  if (mean_user == mm && tail && tail->op == "Sub" && tail->inputs[1] == mm->out()) {
    // tf_keras: out = xm + (beta - mean * m)
    beta = channel_const(tail->inputs[0], c);
    internal.push_back(mm);
  } else if (mean_user->op == "Neg" && only_consumer(mean_user->out(), uses) == mm && tail && tail->op == "AddV2") {
    internal.push_back(mean_user);
    internal.push_back(mm);
    if (tail == only_consumer(xm->out(), uses)) {
      // Keras 3 with a zero beta (its "+ 0" already simplified away): out = xm + -mean * m
      beta = Tensor(DType::kFloat32, {c});
      out = tail;
    } else {
      // Keras 3: out = xm + (-mean * m + beta)
      beta = channel_const(*other(*tail, mm->out()), c);
    }
  }
  if (!beta) return false;
  if (!out) {
    if (!only_consumer(tail->out(), uses)) return false;
    out = only_consumer(xm->out(), uses);
    if (!out || out != only_consumer(tail->out(), uses)) return false;
  }
  if (out->op != "AddV2" || !f32_out(*out)) return false;
  if (out->outputs[0].shape != shape_of(x)) return false;
  Node* ln = add_node(g, out->name + "/layer_norm", "TsLayerNorm",
                      {x, add_const(g, out->name + "/gamma", gamma)->out(), add_const(g, out->name + "/beta", *beta)->out()},
                      {{"epsilon", *eps}});
  g.replace_all_uses(out->out(), ln->out());
  return true;
}

// ---- gelu by evaluation ---------------------------------------------------------------------

constexpr size_t kMaxRegion = 16;

// Elementwise ancestors of `out` (itself included) through float ops, up to kMaxRegion nodes.
std::vector<Node*> region_of(Node* out) {
  std::vector<Node*> region = {out};
  for (size_t i = 0; i < region.size() && region.size() < kMaxRegion; ++i)
    for (const Value& v : region[i]->inputs)
      if (elementwise(*v.node) && std::find(region.begin(), region.end(), v.node) == region.end())
        region.push_back(v.node);
  return region;
}

// Nodes of `region` on paths from x to out, in an order where inputs come first; empty if some
// node also reads something other than x, those nodes, or scalar constants.
std::vector<Node*> sub_region(Node* out, const Value& x, const std::vector<Node*>& region) {
  std::vector<Node*> order;
  std::set<const Node*> done, bad;
  std::function<bool(Node*)> visit = [&](Node* n) -> bool {  // true: depends on x only
    if (done.count(n)) return true;
    if (bad.count(n)) return false;
    bool uses_x = false;
    for (const Value& v : n->inputs) {
      if (v == x) uses_x = true;
      else if (scalar_const(v)) continue;
      else if (std::find(region.begin(), region.end(), v.node) != region.end() && v.node != x.node && visit(v.node))
        uses_x = true;
      else {
        bad.insert(n);
        return false;
      }
    }
    if (!uses_x) {
      bad.insert(n);
      return false;
    }
    done.insert(n);
    order.push_back(n);
    return true;
  };
  if (!visit(out)) return {};
  return order;
}

std::vector<float> probes() {
  std::vector<float> p;
  for (int i = -40; i <= 40; ++i) p.push_back(static_cast<float>(i) * 0.2f);
  for (float v : {-1e4f, -1000.0f, -100.0f, -30.0f, -12.5f, 0.01f, -0.003f, 15.0f, 40.0f, 100.0f, 1000.0f, 1e4f})
    p.push_back(v);
  return p;
}

// f(probes) for the region as a function of x, or empty if it cannot run.
std::vector<float> evaluate(const std::vector<Node*>& order, const Value& x) {
  Graph tmp;
  std::vector<float> in = probes();
  Node* arg = tmp.add("x", "_Arg", {}, {{"T", DType::kFloat32}, {"index", int64_t{0}},
                                        {"_shape", PartialShape({static_cast<int64_t>(in.size())})}});
  infer_node(*arg);
  tmp.args.push_back(arg);
  std::map<const Node*, Node*> copy;
  try {
    for (Node* n : order) {
      std::vector<Value> inputs;
      for (const Value& v : n->inputs) {
        if (v == x) {
          inputs.push_back(arg->out());
        } else if (copy.count(v.node)) {
          inputs.push_back(copy[v.node]->out());
        } else {
          Node* c = tmp.add(tmp.unique_name("c"), "Const", {}, {{"dtype", DType::kFloat32}, {"value", *const_value(v)}});
          infer_node(*c);
          inputs.push_back(c->out());
        }
      }
      Node* c = tmp.add(tmp.unique_name("n"), n->op, inputs, n->attrs);
      infer_node(*c);
      copy[n] = c;
    }
    Tensor out = interpret(tmp, {{arg->out(), Tensor::from_vector<float>(in)}}, {copy[order.back()]->out()}, {}, nullptr)[0];
    if (out.num_elements() != static_cast<int64_t>(in.size())) return {};
    return std::vector<float>(out.data<float>(), out.data<float>() + out.num_elements());
  } catch (const Error&) {
    return {};
  }
}

std::optional<bool> gelu_kind(const std::vector<float>& got) {
  std::vector<float> in = probes();
  if (got.size() != in.size()) return std::nullopt;
  for (bool approximate : {false, true}) {
    bool ok = true;
    for (size_t i = 0; i < in.size() && ok; ++i) {
      double x = in[i];
      double ref = approximate ? 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)))
                               : 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
      ok = std::fabs(got[i] - ref) <= 1e-5 * std::max(1.0, std::fabs(ref));
    }
    if (ok) return approximate;
  }
  return std::nullopt;
}

bool fuse_gelu(Graph& g, Node* out, const Uses& uses) {
  if (!elementwise(*out)) return false;
  std::vector<Node*> region = region_of(out);
  if (region.size() < 3) return false;
  std::vector<Value> candidates;
  for (Node* n : region)
    for (const Value& v : n->inputs)
      if (!scalar_const(v) && is_f32(v) && std::find(candidates.begin(), candidates.end(), v) == candidates.end())
        candidates.push_back(v);
  for (const Value& x : candidates) {
    std::vector<Node*> order = sub_region(out, x, region);
    if (order.size() < 3) continue;
    bool closed = true;  // intermediate values are used only inside
    for (Node* n : order) {
      if (n == out) continue;
      auto cs = consumers(n->out(), uses);
      if (!cs) closed = false;
      else
        for (Node* c : *cs) closed = closed && std::find(order.begin(), order.end(), c) != order.end();
    }
    if (!closed || out->outputs[0].shape != shape_of(x)) continue;
    std::optional<bool> kind = gelu_kind(evaluate(order, x));
    if (!kind) continue;
    Node* gelu = add_node(g, out->name + "/gelu", "TsGelu", {x}, {{"approximate", *kind}});
    g.replace_all_uses(out->out(), gelu->out());
    return true;
  }
  return false;
}

// ---- attention -------------------------------------------------------------------------------

struct Eq {
  std::string a, b, out;
};
std::optional<Eq> einsum_eq(const Node& n) {
  if (n.op != "Einsum" || n.inputs.size() != 2 || !f32_out(n)) return std::nullopt;
  std::string e = n.attr_or<std::string>("equation", "");
  e.erase(std::remove(e.begin(), e.end(), ' '), e.end());
  size_t comma = e.find(','), arrow = e.find("->");
  if (comma == std::string::npos || arrow == std::string::npos || arrow < comma) return std::nullopt;
  Eq q{e.substr(0, comma), e.substr(comma + 1, arrow - comma - 1), e.substr(arrow + 2)};
  if (q.a.size() != 4 || q.b.size() != 4 || q.out.size() != 4) return std::nullopt;
  return q;
}

bool fuse_attention(Graph& g, Node* e2, const Uses& uses) {
  // e2 = Einsum(probs [b n t s], v [b s n d]) -> [b t n d]
  auto eq2 = einsum_eq(*e2);
  if (!eq2) return false;
  Node* sm = e2->inputs[0].node;
  Value v = e2->inputs[1];
  std::string P = eq2->a, V = eq2->b, O = eq2->out;
  if (sm->op != "Softmax") {
    std::swap(P, V);
    sm = e2->inputs[1].node;
    v = e2->inputs[0];
  }
  if (sm->op != "Softmax" || !f32_out(*sm) || !only_consumer(sm->out(), uses)) return false;
  auto distinct = [](const std::string& letters) {
    for (size_t i = 0; i < letters.size(); ++i)
      if (letters.find(letters[i], i + 1) != std::string::npos) return false;
    return true;
  };
  const char b = P[0], n = P[1], t = P[2], s = P[3];
  const char d = V[3];
  if (!distinct(P + d) || V != std::string{b, s, n, d} || O != std::string{b, t, n, d}) return false;
  // Softmax(Mul(scores, c)) or Softmax(scores).
  float scale = 1.0f;
  Node* e1 = sm->inputs[0].node;
  if (e1->op == "Mul" && only_consumer(e1->out(), uses)) {
    for (int i = 0; i < 2; ++i)
      if (auto c = scalar_of(e1->inputs[i]); c && e1->inputs[1 - i].node->op == "Einsum") {
        scale = *c;
        e1 = e1->inputs[1 - i].node;
        break;
      }
  }
  auto eq1 = einsum_eq(*e1);
  if (!eq1 || !only_consumer(e1->out(), uses)) return false;
  // e1 = Einsum(q [B T N H], k [B S N H]) -> [B N T S], operands in either order.
  const std::string& Z = eq1->out;
  if (!distinct(Z)) return false;
  const char B = Z[0], N = Z[1], T = Z[2], S = Z[3];
  Value q, k;
  for (int i = 0; i < 2; ++i) {
    const std::string& qa = i == 0 ? eq1->a : eq1->b;
    const std::string& ka = i == 0 ? eq1->b : eq1->a;
    const char H = qa[3];
    if (qa == std::string{B, T, N, H} && ka == std::string{B, S, N, H} && H != B && H != N && H != T && H != S) {
      q = e1->inputs[i];
      k = e1->inputs[1 - i];
    }
  }
  if (!q.node) return false;
  // A scalar scale applied to q alone folds into the attention's scale.
  if (q.node->op == "Mul" && only_consumer(q, uses)) {
    for (int i = 0; i < 2; ++i)
      if (auto c = scalar_of(q.node->inputs[i])) {
        scale *= *c;
        q = q.node->inputs[1 - i];
        break;
      }
  }
  if (!is_f32(q) || !is_f32(k) || !is_f32(v)) return false;
  Node* att = add_node(g, e2->name + "/attention", "TsAttention", {q, k, v}, {{"scale", scale}});
  g.replace_all_uses(e2->out(), att->out());
  return true;
}

}  // namespace

void fuse_patterns(Graph& g, const PassContext&) {
  bool any = false;
  // Later nodes first, so the largest gelu region (ending at its last op) is tried first.
  std::vector<Node*> order = g.topo_order();
  Uses uses(g);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    if (n->num_outputs() == 0) continue;
    bool live = false;
    for (int i = 0; i < n->num_outputs() && !live; ++i) live = uses.count(n->out(i)) > 0;
    if (!live) continue;
    if (fuse_attention(g, n, uses) || fuse_layer_norm(g, n, uses) || fuse_gelu(g, n, uses)) {
      any = true;
      uses = Uses(g);  // the rewrite changed consumers
    }
  }
  if (any) remove_unreachable(g);
}

}  // namespace tessera::passes
