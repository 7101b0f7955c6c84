// prune: forwards Identity/IdentityN/StopGradient/Snapshot/PreventGradient to their inputs and
// dissolves NoOps, keeping what their control edges meant (a consumer that waited on such a
// node now waits on what the node waited on); drops control edges from side-effect-free
// nodes; then removes everything the results, control results and args do not need.
#include <algorithm>

#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

bool is_forwarding(const Node& n) {
  return n.op == "Identity" || n.op == "IdentityN" || n.op == "StopGradient" || n.op == "Snapshot" ||
         n.op == "PreventGradient";
}

void add_unique(std::vector<Node*>& v, Node* n) {
  if (std::find(v.begin(), v.end(), n) == v.end()) v.push_back(n);
}

// Replaces control edges on `n` by edges on `instead` (everywhere, control results included).
void replace_control_source(Graph& g, Node* n, const std::vector<Node*>& instead) {
  auto rewrite = [&](std::vector<Node*>& list) {
    if (std::find(list.begin(), list.end(), n) == list.end()) return;
    list.erase(std::remove(list.begin(), list.end(), n), list.end());
    for (Node* c : instead) add_unique(list, c);
  };
  for (const auto& m : g.nodes()) rewrite(m->control_inputs);
  rewrite(g.control_results);
}

}  // namespace

void prune(Graph& g, const PassContext&) {
  std::unordered_set<const Node*> args(g.args.begin(), g.args.end());
  for (Node* n : g.topo_order()) {
    if (args.count(n)) continue;
    if (is_forwarding(*n) && static_cast<int>(n->inputs.size()) == n->num_outputs()) {
      for (int i = 0; i < n->num_outputs(); ++i) forward_value(g, n->out(i), n->inputs[i]);
      std::vector<Node*> instead = n->control_inputs;
      for (const Value& in : n->inputs) add_unique(instead, in.node);
      replace_control_source(g, n, instead);
    } else if (n->op == "NoOp") {
      replace_control_source(g, n, n->control_inputs);
    }
  }
  // Control edges only order side effects; edges from pure nodes carry nothing.
  std::unordered_set<const Node*> effectful = effectful_closure(g);
  for (const auto& n : g.nodes()) {
    auto& c = n->control_inputs;
    c.erase(std::remove_if(c.begin(), c.end(), [&](Node* x) {
              if (!effectful.count(x)) return true;
              for (const Value& in : n->inputs)
                if (in.node == x) return true;  // already a data dependency
              return false;
            }),
            c.end());
  }
  auto& cr = g.control_results;
  cr.erase(std::remove_if(cr.begin(), cr.end(), [&](Node* x) { return !effectful.count(x); }), cr.end());
  remove_unreachable(g);
}

}  // namespace tessera::passes
