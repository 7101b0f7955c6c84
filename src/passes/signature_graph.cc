#include "passes/signature_graph.h"

#include <unordered_map>

#include "frontend/tf/training_function.h"
#include "ir/op_registry.h"
#include "ops/op_helpers.h"

namespace tessera {
namespace {

// A node name from a signature key: keys may be tensor names ("x:0"), which IR text cannot use.
std::string arg_name(const std::string& key) {
  std::string out = key.empty() ? "arg" : key;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '/' && c != '-') c = '_';
  if (out[0] == '-') out[0] = '_';
  return out;
}

}  // namespace

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
      // A control edge from a fed placeholder is satisfied by feeding it: nothing to copy.
      for (Node* ctl : n->control_inputs)
        if (auto it = copy.find(ctl); it != copy.end()) c->control_inputs.push_back(it->second);
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
    // Name the args after the input keys (made valid names) now that every copied name is taken.
    for (size_t i = 0; i < sig.inputs.size(); ++i)
      out->rename(out->args[i], out->unique_name(arg_name(sig.inputs[i].key)));
    return out;
  });
}

void reinfer_for_arg_shapes(Graph& fn, const std::vector<PartialShape>& shapes) {
  TS_CHECK(shapes.size() == fn.args.size(), "graph '", fn.name, "': ", shapes.size(), " input shapes for ",
           fn.args.size(), " inputs");
  for (size_t i = 0; i < shapes.size(); ++i) fn.args[i]->attrs["_shape"] = shapes[i];
  for (Node* n : fn.topo_order()) infer_node(*n);
}

}  // namespace tessera

namespace tessera::passes {

using tf::kTrainingSignature;

std::set<std::string> written_variables(const Module& module) {
  std::set<std::string> out;
  // A handle used by anything but a read (an assignment, a call, a result) counts as written.
  auto scan = [&](const std::vector<Node*>& nodes) {
    std::unordered_map<const Node*, bool> read_only;
    for (const Node* n : nodes)
      if (n->op == "VarHandleOp") read_only[n] = true;
    for (const Node* n : nodes)
      for (const Value& v : n->inputs)
        if (read_only.count(v.node) && n->op != "ReadVariableOp") read_only[v.node] = false;
    return read_only;
  };
  if (!module.graph) return out;
  // Only what the signatures can run: the restore and init ops write every variable once,
  // before any signature runs, and must not stop freezing.
  std::vector<Value> fetches;
  std::vector<Node*> targets;
  for (const auto& [key, sig] : module.signatures) {
    // The training-mode call synthesised for tf_keras models (frontend/tf/training_function.h)
    // writes BatchNorm's moving statistics, but only a trainer runs it, and a trainer freezes
    // nothing: inference graphs may still freeze what only it writes.
    if (key == kTrainingSignature) continue;
    for (const TensorSpec& o : sig.outputs) fetches.push_back(o.value);
    targets.insert(targets.end(), sig.targets.begin(), sig.targets.end());
  }
  for (const auto& [n, ok] : scan(module.graph->schedule(fetches, targets)))
    if (!ok) out.insert(ops::variable_handle_key(*n));
  for (const Value& r : module.graph->results)
    if (r.node->op == "VarHandleOp") out.insert(ops::variable_handle_key(*r.node));
  // Library functions (loop bodies, branches) are scanned whole: conservative.
  if (module.graph->library)
    for (const auto& [name, fn] : module.graph->library->functions) {
      auto read_only = scan(fn->topo_order());
      for (const Value& r : fn->results)
        if (read_only.count(r.node)) read_only[r.node] = false;
      for (const auto& [n, ok] : read_only)
        if (!ok) out.insert(ops::variable_handle_key(*n));
    }
  return out;
}

}  // namespace tessera::passes
