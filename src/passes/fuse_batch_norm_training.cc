// fuse_batch_norm_training: Keras 3's BatchNormalization in training mode becomes one
// TsBatchNormTraining (ops/batch_norm_ops.cc), so the step's forward is two passes over the
// activations and its gradient one TsBatchNormTrainingGrad instead of ~15 broadcasting ops.
// Run by the step builder on the training endpoint before differentiation (like
// rewrite_dropout), not part of the default pipeline.
//
// The subgraph (tf.nn.moments, then tf.nn.batch_normalization), channels last:
//   mean  = Mean(x, axes, keep_dims)            axes = every axis but the last
//   var   = Mean(SquaredDifference(x, StopGradient(mean)), axes, keep_dims)
//   m, v  = Squeeze(mean), Squeeze(var)         [C]; the moving-average updates read these
//   inv   = Rsqrt(v + eps) [* gamma]
//   y     = x * inv + (beta - m * inv)          (without beta: + Neg(m) * inv, or Neg(m * inv))
// y, m and v become outputs 0, 1, 2 of the new node: v is the population variance, exactly
// what Keras's moving-variance update read before. A Relu that is y's only consumer is folded
// in (attr activation). Intermediate values with other consumers keep their nodes.
//
// fold_batch_norm_grad_sum (run by the step builder after differentiation): a Sum of
// TsBatchNormTrainingGrad's dx over every axis but the last — the gradient of a conv/dense
// bias that feeds the batch norm — becomes the op's output 3, which its kernel accumulates
// while writing dx, saving a pass over dx.
#include <algorithm>
#include <optional>
#include <set>

#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

std::vector<Node*> consumers(const Value& v, const Uses& uses) {
  std::vector<Node*> out;
  for (const auto& [n, i] : uses.users(v.node))
    if (n->inputs[i] == v && std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  return out;
}

// The consumer of v with op `op` whose operands are v and something satisfying `ok` (either
// order for binary ops); returns the node and the other operand.
template <typename F>
std::optional<std::pair<Node*, Value>> binary_user(const Value& v, const Uses& uses, const std::string& op, F ok) {
  for (Node* n : consumers(v, uses)) {
    if (n->op != op || n->inputs.size() != 2) continue;
    for (int k = 0; k < 2; ++k)
      if (n->inputs[k] == v && ok(n->inputs[1 - k])) return std::make_pair(n, n->inputs[1 - k]);
  }
  return std::nullopt;
}

Node* unary_user(const Value& v, const Uses& uses, const std::string& op) {
  for (Node* n : consumers(v, uses))
    if (n->op == op && n->inputs.size() == 1) return n;
  return nullptr;
}

bool f32(const Value& v) { return v.node->outputs.at(v.index).dtype == DType::kFloat32; }

// `axes` (a Const) lists every axis of a value of shape `s` but the last, once each.
bool batch_reduction_axes(const Value& axes_v, const PartialShape& s) {
  const Tensor* axes = const_value(axes_v);
  if (!s.known_rank || s.rank() < 2 || !axes || axes->num_elements() != s.rank() - 1) return false;
  if (axes->dtype() != DType::kInt32 && axes->dtype() != DType::kInt64) return false;
  std::set<int64_t> seen;
  for (int64_t i = 0; i < axes->num_elements(); ++i) {
    int64_t a = axes->dtype() == DType::kInt64 ? axes->data<int64_t>()[i] : axes->data<int32_t>()[i];
    if (a < 0) a += s.rank();
    if (a < 0 || a >= s.rank() - 1) return false;
    seen.insert(a);
  }
  return static_cast<int64_t>(seen.size()) == s.rank() - 1;
}

// Mean over every axis but the last, keeping dims.
bool batch_mean(const Node& n, const Value& x) {
  return n.op == "Mean" && n.inputs[0] == x && n.attr_or<bool>("keep_dims", false) &&
         batch_reduction_axes(n.inputs[1], shape_of(x));
}

// Squeeze of a keep-dims statistic down to [C].
Node* squeeze_to_vector(const Value& v, const Uses& uses) {
  Node* s = unary_user(v, uses, "Squeeze");
  if (!s) return nullptr;
  const PartialShape& out = s->outputs[0].shape;
  return out.known_rank && out.rank() == 1 ? s : nullptr;
}

bool channel_vector(const Value& v, int64_t c) {
  const PartialShape& s = shape_of(v);
  return f32(v) && s.known_rank && s.rank() == 1 && (c < 0 || s.dims[0] == c);
}

struct Match {
  Value x;
  std::optional<Value> gamma, beta;
  float eps = 0;
  Node *mean_s = nullptr, *var_s = nullptr, *out = nullptr, *relu = nullptr;
  std::vector<Node*> nodes;  // every matched node (for their control inputs)
};

std::optional<Match> match(Node* mean, const Uses& uses) {
  if (mean->inputs.size() != 2 || !f32(mean->out())) return std::nullopt;
  Match m;
  m.x = mean->inputs[0];
  if (!f32(m.x) || !batch_mean(*mean, m.x)) return std::nullopt;
  const int64_t c = shape_of(m.x).dims.back();
  // SquaredDifference(x, StopGradient(mean)); without the stop the same function.
  Value centre = mean->out();
  if (Node* sg = unary_user(mean->out(), uses, "StopGradient")) centre = sg->out();
  auto sd = binary_user(centre, uses, "SquaredDifference", [&](const Value& o) { return o == m.x; });
  if (!sd) return std::nullopt;
  Node* var = nullptr;
  for (Node* n : consumers(sd->first->out(), uses))
    if (batch_mean(*n, sd->first->out())) var = n;
  if (!var) return std::nullopt;
  m.mean_s = squeeze_to_vector(mean->out(), uses);
  m.var_s = squeeze_to_vector(var->out(), uses);
  if (!m.mean_s || !m.var_s) return std::nullopt;
  std::optional<float> eps;
  auto add = binary_user(m.var_s->out(), uses, "AddV2", [&](const Value& o) {
    const Tensor* t = const_value(o);
    if (!t || t->dtype() != DType::kFloat32 || t->num_elements() != 1) return false;
    eps = t->data<float>()[0];
    return true;
  });
  if (!add || !eps) return std::nullopt;
  m.eps = *eps;
  Node* rsqrt = unary_user(add->first->out(), uses, "Rsqrt");
  if (!rsqrt) return std::nullopt;
  Value inv = rsqrt->out();
  auto scaled = binary_user(inv, uses, "Mul", [&](const Value& o) {
    return !(o == m.x) && !(o == m.mean_s->out()) && !(o.node->op == "Neg" && o.node->inputs[0] == m.mean_s->out()) &&
           channel_vector(o, c);
  });
  if (scaled) m.gamma = scaled->second, inv = scaled->first->out();
  auto mul_x = binary_user(inv, uses, "Mul", [&](const Value& o) { return o == m.x; });
  if (!mul_x) return std::nullopt;
  // The shift: beta − mean·inv, or without beta −mean·inv (TF writes Neg(mean)·inv; the
  // other association also matches).
  Node* shift_node = nullptr;
  Node* mul_m = nullptr;
  Node* neg_mean = unary_user(m.mean_s->out(), uses, "Neg");
  if (auto nm = neg_mean ? binary_user(inv, uses, "Mul", [&](const Value& o) { return o == neg_mean->out(); })
                         : std::nullopt) {
    shift_node = mul_m = nm->first;
  } else if (auto mm = binary_user(inv, uses, "Mul", [&](const Value& o) { return o == m.mean_s->out(); })) {
    mul_m = mm->first;
    for (Node* n : consumers(mul_m->out(), uses)) {
      if (n->op == "Sub" && n->inputs[1] == mul_m->out() && channel_vector(n->inputs[0], c)) {
        m.beta = n->inputs[0];
        shift_node = n;
      } else if (n->op == "Neg") {
        shift_node = n;
      }
      if (shift_node) break;
    }
    neg_mean = nullptr;
  }
  if (!shift_node) return std::nullopt;
  const Value shift = shift_node->out();
  auto out = binary_user(mul_x->first->out(), uses, "AddV2", [&](const Value& o) { return o == shift; });
  if (!out) return std::nullopt;
  m.out = out->first;
  if (!uses.is_result(m.out->out())) {
    std::vector<Node*> users = consumers(m.out->out(), uses);
    if (users.size() == 1 && users[0]->op == "Relu" && uses.count(m.out->out()) == 1) m.relu = users[0];
  }
  m.nodes = {mean, sd->first, var, m.mean_s, m.var_s, add->first, rsqrt, mul_x->first, mul_m, shift_node, m.out};
  if (neg_mean) m.nodes.push_back(neg_mean);
  if (centre.node != mean) m.nodes.push_back(centre.node);
  if (scaled) m.nodes.push_back(scaled->first);
  if (m.relu) m.nodes.push_back(m.relu);
  return m;
}

Value channel_fill(Graph& g, const std::string& base, int64_t c, float v) {
  Tensor t(DType::kFloat32, {c});
  for (int64_t i = 0; i < c; ++i) t.data<float>()[i] = v;
  return add_const(g, base, t)->out();
}

}  // namespace

void fuse_batch_norm_training(Graph& g, const PassContext&) {
  std::vector<Node*> means;
  for (const auto& n : g.nodes())
    if (n->op == "Mean") means.push_back(n.get());
  bool changed = false;
  for (Node* mean : means) {
    Uses uses(g);  // earlier rewrites change consumers
    std::optional<Match> m = match(mean, uses);
    if (!m) continue;
    const int64_t c = shape_of(m->x).dims.back();
    if ((!m->gamma || !m->beta) && c < 0) continue;  // a constant fill needs the channel count
    Value gamma = m->gamma ? *m->gamma : channel_fill(g, m->out->name + "/ones", c, 1.0f);
    Value beta = m->beta ? *m->beta : channel_fill(g, m->out->name + "/zeros", c, 0.0f);
    Node* bn = add_node(g, m->out->name + "/training", "TsBatchNormTraining", {m->x, gamma, beta},
                        {{"T", DType::kFloat32}, {"epsilon", m->eps},
                         {"activation", std::string(m->relu ? "Relu" : "")}});
    // The replaced nodes' control inputs still order the new node.
    for (Node* n : m->nodes)
      for (Node* ci : n->control_inputs)
        if (std::find(bn->control_inputs.begin(), bn->control_inputs.end(), ci) == bn->control_inputs.end())
          bn->control_inputs.push_back(ci);
    forward_value(g, (m->relu ? m->relu : m->out)->out(), bn->out(0));
    forward_value(g, m->mean_s->out(), bn->out(1));
    forward_value(g, m->var_s->out(), bn->out(2));
    changed = true;
  }
  if (changed) remove_unreachable(g);
}

void fold_batch_norm_grad_sum(Graph& g, const PassContext&) {
  std::vector<std::pair<Node*, Node*>> folds;  // (Sum, TsBatchNormTrainingGrad)
  for (const auto& n : g.nodes()) {
    if (n->op != "Sum" || n->inputs.size() != 2 || n->attr_or<bool>("keep_dims", false)) continue;
    const Value& dx = n->inputs[0];
    if (dx.node->op != "TsBatchNormTrainingGrad" || dx.index != 0 || !n->control_inputs.empty()) continue;
    if (!batch_reduction_axes(n->inputs[1], shape_of(dx))) continue;
    folds.push_back({n.get(), dx.node});
  }
  // The Sums are left dead for prune: the step builder still holds values (loss, metrics)
  // that are not results yet, so removing unreachable nodes here would free them.
  for (auto [sum, grad] : folds) forward_value(g, sum->out(), grad->out(3));
}

}  // namespace tessera::passes
