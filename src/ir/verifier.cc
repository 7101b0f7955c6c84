#include "ir/verifier.h"

#include <unordered_set>

#include "ir/op_registry.h"

namespace tessera {
namespace {

void verify_one(const Graph& g, const std::string& where, std::vector<std::string>& problems) {
  std::unordered_set<const Node*> members;
  std::unordered_set<std::string> names;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const Node* n = g.nodes()[i].get();
    members.insert(n);
    if (!names.insert(n->name).second) problems.push_back(where + "duplicate node name '" + n->name + "'");
    if (n->id != static_cast<int>(i)) problems.push_back(where + n->label() + ": stale id");
    if (g.find(n->name) != n) problems.push_back(where + n->label() + ": not in the name index");
  }
  auto check_value = [&](const Value& v, const std::string& what) {
    if (!v.node || !members.count(v.node)) {
      problems.push_back(where + what + " refers to a node outside the graph");
    } else if (v.index < 0 || v.index >= v.node->num_outputs()) {
      problems.push_back(where + what + " refers to missing output " + v.str());
    }
  };
  for (const auto& n : g.nodes()) {
    for (size_t i = 0; i < n->inputs.size(); ++i) check_value(n->inputs[i], n->label() + " input " + std::to_string(i));
    for (const Node* c : n->control_inputs)
      if (!members.count(c)) problems.push_back(where + n->label() + ": control input outside the graph");
    if (n->def) {
      for (size_t i = 0; i < n->outputs.size(); ++i)
        if (n->outputs[i].dtype == DType::kInvalid)
          problems.push_back(where + n->label() + ": output " + std::to_string(i) + " has no dtype");
    }
    for (const auto& [attr_key, value] : n->attrs) {
      const std::string& key = attr_key;  // clang cannot capture structured bindings
      auto check_func = [&](const FuncRef& f) {
        if (!g.library || !g.library->find(f.name))
          problems.push_back(where + n->label() + ": attribute '" + key + "' names missing function '" + f.name + "'");
      };
      if (const auto* f = std::get_if<FuncRef>(&value)) check_func(*f);
      if (const auto* fs = std::get_if<std::vector<FuncRef>>(&value))
        for (const auto& f : *fs) check_func(f);
    }
  }
  for (size_t i = 0; i < g.results.size(); ++i) check_value(g.results[i], "result " + std::to_string(i));
  for (const Node* a : g.args)
    if (!a || !members.count(a) || a->op != "_Arg") problems.push_back(where + "argument is not an _Arg node of the graph");
  for (const Node* c : g.control_results)
    if (!c || !members.count(c)) problems.push_back(where + "control result outside the graph");
  try {
    g.topo_order();
  } catch (const Error& e) {
    problems.push_back(where + e.what());
  }
}

}  // namespace

void verify_graph(const Graph& graph) {
  std::vector<std::string> problems;
  verify_one(graph, "", problems);
  if (graph.library)
    for (const auto& [name, fn] : graph.library->functions) verify_one(*fn, "function '" + name + "': ", problems);
  if (problems.empty()) return;
  std::string msg = "IR verification failed:";
  for (size_t i = 0; i < problems.size() && i < 20; ++i) msg += "\n  " + problems[i];
  if (problems.size() > 20) msg += "\n  ... and " + std::to_string(problems.size() - 20) + " more";
  fail_code(ErrorCode::kInternal, msg);
}

}  // namespace tessera
