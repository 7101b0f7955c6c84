#include "ir/copy_function.h"

#include <unordered_map>
#include <vector>

namespace tessera {

std::shared_ptr<Graph> copy_function(const Graph& fn, const std::string& name,
                                     const std::shared_ptr<FunctionLibrary>& library) {
  auto g = std::make_shared<Graph>(FunctionLibrary::borrow(library));
  g->name = name;
  std::unordered_map<const Node*, Node*> copy;
  for (Node* n : fn.topo_order()) {
    std::vector<Value> inputs;
    for (const Value& v : n->inputs) inputs.push_back({copy.at(v.node), v.index});
    Node* c = g->add(n->name, n->op, inputs, n->attrs);
    for (Node* ctl : n->control_inputs) c->control_inputs.push_back(copy.at(ctl));
    c->outputs = n->outputs;
    c->known = n->known;
    copy[n] = c;
  }
  for (Node* a : fn.args) g->args.push_back(copy.at(a));
  for (const Value& r : fn.results) g->results.push_back({copy.at(r.node), r.index});
  g->result_names = fn.result_names;
  for (Node* c : fn.control_results) g->control_results.push_back(copy.at(c));
  return g;
}

}  // namespace tessera
