#include "ir/batch_rows.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>

#include "ir/copy_function.h"
#include "ir/op_registry.h"

namespace tessera {

namespace {

using ValueKey = std::pair<const Node*, int>;

ValueKey key(const Value& v) { return {v.node, v.index}; }

}  // namespace

BatchRows find_batch_rows(const Graph& g) {
  BatchRows out;
  std::set<ValueKey> batched;
  for (size_t i = 0; i < g.args.size(); ++i) {
    const Node* a = g.args[i];
    if (a->outputs.empty()) continue;
    const ValueInfo& info = a->outputs[0];
    if (info.shape.known_rank && info.shape.rank() >= 1 && info.shape.dims[0] < 0 && is_pod(info.dtype)) {
      out.batched_args.push_back(static_cast<int>(i));
      batched.insert({a, 0});
    }
  }
  if (batched.empty()) return out;
  for (const Node* n : g.topo_order()) {
    if (!n->def || !n->def->rowwise || !n->control_inputs.empty() || n->num_outputs() == 0) continue;
    std::vector<bool> rows(n->inputs.size(), false);
    bool readable = true, any = false;
    for (size_t i = 0; i < n->inputs.size() && readable; ++i) {
      if (batched.count(key(n->inputs[i]))) rows[i] = any = true;
      else readable = n->inputs[i].node->op == "Const";  // parameters: constants only
    }
    if (!readable || !any || !n->def->rowwise(*n, rows)) continue;
    out.rowwise.insert(n);
    for (int k = 0; k < n->num_outputs(); ++k) batched.insert({n, k});
  }
  return out;
}

SplitFunction split_function(const Graph& g, const std::unordered_set<const Node*>& head_nodes) {
  std::set<const Node*> arg_set(g.args.begin(), g.args.end());
  SplitFunction out;
  std::set<ValueKey> in_cut;
  auto add_cut = [&](const Value& v) {
    if (in_cut.insert(key(v)).second) out.cut.push_back(v);
  };
  for (const Node* n : g.topo_order()) {
    const bool head = head_nodes.count(n) > 0;
    if (head) {
      TS_CHECK(n->control_inputs.empty(), "split_function: head ", n->label(), " has control inputs");
      for (const Value& v : n->inputs)
        TS_CHECK(head_nodes.count(v.node) || arg_set.count(v.node) || v.node->op == "Const", "split_function: head ",
                 n->label(), " reads ", v.node->label(), ", which is neither a head node, an arg nor a constant");
      continue;
    }
    for (const Node* c : n->control_inputs)
      TS_CHECK(!head_nodes.count(c), "split_function: ", n->label(), " has a control edge from head ", c->label());
    for (const Value& v : n->inputs)
      if (head_nodes.count(v.node)) add_cut(v);
  }
  for (const Value& r : g.results)
    if (head_nodes.count(r.node)) add_cut(r);
  for (const Node* c : g.control_results)
    TS_CHECK(!head_nodes.count(c), "split_function: head ", c->label(), " is a control result");

  out.head = copy_function(g, g.name + "/head", g.library);
  out.head->results.clear();
  out.head->result_names.clear();
  out.head->control_results.clear();
  for (size_t i = 0; i < out.cut.size(); ++i) {
    out.head->results.push_back({out.head->find(out.cut[i].node->name), out.cut[i].index});
    out.head->result_names.push_back("cut" + std::to_string(i));
  }

  out.tail = copy_function(g, g.name + "/tail", g.library);
  Graph& t = *out.tail;
  std::vector<Node*> original_args = t.args;
  t.args.clear();
  for (size_t i = 0; i < out.cut.size(); ++i) {
    const ValueInfo& info = out.cut[i].node->outputs[out.cut[i].index];
    Node* a = t.add(t.unique_name("cut" + std::to_string(i)), "_Arg", {},
                    {{"T", info.dtype}, {"index", static_cast<int64_t>(i)}, {"_shape", info.shape}});
    infer_node(*a);
    t.args.push_back(a);
    t.replace_all_uses({t.find(out.cut[i].node->name), out.cut[i].index}, a->out());
  }
  for (Node* a : original_args) {
    a->attrs["index"] = static_cast<int64_t>(t.args.size());
    t.args.push_back(a);
  }
  return out;
}

}  // namespace tessera
