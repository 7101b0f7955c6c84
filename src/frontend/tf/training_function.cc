#include "frontend/tf/training_function.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "ir/op_registry.h"

namespace tessera::tf {
namespace {

using tensorflow::StructuredValue;

// The training flag a concrete function was traced with: a bool among the positional
// arguments after the inputs (tf_keras: (inputs, training, mask)) or the `training` keyword.
std::optional<bool> training_flag(const StructuredValue& sig) {
  if (sig.kind_case() != StructuredValue::kTupleValue || sig.tuple_value().values_size() != 2) return std::nullopt;
  const auto& args = sig.tuple_value().values(0);
  const auto& kwargs = sig.tuple_value().values(1);
  if (kwargs.kind_case() == StructuredValue::kDictValue) {
    auto it = kwargs.dict_value().fields().find("training");
    if (it != kwargs.dict_value().fields().end() && it->second.kind_case() == StructuredValue::kBoolValue)
      return it->second.bool_value();
  }
  if (args.kind_case() != StructuredValue::kTupleValue) return std::nullopt;
  for (int i = 1; i < args.tuple_value().values_size(); ++i)
    if (args.tuple_value().values(i).kind_case() == StructuredValue::kBoolValue)
      return args.tuple_value().values(i).bool_value();
  return std::nullopt;
}

// Tensor specs of the first positional argument, in TF's flattening order (dict keys sorted).
void flatten_specs(const StructuredValue& v, std::vector<const tensorflow::TensorSpecProto*>& out) {
  switch (v.kind_case()) {
    case StructuredValue::kTensorSpecValue: out.push_back(&v.tensor_spec_value()); break;
    case StructuredValue::kTupleValue:
      for (const auto& e : v.tuple_value().values()) flatten_specs(e, out);
      break;
    case StructuredValue::kListValue:
      for (const auto& e : v.list_value().values()) flatten_specs(e, out);
      break;
    case StructuredValue::kDictValue: {
      std::map<std::string, const StructuredValue*> sorted;
      for (const auto& [k, e] : v.dict_value().fields()) sorted[k] = &e;
      for (const auto& [k, e] : sorted) flatten_specs(*e, out);
      break;
    }
    default: out.push_back(nullptr);  // not a plain tensor: not supported here
  }
}

// Does every op of `fn` (and the functions it calls) have a definition in the registry?
bool all_ops_known(const std::string& fn, const std::map<std::string, const tensorflow::FunctionDef*>& functions,
                   std::set<std::string>& seen) {
  if (!seen.insert(fn).second) return true;
  auto it = functions.find(fn);
  if (it == functions.end()) return false;
  for (const auto& n : it->second->node_def()) {
    if (functions.count(n.op())) {
      if (!all_ops_known(n.op(), functions, seen)) return false;
      continue;
    }
    if (!OpRegistry::global().find(n.op()) && n.op() != "PartitionedCall" && n.op() != "StatefulPartitionedCall")
      return false;
    for (const auto& [key, attr] : n.attr()) {
      if (attr.has_func() && !all_ops_known(attr.func().name(), functions, seen)) return false;
      for (const auto& f : attr.list().func())
        if (!all_ops_known(f.name(), functions, seen)) return false;
    }
  }
  return true;
}

std::string node_of(const std::string& tensor) {
  std::string t = tensor[0] == '^' ? tensor.substr(1) : tensor;
  return t.substr(0, t.find(':'));
}

}  // namespace

bool add_training_signature(tensorflow::MetaGraphDef& mg) {
  if (mg.signature_def().count(kTrainingSignature) || !mg.has_object_graph_def()) return false;
  auto serving_it = mg.signature_def().find("serving_default");
  if (serving_it == mg.signature_def().end()) return false;
  const tensorflow::SignatureDef serving = serving_it->second;
  const auto& og = mg.object_graph_def();
  if (og.nodes_size() == 0) return false;

  // The root's __call__ traced with training=True, taking the serving inputs.
  std::vector<std::string> input_keys;
  for (const auto& [k, info] : serving.inputs()) input_keys.push_back(k);  // map order: sorted
  std::string chosen;
  std::vector<const tensorflow::TensorSpecProto*> specs;
  for (const auto& child : og.nodes(0).children()) {
    if (child.local_name() != "__call__" || child.node_id() < 0 || child.node_id() >= og.nodes_size()) continue;
    const auto& obj = og.nodes(child.node_id());
    if (!obj.has_function()) continue;
    for (const auto& name : obj.function().concrete_functions()) {
      auto cf = og.concrete_functions().find(name);
      if (cf == og.concrete_functions().end()) continue;
      const auto& sig = cf->second.canonicalized_input_signature();
      if (training_flag(sig) != true) continue;
      const StructuredValue& args = sig.tuple_value().values(0);
      if (args.kind_case() != StructuredValue::kTupleValue || args.tuple_value().values_size() == 0) continue;
      std::vector<const tensorflow::TensorSpecProto*> flat;
      flatten_specs(args.tuple_value().values(0), flat);
      if (flat.size() != input_keys.size() || std::count(flat.begin(), flat.end(), nullptr)) continue;
      bool dtypes_match = true;
      for (size_t i = 0; i < flat.size(); ++i)
        dtypes_match = dtypes_match && flat[i]->dtype() == serving.inputs().at(input_keys[i]).dtype();
      if (!dtypes_match) continue;
      chosen = name;
      specs = flat;
      break;
    }
  }
  if (chosen.empty()) return false;

  std::map<std::string, const tensorflow::FunctionDef*> functions;
  for (const auto& f : mg.graph_def().library().function()) functions[f.signature().name()] = &f;
  std::set<std::string> seen;
  if (!functions.count(chosen) || !all_ops_known(chosen, functions, seen)) return false;
  const tensorflow::FunctionDef& fn = *functions.at(chosen);
  const auto& bound = og.concrete_functions().at(chosen).bound_inputs();
  if (fn.signature().input_arg_size() != static_cast<int>(specs.size()) + bound.size()) return false;
  if (fn.signature().output_arg_size() != serving.outputs_size()) return false;

  // Captured objects -> graph nodes: calls in the graph bind them as their trailing inputs
  // (the serving signature's call captures the same variables); variables also by name.
  std::map<int, std::string> handle_of;
  for (const auto& n : mg.graph_def().node()) {
    if (n.op() != "StatefulPartitionedCall" && n.op() != "PartitionedCall") continue;
    auto f = n.attr().find("f");
    if (f == n.attr().end()) continue;
    auto cf = og.concrete_functions().find(f->second.func().name());
    if (cf == og.concrete_functions().end()) continue;
    int nb = cf->second.bound_inputs_size(), ni = n.input_size();
    if (nb > ni) continue;
    for (int i = 0; i < nb; ++i) handle_of.emplace(cf->second.bound_inputs(i), node_of(n.input(ni - nb + i)));
  }
  std::map<std::string, std::string> var_by_shared_name;
  for (const auto& n : mg.graph_def().node())
    if (n.op() == "VarHandleOp") {
      auto s = n.attr().find("shared_name");
      var_by_shared_name[s != n.attr().end() && !s->second.s().empty() ? s->second.s() : n.name()] = n.name();
    }
  std::vector<std::string> captures;
  for (int id : bound) {
    auto it = handle_of.find(id);
    if (it != handle_of.end()) {
      captures.push_back(it->second);
      continue;
    }
    if (id < 0 || id >= og.nodes_size()) return false;
    const auto& obj = og.nodes(id);
    if (obj.has_constant()) {
      captures.push_back(obj.constant().operation());
    } else if (obj.has_variable() && var_by_shared_name.count(obj.variable().name())) {
      captures.push_back(var_by_shared_name.at(obj.variable().name()));
    } else {
      return false;  // a capture we cannot bind: no training signature
    }
  }

  // Placeholders for the inputs, then the call.
  auto* graph = mg.mutable_graph_def();
  std::set<std::string> names;
  for (const auto& n : graph->node()) names.insert(n.name());
  if (names.count(kTrainingSignature)) return false;
  tensorflow::SignatureDef out;
  out.set_method_name(serving.method_name());
  tensorflow::NodeDef call;
  call.set_name(kTrainingSignature);
  call.set_op("StatefulPartitionedCall");
  for (size_t i = 0; i < input_keys.size(); ++i) {
    const tensorflow::TensorInfo& info = serving.inputs().at(input_keys[i]);
    std::string name = std::string(kTrainingSignature) + "_input_" + std::to_string(i);
    if (names.count(name)) return false;
    tensorflow::NodeDef* ph = graph->add_node();
    ph->set_name(name);
    ph->set_op("Placeholder");
    (*ph->mutable_attr())["dtype"].set_type(info.dtype());
    *(*ph->mutable_attr())["shape"].mutable_shape() = info.tensor_shape();
    call.add_input(name);
    tensorflow::TensorInfo& in = (*out.mutable_inputs())[input_keys[i]];
    in = info;
    in.set_name(name + ":0");
  }
  for (const std::string& c : captures) call.add_input(c);
  auto& attrs = *call.mutable_attr();
  attrs["f"].mutable_func()->set_name(chosen);
  for (const auto& a : fn.signature().input_arg()) attrs["Tin"].mutable_list()->add_type(a.type());
  for (const auto& a : fn.signature().output_arg()) attrs["Tout"].mutable_list()->add_type(a.type());
  *graph->add_node() = call;
  // Outputs: the serving keys in their (sorted) order, as tf.nest flattens an output dict.
  int i = 0;
  for (const auto& [key, info] : serving.outputs()) {
    tensorflow::TensorInfo& o = (*out.mutable_outputs())[key];
    o = info;
    o.set_name(std::string(kTrainingSignature) + ":" + std::to_string(i++));
  }
  (*mg.mutable_signature_def())[kTrainingSignature] = out;
  return true;
}

}  // namespace tessera::tf
