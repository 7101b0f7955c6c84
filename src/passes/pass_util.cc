#include "passes/pass_util.h"

#include <algorithm>

namespace tessera::passes {

const Tensor* const_value(const Value& v) {
  if (!v.node || v.node->op != "Const" || v.index != 0) return nullptr;
  auto it = v.node->attrs.find("value");
  if (it == v.node->attrs.end()) return nullptr;
  return std::get_if<Tensor>(&it->second);
}

Node* add_node(Graph& g, const std::string& base, const std::string& op, std::vector<Value> inputs,
               AttrMap attrs) {
  Node* n = g.add(g.unique_name(base), op, std::move(inputs), std::move(attrs));
  infer_node(*n);
  return n;
}

Node* add_const(Graph& g, const std::string& base, const Tensor& value) {
  return add_node(g, base, "Const", {}, {{"dtype", value.dtype()}, {"value", value}});
}

void make_const(Node& node, const Tensor& value) {
  node.op = "Const";
  node.def = OpRegistry::global().find("Const");
  node.inputs.clear();
  node.control_inputs.clear();
  node.attrs = {{"dtype", value.dtype()}, {"value", value}};
  infer_node(node);
}

Uses::Uses(const Graph& g) {
  // Dead nodes (left behind by rewrites until the pass removes them) do not count as uses.
  std::vector<Node*> targets = g.control_results;
  targets.insert(targets.end(), g.args.begin(), g.args.end());
  for (Node* live : g.schedule(g.results, targets)) {
    const Node* n = live;
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      ++counts_[key(n->inputs[i])];
      users_[n->inputs[i].node].push_back({live, static_cast<int>(i)});
    }
    for (const Node* c : n->control_inputs) control_sources_.insert(c);
  }
  for (const Value& r : g.results) {
    ++counts_[key(r)];
    results_.insert(key(r));
  }
  for (const Node* c : g.control_results) control_sources_.insert(c);
}

int Uses::count(const Value& v) const {
  auto it = counts_.find(key(v));
  return it == counts_.end() ? 0 : it->second;
}

const std::vector<std::pair<Node*, int>>& Uses::users(const Node* n) const {
  static const std::vector<std::pair<Node*, int>> none;
  auto it = users_.find(n);
  return it == users_.end() ? none : it->second;
}

bool Uses::single_consumer(const Value& v) const {
  if (count(v) != 1 || is_result(v) || control_sources_.count(v.node)) return false;
  // Other outputs of the node must be unused too, so the node can go.
  for (int i = 0; i < v.node->num_outputs(); ++i)
    if (i != v.index && count({v.node, i}) > 0) return false;
  return true;
}

bool has_side_effects(const Node& n, bool graph_writes_variables) {
  if (!n.def) return true;
  static const std::unordered_set<std::string> kPure = {"_Arg", "Placeholder", "Const", "VarHandleOp",
                                                        "VarIsInitializedOp"};
  if (kPure.count(n.op)) return false;
  if (n.op == "ReadVariableOp") return graph_writes_variables;
  if (n.def->stateful) return true;
  // Calls into library functions may run stateful bodies.
  for (const auto& [k, v] : n.attrs)
    if (std::holds_alternative<FuncRef>(v) || std::holds_alternative<std::vector<FuncRef>>(v)) return true;
  return false;
}

bool writes_variables(const Graph& g) {
  for (const auto& n : g.nodes()) {
    if (!n->def) return true;
    if (n->op == "ReadVariableOp" || n->op == "VarHandleOp" || n->op == "_Arg") continue;
    if (n->def->stateful) return true;
    for (const auto& [k, v] : n->attrs)
      if (std::holds_alternative<FuncRef>(v) || std::holds_alternative<std::vector<FuncRef>>(v)) return true;
  }
  return false;
}

std::unordered_set<const Node*> effectful_closure(const Graph& g) {
  bool writes = writes_variables(g);
  std::unordered_set<const Node*> out;
  for (Node* n : g.topo_order()) {
    bool e = has_side_effects(*n, writes);
    for (const Value& in : n->inputs) e = e || out.count(in.node);
    for (const Node* c : n->control_inputs) e = e || out.count(c);
    if (e) out.insert(n);
  }
  return out;
}

void forward_value(Graph& g, Value from, Value to) {
  const std::vector<Node*> controls = from.node->control_inputs;
  for (const auto& n : g.nodes()) {
    bool uses = false;
    for (Value& in : n->inputs)
      if (in == from) {
        in = to;
        uses = true;
      }
    if (uses)
      for (Node* c : controls)
        if (std::find(n->control_inputs.begin(), n->control_inputs.end(), c) == n->control_inputs.end())
          n->control_inputs.push_back(c);
  }
  for (Value& r : g.results)
    if (r == from) {
      r = to;
      for (Node* c : controls)
        if (std::find(g.control_results.begin(), g.control_results.end(), c) == g.control_results.end())
          g.control_results.push_back(c);
    }
}

int remove_unreachable(Graph& g) {
  std::vector<Node*> targets = g.control_results;
  targets.insert(targets.end(), g.args.begin(), g.args.end());
  std::vector<Node*> live = g.schedule(g.results, targets);
  std::unordered_set<const Node*> keep(live.begin(), live.end());
  size_t before = g.nodes().size();
  // Control edges from dead nodes disappear with them.
  g.remove_if([&](const Node& n) { return !keep.count(&n); });
  return static_cast<int>(before - g.nodes().size());
}

}  // namespace tessera::passes
