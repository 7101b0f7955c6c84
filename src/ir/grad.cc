#include "ir/grad.h"

#include <map>

namespace tessera {
namespace {
std::map<std::string, GradFn>& grad_table() {
  static std::map<std::string, GradFn> table;
  return table;
}
}  // namespace

void add_with_grad(OpRegistry& r, OpDef def, GradFn grad) {
  std::string name = def.name;
  r.add(std::move(def));
  if (grad) grad_table()[name] = std::move(grad);
}

const GradFn* find_grad(const std::string& op) {
  OpRegistry::global();  // the family files fill the table while the registry is built
  auto it = grad_table().find(op);
  return it == grad_table().end() ? nullptr : &it->second;
}

std::vector<std::string> ops_with_grad() {
  OpRegistry::global();
  std::vector<std::string> out;
  for (const auto& [name, fn] : grad_table()) out.push_back(name);
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

}  // namespace tessera
