// differentiate: seeds the loss with ones and runs the reverse sweep (ir/grad.h backprop),
// appending one result per target.
#include "passes/autodiff.h"

#include <map>
#include <set>

#include "ir/grad.h"
#include "passes/pass_util.h"
#include "passes/signature_graph.h"

namespace tessera::passes {

void differentiate(Graph& g, Value loss, const std::vector<GradTarget>& targets) {
  TS_CHECK(loss.node, "differentiate: no loss value");
  const DType lt = loss.node->outputs.at(loss.index).dtype;
  TS_CHECK(is_differentiable(lt), "loss ", loss.str(), " is ", dtype_name(lt), ", not a floating type");
  Node* ones = add_node(g, "gradients/" + loss.node->name + "/OnesLike", "OnesLike", {loss}, {{"T", lt}});
  std::vector<std::vector<Value>> groups;
  for (const auto& t : targets) {
    TS_CHECK(!t.values.empty(), "gradient target '", t.name, "' has no values");
    groups.push_back(t.values);
  }
  std::vector<std::optional<Value>> grads = backprop(g, {{loss, ones->out()}}, groups);
  g.result_names.resize(g.results.size());  // keep names aligned with results
  for (size_t i = 0; i < targets.size(); ++i) {
    Value v = targets[i].values[0];
    Value result = grads[i] ? *grads[i]
                            : add_node(g, "gradients/" + v.node->name + "/ZerosLike", "ZerosLike", {v},
                                       {{"T", v.node->outputs.at(v.index).dtype}})->out();
    g.results.push_back(result);
    g.result_names.push_back("grad/" + targets[i].name);
  }
}

std::vector<GradTarget> arg_targets(const Graph& g, const std::vector<int>& arg_indices) {
  std::vector<GradTarget> out;
  for (int i : arg_indices) {
    TS_CHECK(i >= 0 && i < static_cast<int>(g.args.size()), "arg index ", i, " out of range");
    out.push_back({g.args[i]->name, {g.args[i]->out(0)}});
  }
  return out;
}

std::vector<GradTarget> variable_targets(const Graph& g, Value loss) {
  std::map<std::string, GradTarget> by_key;
  std::vector<std::string> order;
  for (Node* n : g.schedule({loss}, {})) {
    // Writes the forward makes (BatchNorm's moving statistics in training mode) reach the
    // loss's schedule through control edges only: they do not read the variable.
    if (n->op == "AssignVariableOp" || n->op == "AssignAddVariableOp" || n->op == "AssignSubVariableOp") continue;
    // A handle used any other way (a While/If/call reading it inside a function, a
    // ResourceGather) would hide part of the variable's gradient: refuse rather than be wrong.
    if (n->op != "ReadVariableOp")
      for (const Value& in : n->inputs)
        if (in.node->outputs.at(in.index).dtype == DType::kResource)
          fail_code(ErrorCode::kUnimplemented, n->label(), " uses the variable handle ", in.str(),
                    " directly; gradients with respect to variables flow only through ReadVariableOp "
                    "(not yet through reads inside While/If bodies or ResourceGather)");
    if (n->op != "ReadVariableOp" || !is_differentiable(n->outputs.at(0).dtype)) continue;
    const Node& h = *n->inputs.at(0).node;
    std::string k = h.op == "VarHandleOp" ? variable_key(h) : "arg:" + h.name;
    auto [it, fresh] = by_key.emplace(k, GradTarget{k, {}});
    if (fresh) order.push_back(k);
    it->second.values.push_back(n->out(0));
  }
  std::vector<GradTarget> out;
  for (const auto& k : order) out.push_back(by_key[k]);
  return out;
}

}  // namespace tessera::passes
