// freeze_variables: a ReadVariableOp of a variable that nothing in the graph can write becomes
// a Const holding the variable's restored value (PassContext::variables). A handle that flows
// anywhere but into ReadVariableOps (an Assign*, a function call, a gather) keeps every read
// of that variable live, so assigned variables are never frozen; nor are variables that the
// rest of the module writes (PassContext::written_variables).
#include <map>

#include "ops/op_helpers.h"
#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
void freeze_variables(Graph& g, const PassContext& ctx) {
  if (!ctx.variables) return;
  Uses uses(g);
  std::map<std::string, bool> read_only;  // key -> every use of every handle is a read
  for (const auto& n : g.nodes()) {
    if (n->op != "VarHandleOp") continue;
    bool ok = !uses.is_result(n->out(0));
    for (const auto& [user, idx] : uses.users(n.get())) ok = ok && user->op == "ReadVariableOp";
    auto [it, fresh] = read_only.emplace(ops::variable_handle_key(*n), ok);
    if (!fresh) it->second = it->second && ok;
  }
  // A handle arriving another way (an _Arg, a function result) could alias any variable.
  for (const auto& n : g.nodes())
    if (n->op == "ReadVariableOp" && n->inputs[0].node->op != "VarHandleOp") return;
  std::unordered_set<const Node*> effectful = effectful_closure(g);
  for (Node* n : g.topo_order()) {
    if (n->op != "ReadVariableOp") continue;
    const Node& handle = *n->inputs[0].node;
    std::string key = ops::variable_handle_key(handle);
    if (!read_only[key] || !ctx.variables->contains(key)) continue;
    if (ctx.written_variables && ctx.written_variables->count(key)) continue;
    bool ordered = false;  // a read after a side effect stays a read
    for (const Node* c : n->control_inputs) ordered = ordered || effectful.count(c);
    if (ordered) continue;
    Tensor value = ctx.variables->read(key);
    if (value.dtype() != n->attr<DType>("dtype") || !n->outputs[0].shape.matches(value.shape())) continue;
    make_const(*n, value);
  }
}

}  // namespace tessera::passes
