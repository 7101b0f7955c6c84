// A saved model's signature as a function-form graph, for benchmarks: the nodes its outputs
// need, copied, with one _Arg per input. (src/passes/signature_graph.h does this for the
// compiler once the passes library lands on main; this copy keeps bench/cpp self-contained.)
#pragma once
#include <algorithm>
#include <map>
#include <memory>
#include <unordered_map>

#include "ir/module.h"
#include "ir/op_registry.h"

namespace tessera::bench {

inline std::shared_ptr<Graph> model_graph(const Module& m, const Signature& sig) {
  auto g = std::make_shared<Graph>(m.graph->library);
  std::vector<Value> fetches;
  for (const TensorSpec& o : sig.outputs) fetches.push_back(o.value);
  std::vector<const Node*> fed;
  for (const TensorSpec& i : sig.inputs) fed.push_back(i.value.node);
  std::unordered_map<const Node*, Node*> copy;
  std::map<std::pair<const Node*, int>, Value> arg_of;
  for (const TensorSpec& i : sig.inputs) {
    Node* a = g->add(g->unique_name(i.key), "_Arg", {},
                     {{"T", i.dtype}, {"_shape", i.shape}, {"index", int64_t(g->args.size())}});
    infer_node(*a);
    g->args.push_back(a);
    arg_of[{i.value.node, i.value.index}] = a->out();
  }
  auto map_value = [&](const Value& v) -> Value {
    auto it = arg_of.find({v.node, v.index});
    return it != arg_of.end() ? it->second : Value{copy.at(v.node), v.index};
  };
  for (Node* n : m.graph->schedule(fetches, sig.targets, fed)) {
    if (std::find(fed.begin(), fed.end(), n) != fed.end()) continue;
    std::vector<Value> in;
    for (const Value& v : n->inputs) in.push_back(map_value(v));
    Node* c = g->add(n->name, n->op, in, n->attrs);
    c->outputs = n->outputs;
    c->known = n->known;
    for (Node* ci : n->control_inputs)
      if (copy.count(ci)) c->control_inputs.push_back(copy[ci]);
    copy[n] = c;
  }
  for (const TensorSpec& o : sig.outputs) {
    g->results.push_back(map_value(o.value));
    g->result_names.push_back(o.key);
  }
  for (Node* t : sig.targets) g->control_results.push_back(copy.at(t));
  return g;
}

}  // namespace tessera::bench
