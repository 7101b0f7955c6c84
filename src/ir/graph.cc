#include "ir/graph.h"

#include <algorithm>
#include <unordered_set>

#include "ir/op_registry.h"

namespace tessera {

std::string Value::str() const {
  return (node ? node->name : std::string("<null>")) + ":" + std::to_string(index);
}

const Graph* FunctionLibrary::find(const std::string& name) const {
  auto it = functions.find(name);
  return it == functions.end() ? nullptr : it->second.get();
}

Node* Graph::add(std::string name, std::string op, std::vector<Value> inputs, AttrMap attrs) {
  TS_CHECK(!by_name_.count(name), "duplicate node name '", name, "'");
  auto node = std::make_unique<Node>();
  node->id = static_cast<int>(nodes_.size());
  node->name = std::move(name);
  node->op = std::move(op);
  node->def = OpRegistry::global().find(node->op);
  node->inputs = std::move(inputs);
  node->attrs = std::move(attrs);
  if (node->def) {
    for (const auto& [key, value] : node->def->attr_defaults)
      if (!node->attrs.count(key)) node->attrs[key] = value;
  }
  Node* raw = node.get();
  by_name_[raw->name] = raw;
  nodes_.push_back(std::move(node));
  return raw;
}

Node* Graph::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::string Graph::unique_name(const std::string& base) const {
  if (!by_name_.count(base)) return base;
  for (int i = 1;; ++i) {
    std::string candidate = base + "_" + std::to_string(i);
    if (!by_name_.count(candidate)) return candidate;
  }
}

void Graph::rename(Node* node, const std::string& new_name) {
  TS_CHECK(!by_name_.count(new_name), "duplicate node name '", new_name, "'");
  by_name_.erase(node->name);
  node->name = new_name;
  by_name_[new_name] = node;
}

void Graph::remove_if(const std::function<bool(const Node&)>& dead) {
  std::vector<std::unique_ptr<Node>> kept;
  for (auto& n : nodes_) {
    if (dead(*n)) {
      by_name_.erase(n->name);
    } else {
      kept.push_back(std::move(n));
    }
  }
  nodes_ = std::move(kept);
  for (size_t i = 0; i < nodes_.size(); ++i) nodes_[i]->id = static_cast<int>(i);
}

std::vector<Node*> Graph::schedule(const std::vector<Value>& fetches,
                                   const std::vector<Node*>& targets,
                                   const std::vector<const Node*>& fed) const {
  // Iterative DFS post-order; state 1 = on stack, 2 = done.
  std::unordered_map<const Node*, int> state;
  std::unordered_set<const Node*> fed_set(fed.begin(), fed.end());
  std::vector<Node*> order;
  std::vector<std::pair<Node*, size_t>> stack;
  auto visit = [&](Node* root) {
    if (!root || state[root] == 2) return;
    stack.push_back({root, 0});
    state[root] = 1;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      size_t n_data = fed_set.count(node) ? 0 : node->inputs.size();
      size_t n_ctrl = fed_set.count(node) ? 0 : node->control_inputs.size();
      if (next < n_data + n_ctrl) {
        Node* dep = next < n_data ? node->inputs[next].node : node->control_inputs[next - n_data];
        ++next;
        int s = state[dep];
        if (s == 1) fail("graph has a cycle through ", dep->label());
        if (s == 0) {
          state[dep] = 1;
          stack.push_back({dep, 0});
        }
      } else {
        state[node] = 2;
        order.push_back(node);
        stack.pop_back();
      }
    }
  };
  for (const Value& v : fetches) visit(v.node);
  for (Node* t : targets) visit(t);
  return order;
}

std::vector<Node*> Graph::topo_order() const {
  std::vector<Node*> all;
  for (const auto& n : nodes_) all.push_back(n.get());
  return schedule({}, all);
}

std::unordered_map<const Node*, std::vector<std::pair<Node*, int>>> Graph::users() const {
  std::unordered_map<const Node*, std::vector<std::pair<Node*, int>>> out;
  for (const auto& n : nodes_)
    for (size_t i = 0; i < n->inputs.size(); ++i)
      out[n->inputs[i].node].push_back({n.get(), static_cast<int>(i)});
  return out;
}

void Graph::replace_all_uses(Value from, Value to) {
  for (auto& n : nodes_)
    for (Value& in : n->inputs)
      if (in == from) in = to;
  for (Value& r : results)
    if (r == from) r = to;
}

}  // namespace tessera
