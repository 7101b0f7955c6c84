#include "runtime/function_form.h"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace tessera {

std::shared_ptr<Graph> signature_function(const Module& module, const Signature& sig) {
  TS_CHECK(module.graph, "signature '", sig.key, "': the model has no graph");
  const Graph& src = *module.graph;
  auto fn = std::make_shared<Graph>(src.library);
  fn->name = sig.key;

  // Inputs become _Arg nodes; a fed value may be any output of any node (TF1 signatures).
  std::map<std::pair<const Node*, int>, Value> fed;
  for (size_t i = 0; i < sig.inputs.size(); ++i) {
    const TensorSpec& spec = sig.inputs[i];
    TS_CHECK(spec.value.node, "signature '", sig.key, "' input '", spec.key, "' binds no tensor");
    auto key = std::make_pair(static_cast<const Node*>(spec.value.node), spec.value.index);
    if (fed.count(key)) fail("signature '", sig.key, "' feeds tensor ", spec.value.str(), " twice");
    const ValueInfo& info = spec.value.node->outputs.at(spec.value.index);
    PartialShape shape = spec.shape.known_rank ? spec.shape : info.shape;
    Node* arg = fn->add(src.unique_name("arg/" + spec.key), "_Arg", {},
                        {{"T", info.dtype}, {"index", static_cast<int64_t>(i)}, {"_shape", shape}});
    arg->outputs = {{info.dtype, shape}};
    arg->known.resize(1);
    fn->args.push_back(arg);
    fed[key] = arg->out(0);
  }
  std::vector<const Node*> fully_fed;
  for (const Node* n : [&] {
         std::vector<const Node*> v;
         for (const auto& [k, val] : fed) v.push_back(k.first);
         return v;
       }()) {
    bool all = true;
    for (int i = 0; i < n->num_outputs(); ++i) all = all && fed.count({n, i});
    if (all && std::find(fully_fed.begin(), fully_fed.end(), n) == fully_fed.end()) fully_fed.push_back(n);
  }

  std::vector<Value> fetches;
  for (const TensorSpec& spec : sig.outputs) fetches.push_back(spec.value);
  std::unordered_map<const Node*, Node*> copy;
  auto map_value = [&](const Value& v) -> Value {
    if (auto it = fed.find({v.node, v.index}); it != fed.end()) return it->second;
    auto it = copy.find(v.node);
    TS_CHECK(it != copy.end(), "signature '", sig.key, "': ", v.str(), " used before it is computed");
    return it->second->out(v.index);
  };
  for (Node* n : src.schedule(fetches, sig.targets, fully_fed)) {
    if (std::find(fully_fed.begin(), fully_fed.end(), n) != fully_fed.end()) continue;
    std::vector<Value> inputs;
    for (const Value& in : n->inputs) inputs.push_back(map_value(in));
    Node* c = fn->add(n->name, n->op, std::move(inputs), n->attrs);
    for (Node* ctl : n->control_inputs) {
      if (auto it = copy.find(ctl); it != copy.end()) c->control_inputs.push_back(it->second);
      else if (auto f = fed.find({ctl, 0}); f != fed.end()) c->control_inputs.push_back(f->second.node);
    }
    c->outputs = n->outputs;
    c->known = n->known;
    c->device = n->device;
    copy[n] = c;
  }
  for (size_t i = 0; i < sig.outputs.size(); ++i) {
    fn->results.push_back(map_value(sig.outputs[i].value));
    fn->result_names.push_back(sig.outputs[i].key);
  }
  for (Node* t : sig.targets) {
    auto it = copy.find(t);
    TS_CHECK(it != copy.end(), "signature '", sig.key, "': target '", t->name, "' was not scheduled");
    fn->control_results.push_back(it->second);
  }
  return fn;
}

}  // namespace tessera
