#include "ir/op_registry.h"

#include <exception>

namespace tessera {

void register_all_ops(OpRegistry& registry);  // src/ops/ops.cc

bool ResourceStore::contains(const std::string& key) const {
  std::lock_guard lock(mu_);
  return vars_.count(key) > 0;
}

Tensor ResourceStore::read(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = vars_.find(key);
  if (it == vars_.end())
    fail_code(ErrorCode::kFailedPrecondition, "variable '", key, "' is not initialised");
  return it->second;
}

void ResourceStore::assign(const std::string& key, Tensor value) {
  std::lock_guard lock(mu_);
  vars_[key] = std::move(value);
}

std::map<std::string, Tensor> ResourceStore::snapshot() const {
  std::lock_guard lock(mu_);
  return vars_;
}

void ResourceStore::restore(std::map<std::string, Tensor> values) {
  std::lock_guard lock(mu_);
  vars_ = std::move(values);
}

const ValueInfo& InferContext::input(size_t i) const {
  if (i >= node.inputs.size()) fail(node.label(), ": expected at least ", i + 1, " inputs");
  const Value& v = node.inputs[i];
  if (v.index >= v.node->num_outputs())
    fail(node.label(), ": input ", i, " refers to missing output ", v.str());
  return v.node->outputs[v.index];
}

const Tensor* InferContext::input_value(size_t i) const {
  if (i >= node.inputs.size()) return nullptr;
  const Value& v = node.inputs[i];
  if (v.index >= static_cast<int>(v.node->known.size())) return nullptr;
  const Tensor& t = v.node->known[v.index];
  return t.valid() ? &t : nullptr;
}

void InferContext::set_output(size_t i, DType dtype, PartialShape shape) {
  if (node.outputs.size() <= i) node.outputs.resize(i + 1);
  node.outputs[i] = {dtype, std::move(shape)};
}

int OpDef::flat_output_index(const Node& node, const std::string& arg_name, int k) const {
  if (output_args.empty()) return k;
  int base = 0;
  for (const OutputArg& arg : output_args) {
    int count = 1;
    if (!arg.number_attr.empty()) count = static_cast<int>(node.attr<int64_t>(arg.number_attr));
    if (!arg.type_list_attr.empty())
      count = static_cast<int>(node.attr<std::vector<DType>>(arg.type_list_attr).size());
    if (arg.name == arg_name) {
      if (k >= count) fail(node.label(), ": output '", arg_name, ":", k, "' out of range");
      return base + k;
    }
    base += count;
  }
  fail(node.label(), ": op has no output argument '", arg_name, "'");
}

OpRegistry& OpRegistry::global() {
  static OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    register_all_ops(*r);
    return r;
  }();
  return *registry;
}

void OpRegistry::add(OpDef def) {
  TS_CHECK(!ops_.count(def.name), "op '", def.name, "' registered twice");
  TS_CHECK(def.infer, "op '", def.name, "' has no shape inference");
  std::string name = def.name;
  ops_[name] = std::make_unique<OpDef>(std::move(def));
}

const OpDef* OpRegistry::find(const std::string& name) const {
  auto it = ops_.find(name);
  return it == ops_.end() ? nullptr : it->second.get();
}

std::vector<std::string> OpRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, def] : ops_) out.push_back(name);
  return out;
}

namespace {
constexpr int64_t kMaxKnownElements = 4096;  // values worth carrying through inference

// Runs a stateless op's reference kernel when all its inputs are known and small, so shape
// arithmetic (Shape -> StridedSlice -> Pack -> Reshape) resolves during import.
void fold_known(Node& node) {
  if (!node.def || node.def->stateful || !node.def->compute || node.op == "Const") return;
  std::vector<Tensor> inputs;
  for (const Value& v : node.inputs) {
    if (v.index >= static_cast<int>(v.node->known.size())) return;
    const Tensor& t = v.node->known[v.index];
    if (!t.valid() || t.num_elements() > kMaxKnownElements) return;
    inputs.push_back(t);
  }
  if (!node.control_inputs.empty()) return;
  KernelContext ctx{node, inputs, {}};
  ctx.call = [](const std::string& fn, std::vector<Tensor>) -> std::vector<Tensor> {
    fail("function '", fn, "' cannot be called while folding at import");
  };
  try {
    node.def->compute(ctx);
  } catch (const Error&) {
    return;  // the run-time error will surface with full context if this path executes
  }
  node.known.assign(node.outputs.size(), Tensor());
  for (size_t i = 0; i < ctx.outputs.size() && i < node.known.size(); ++i)
    if (ctx.outputs[i].valid() && ctx.outputs[i].num_elements() <= kMaxKnownElements)
      node.known[i] = ctx.outputs[i];
}
}  // namespace

void infer_node(Node& node) {
  TS_CHECK(node.def, node.label(), ": op '", node.op, "' is not supported");
  with_context(node.label(), [&] {
    node.outputs.clear();
    node.known.clear();
    InferContext ctx{node};
    try {
      node.def->infer(ctx);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      // Inference code tripping over a malformed node from an untrusted file (an .at() past
      // its inputs, a wrong variant kind): a clear error, not a crash.
      fail_code(ErrorCode::kInvalidArgument, "malformed node: too few inputs or attribute values for ", node.op,
                " (", e.what(), ")");
    }
    if (node.known.size() != node.outputs.size()) node.known.resize(node.outputs.size());
    fold_known(node);
  });
}

}  // namespace tessera
