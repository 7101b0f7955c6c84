#include "ir/grad.h"

#include <map>
#include <set>

namespace tessera {
void add_with_grad(OpRegistry& r, OpDef def, GradFn grad) {
  def.grad = std::move(grad);
  r.add(std::move(def));
}

const GradFn* find_grad(const std::string& op) {
  const OpDef* def = OpRegistry::global().find(op);
  return def && def->grad ? &def->grad : nullptr;
}

std::vector<std::string> ops_with_grad() {
  std::vector<std::string> out;
  for (const std::string& name : OpRegistry::global().names())
    if (find_grad(name)) out.push_back(name);
  return out;
}

bool is_differentiable(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16 || t == DType::kBFloat16;
}

Value GradContext::dy(int i) {
  if (has_dy(i)) return *out_grads[i];
  return zeros_like(y(i));
}

Node* GradContext::emit(const std::string& op, std::vector<Value> inputs, AttrMap attrs) {
  Node* n = graph.add(graph.unique_name("gradients/" + node.name + "/" + op), op, std::move(inputs),
                      std::move(attrs));
  infer_node(*n);
  return n;
}

Value GradContext::unary(const std::string& op_name, Value a) {
  return op(op_name, {a}, {{"T", dtype(a)}});
}

Value GradContext::binary(const std::string& op_name, Value a, Value b) {
  return op(op_name, {a, b}, {{"T", dtype(a)}});
}

Value GradContext::scalar(double v, Value like) {
  DType t = dtype(like);
  if (t == DType::kFloat64)
    return op("Const", {}, {{"value", Tensor::scalar<double>(v)}, {"dtype", t}});
  Value f = op("Const", {}, {{"value", Tensor::scalar<float>(static_cast<float>(v))}, {"dtype", DType::kFloat32}});
  return cast(f, t);
}

Value GradContext::ints(const std::vector<int32_t>& v) {
  Tensor t = Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())});
  return op("Const", {}, {{"value", t}, {"dtype", DType::kInt32}});
}

Value GradContext::int_scalar(int32_t v) {
  return op("Const", {}, {{"value", Tensor::scalar<int32_t>(v)}, {"dtype", DType::kInt32}});
}

Value GradContext::shape(Value v, DType out_type) {
  return op("Shape", {v}, {{"T", dtype(v)}, {"out_type", out_type}});
}

Value GradContext::cast(Value v, DType to) {
  if (dtype(v) == to) return v;
  return op("Cast", {v}, {{"SrcT", dtype(v)}, {"DstT", to}, {"Truncate", false}});
}

Value GradContext::select(Value pred, Value a, Value b) {
  return op("SelectV2", {pred, a, b}, {{"T", dtype(a)}});
}

Value GradContext::reshape(Value v, Value s) {
  return op("Reshape", {v, s}, {{"T", dtype(v)}, {"Tshape", dtype(s)}});
}

Value GradContext::sum(Value v, Value axes, bool keep_dims) {
  return op("Sum", {v, axes}, {{"T", dtype(v)}, {"Tidx", dtype(axes)}, {"keep_dims", keep_dims}});
}

Value GradContext::reduce_to(Value g, Value like) {
  const PartialShape& gs = shape_of(g);
  const PartialShape& ls = shape_of(like);
  if (gs.fully_known() && ls.fully_known() && gs.dims == ls.dims) return g;  // nothing was broadcast
  Value ls_v = shape(like), gs_v = shape(g);
  Node* args = emit("BroadcastGradientArgs", {ls_v, gs_v}, {{"T", DType::kInt32}});
  return reshape(sum(g, args->out(0)), ls_v);
}

Value GradContext::unreduce(Value g, Value x, Value axes) {
  // Shape of x with 1 at every reduced axis: scatter ones into Shape(x) at the (normalised)
  // axes, which works whether or not the rank and axes are known at compile time.
  Value xs = shape(x);
  Value rank = op("Size", {xs}, {{"T", DType::kInt32}, {"out_type", DType::kInt32}});
  Value ax = cast(axes, DType::kInt32);
  ax = op("Reshape", {ax, ints({-1})}, {{"T", DType::kInt32}, {"Tshape", DType::kInt32}});
  ax = op("FloorMod", {ax, rank}, {{"T", DType::kInt32}});
  Value idx = op("ExpandDims", {ax, int_scalar(-1)}, {{"T", DType::kInt32}, {"Tdim", DType::kInt32}});
  Value ones = op("OnesLike", {ax}, {{"T", DType::kInt32}});
  Value kept = op("TensorScatterUpdate", {xs, idx, ones}, {{"T", DType::kInt32}, {"Tindices", DType::kInt32}});
  return reshape(g, kept);
}

std::optional<std::vector<int64_t>> GradContext::known_ints(size_t i) const {
  Value v = node.inputs.at(i);
  if (v.index >= static_cast<int>(v.node->known.size())) return std::nullopt;
  const Tensor& t = v.node->known[v.index];
  if (!t.valid()) return std::nullopt;
  return t.to_int_vector();
}

// ---- the reverse sweep ---------------------------------------------------------------------
// Forward over the seeds' schedule, mark values that depend on a target through
// floating-point edges; backward in reverse order, sum each value's incoming gradients and
// call its op's gradient for the inputs that need one.

namespace {
using Key = std::pair<const Node*, int>;
Key key_of(const Value& v) { return {v.node, v.index}; }
DType dtype_at(const Value& v) { return v.node->outputs.at(v.index).dtype; }
// TensorLists (variants) carry gradients too: their gradient is a list of the items' gradients.
bool carries_gradient(DType t) { return is_differentiable(t) || t == DType::kVariant; }

Value sum_grads(Graph& g, const Value& of, const std::vector<Value>& parts) {
  if (parts.size() == 1) return parts[0];
  Node* n = g.add(g.unique_name("gradients/" + of.node->name + "/AddN"), "AddN", parts,
                  {{"T", dtype_at(parts[0])}, {"N", static_cast<int64_t>(parts.size())}});
  infer_node(*n);
  return n->out(0);
}
}  // namespace

std::vector<std::optional<Value>> backprop(Graph& g, const std::vector<std::pair<Value, Value>>& seeds,
                                           const std::vector<std::vector<Value>>& targets) {
  std::set<Key> wanted;
  for (const auto& t : targets)
    for (const Value& v : t) wanted.insert(key_of(v));
  std::vector<Value> fetches;
  for (const auto& [v, grad] : seeds) fetches.push_back(v);
  std::vector<Node*> order = g.schedule(fetches, {});
  std::set<Key> on;  // values on a float path from a target
  for (Node* n : order) {
    bool dep = false;
    for (const Value& in : n->inputs) dep = dep || on.count(key_of(in));
    for (int i = 0; i < n->num_outputs(); ++i) {
      Value v = n->out(i);
      if (wanted.count(key_of(v)) || (dep && carries_gradient(dtype_at(v)))) on.insert(key_of(v));
    }
  }
  std::map<Key, std::vector<Value>> grads;
  for (const auto& [v, grad] : seeds)
    if (on.count(key_of(v))) grads[key_of(v)].push_back(grad);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    GradContext ctx{g, *n, {}, {}};
    bool any_out = false;
    for (int i = 0; i < n->num_outputs(); ++i) {
      auto found = grads.find({n, i});
      if (found == grads.end()) {
        ctx.out_grads.push_back(std::nullopt);
        continue;
      }
      Value s = sum_grads(g, n->out(i), found->second);
      found->second = {s};
      ctx.out_grads.push_back(s);
      any_out = true;
    }
    if (!any_out) continue;
    bool any_in = false;
    for (const Value& in : n->inputs) {
      ctx.wanted.push_back(on.count(key_of(in)) > 0);
      any_in = any_in || ctx.wanted.back();
    }
    if (!any_in) continue;
    const GradFn* grad = find_grad(n->op);
    TS_CHECK(grad, n->label(), ": op '", n->op, "' has no gradient, but the loss depends on a target through it");
    GradList in_grads = with_context(n->label() + " (gradient)", [&] { return (*grad)(ctx); });
    // Up to wanted.size(): a gradient may append inputs to the node (While's accumulators).
    for (size_t i = 0; i < ctx.wanted.size(); ++i) {
      if (!ctx.wanted[i] || i >= in_grads.size() || !in_grads[i]) continue;
      const Value& gi = *in_grads[i];
      TS_CHECK(dtype_at(gi) == dtype_at(n->inputs[i]), n->label(), ": gradient for input ", i, " is ",
               dtype_name(dtype_at(gi)), ", input is ", dtype_name(dtype_at(n->inputs[i])));
      grads[key_of(n->inputs[i])].push_back(gi);
    }
  }
  std::vector<std::optional<Value>> out;
  for (const auto& t : targets) {
    std::vector<Value> parts;
    for (const Value& v : t) {
      auto found = grads.find(key_of(v));
      if (found != grads.end()) parts.push_back(sum_grads(g, v, found->second));
    }
    if (parts.empty()) out.push_back(std::nullopt);
    else out.push_back(sum_grads(g, t.at(0), parts));
  }
  return out;
}

}  // namespace tessera
