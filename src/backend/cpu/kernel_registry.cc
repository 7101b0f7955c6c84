#include <map>
#include <mutex>

#include "backend/cpu/kernel.h"
#include "ops/op_helpers.h"

namespace tessera::cpu {

namespace {

std::map<std::string, KernelFactory>& registry() {
  static std::map<std::string, KernelFactory>* r = new std::map<std::string, KernelFactory>();
  return *r;
}

// Families register on first lookup (no static initialisers, as in ops/ops.cc).
void ensure_registered() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_matmul_kernels();
    register_conv_kernels();
    register_elementwise_kernels();
    register_softmax_kernels();
    register_reduce_kernels();
    register_norm_kernels();
    register_pool_kernels();
    register_attention_kernels();
    register_graph_kernels();
    register_array_kernels();
    register_conv_grad_kernels();
    register_pool_grad_kernels();
    register_mask_kernels();
    register_random_kernels();
  });
}

}  // namespace

void register_kernel(const std::string& op, KernelFactory factory) { registry()[op] = std::move(factory); }

const KernelFactory* find_kernel(const std::string& op) {
  ensure_registered();
  auto it = registry().find(op);
  return it == registry().end() ? nullptr : &it->second;
}

std::vector<std::string> kernel_ops() {
  ensure_registered();
  std::vector<std::string> names;
  for (const auto& [name, f] : registry()) names.push_back(name);
  return names;
}

void run_reference(const Node& node, KernelRun& run) {
  std::vector<Tensor> in = run.inputs();
  KernelContext ctx{node, in, {}, nullptr, {}};
  node.def->compute(ctx);
  for (size_t i = 0; i < ctx.outputs.size(); ++i) run.set_output(static_cast<int>(i), ctx.outputs[i]);
}

const Tensor* CompileEnv::constant_input(const Node& node, size_t i) {
  if (i >= node.inputs.size()) return nullptr;
  const Node* src = node.inputs[i].node;
  while (src->op == "Identity" && !src->inputs.empty()) src = src->inputs[0].node;
  if (src->op != "Const") return nullptr;
  auto it = src->attrs.find("value");
  if (it == src->attrs.end()) return nullptr;
  return std::get_if<Tensor>(&it->second);
}

const Node* CompileEnv::read_variable(const Node& node, size_t i) {
  if (i >= node.inputs.size()) return nullptr;
  const Node* src = node.inputs[i].node;
  while (src->op == "Identity" && !src->inputs.empty()) src = src->inputs[0].node;
  if (src->op != "ReadVariableOp" || src->inputs.empty()) return nullptr;
  const Node* var = src->inputs[0].node;
  while (var->op == "Identity" && !var->inputs.empty()) var = var->inputs[0].node;
  return var;
}

bool CompileEnv::unchanging_variable(const Node& node, size_t i) const {
  const Node* var = read_variable(node, i);
  if (!var) return false;
  const WrittenVariables* w = written_variables;
  if (!w) return true;
  if (w->through_argument) return false;
  // A read through a resource argument may be of any variable written here.
  return var->op == "VarHandleOp" ? !w->keys.count(ops::variable_handle_key(*var)) : w->keys.empty();
}

bool CompileEnv::is_f32(const Node& node, size_t i) {
  if (i >= node.inputs.size()) return false;
  const Value& v = node.inputs[i];
  return v.index < v.node->num_outputs() && v.node->outputs[v.index].dtype == DType::kFloat32;
}

const PackedWeight* CompileEnv::find_prepacked(const std::string& key, const std::string& layout) const {
  if (!prepacked) return nullptr;
  for (const PackedWeight& w : *prepacked)
    if (w.key == key && w.layout == layout) return &w;
  return nullptr;
}

}  // namespace tessera::cpu
