#include "passes/signature_graph.h"

#include <unordered_map>

#include "ir/op_registry.h"

namespace tessera {

std::shared_ptr<Graph> signature_graph(const Module& module, const Signature& sig) {
  return with_context("signature '" + sig.key + "'", [&] {
    TS_CHECK(module.graph, "module has no graph");
    auto out = std::make_shared<Graph>(module.graph->library);
    struct ValueHash {
      size_t operator()(const Value& v) const { return std::hash<const void*>()(v.node) * 31 + v.index; }
    };
    std::unordered_map<Value, Value, ValueHash> fed;  // module value -> _Arg output
    std::vector<const Node*> fed_nodes;
    for (size_t i = 0; i < sig.inputs.size(); ++i) {
      const TensorSpec& spec = sig.inputs[i];
      TS_CHECK(spec.value.node, "input '", spec.key, "' is not bound to a tensor");
      TS_CHECK(!fed.count(spec.value), "inputs bind the same tensor ", spec.value.str(), " twice");
      const ValueInfo& info = spec.value.node->outputs.at(spec.value.index);
      Node* arg = out->add("__arg" + std::to_string(i), "_Arg", {},
                           {{"T", info.dtype}, {"index", static_cast<int64_t>(i)}, {"_shape", info.shape}});
      infer_node(*arg);
      out->args.push_back(arg);
      fed[spec.value] = arg->out();
      const std::string& op = spec.value.node->op;
      if (op == "Placeholder" || op == "_Arg") fed_nodes.push_back(spec.value.node);
    }
    std::vector<Value> fetches;
    for (const TensorSpec& spec : sig.outputs) fetches.push_back(spec.value);
    std::unordered_map<const Node*, Node*> copy;
    for (Node* n : module.graph->schedule(fetches, sig.targets, fed_nodes)) {
      if (n->op == "Placeholder" && std::find(fed_nodes.begin(), fed_nodes.end(), n) != fed_nodes.end()) continue;
      std::vector<Value> inputs;
      for (const Value& v : n->inputs) {
        auto f = fed.find(v);
        inputs.push_back(f != fed.end() ? f->second : Value{copy.at(v.node), v.index});
      }
      Node* c = out->add(n->name, n->op, inputs, n->attrs);
      for (Node* ctl : n->control_inputs) c->control_inputs.push_back(copy.at(ctl));
      c->outputs = n->outputs;
      c->known = n->known;
      c->device = n->device;
      copy[n] = c;
    }
    for (const TensorSpec& spec : sig.outputs) {
      auto f = fed.find(spec.value);
      out->results.push_back(f != fed.end() ? f->second : Value{copy.at(spec.value.node), spec.value.index});
      out->result_names.push_back(spec.key);
    }
    for (Node* t : sig.targets) out->control_results.push_back(copy.at(t));
    // Name the args after the input keys now that every copied name is taken.
    for (size_t i = 0; i < sig.inputs.size(); ++i)
      out->rename(out->args[i], out->unique_name(sig.inputs[i].key));
    return out;
  });
}

}  // namespace tessera
