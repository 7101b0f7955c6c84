#include "train/step_builder.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "io/tensor_bundle.h"
#include "ir/grad.h"
#include "ops/op_helpers.h"
#include "passes/autodiff.h"
#include "passes/pass.h"
#include "passes/pass_util.h"
#include "passes/signature_graph.h"
#include "runtime/compiler.h"
#include "train/losses.h"
#include "train/optimizers.h"
#include "tensorflow/core/protobuf/trackable_object_graph.pb.h"

namespace tessera::train {

DType dtype_of(const Value& v) { return v.node->outputs.at(v.index).dtype; }
const PartialShape& pshape_of(const Value& v) { return v.node->outputs.at(v.index).shape; }

Value GraphBuilder::scalar(double v, DType t) {
  Tensor c(t, {});
  switch (t) {
    case DType::kFloat32: c.data<float>()[0] = static_cast<float>(v); break;
    case DType::kFloat64: c.data<double>()[0] = v; break;
    case DType::kInt32: c.data<int32_t>()[0] = static_cast<int32_t>(v); break;
    case DType::kInt64: c.data<int64_t>()[0] = static_cast<int64_t>(v); break;
    default: fail("GraphBuilder::scalar: unsupported dtype ", dtype_name(t));
  }
  return passes::add_const(g_, prefix_ + "/const", c)->out();
}

Value GraphBuilder::i32s(const std::vector<int32_t>& v) {
  return passes::add_const(g_, prefix_ + "/axes", Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())}))
      ->out();
}

Value GraphBuilder::op(const std::string& op, std::vector<Value> inputs, AttrMap attrs) {
  if (!attrs.count("T") && !inputs.empty()) attrs["T"] = dtype_of(inputs[0]);
  return passes::add_node(g_, prefix_ + "/" + op, op, std::move(inputs), std::move(attrs))->out();
}

Value GraphBuilder::cast(Value a, DType to) {
  if (dtype_of(a) == to) return a;
  return passes::add_node(g_, prefix_ + "/Cast", "Cast", {a}, {{"SrcT", dtype_of(a)}, {"DstT", to}, {"Truncate", false}})
      ->out();
}

Value GraphBuilder::reduce(const std::string& op, Value v, std::vector<int32_t> axes, bool keep_dims) {
  return this->op(op, {v, i32s(axes)}, {{"Tidx", DType::kInt32}, {"keep_dims", keep_dims}});
}

Value GraphBuilder::sum_all(Value v) {
  int64_t rank = pshape_of(v).rank();
  TS_CHECK(rank >= 0, v.str(), ": a sum over every axis needs a known rank");
  if (rank == 0) return v;
  std::vector<int32_t> axes;
  for (int32_t i = 0; i < rank; ++i) axes.push_back(i);
  return reduce("Sum", v, axes);
}

Value GraphBuilder::argmax_last(Value v) {
  return op("ArgMax", {v, scalar(-1, DType::kInt32)}, {{"Tidx", DType::kInt32}, {"output_type", DType::kInt64}});
}

Node* GraphBuilder::arg(const std::string& name, DType t, PartialShape shape) {
  Node* a = g_.add(g_.unique_name(name), "_Arg", {},
                   {{"T", t}, {"index", static_cast<int64_t>(g_.args.size())}, {"_shape", std::move(shape)}});
  infer_node(*a);
  g_.args.push_back(a);
  return a;
}

Value GraphBuilder::handle(const std::string& key, DType t, const PartialShape& shape) {
  auto slash = key.find('/');
  TS_CHECK(slash != std::string::npos, "variable key '", key, "' has no container separator");
  return passes::add_node(g_, prefix_ + "/var", "VarHandleOp", {},
                          {{"dtype", t},
                           {"shape", shape},
                           {"container", key.substr(0, slash)},
                           {"shared_name", key.substr(slash + 1)}})
      ->out();
}

Value GraphBuilder::read(Value h, DType t) { return op("ReadVariableOp", {h}, {{"dtype", t}}); }

Node* GraphBuilder::assign(Value h, Value value, DType t, const std::vector<Node*>& after) {
  Node* a = passes::add_node(g_, prefix_ + "/assign", "AssignVariableOp", {h, value}, {{"dtype", t}});
  for (Node* n : after)
    if (n != a && std::find(a->control_inputs.begin(), a->control_inputs.end(), n) == a->control_inputs.end())
      a->control_inputs.push_back(n);
  g_.control_results.push_back(a);
  return a;
}

std::string discover_endpoint(const Module& module, const std::string& requested, bool eval) {
  if (!requested.empty()) {
    module.signature(requested);  // fails listing the available ones
    return requested;
  }
  std::vector<std::string> order = eval ? std::vector<std::string>{"serving_default", "serve"}
                                        : std::vector<std::string>{"train_forward", "tessera_training_forward",
                                                                   "serving_default"};
  for (const std::string& k : order)
    if (module.signatures.count(k)) return k;
  std::string have;
  for (const auto& [k, s] : module.signatures) have += (have.empty() ? "" : ", ") + k;
  fail_code(ErrorCode::kNotFound, "'", module.source, "' has no ", eval ? "evaluation" : "training",
            " endpoint (looked for ", eval ? "serving_default, serve" : "train_forward, tessera_training_forward, serving_default",
            "; it has ", have, ")");
}

namespace {
const Node* var_handle_of(Value h);
}  // namespace

std::map<std::string, std::string> bundle_keys(const Module& module) {
  std::map<std::string, std::string> out;
  if (!module.graph) return out;
  for (const auto& n : module.graph->nodes()) {
    if (n->op != "AssignVariableOp" || n->inputs.size() < 2) continue;
    const Node* h = var_handle_of(n->inputs[0]);
    Value v = n->inputs[1];
    while (v.node->op == "Identity" && !v.node->inputs.empty()) v = v.node->inputs[0];
    if (!h || v.node->op != "RestoreV2" || v.node->inputs.size() < 2) continue;
    Value names = v.node->inputs[1];
    while (names.node->op == "Identity" && !names.node->inputs.empty()) names = names.node->inputs[0];
    const Tensor* t = passes::const_value(names);
    if (!t || t->dtype() != DType::kString || v.index >= t->num_elements()) continue;
    out[ops::variable_handle_key(*h)] = t->strings().at(static_cast<size_t>(v.index));
  }
  return out;
}

std::optional<std::set<std::string>> object_graph_trainables(const Module& module) {
  std::string prefix = module.source + "/variables/variables";
  if (!std::filesystem::exists(prefix + ".index")) return std::nullopt;
  TensorBundleReader reader(prefix);
  if (!reader.contains("_CHECKPOINTABLE_OBJECT_GRAPH")) return std::nullopt;
  tensorflow::TrackableObjectGraph g;
  const std::string bytes = reader.read("_CHECKPOINTABLE_OBJECT_GRAPH").strings().at(0);
  TS_CHECK(g.ParseFromString(bytes), prefix, ": _CHECKPOINTABLE_OBJECT_GRAPH does not parse");
  if (g.nodes_size() == 0) return std::nullopt;
  int list = -1;
  for (const auto& c : g.nodes(0).children())
    if (c.local_name() == "trainable_variables") list = c.node_id();
  if (list < 0 || list >= g.nodes_size()) return std::nullopt;
  std::set<std::string> names;  // full names of the trainable variables
  for (const auto& c : g.nodes(list).children())
    if (c.node_id() >= 0 && c.node_id() < g.nodes_size())
      for (const auto& a : g.nodes(c.node_id()).attributes())
        if (a.name() == "VARIABLE_VALUE") names.insert(a.full_name());
  std::set<std::string> keys;  // bundle keys of any object with one of those full names
  for (const auto& n : g.nodes())
    for (const auto& a : n.attributes())
      if (a.name() == "VARIABLE_VALUE" && names.count(a.full_name())) keys.insert(a.checkpoint_key());
  std::set<std::string> out;
  for (const auto& [store, key] : bundle_keys(module))
    if (keys.count(key)) out.insert(store);
  return out;
}

std::set<std::string> signature_variables(const Module& module, const std::string& signature) {
  std::set<std::string> out;
  std::shared_ptr<Graph> g = signature_graph(module, module.signature(signature));
  for (const auto& n : g->nodes())
    if (n->op == "VarHandleOp") out.insert(ops::variable_handle_key(*n));
  return out;
}

namespace {

constexpr const char* kDropoutSeed = "tessera/dropout_seed";
constexpr const char* kSampleOffset = "tessera/sample_offset";

bool pass_registered(const std::string& name) {
  for (const passes::Pass& p : passes::all_passes())
    if (p.name == name) return true;
  return false;
}

const Node* var_handle_of(Value h) {
  while (h.node->op == "Identity" && !h.node->inputs.empty()) h = h.node->inputs[0];
  return h.node->op == "VarHandleOp" ? h.node : nullptr;
}

bool is_assign(const Node& n) {
  return n.op == "AssignVariableOp" || n.op == "AssignAddVariableOp" || n.op == "AssignSubVariableOp";
}

PartialShape shape_in_store(const ResourceStore& vars, const std::string& key) {
  TS_CHECK(vars.contains(key), "variable '", key, "' has no value");
  Shape s = vars.read(key).shape();
  return PartialShape(std::vector<int64_t>(s.begin(), s.end()));
}

// The forward's assignments become results (the replicas' values are averaged by the host).
void assigns_to_results(Graph& g, StepProgram& p) {
  GraphBuilder b(g, "train/assign");
  std::set<Node*> gone;
  for (Node* n : g.topo_order()) {
    if (!is_assign(*n)) continue;
    const Node* h = var_handle_of(n->inputs[0]);
    TS_CHECK(h, n->label(), ": assigns through a handle that is not a variable");
    DType t = dtype_of(n->inputs[1]);
    Value v = n->inputs[1];
    if (n->op != "AssignVariableOp") {
      Value old = b.read(n->inputs[0], t);
      v = b.op(n->op == "AssignAddVariableOp" ? "AddV2" : "Sub", {old, v});
    }
    g.results.push_back(v);
    g.result_names.push_back("assign/" + ops::variable_handle_key(*h));
    p.results.push_back("assign/" + ops::variable_handle_key(*h));
    gone.insert(n);
  }
  if (gone.empty()) return;
  for (const auto& n : g.nodes()) {
    auto& c = n->control_inputs;
    c.erase(std::remove_if(c.begin(), c.end(), [&](Node* x) { return gone.count(x) > 0; }), c.end());
  }
  auto& cr = g.control_results;
  cr.erase(std::remove_if(cr.begin(), cr.end(), [&](Node* x) { return gone.count(x) > 0; }), cr.end());
  g.remove_if([&](const Node& n) { return gone.count(const_cast<Node*>(&n)) > 0; });
}

// passes::variable_targets, except that the forward's own assignments (reached through the
// control edges Keras puts on its outputs) are allowed: they write, and no gradient flows
// through them. Any other direct use of a handle would hide part of a gradient: refused.
std::vector<passes::GradTarget> trainable_targets(const Graph& g, Value loss) {
  std::map<std::string, passes::GradTarget> by_key;
  for (Node* n : g.schedule({loss}, {})) {
    if (n->op != "ReadVariableOp" && !is_assign(*n) && n->op != "VarIsInitializedOp")
      for (const Value& in : n->inputs)
        if (dtype_of(in) == DType::kResource)
          fail_code(ErrorCode::kUnimplemented, n->label(), " uses the variable handle ", in.str(),
                    " directly; training differentiates variables read through ReadVariableOp only");
    if (n->op != "ReadVariableOp" || !is_differentiable(n->outputs.at(0).dtype)) continue;
    const Node* h = var_handle_of(n->inputs.at(0));
    TS_CHECK(h, n->label(), ": reads a variable through a handle that is not a VarHandleOp");
    std::string k = ops::variable_handle_key(*h);
    auto [it, fresh] = by_key.emplace(k, passes::GradTarget{k, {}});
    it->second.values.push_back(n->out(0));
  }
  std::vector<passes::GradTarget> out;
  for (auto& [k, t] : by_key) out.push_back(std::move(t));
  return out;
}

StepProgram build_update(const TrainOptions& o, const ResourceStore& vars, const StepInfo& info) {
  StepProgram p;
  p.kind = StepKind::kUpdate;
  p.graph = std::make_shared<Graph>();
  p.graph->name = "train_update";
  GraphBuilder b(*p.graph, "train/update");
  std::vector<UpdateVar> uv;
  for (const std::string& key : info.trainable) {
    DType t = vars.read(key).dtype();
    PartialShape s = shape_in_store(vars, key);
    Node* a = b.arg("grad", t, s);
    p.args.push_back({ArgRole::kGrad, key, 0, t});
    uv.push_back({key, t, s, a->out(), {}});
  }
  std::map<std::string, Value> hypers;
  for (const std::string& h : hyper_names(o.optimizer)) {
    hypers[h] = b.arg("hyper_" + h, DType::kFloat32, PartialShape(std::vector<int64_t>{}))->out();
    p.args.push_back({ArgRole::kHyper, h, 0, DType::kFloat32});
  }
  emit_clipping(b, o.optimizer, uv);
  emit_update(b, o.optimizer, uv, hypers);
  return p;
}

}  // namespace

StepProgram build_program(StepKind kind, const Module& module, const std::string& endpoint, const TrainOptions& o,
                          const ResourceStore& vars, StepInfo* info, int64_t batch) {
  TS_CHECK(info, "build_program needs a StepInfo");
  if (kind == StepKind::kUpdate) return build_update(o, vars, *info);
  return with_context("building the training step from signature '" + endpoint + "'", [&] {
    StepProgram p;
    p.kind = kind;
    const Signature& sig = module.signature(endpoint);
    p.graph = signature_graph(module, sig);
    Graph& g = *p.graph;
    g.name = kind == StepKind::kEval ? "eval_step" : "train_step";
    if (batch > 0) {
      std::vector<PartialShape> shapes;
      for (const Node* a : g.args) {
        PartialShape s = a->outputs.at(0).shape;
        if (s.known_rank && !s.dims.empty() && s.dims[0] < 0) s.dims[0] = batch;
        shapes.push_back(std::move(s));
      }
      reinfer_for_arg_shapes(g, shapes);
    }
    if (kind != StepKind::kEval && pass_registered("rewrite_dropout")) passes::run_passes(g, {"rewrite_dropout"});
    // One op per training-mode BatchNorm, so its gradient is one op too (before differentiate).
    if (kind != StepKind::kEval && pass_registered("fuse_batch_norm_training"))
      passes::run_passes(g, {"fuse_batch_norm_training"});

    // The output the loss reads.
    int out_index = -1;
    if (o.loss.output.empty()) {
      TS_CHECK(g.results.size() == 1, "signature '", endpoint, "' has ", g.results.size(),
               " outputs: name the one the loss reads");
      out_index = 0;
    } else {
      for (size_t i = 0; i < g.result_names.size(); ++i)
        if (g.result_names[i] == o.loss.output) out_index = static_cast<int>(i);
      // The evaluation endpoint may name its single output differently from the training one.
      if (out_index < 0 && kind == StepKind::kEval && g.results.size() == 1) out_index = 0;
      TS_CHECK(out_index >= 0, "signature '", endpoint, "' has no output '", o.loss.output, "'");
    }
    Value output = g.results[out_index];
    info->endpoint = endpoint;
    info->output = g.result_names[out_index];
    const PartialShape& os = pshape_of(output);
    info->classes = os.known_rank && !os.dims.empty() ? os.dims.back() : -1;
    info->metrics = o.metrics;

    for (Node* a : g.args) {
      if (a->name == kDropoutSeed) {
        p.args.push_back({ArgRole::kDropoutSeed, a->name, 0, a->outputs[0].dtype});
        info->has_dropout_args = true;
      } else if (a->name == kSampleOffset) {
        p.args.push_back({ArgRole::kSampleOffset, a->name, 0, a->outputs[0].dtype});
      } else {
        int idx = 0;
        for (const ArgSpec& s : p.args) idx += s.role == ArgRole::kFeature;
        p.args.push_back({ArgRole::kFeature, a->name, idx, a->outputs[0].dtype});
      }
    }
    std::set<std::string> assigned;
    for (const auto& n : g.nodes())
      if (is_assign(*n))
        if (const Node* h = var_handle_of(n->inputs[0])) assigned.insert(ops::variable_handle_key(*h));
    info->assigned.assign(assigned.begin(), assigned.end());

    GraphBuilder b(g, "train/loss");
    DType lt = label_dtype(o.loss);
    // Labels: the output's shape (class ids: without the class axis), batch left open.
    PartialShape label_shape = pshape_of(output);
    if (label_shape.known_rank) {
      if (lt == DType::kInt64 && !label_shape.dims.empty()) label_shape.dims.pop_back();
      if (!label_shape.dims.empty()) label_shape.dims[0] = batch > 0 ? batch : -1;
    }
    Value labels = b.arg("labels", lt, label_shape)->out();
    p.args.push_back({ArgRole::kLabels, "labels", 0, lt});
    Value inv_count = b.arg("inv_count", DType::kFloat32, PartialShape(std::vector<int64_t>{}))->out();
    p.args.push_back({ArgRole::kInvCount, "inv_count", 0, DType::kFloat32});

    Value per = per_sample_loss(b, o.loss, output, labels);
    const PartialShape& ps = pshape_of(per);
    TS_CHECK(ps.known_rank && ps.rank() >= 1, "the per-sample loss has shape ", ps.str(), ": a batch axis is needed");
    info->loss_elems_per_sample = 1;
    for (size_t i = 1; i < ps.dims.size(); ++i) {
      TS_CHECK(ps.dims[i] > 0, "the per-sample loss has shape ", ps.str(), ": non-batch dimensions must be known");
      info->loss_elems_per_sample *= ps.dims[i];
    }
    Value loss_sum = b.sum_all(per);
    Value loss = b.mul(loss_sum, inv_count);
    std::vector<Value> metric_values;
    for (const std::string& m : o.metrics) metric_values.push_back(metric_sum(b, m, o.loss, output, labels));

    std::vector<Value> grads;
    std::vector<passes::GradTarget> targets;
    if (kind != StepKind::kEval) {
      for (passes::GradTarget& t : trainable_targets(g, loss))
        if (!assigned.count(t.name) && (!info->trainable_filter || info->trainable_filter->count(t.name)))
          targets.push_back(std::move(t));
      std::sort(targets.begin(), targets.end(), [](const auto& a, const auto& c) { return a.name < c.name; });
      TS_CHECK(!targets.empty(), "the loss reads no trainable variable");
      size_t first = g.results.size();
      passes::differentiate(g, loss, targets);
      // A bias gradient summed from a batch-norm gradient's dx comes from that op's kernel.
      if (pass_registered("fold_batch_norm_grad_sum")) passes::run_passes(g, {"fold_batch_norm_grad_sum"});
      grads.assign(g.results.begin() + static_cast<long>(first), g.results.end());
      info->trainable.clear();
      for (const auto& t : targets) info->trainable.push_back(t.name);
    }
    g.results.clear();
    g.result_names.clear();
    auto result = [&](Value v, const std::string& name) {
      g.results.push_back(v);
      g.result_names.push_back(name);
      p.results.push_back(name);
    };
    result(loss_sum, "loss_sum");
    for (size_t i = 0; i < metric_values.size(); ++i) result(metric_values[i], "metric/" + o.metrics[i]);
    if (kind == StepKind::kEval) return p;
    if (kind == StepKind::kGrad) {
      for (size_t i = 0; i < grads.size(); ++i) result(grads[i], "grad/" + targets[i].name);
      assigns_to_results(g, p);
      return p;
    }
    // kFull: clipping and the optimizer update in the same graph.
    GraphBuilder ub(g, "train/update");
    std::vector<UpdateVar> uv;
    for (size_t i = 0; i < targets.size(); ++i) {
      UpdateVar v;
      v.key = targets[i].name;
      v.dtype = vars.read(v.key).dtype();
      v.shape = shape_in_store(vars, v.key);
      v.grad = grads[i];
      for (const Value& r : targets[i].values) v.after.push_back(r.node);
      uv.push_back(std::move(v));
    }
    std::map<std::string, Value> hypers;
    for (const std::string& h : hyper_names(o.optimizer)) {
      hypers[h] = ub.arg("hyper_" + h, DType::kFloat32, PartialShape(std::vector<int64_t>{}))->out();
      p.args.push_back({ArgRole::kHyper, h, 0, DType::kFloat32});
    }
    emit_clipping(ub, o.optimizer, uv);
    emit_update(ub, o.optimizer, uv, hypers);
    return p;
  });
}

namespace {

CompileOptions program_options(const TrainOptions& o, int threads) {
  CompileOptions co;
  co.target = o.target == "reference" ? "reference" : "cpu";
  co.threads = threads;
  if (co.target == "reference") co.passes = std::vector<std::string>{};
  return co;
}

}  // namespace

std::shared_ptr<Executable> compile_program(StepProgram& p, const TrainOptions& o, int threads) {
  const CompileOptions co = program_options(o, threads);
  passes::PassContext ctx;  // no variable values: nothing is frozen (the step writes them, restore replaces them)
  passes::run_passes(*p.graph, co.pass_list(), ctx);
  return make_executable(co.target, p.graph, co.cpu_options());
}

std::shared_ptr<Executable> another_executable(const StepProgram& p, const TrainOptions& o, int threads) {
  const CompileOptions co = program_options(o, threads);
  return make_executable(co.target, p.graph, co.cpu_options());
}

}  // namespace tessera::train
