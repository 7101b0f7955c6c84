#include "train/variable_keys.h"

#include <algorithm>

#include "support/error.h"

namespace tessera::train {
namespace {

// Follows Identity / IdentityN to the producing node and output.
Value skip_identity(Value v) {
  while (v.node && (v.node->op == "Identity" || v.node->op == "IdentityN") && !v.node->inputs.empty())
    v = v.node->op == "Identity" ? v.node->inputs[0] : v.node->inputs.at(static_cast<size_t>(v.index));
  return v;
}

}  // namespace

std::map<std::string, std::vector<std::string>> bundle_keys_by_resource(const Module& module) {
  std::map<std::string, std::vector<std::string>> out;
  if (!module.graph) return out;
  for (const auto& n : module.graph->nodes()) {
    if (n->op != "AssignVariableOp" || n->inputs.size() < 2) continue;
    Value value = skip_identity(n->inputs[1]);
    if (!value.node || value.node->op != "RestoreV2" || value.node->inputs.size() < 2) continue;
    Value names = skip_identity(value.node->inputs[1]);
    if (!names.node || names.node->op != "Const") continue;
    const Tensor& t = names.node->attr<Tensor>("value");
    if (t.dtype() != DType::kString || value.index >= t.num_elements()) continue;
    Value handle = skip_identity(n->inputs[0]);
    if (!handle.node || handle.node->op != "VarHandleOp") continue;
    const std::string shared = handle.node->attr_or<std::string>("shared_name", "");
    const std::string key =
        handle.node->attr_or<std::string>("container", "") + "/" + (shared.empty() ? handle.node->name : shared);
    out[key].push_back(t.strings().at(static_cast<size_t>(value.index)));
  }
  for (auto& [k, v] : out) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  }
  return out;
}

std::map<std::string, Tensor> to_bundle_keys(const std::map<std::string, Tensor>& by_resource,
                                             const std::map<std::string, std::vector<std::string>>& keys) {
  std::map<std::string, Tensor> out;
  for (const auto& [rk, value] : by_resource) {
    auto it = keys.find(rk);
    if (it == keys.end() || it->second.empty()) {
      out[rk] = value;
      continue;
    }
    for (const std::string& bk : it->second) out[bk] = value;
  }
  return out;
}

}  // namespace tessera::train
