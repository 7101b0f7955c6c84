// Functional control flow as TF2 emits it: If/StatelessIf, While/StatelessWhile and
// Case/StatelessCase call functions of the graph's library (Graphs whose args are _Arg nodes)
// through KernelContext::call. TF1's Switch/Merge/Enter/Exit loops are not handled here.
#include <unordered_map>

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

// Builds (once per branch and wanted set) the gradient function of library function `fn`.
std::string branch_gradient(Graph& graph, const std::string& fn, const std::vector<size_t>& wanted) {
  std::string name = fn + "_grad";
  for (size_t w : wanted) name += "_" + std::to_string(w);
  auto& functions = graph.library->functions;
  if (functions.count(name)) return name;
  const Graph* body = graph.library->find(fn);
  TS_CHECK(body, "function '", fn, "' is not in the library");
  auto g = std::make_shared<Graph>(FunctionLibrary::borrow(graph.library));
  g->name = name;
  std::unordered_map<const Node*, Node*> copy;
  for (Node* n : body->topo_order()) {
    std::vector<Value> inputs;
    for (const Value& v : n->inputs) inputs.push_back({copy.at(v.node), v.index});
    Node* c = g->add(n->name, n->op, inputs, n->attrs);
    for (Node* ctl : n->control_inputs) c->control_inputs.push_back(copy.at(ctl));
    c->outputs = n->outputs;
    c->known = n->known;
    copy[n] = c;
  }
  for (Node* a : body->args) g->args.push_back(copy.at(a));
  std::vector<std::pair<Value, Value>> seeds;
  for (size_t i = 0; i < body->results.size(); ++i) {
    const Value& r = body->results[i];
    const ValueInfo& info = r.node->outputs.at(r.index);
    Node* dy = g->add(g->unique_name("dy" + std::to_string(i)), "_Arg", {},
                      {{"T", info.dtype}, {"index", static_cast<int64_t>(g->args.size())}, {"_shape", info.shape}});
    infer_node(*dy);
    g->args.push_back(dy);
    if (is_differentiable(info.dtype)) seeds.push_back({Value{copy.at(r.node), r.index}, dy->out()});
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
    if (c.needs(i) && is_differentiable(c.dtype(c.x(i)))) {
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
    r.add({.name = prefix + "While", .attr_defaults = while_defaults,
           .output_args = {{"output", "", "T"}}, .stateful = !stateless,
           .infer = infer_while, .compute = while_kernel});
  }
}

}  // namespace tessera
