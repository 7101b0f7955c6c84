// cse: nodes with the same op, inputs, control inputs and attributes compute the same values;
// later ones are replaced by the first. Never merged: stateful ops, calls into library
// functions, and constants larger than kMaxConstElements (comparing them costs more than a
// duplicate).
#include <cstring>
#include <unordered_map>

#include "ir/printer.h"
#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

constexpr int64_t kMaxConstElements = 1024;

// A textual key identifying what the node computes, or "" if it must not be merged.
std::string node_key(const Node& n) {
  if (!n.def || n.def->stateful || n.num_outputs() == 0 || has_side_effects(n, true)) return "";
  std::string key = n.op + "(";
  for (const Value& v : n.inputs) key += std::to_string(v.node->id) + ":" + std::to_string(v.index) + ",";
  for (const Node* c : n.control_inputs) key += "^" + std::to_string(c->id) + ",";
  key += "){";
  for (const auto& [k, v] : n.attrs) {
    if (const Tensor* t = std::get_if<Tensor>(&v)) {
      if (t->num_elements() > kMaxConstElements) return "";
      if (t->dtype() == DType::kVariant || t->dtype() == DType::kResource) return "";
    }
    key += k + "=" + attr_text(v, kMaxConstElements) + ";";
  }
  return key + "}";
}

}  // namespace

void cse(Graph& g, const PassContext&) {
  std::unordered_map<std::string, Node*> seen;
  std::unordered_set<const Node*> args(g.args.begin(), g.args.end());
  for (Node* n : g.topo_order()) {
    if (args.count(n)) continue;
    std::string key = node_key(*n);
    if (key.empty()) continue;
    auto [it, fresh] = seen.emplace(key, n);
    if (fresh) continue;
    Node* first = it->second;
    for (int i = 0; i < n->num_outputs(); ++i) g.replace_all_uses(n->out(i), first->out(i));
    // Control edges on the duplicate now mean the first.
    for (const auto& m : g.nodes())
      for (Node*& c : m->control_inputs)
        if (c == n) c = first;
    for (Node*& c : g.control_results)
      if (c == n) c = first;
  }
  remove_unreachable(g);
}

}  // namespace tessera::passes
