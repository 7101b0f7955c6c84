// Functional control flow as TF2 emits it: If/StatelessIf, While/StatelessWhile and
// Case/StatelessCase call functions of the graph's library (Graphs whose args are _Arg nodes)
// through KernelContext::call. TF1's Switch/Merge/Enter/Exit loops are not handled here.
#include <map>
#include <set>
#include <unordered_map>

#include "ir/copy_function.h"
#include "ir/grad.h"
#include "ops/op_helpers.h"

namespace tessera {
namespace {

// TF's truthiness of a predicate: a non-scalar is true when non-empty; a scalar is true when
// non-zero (numbers) or non-empty (strings).
bool truthy(const Tensor& t) {
  if (t.rank() != 0) return t.num_elements() > 0;
  if (t.dtype() == DType::kString) return !t.strings()[0].empty();
  if (t.dtype() == DType::kBool) return t.data<bool>()[0];
  if (t.dtype() == DType::kComplex64) return t.data<std::complex<float>>()[0] != std::complex<float>();
  if (t.dtype() == DType::kComplex128) return t.data<std::complex<double>>()[0] != std::complex<double>();
  if (!is_pod(t.dtype())) fail("cannot use a ", dtype_name(t.dtype()), " scalar as a predicate");
  return t.scalar_double() != 0.0;
}

// output_shapes when present and non-empty (one per output), else unknown shapes.
std::vector<PartialShape> declared_shapes(const Node& node, size_t n) {
  auto shapes = node.attr_or<std::vector<PartialShape>>("output_shapes", {});
  if (shapes.empty()) return std::vector<PartialShape>(n);
  if (shapes.size() != n)
    fail(node.label(), ": output_shapes has ", shapes.size(), " entries for ", n, " outputs");
  return shapes;
}

void infer_typed_outputs(InferContext& c, const std::vector<DType>& types) {
  std::vector<PartialShape> shapes = declared_shapes(c.node, types.size());
  for (size_t i = 0; i < types.size(); ++i) c.set_output(i, types[i], shapes[i]);
}

// Runs a library function; shape inference may try kernels without a library (no `call`).
std::vector<Tensor> call(KernelContext& c, const std::string& fn, std::vector<Tensor> args) {
  if (!c.call) fail("cannot call function '", fn, "' here (no function library)");
  return c.call(fn, std::move(args));
}

// Results of a function must have the op's declared types and shapes (inference relies on them).
void check_results(const KernelContext& c, const std::string& fn, const std::vector<Tensor>& results,
                   const std::vector<DType>& types) {
  if (results.size() != types.size())
    fail("function '", fn, "' returned ", results.size(), " values, expected ", types.size());
  std::vector<PartialShape> shapes = declared_shapes(c.node, types.size());
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].dtype() != types[i])
      fail("function '", fn, "' returned ", dtype_name(results[i].dtype()), " for output ", i,
           ", expected ", dtype_name(types[i]));
    if (!shapes[i].matches(results[i].shape()))
      fail("function '", fn, "' returned shape ", shape_str(results[i].shape()), " for output ", i,
           ", but output_shapes declares ", shapes[i].str());
  }
}

std::vector<Tensor> args_from(const KernelContext& c, size_t first) {
  return std::vector<Tensor>(c.inputs.begin() + static_cast<std::ptrdiff_t>(first), c.inputs.end());
}

void set_outputs(KernelContext& c, std::vector<Tensor> results) {
  for (size_t i = 0; i < results.size(); ++i) c.set_output(i, std::move(results[i]));
}

// If/StatelessIf: inputs (cond, args...); runs then_branch or else_branch on the args.
void if_kernel(KernelContext& c) {
  const std::string& fn = c.attr<FuncRef>(truthy(c.input(0)) ? "then_branch" : "else_branch").name;
  std::vector<Tensor> results = call(c, fn, args_from(c, 1));
  check_results(c, fn, results, c.attr<std::vector<DType>>("Tout"));
  set_outputs(c, std::move(results));
}

// Case/StatelessCase: an out-of-range branch_index runs the last branch (the default).
void case_kernel(KernelContext& c) {
  const auto& branches = c.attr<std::vector<FuncRef>>("branches");
  if (branches.empty()) fail("Case needs at least one branch");
  int64_t index = c.input(0).scalar_int();
  if (index < 0 || index >= static_cast<int64_t>(branches.size()))
    index = static_cast<int64_t>(branches.size()) - 1;
  const std::string& fn = branches[index].name;
  std::vector<Tensor> results = call(c, fn, args_from(c, 1));
  check_results(c, fn, results, c.attr<std::vector<DType>>("Tout"));
  set_outputs(c, std::move(results));
}

// While/StatelessWhile: loop vars go through `body` while `cond` holds. Like TF, no bound on
// the number of iterations.
void while_kernel(KernelContext& c) {
  const std::string& cond = c.attr<FuncRef>("cond").name;
  const std::string& body = c.attr<FuncRef>("body").name;
  const auto& types = c.attr<std::vector<DType>>("T");
  std::vector<Tensor> vars = args_from(c, 0);
  check_results(c, "(loop inputs)", vars, types);
  for (int64_t iteration = 0;; ++iteration) {
    std::vector<Tensor> p = call(c, cond, vars);
    if (p.size() != 1) fail("loop condition '", cond, "' returned ", p.size(), " values, expected 1");
    if (!truthy(p[0])) break;
    vars = with_context("iteration " + std::to_string(iteration), [&] {
      std::vector<Tensor> next = call(c, body, std::move(vars));
      check_results(c, body, next, types);
      return next;
    });
  }
  set_outputs(c, std::move(vars));
}

void infer_if(InferContext& c) {
  auto tin = c.attr<std::vector<DType>>("Tin");
  if (c.num_inputs() != tin.size() + 1)
    fail("expected ", tin.size() + 1, " inputs (cond and Tin), got ", c.num_inputs());
  infer_typed_outputs(c, c.attr<std::vector<DType>>("Tout"));
}

void infer_while(InferContext& c) {
  const auto& types = c.attr<std::vector<DType>>("T");
  if (c.num_inputs() != types.size())
    fail("expected ", types.size(), " loop variables (T), got ", c.num_inputs(), " inputs");
  for (size_t i = 0; i < types.size(); ++i)
    if (c.input(i).dtype != types[i])
      fail("loop variable ", i, " is ", dtype_name(c.input(i).dtype), ", T says ", dtype_name(types[i]));
  infer_typed_outputs(c, types);
}

// ---- gradients (ir/grad.h) -------------------------------------------------------------------
// If/Case: the gradient is the same conditional over gradient functions, one per branch. A
// branch's gradient function takes the branch's arguments followed by the gradients of every
// output and returns the gradients of the wanted arguments (zeros where the branch does not
// use one), so every branch has the same signature.

// Floats and TensorLists (whose gradient is a list of the items' gradients) carry gradients.
bool carries_gradient(DType t) { return is_differentiable(t) || t == DType::kVariant; }

// Builds (once per branch and wanted set) the gradient function of library function `fn`.
std::string branch_gradient(Graph& graph, const std::string& fn, const std::vector<size_t>& wanted) {
  std::string name = fn + "_grad";
  for (size_t w : wanted) name += "_" + std::to_string(w);
  auto& functions = graph.library->functions;
  if (functions.count(name)) return name;
  const Graph* body = graph.library->find(fn);
  TS_CHECK(body, "function '", fn, "' is not in the library");
  // The body's nodes and args; its outputs become the seeds below, and the gradient
  // function's results are the wanted arguments' gradients.
  auto g = copy_function(*body, name, graph.library);
  const std::vector<Value> body_results = std::move(g->results);
  g->results.clear();
  g->result_names.clear();
  g->control_results.clear();
  std::vector<std::pair<Value, Value>> seeds;
  for (size_t i = 0; i < body->results.size(); ++i) {
    const Value& r = body->results[i];
    const ValueInfo& info = r.node->outputs.at(r.index);
    Node* dy = g->add(g->unique_name("dy" + std::to_string(i)), "_Arg", {},
                      {{"T", info.dtype}, {"index", static_cast<int64_t>(g->args.size())}, {"_shape", info.shape}});
    infer_node(*dy);
    g->args.push_back(dy);
    if (carries_gradient(info.dtype)) seeds.push_back({body_results[i], dy->out()});
  }
  std::vector<std::vector<Value>> targets;
  for (size_t w : wanted) targets.push_back({g->args.at(w)->out()});
  std::vector<std::optional<Value>> grads = backprop(*g, seeds, targets);
  for (size_t k = 0; k < wanted.size(); ++k) {
    Value arg = g->args[wanted[k]]->out();
    Value result = grads[k] ? *grads[k] : [&] {
      Node* z = g->add(g->unique_name("zeros" + std::to_string(k)), "ZerosLike", {arg},
                       {{"T", arg.node->outputs[0].dtype}});
      infer_node(*z);
      return z->out();
    }();
    g->results.push_back(result);
    g->result_names.push_back("d" + std::to_string(wanted[k]));
  }
  functions[name] = g;
  return name;
}

GradList grad_conditional(GradContext& c) {
  const bool is_case = c.node.op.ends_with("Case");
  std::vector<size_t> wanted;  // branch argument indices (node input i + 1)
  std::vector<DType> tout;
  for (size_t i = 1; i < c.node.inputs.size(); ++i)
    if (c.needs(i) && carries_gradient(c.dtype(c.x(i)))) {
      wanted.push_back(i - 1);
      tout.push_back(c.dtype(c.x(i)));
    }
  GradList out(c.node.inputs.size());
  if (wanted.empty()) return out;
  std::vector<Value> inputs(c.node.inputs.begin(), c.node.inputs.end());
  std::vector<DType> tin = c.node.attr<std::vector<DType>>("Tin");
  for (int i = 0; i < c.node.num_outputs(); ++i) {
    inputs.push_back(c.dy(i));
    tin.push_back(c.dtype(c.y(i)));
  }
  AttrMap attrs = {{"Tin", tin}, {"Tout", tout}, {"output_shapes", std::vector<PartialShape>{}}};
  if (c.node.has_attr("Tcond")) attrs["Tcond"] = c.node.attrs.at("Tcond");
  if (is_case) {
    std::vector<FuncRef> branches;
    for (const FuncRef& b : c.node.attr<std::vector<FuncRef>>("branches"))
      branches.push_back({branch_gradient(c.graph, b.name, wanted), nullptr});
    attrs["branches"] = branches;
  } else {
    for (const char* k : {"then_branch", "else_branch"})
      attrs[k] = FuncRef{branch_gradient(c.graph, c.node.attr<FuncRef>(k).name, wanted), nullptr};
  }
  Node* n = c.emit(c.node.op, inputs, attrs);
  for (size_t k = 0; k < wanted.size(); ++k) out[wanted[k] + 1] = n->out(static_cast<int>(k));
  return out;
}

// While/StatelessWhile. The trip count is known only at run time, so the forward loop is
// rewritten (in place: its original outputs keep their indices) to also count its iterations
// and push the loop variables that change per iteration onto TensorList accumulators
// (EmptyTensorList + TensorListPushBack). The gradient is a second loop that runs that many
// times: each iteration pops the saved loop variables (TensorListPopBack), recomputes the body
// from them and runs its reverse sweep, mapping the gradients of the body's results (the
// loop-carried gradients) to those of its arguments. Loop-invariant variables (captures: an
// RNN's weights, its input list) are not saved; their gradients accumulate through the same
// carried slot, since the body passes them through unchanged. Saving the body's arguments
// rather than its intermediates trades one recomputation of the body for memory; values the
// recomputation could not reproduce (variable reads, random ops) are saved as well and
// substituted in it.

// A function's node copies in another graph, with its args mapped to given values.
struct Inlined {
  std::unordered_map<const Node*, Node*> copy;
  std::vector<Value> args;
  std::map<std::pair<const Node*, int>, Value> subst;  // outputs replaced by given values
  Value operator()(const Value& v) const {
    if (auto it = subst.find({v.node, v.index}); it != subst.end()) return it->second;
    for (size_t i = 0; i < args.size(); ++i)
      if (v.node == arg_nodes[i]) return args[i];
    return {copy.at(v.node), v.index};
  }
  std::vector<const Node*> arg_nodes;
};

Inlined inline_function(Graph& g, const Graph& fn, std::vector<Value> args,
                        std::map<std::pair<const Node*, int>, Value> subst = {}) {
  TS_CHECK(args.size() == fn.args.size(), "function '", fn.name, "' takes ", fn.args.size(), " args, got ",
           args.size());
  Inlined m;
  m.args = std::move(args);
  m.subst = std::move(subst);
  for (Node* a : fn.args) m.arg_nodes.push_back(a);
  std::set<const Node*> is_arg(m.arg_nodes.begin(), m.arg_nodes.end());
  for (Node* n : fn.topo_order()) {
    if (is_arg.count(n)) continue;
    std::vector<Value> inputs;
    for (const Value& v : n->inputs) inputs.push_back(m(v));
    Node* c = g.add(g.unique_name(n->name), n->op, inputs, n->attrs);
    for (Node* ctl : n->control_inputs) {
      if (!is_arg.count(ctl)) c->control_inputs.push_back(m.copy.at(ctl));
    }
    c->outputs = n->outputs;
    c->known = n->known;
    m.copy[n] = c;
  }
  return m;
}

Node* add_arg(Graph& g, const std::string& name, DType t, const PartialShape& shape) {
  Node* a = g.add(g.unique_name(name), "_Arg", {},
                  {{"T", t}, {"index", static_cast<int64_t>(g.args.size())}, {"_shape", shape}});
  infer_node(*a);
  g.args.push_back(a);
  return a;
}

Value add_op(Graph& g, const std::string& name, const std::string& op, std::vector<Value> inputs,
             AttrMap attrs, int out = 0) {
  Node* n = g.add(g.unique_name(name), op, std::move(inputs), std::move(attrs));
  infer_node(*n);
  return n->out(out);
}

Value int_const(Graph& g, const std::string& name, int32_t v) {
  return add_op(g, name, "Const", {}, {{"value", Tensor::scalar<int32_t>(v)}, {"dtype", DType::kInt32}});
}

std::shared_ptr<Graph> new_function(Graph& outer, const std::string& base) {
  auto g = std::make_shared<Graph>(FunctionLibrary::borrow(outer.library));
  std::string name = base;
  for (int k = 1; outer.library->functions.count(name); ++k) name = base + "_" + std::to_string(k);
  g->name = name;
  outer.library->functions[name] = g;
  return g;
}

// What the accumulating rewrite of a While recorded (attributes on the node).
struct LoopRewrite {
  size_t num_vars;             // the original loop variables
  std::vector<size_t> saved;   // loop variables pushed per iteration, in accumulator order
  std::string body;            // the original body
  std::vector<Value> state;    // body values read from state, pushed after the variables
};

bool is_control_flow_op(const std::string& op) {
  return op.ends_with("While") || op.ends_with("If") || op.ends_with("Case");
}

// Values whose recomputation could differ from the forward pass: variable reads (a loop may
// write the variable) and stateful ops' outputs (random streams).
bool reads_state(const Node& n) {
  if (n.op == "ReadVariableOp") return true;
  return n.def && n.def->stateful && !is_control_flow_op(n.op) && n.op != "VarHandleOp" && n.op != "_Arg" &&
         n.op != "NoOp";
}

// The data uses of each value of `fn`, results included.
std::set<std::pair<const Node*, int>> used_values(const Graph& fn) {
  std::set<std::pair<const Node*, int>> used;
  for (const auto& n : fn.nodes())
    for (const Value& v : n->inputs) used.insert({v.node, v.index});
  for (const Value& r : fn.results) used.insert({r.node, r.index});
  return used;
}

// Whether a control-flow node calls a function that uses state (uses_state).
bool calls_state_user(const Node& n, const FunctionLibrary& lib, int depth = 0);

// Whether `fn` (or a function it calls) uses the output of a stateful op other than a
// variable read (nested reads are taken as reproducible: only a loop writing the variable
// inside nested control flow would break that).
bool uses_state(const Graph& fn, const FunctionLibrary& lib, int depth = 0) {
  TS_CHECK(depth < 64, "function '", fn.name, "' nests control flow too deeply");
  auto used = used_values(fn);
  for (const auto& n : fn.nodes()) {
    bool any_used = false;
    for (int i = 0; i < n->num_outputs(); ++i) any_used = any_used || used.count({n.get(), i});
    if (!any_used) continue;
    if (reads_state(*n) && n->op != "ReadVariableOp") return true;
    if (is_control_flow_op(n->op) && calls_state_user(*n, lib, depth + 1)) return true;
  }
  return false;
}

bool calls_state_user(const Node& n, const FunctionLibrary& lib, int depth) {
  std::vector<std::string> fns;
  for (const auto& [k, a] : n.attrs) {
    if (const auto* f = std::get_if<FuncRef>(&a)) fns.push_back(f->name);
    if (const auto* fs = std::get_if<std::vector<FuncRef>>(&a))
      for (const FuncRef& f : *fs) fns.push_back(f.name);
  }
  for (const std::string& f : fns)
    if (const Graph* callee = lib.find(f); callee && uses_state(*callee, lib, depth)) return true;
  return false;
}

// The body's result k is its argument k, unchanged (possibly through Identity nodes).
bool passes_through(const Graph& body, size_t k) {
  Value r = body.results.at(k);
  while (r.node->op == "Identity" && !r.node->inputs.empty()) r = r.node->inputs[0];
  return r.node == body.args.at(k) && r.index == 0;
}

LoopRewrite accumulate(Graph& graph, Node& w) {
  if (w.has_attr("_grad_num_vars")) {
    LoopRewrite r{static_cast<size_t>(w.attr<int64_t>("_grad_num_vars")), {}, w.attr<std::string>("_grad_body"), {}};
    for (int64_t k : w.attr<std::vector<int64_t>>("_grad_saved")) r.saved.push_back(static_cast<size_t>(k));
    const Graph* body = graph.library->find(r.body);
    TS_CHECK(body, w.label(), ": loop body '", r.body, "' is not in the library");
    const auto& names = w.attr<std::vector<std::string>>("_grad_state");
    const auto& indices = w.attr<std::vector<int64_t>>("_grad_state_index");
    for (size_t i = 0; i < names.size(); ++i) {
      Node* n = body->find(names[i]);
      TS_CHECK(n, w.label(), ": saved node '", names[i], "' is not in '", r.body, "'");
      r.state.push_back(n->out(static_cast<int>(indices.at(i))));
    }
    return r;
  }
  const std::string body_name = w.attr<FuncRef>("body").name, cond_name = w.attr<FuncRef>("cond").name;
  const Graph* body = graph.library->find(body_name);
  const Graph* cond = graph.library->find(cond_name);
  TS_CHECK(body && cond, w.label(), ": loop functions '", body_name, "'/'", cond_name, "' are not in the library");
  std::vector<DType> types = w.attr<std::vector<DType>>("T");
  LoopRewrite r{types.size(), {}, body_name, {}};
  TS_CHECK(body->args.size() == types.size() && body->results.size() == types.size(), w.label(),
           ": body '", body_name, "' does not take and return the ", types.size(), " loop variables");
  for (size_t k = 0; k < types.size(); ++k) {
    if (passes_through(*body, k)) continue;
    if (types[k] == DType::kResource)
      fail_code(ErrorCode::kUnimplemented, w.label(), ": loop variable ", k, " is a resource the body replaces");
    r.saved.push_back(k);
  }
  // Values read from state are saved too, so the gradient's recomputation sees what the
  // forward pass saw. Inside nested control flow they cannot be replaced: refused.
  auto used = used_values(*body);
  for (Node* n : body->topo_order()) {
    bool any_used = false;
    for (int i = 0; i < n->num_outputs(); ++i) any_used = any_used || used.count({n, i});
    if (!any_used) continue;
    if (reads_state(*n)) {
      for (int i = 0; i < n->num_outputs(); ++i)
        if (used.count({n, i}) && n->outputs[i].dtype != DType::kResource) r.state.push_back(n->out(i));
    } else if (is_control_flow_op(n->op) &&
               calls_state_user(*n, *graph.library)) {  // only this node's functions matter
      fail_code(ErrorCode::kUnimplemented, w.label(), ": ", n->label(), " in loop body '", body_name,
                "' runs stateful ops (random streams) inside its functions; the loop's gradient "
                "recomputes the body and cannot reuse those values");
    }
  }
  // Body': the body, then count + 1 and a push of each saved variable.
  auto nb = new_function(graph, body_name + "_acc");
  std::vector<Value> args;
  for (Node* a : body->args) args.push_back(add_arg(*nb, a->name, a->outputs[0].dtype, a->outputs[0].shape)->out());
  Value count = add_arg(*nb, "count", DType::kInt32, PartialShape(std::vector<int64_t>{}))->out();
  std::vector<Value> accs;
  const size_t num_accs = r.saved.size() + r.state.size();
  for (size_t j = 0; j < num_accs; ++j)
    accs.push_back(add_arg(*nb, "acc" + std::to_string(j), DType::kVariant, PartialShape(std::vector<int64_t>{}))->out());
  Inlined m = inline_function(*nb, *body, args);
  for (size_t k = 0; k < types.size(); ++k) {
    nb->results.push_back(m(body->results[k]));
    nb->result_names.push_back(k < body->result_names.size() ? body->result_names[k] : "r" + std::to_string(k));
  }
  for (Node* cr : body->control_results)
    if (m.copy.count(cr)) nb->control_results.push_back(m.copy.at(cr));
  nb->results.push_back(add_op(*nb, "count_next", "AddV2", {count, int_const(*nb, "one", 1)}, {{"T", DType::kInt32}}));
  nb->result_names.push_back("count");
  for (size_t j = 0; j < r.saved.size(); ++j) {
    nb->results.push_back(add_op(*nb, "push" + std::to_string(j), "TensorListPushBack", {accs[j], args[r.saved[j]]},
                                 {{"element_dtype", types[r.saved[j]]}}));
    nb->result_names.push_back("acc" + std::to_string(j));
  }
  for (size_t j = 0; j < r.state.size(); ++j) {
    const Value& v = r.state[j];
    size_t a = r.saved.size() + j;
    nb->results.push_back(add_op(*nb, "push" + std::to_string(a), "TensorListPushBack", {accs[a], m(v)},
                                 {{"element_dtype", v.node->outputs[v.index].dtype}}));
    nb->result_names.push_back("acc" + std::to_string(a));
  }
  // Cond': the condition, ignoring the added variables.
  auto nc = new_function(graph, cond_name + "_acc");
  std::vector<Value> cargs;
  for (Node* a : cond->args) cargs.push_back(add_arg(*nc, a->name, a->outputs[0].dtype, a->outputs[0].shape)->out());
  add_arg(*nc, "count", DType::kInt32, PartialShape(std::vector<int64_t>{}));
  for (size_t j = 0; j < num_accs; ++j)
    add_arg(*nc, "acc" + std::to_string(j), DType::kVariant, PartialShape(std::vector<int64_t>{}));
  Inlined mc = inline_function(*nc, *cond, cargs);
  for (const Value& v : cond->results) nc->results.push_back(mc(v));
  nc->result_names = cond->result_names;
  // The forward node: start the count at 0 and the accumulators empty.
  std::vector<PartialShape> shapes = w.attr_or<std::vector<PartialShape>>("output_shapes", {});
  const PartialShape scalar(std::vector<int64_t>{});
  w.inputs.push_back(int_const(graph, w.name + "/count0", 0));
  types.push_back(DType::kInt32);
  std::vector<DType> acc_types;
  for (size_t k : r.saved) acc_types.push_back(types[k]);
  for (const Value& v : r.state) acc_types.push_back(v.node->outputs[v.index].dtype);
  for (DType t : acc_types) {
    Value unknown = int_const(graph, w.name + "/acc_shape", -1);
    w.inputs.push_back(add_op(graph, w.name + "/acc", "EmptyTensorList", {unknown, unknown},
                              {{"element_dtype", t}, {"shape_type", DType::kInt32}}));
    types.push_back(DType::kVariant);
  }
  if (!shapes.empty()) {
    shapes.resize(types.size(), scalar);
    w.attrs["output_shapes"] = shapes;
  }
  w.attrs["T"] = types;
  w.attrs["body"] = FuncRef{nb->name, nullptr};
  w.attrs["cond"] = FuncRef{nc->name, nullptr};
  w.attrs["_grad_num_vars"] = static_cast<int64_t>(r.num_vars);
  w.attrs["_grad_body"] = body_name;
  std::vector<int64_t> saved(r.saved.begin(), r.saved.end());
  w.attrs["_grad_saved"] = saved;
  std::vector<std::string> state_names;
  std::vector<int64_t> state_index;
  for (const Value& v : r.state) {
    state_names.push_back(v.node->name);
    state_index.push_back(v.index);
  }
  w.attrs["_grad_state"] = state_names;
  w.attrs["_grad_state_index"] = state_index;
  infer_node(w);
  return r;
}

// For each body result, the body arguments it depends on.
std::vector<std::set<size_t>> result_deps(const Graph& body) {
  std::unordered_map<const Node*, std::set<size_t>> deps;
  for (size_t k = 0; k < body.args.size(); ++k) deps[body.args[k]].insert(k);
  for (Node* n : body.topo_order()) {
    auto& d = deps[n];
    for (const Value& v : n->inputs) d.insert(deps[v.node].begin(), deps[v.node].end());
    for (Node* ctl : n->control_inputs) d.insert(deps[ctl].begin(), deps[ctl].end());
  }
  std::vector<std::set<size_t>> out;
  for (const Value& r : body.results) out.push_back(deps[r.node]);
  return out;
}

GradList grad_while(GradContext& c) {
  Node& w = c.node;
  Graph& graph = c.graph;
  const size_t num_inputs = c.wanted.size();  // before the rewrite
  LoopRewrite rw = accumulate(graph, w);
  const Graph* body = graph.library->find(rw.body);
  TS_CHECK(body, w.label(), ": loop body '", rw.body, "' is not in the library");
  std::vector<DType> types = w.attr<std::vector<DType>>("T");
  const size_t n = rw.num_vars;
  // Loop variables whose gradients the loop must carry: the wanted ones and every variable
  // that depends on them inside the body (closure over iterations).
  std::vector<std::set<size_t>> deps = result_deps(*body);
  std::vector<bool> carried(n, false);
  for (size_t k = 0; k < n && k < num_inputs; ++k) carried[k] = c.needs(k) && carries_gradient(types[k]);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t k = 0; k < n; ++k) {
      if (carried[k] || !carries_gradient(types[k])) continue;
      for (size_t d : deps[k])
        if (carried[d]) {
          carried[k] = changed = true;
          break;
        }
    }
  }
  std::vector<size_t> carry;
  for (size_t k = 0; k < n; ++k)
    if (carried[k]) carry.push_back(k);
  GradList out(w.inputs.size());
  if (carry.empty()) return out;
  std::vector<size_t> invariant;
  std::vector<bool> is_saved(n, false);
  for (size_t k : rw.saved) is_saved[k] = true;
  for (size_t k = 0; k < n; ++k)
    if (!is_saved[k]) invariant.push_back(k);

  // The gradient loop's variables: remaining iterations, accumulators, carried gradients,
  // loop invariants.
  std::string tag;
  for (size_t k : carry) tag += "_" + std::to_string(k);
  auto gb = new_function(graph, rw.body + "_grad" + tag);
  const PartialShape scalar(std::vector<int64_t>{});
  std::vector<DType> gtypes;
  auto arg = [&](const std::string& name, DType t, const PartialShape& s) {
    gtypes.push_back(t);
    return add_arg(*gb, name, t, s)->out();
  };
  Value remaining = arg("remaining", DType::kInt32, scalar);
  std::vector<Value> accs, dvs, invs;
  const size_t num_accs = rw.saved.size() + rw.state.size();
  for (size_t j = 0; j < num_accs; ++j) accs.push_back(arg("acc" + std::to_string(j), DType::kVariant, scalar));
  for (size_t k : carry) dvs.push_back(arg("d" + std::to_string(k), types[k], body->args[k]->outputs[0].shape));
  for (size_t k : invariant) invs.push_back(arg("v" + std::to_string(k), types[k], body->args[k]->outputs[0].shape));
  // This iteration's forward arguments: popped, or the invariants.
  std::vector<Value> fargs(n);
  std::vector<Value> next_accs;
  for (size_t j = 0; j < rw.saved.size(); ++j) {
    Node* pop = gb->add(gb->unique_name("pop" + std::to_string(j)), "TensorListPopBack",
                        {accs[j], int_const(*gb, "unknown_shape", -1)}, {{"element_dtype", types[rw.saved[j]]}});
    infer_node(*pop);
    next_accs.push_back(pop->out(0));
    fargs[rw.saved[j]] = pop->out(1);
  }
  std::map<std::pair<const Node*, int>, Value> subst;
  for (size_t j = 0; j < rw.state.size(); ++j) {
    const Value& v = rw.state[j];
    Node* pop = gb->add(gb->unique_name("pop_state" + std::to_string(j)), "TensorListPopBack",
                        {accs[rw.saved.size() + j], int_const(*gb, "unknown_shape", -1)},
                        {{"element_dtype", v.node->outputs[v.index].dtype}});
    infer_node(*pop);
    next_accs.push_back(pop->out(0));
    subst[{v.node, v.index}] = pop->out(1);
  }
  for (size_t i = 0; i < invariant.size(); ++i) fargs[invariant[i]] = invs[i];
  Inlined m = inline_function(*gb, *body, fargs, std::move(subst));
  std::vector<std::pair<Value, Value>> seeds;
  std::vector<std::vector<Value>> targets;
  for (size_t i = 0; i < carry.size(); ++i) {
    seeds.push_back({m(body->results[carry[i]]), dvs[i]});
    targets.push_back({fargs[carry[i]]});
  }
  std::vector<std::optional<Value>> grads = backprop(*gb, seeds, targets);
  gb->results.push_back(add_op(*gb, "remaining_next", "Sub", {remaining, int_const(*gb, "one", 1)}, {{"T", DType::kInt32}}));
  for (Value a : next_accs) gb->results.push_back(a);
  for (size_t i = 0; i < carry.size(); ++i) {
    Value gi = grads[i] ? *grads[i]
                        : add_op(*gb, "zeros", "ZerosLike", {fargs[carry[i]]}, {{"T", types[carry[i]]}});
    gb->results.push_back(gi);
  }
  for (Value v : invs) gb->results.push_back(v);
  gb->result_names.resize(gb->results.size());
  for (size_t i = 0; i < gb->results.size(); ++i) gb->result_names[i] = "r" + std::to_string(i);
  // Its condition: iterations remain.
  auto gc = new_function(graph, rw.body + "_grad_cond" + tag);
  for (size_t i = 0; i < gtypes.size(); ++i) add_arg(*gc, "a" + std::to_string(i), gtypes[i], gb->args[i]->outputs[0].shape);
  gc->results.push_back(add_op(*gc, "more", "Greater", {gc->args[0]->out(), int_const(*gc, "zero", 0)}, {{"T", DType::kInt32}}));
  gc->result_names.push_back("more");

  std::vector<Value> inputs = {w.out(static_cast<int>(n))};
  for (size_t j = 0; j < num_accs; ++j) inputs.push_back(w.out(static_cast<int>(n + 1 + j)));
  for (size_t k : carry) inputs.push_back(c.dy(static_cast<int>(k)));
  for (size_t k : invariant) inputs.push_back(w.inputs[k]);
  Node* gw = c.emit(w.op, inputs, {{"T", gtypes}, {"body", FuncRef{gb->name, nullptr}},
                                   {"cond", FuncRef{gc->name, nullptr}},
                                   {"output_shapes", std::vector<PartialShape>{}},
                                   {"parallel_iterations", int64_t{1}}});
  for (size_t i = 0; i < carry.size(); ++i)
    if (carry[i] < num_inputs && c.needs(carry[i]))
      out[carry[i]] = gw->out(static_cast<int>(1 + num_accs + i));
  return out;
}

}  // namespace

void register_control_flow_ops(OpRegistry& r) {
  const AttrMap cond_defaults = {{"output_shapes", std::vector<PartialShape>{}}};
  const AttrMap while_defaults = {{"output_shapes", std::vector<PartialShape>{}},
                                  {"parallel_iterations", int64_t{10}}};
  // If/While/Case are stateful in TF because their functions may be; the Stateless* forms
  // promise pure functions.
  for (bool stateless : {false, true}) {
    std::string prefix = stateless ? "Stateless" : "";
    add_with_grad(r, {.name = prefix + "If", .attr_defaults = cond_defaults,
                      .output_args = {{"output", "", "Tout"}}, .stateful = !stateless,
                      .infer = infer_if, .compute = if_kernel},
                  grad_conditional);
    add_with_grad(r, {.name = prefix + "Case", .attr_defaults = cond_defaults,
                      .output_args = {{"output", "", "Tout"}}, .stateful = !stateless,
                      .infer = infer_if, .compute = case_kernel},
                  grad_conditional);
    add_with_grad(r, {.name = prefix + "While", .attr_defaults = while_defaults,
                      .output_args = {{"output", "", "T"}}, .stateful = !stateless,
                      .infer = infer_while, .compute = while_kernel},
                  grad_while);
  }
}

}  // namespace tessera
