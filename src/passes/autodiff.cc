// differentiate: seeds the loss with ones and runs the reverse sweep (ir/grad.h backprop),
// appending one result per target.
#include "passes/autodiff.h"

#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "ir/copy_function.h"
#include "ir/grad.h"
#include "ops/op_helpers.h"
#include "passes/pass_util.h"

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

// ---- variables read inside control flow ----------------------------------------------------
// A While/If/Case body that reads a captured variable (Keras RNNs read their kernels inside
// the loop) hides those reads from the sweep. When the function never writes that variable,
// reading it once outside is equivalent: the read moves out of the function (recursively
// through nested control flow), its value enters as an extra float argument (a loop-invariant
// loop variable for While), and the outer ReadVariableOp becomes an ordinary target value.

namespace {

bool is_control_flow(const std::string& op) {
  for (const char* k : {"While", "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase"})
    if (op == k) return true;
  return false;
}
bool is_while(const std::string& op) { return op == "While" || op == "StatelessWhile"; }

// The functions a control-flow node calls (While: body first, then cond) and the node input
// that feeds their argument 0.
std::vector<std::string> callees(const Node& n, size_t* first_arg) {
  if (is_while(n.op)) {
    *first_arg = 0;
    return {n.attr<FuncRef>("body").name, n.attr<FuncRef>("cond").name};
  }
  *first_arg = 1;
  if (n.has_attr("branches")) {
    std::vector<std::string> out;
    for (const FuncRef& f : n.attr<std::vector<FuncRef>>("branches")) out.push_back(f.name);
    return out;
  }
  return {n.attr<FuncRef>("then_branch").name, n.attr<FuncRef>("else_branch").name};
}

bool has_data_uses(const Graph& fn, const Node& n) {
  for (const auto& other : fn.nodes())
    for (const Value& v : other->inputs)
      if (v.node == &n) return true;
  for (const Value& r : fn.results)
    if (r.node == &n) return true;
  return false;
}

bool passes_through_arg(const Graph& body, size_t k) {
  Value r = body.results.at(k);
  while (r.node->op == "Identity" && !r.node->inputs.empty()) r = r.node->inputs[0];
  return r.node == body.args.at(k) && r.index == 0;
}

// A copy of library function `fn` under a fresh name, added to `owner`'s library.
std::shared_ptr<Graph> hoisted_copy(Graph& owner, const Graph& fn) {
  std::string name = fn.name + "_hoisted";
  for (int k = 1; owner.library->functions.count(name); ++k) name = fn.name + "_hoisted_" + std::to_string(k);
  auto g = copy_function(fn, name, owner.library);
  owner.library->functions[name] = g;
  return g;
}

bool writes_variable(const std::string& op) {
  return op.starts_with("Assign") || op.starts_with("ResourceApply") || op.starts_with("ResourceScatter") ||
         op.starts_with("ResourceSparseApply") || op == "DestroyResourceOp";
}

void hoist_reads_in(Graph& owner, Graph& g, const std::vector<Node*>& nodes);

// Hoists the reads of resource input `inputs` of control-flow node `n` (in graph `g`): new
// functions, one outer ReadVariableOp per hoisted input, appended as inputs.
void hoist_node(Graph& owner, Graph& g, Node& n) {
  size_t first = 0;
  std::vector<std::string> fns = callees(n, &first);
  std::vector<size_t> handles;  // function argument indices fed a resource
  for (size_t i = first; i < n.inputs.size(); ++i)
    if (n.inputs[i].node->outputs.at(n.inputs[i].index).dtype == DType::kResource) handles.push_back(i - first);
  if (handles.empty()) return;
  const bool loop = is_while(n.op);
  // Copies of the functions, nested control flow hoisted first (so their reads appear here).
  std::vector<std::shared_ptr<Graph>> copies;
  for (const std::string& f : fns) {
    const Graph* fn = owner.library->find(f);
    TS_CHECK(fn, n.label(), ": function '", f, "' is not in the library");
    auto c = hoisted_copy(owner, *fn);
    hoist_reads_in(owner, *c, c->topo_order());
    copies.push_back(c);
  }
  const size_t num_fns = loop ? 1 : copies.size();  // a loop's cond is not differentiated
  struct Hoisted { size_t arg; DType dtype; PartialShape shape; };
  std::vector<Hoisted> hoisted;
  for (size_t k : handles) {
    std::optional<Hoisted> h;
    bool written = false;
    for (size_t f = 0; f < num_fns; ++f)
      for (const auto& node : copies[f]->nodes())
        for (const Value& v : node->inputs) {
          if (v.node != copies[f]->args.at(k)) continue;
          if (writes_variable(node->op)) written = true;
          if (node->op == "ReadVariableOp" && !h && has_data_uses(*copies[f], *node))
            h = Hoisted{k, node->attr<DType>("dtype"), node->outputs.at(0).shape};
        }
    if (loop && !passes_through_arg(*copies[0], k)) written = true;
    if (h && !written && is_differentiable(h->dtype)) hoisted.push_back(*h);
  }
  if (hoisted.empty()) return;
  for (auto& c : copies) {
    const bool is_body = loop ? c == copies[0] : true;
    for (const Hoisted& h : hoisted) {
      Node* a = c->add(c->unique_name(c->args.at(h.arg)->name + "_value"), "_Arg", {},
                       {{"T", h.dtype}, {"index", static_cast<int64_t>(c->args.size())}, {"_shape", h.shape}});
      infer_node(*a);
      c->args.push_back(a);
      if (!is_body) continue;
      for (const auto& node : c->nodes())
        if (node->op == "ReadVariableOp" && node->inputs.at(0).node == c->args.at(h.arg))
          c->replace_all_uses(node->out(0), a->out(0));
      if (loop) {
        c->results.push_back(a->out(0));
        c->result_names.push_back(a->name);
      }
    }
  }
  // The node: reads outside, functions replaced.
  for (const Hoisted& h : hoisted) {
    Value handle = n.inputs.at(first + h.arg);
    n.inputs.push_back(add_node(g, n.name + "/hoisted_read", "ReadVariableOp", {handle}, {{"dtype", h.dtype}})->out());
  }
  if (loop) {
    auto types = n.attr<std::vector<DType>>("T");
    auto shapes = n.attr_or<std::vector<PartialShape>>("output_shapes", {});
    for (const Hoisted& h : hoisted) {
      types.push_back(h.dtype);
      if (!shapes.empty()) shapes.push_back(h.shape);
    }
    n.attrs["T"] = types;
    if (!shapes.empty()) n.attrs["output_shapes"] = shapes;
    n.attrs["body"] = FuncRef{copies[0]->name, nullptr};
    n.attrs["cond"] = FuncRef{copies[1]->name, nullptr};
  } else {
    auto tin = n.attr<std::vector<DType>>("Tin");
    for (const Hoisted& h : hoisted) tin.push_back(h.dtype);
    n.attrs["Tin"] = tin;
    if (n.has_attr("branches")) {
      std::vector<FuncRef> refs;
      for (auto& c : copies) refs.push_back({c->name, nullptr});
      n.attrs["branches"] = refs;
    } else {
      n.attrs["then_branch"] = FuncRef{copies[0]->name, nullptr};
      n.attrs["else_branch"] = FuncRef{copies[1]->name, nullptr};
    }
  }
  infer_node(n);
}

void hoist_reads_in(Graph& owner, Graph& g, const std::vector<Node*>& nodes) {
  for (Node* n : nodes)
    if (is_control_flow(n->op)) hoist_node(owner, g, *n);
}

// Whether function `fn` uses its resource argument `k` other than by (now dead) reads, passing
// it through unchanged (loops) or handing it to nested control flow that does not use it.
bool uses_handle(const Graph& fn, size_t k, bool loop) {
  const Node* arg = fn.args.at(k);
  for (const auto& node : fn.nodes()) {
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      if (node->inputs[i].node != arg) continue;
      if (node->op == "ReadVariableOp") {
        if (has_data_uses(fn, *node)) return true;  // a read not hoisted
        continue;
      }
      if (node->op == "Identity" && loop && passes_through_arg(fn, k)) {
        // The pass-through itself (result k only).
        for (const auto& other : fn.nodes())
          for (const Value& v : other->inputs)
            if (v.node == node.get()) return true;
        for (size_t r = 0; r < fn.results.size(); ++r)
          if (fn.results[r].node == node.get() && r != k) return true;
        continue;
      }
      if (!is_control_flow(node->op)) return true;
      size_t first = 0;
      std::vector<std::string> fns = callees(*node, &first);
      if (i < first) return true;
      for (size_t f = 0; f < fns.size(); ++f) {
        if (is_while(node->op) && f == 1) continue;
        const Graph* callee = fn.library->find(fns[f]);
        if (!callee || uses_handle(*callee, i - first, is_while(node->op))) return true;
      }
    }
  }
  for (size_t r = 0; r < fn.results.size(); ++r)
    if (fn.results[r].node == arg && !(loop && r == k)) return true;
  return false;
}

}  // namespace

void hoist_variable_reads(Graph& g, Value loss) { hoist_reads_in(g, g, g.schedule({loss}, {})); }

bool function_uses_handle(const Graph& g, const Node& n, size_t input) {
  if (!is_control_flow(n.op)) return true;
  size_t first = 0;
  std::vector<std::string> fns = callees(n, &first);
  if (input < first) return true;
  for (size_t f = 0; f < fns.size(); ++f) {
    if (is_while(n.op) && f == 1) continue;  // the condition is not differentiated
    const Graph* fn = g.library->find(fns[f]);
    if (!fn || uses_handle(*fn, input - first, is_while(n.op))) return true;
  }
  return false;
}

std::vector<GradTarget> variable_targets(Graph& g, Value loss) {
  hoist_variable_reads(g, loss);
  return variable_targets(static_cast<const Graph&>(g), loss);
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
      for (size_t i = 0; i < n->inputs.size(); ++i) {
        const Value& in = n->inputs[i];
        if (in.node->outputs.at(in.index).dtype != DType::kResource) continue;
        if (is_control_flow(n->op) && !function_uses_handle(g, *n, i)) continue;
        fail_code(ErrorCode::kUnimplemented, n->label(), " uses the variable handle ", in.str(),
                    " directly; gradients with respect to variables flow only through ReadVariableOp "
                    "(reads inside While/If/Case functions count when the function never writes it; "
                    "not through ResourceGather)");
      }
    if (n->op != "ReadVariableOp" || !is_differentiable(n->outputs.at(0).dtype)) continue;
    const Node& h = *n->inputs.at(0).node;
    std::string k = h.op == "VarHandleOp" ? ops::variable_handle_key(h) : "arg:" + h.name;
    auto [it, fresh] = by_key.emplace(k, GradTarget{k, {}});
    if (fresh) order.push_back(k);
    it->second.values.push_back(n->out(0));
  }
  std::vector<GradTarget> out;
  for (const auto& k : order) out.push_back(by_key[k]);
  return out;
}

}  // namespace tessera::passes
