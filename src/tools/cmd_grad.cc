// `tessera grad` (hidden, for tests): gradients of a loss computed by the reference
// interpreter on the differentiated graph (passes/autodiff). Two forms:
//   SavedModel: loss over a signature's outputs (sum, or MSE to --target), gradients with
//               respect to every variable the loss reads (or the signature inputs);
//   GraphDef:   --loss-tensor names a scalar-able float tensor, --wrt the tensors to
//               differentiate with respect to, inputs fed by tensor name.
// Writes an .npz with "loss", "grad/<variable key | input key | tensor name>" and, for
// variables, "value/<key>".
//
// --backend cpu compiles the differentiated graph (forward and backward together) with the
// pass pipeline (--passes) and runs it on the cpu backend, as a training step would; the
// differentiated variables count as written, so they stay variables (not frozen into
// constants) like the trainable weights of a step graph. --repeat N then times N more runs and
// --profile prints the cpu backend's time per op over them.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>

#include "backend/rdu/train_step.h"
#include "io/npy.h"
#include "ir/grad.h"
#include "ir/interpreter.h"
#include "ir/printer.h"
#include "passes/autodiff.h"
#include "passes/pass.h"
#include "passes/pass_util.h"
#include "passes/signature_graph.h"
#include "runtime/compiler.h"
#include "support/file.h"
#include "runtime/executable.h"
#include "runtime/model.h"
#include "tools/cli.h"

namespace tessera::cli {
namespace {

const char* kUsage =
    "usage: tessera grad MODEL --input SPEC... --output GRADS.npz [--backend cpu|reference]\n"
    "                    [--signature NAME] [--loss sum|mse] [--target FILE.npz|FILE.npy] [--wrt variables|inputs]\n"
    "                    [--all-variables]  (also before/<key> and after/<key> for every variable)\n"
    "       tessera grad GRAPH --loss-tensor T --wrt T... --input NAME=FILE.npy... --output GRADS.npz\n"
    "  --loss sum    sum of every float output (default); mse: mean squared error to --target\n"
    "                (.npz keyed by output name, or one .npy for a single output), summed over outputs\n"
    "  --wrt         variables (default: every float variable the loss reads) or inputs;\n"
    "                with --loss-tensor, graph tensor names\n"
    "  --backend     reference (default: the unoptimised graph, interpreted) or cpu (the pass\n"
    "                pipeline, then the cpu backend); --passes a,b|none|default, --threads N\n"
    "  --repeat N    cpu: time N more runs (median ms printed); --profile adds time per op\n"
    "  --dump-ir F   cpu: write the optimised graph's IR text to F\n"
    "  --rdu-chip C  cpu: also time the optimised graph on the rdu chip model C (preset or JSON)\n";

Tensor load_tensor_file(const std::string& path) {
  return npy::load_npy(path);
}

// Sum over every axis of `v` (known rank) as a scalar.
Value reduce_all(Graph& g, Value v, const std::string& op) {
  int64_t rank = v.node->outputs.at(v.index).shape.rank();
  TS_CHECK(rank >= 0, v.str(), ": the loss needs outputs of known rank");
  std::vector<int32_t> axes;
  for (int32_t i = 0; i < rank; ++i) axes.push_back(i);
  Node* ax = passes::add_const(g, "loss/axes", Tensor::from_vector<int32_t>(axes, {rank}));
  DType t = v.node->outputs.at(v.index).dtype;
  return passes::add_node(g, "loss/" + op, op, {v, ax->out()},
                          {{"T", t}, {"Tidx", DType::kInt32}, {"keep_dims", false}})->out();
}

Value total(Graph& g, const std::vector<Value>& parts) {
  TS_CHECK(!parts.empty(), "no float outputs to build a loss from");
  if (parts.size() == 1) return parts[0];
  DType t = parts[0].node->outputs.at(parts[0].index).dtype;
  return passes::add_node(g, "loss/total", "AddN", parts, {{"T", t}, {"N", static_cast<int64_t>(parts.size())}})->out();
}

// The differentiated graph as a function (results: loss, then the gradients), optimised by
// the pass pipeline and run on the cpu backend; with --repeat, timed (and profiled).
std::vector<Tensor> run_on_cpu(std::shared_ptr<Graph> g, const std::vector<Value>& fetches,
                               const std::vector<passes::GradTarget>& targets, const std::vector<Tensor>& arg_values,
                               ResourceStore& variables, const Module& module, const Args& args) {
  const bool profile = args.has("--profile");
  if (profile) setenv("TESSERA_CPU_PROFILE", "1", 1);  // read when the executable is built
  g->results = fetches;
  g->result_names.clear();
  for (size_t i = 0; i < fetches.size(); ++i) g->result_names.push_back(i ? "grad" + std::to_string(i) : "loss");
  CompileOptions copts;
  copts.target = "cpu";
  copts.passes = parse_pass_list(args.get("--passes", "default"));
  copts.threads = std::stoi(args.get("--threads", "0"));
  std::set<std::string> written = passes::written_variables(module);
  for (const auto& t : targets) written.insert(t.name);  // trained weights stay variables
  passes::PassContext ctx;
  ctx.variables = &variables;
  ctx.written_variables = &written;
  passes::run_passes(*g, copts.pass_list(), ctx);
  if (args.has("--dump-ir")) write_file(args.get("--dump-ir"), print_graph(*g, PrintOptions{}));
  if (args.has("--rdu-chip")) {  // the same forward+backward graph timed on the rdu chip model
    const int64_t batch = arg_values.empty() || arg_values[0].rank() == 0 ? 1 : arg_values[0].dim(0);
    rdu::StepSimulation sim = rdu::simulate_step(*g, batch, args.get("--rdu-chip"));
    std::printf("rdu_step_seconds: %.9g (batch %lld, %.6g GFLOP, %d sections, %.1f%% of peak)\n", sim.seconds,
                static_cast<long long>(batch), sim.flops / 1e9, sim.sections, 100 * sim.fraction_of_peak);
  }
  std::shared_ptr<Executable> exe = make_executable("cpu", g, copts.cpu_options());
  std::vector<Tensor> got = exe->run(arg_values, &variables);
  const int repeat = std::stoi(args.get("--repeat", "0"));
  if (repeat > 0) {
    std::map<std::string, double> before = exe->op_seconds();
    std::vector<double> ms;
    for (int i = 0; i < repeat; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      exe->run(arg_values, &variables);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("step_ms_median: %.3f (%d runs, min %.3f)\n", ms[ms.size() / 2], repeat, ms.front());
    if (profile) {
      std::vector<std::pair<double, std::string>> ops;
      double total_s = 0;
      for (const auto& [op, sec] : exe->op_seconds()) {
        double d = sec - (before.count(op) ? before.at(op) : 0.0);
        ops.push_back({d, op});
        total_s += d;
      }
      std::sort(ops.rbegin(), ops.rend());
      for (const auto& [sec, op] : ops)
        std::printf("  profile %-44s %9.3f ms %5.1f%%\n", op.c_str(), 1e3 * sec / repeat,
                    total_s > 0 ? 100 * sec / total_s : 0.0);
    }
  }
  return got;
}

}  // namespace

int cmd_grad(int argc, char** argv) {
  std::vector<std::string> flags = {"--signature", "--input", "--output", "--loss", "--target",
                                    "--wrt", "--loss-tensor", "--tags", "--backend", "--passes", "--threads", "--repeat", "--dump-ir", "--rdu-chip"};
  Args args = parse_args(argc, argv, flags);
  if (args.has("--help") || args.positional.size() != 1) {
    std::printf("%s", kUsage);
    return args.has("--help") ? 0 : 2;
  }
  LoadOptions options;
  options.target = "reference";
  apply_tags_flag(args, options);
  auto model = Model::load(args.positional[0], options);
  Session session(model);
  const Module& module = model->module();

  std::shared_ptr<Graph> g;
  std::vector<Tensor> arg_values;
  std::vector<passes::GradTarget> targets;
  std::vector<std::string> target_names;  // npz keys, parallel to targets
  Value loss;
  if (args.has("--loss-tensor")) {
    // GraphDef form: a synthetic signature from the fed tensors to the loss tensor.
    auto value_of = [&](const std::string& name) {
      std::string t = name.find(':') == std::string::npos ? name + ":0" : name;
      Node* n = module.graph->find(t.substr(0, t.find(':')));
      if (!n) fail_code(ErrorCode::kNotFound, "tensor '", name, "' names no node in the graph");
      return std::pair<std::string, Value>{t, n->out(std::stoi(t.substr(t.find(':') + 1)))};
    };
    Signature sig;
    sig.key = "grad";
    std::vector<std::string> wrt = args.all("--wrt");
    for (const std::string& spec : args.all("--input")) {
      auto eq = spec.find('=');
      TS_CHECK(eq != std::string::npos, "--input '", spec, "': expected NAME=FILE.npy");
      auto [name, v] = value_of(spec.substr(0, eq));
      const ValueInfo& info = v.node->outputs.at(v.index);
      sig.inputs.push_back({name, name, v, info.dtype, info.shape});
      arg_values.push_back(load_tensor_file(spec.substr(eq + 1)));
    }
    auto [lname, lv] = value_of(args.get("--loss-tensor"));
    sig.outputs.push_back({"loss", lname, lv, lv.node->outputs.at(lv.index).dtype, {}});
    g = signature_graph(module, sig);
    loss = reduce_all(*g, g->results[0], "Sum");
    for (const std::string& w : wrt) {
      std::string t = value_of(w).first;
      bool found = false;
      for (size_t i = 0; i < sig.inputs.size(); ++i)
        if (sig.inputs[i].key == t) {
          targets.push_back({g->args[i]->name, {g->args[i]->out()}});
          target_names.push_back(t);
          found = true;
        }
      TS_CHECK(found, "--wrt '", w, "' must also be fed with --input");
    }
  } else {
    const Signature& sig = model->signature(args.get("--signature", "serving_default"));
    g = signature_graph(module, sig);
    std::map<std::string, Tensor> inputs;
    for (const std::string& spec : args.all("--input")) {
      auto eq = spec.find('=');
      if (eq == std::string::npos) {
        for (auto& [k, t] : npy::load_npz(spec)) inputs[k] = t;
      } else {
        inputs[spec.substr(0, eq)] = load_tensor_file(spec.substr(eq + 1));
      }
    }
    for (const TensorSpec& in : sig.inputs) {
      auto it = inputs.find(in.key);
      if (it == inputs.end()) fail("signature '", sig.key, "' needs input '", in.key, "'");
      arg_values.push_back(it->second);
    }
    std::string mode = args.get("--loss", "sum");
    std::map<std::string, Tensor> want;
    if (mode == "mse") {
      std::string t = args.get("--target");
      TS_CHECK(!t.empty(), "--loss mse needs --target");
      if (t.size() > 4 && t.substr(t.size() - 4) == ".npz") {
        for (auto& [k, v] : npy::load_npz(t)) want[k] = v;
      } else {
        want[sig.outputs.at(0).key] = npy::load_npy(t);
      }
    } else {
      TS_CHECK(mode == "sum", "--loss must be sum or mse, got '", mode, "'");
    }
    std::vector<Value> parts;
    for (size_t i = 0; i < g->results.size(); ++i) {
      Value out = g->results[i];
      DType dt = out.node->outputs.at(out.index).dtype;
      if (!is_differentiable(dt)) continue;
      if (mode == "sum") {
        parts.push_back(reduce_all(*g, out, "Sum"));
        continue;
      }
      auto it = want.find(g->result_names[i]);
      if (it == want.end()) continue;
      Node* t = passes::add_const(*g, "loss/target", it->second);
      Value d = passes::add_node(*g, "loss/diff", "Sub", {out, t->out()}, {{"T", dt}})->out();
      Value sq = passes::add_node(*g, "loss/square", "Square", {d}, {{"T", dt}})->out();
      parts.push_back(reduce_all(*g, sq, "Mean"));
    }
    loss = total(*g, parts);
    if (args.get("--wrt", "variables") == "inputs") {
      for (size_t i = 0; i < g->args.size(); ++i) {
        if (!is_differentiable(g->args[i]->outputs[0].dtype)) continue;
        targets.push_back({g->args[i]->name, {g->args[i]->out()}});
        target_names.push_back(sig.inputs[i].key);
      }
    } else {
      targets = passes::variable_targets(*g, loss);
      for (const auto& t : targets) target_names.push_back(t.name);
    }
  }
  size_t first = g->results.size();
  passes::differentiate(*g, loss, targets);
  std::vector<Value> fetches = {loss};
  for (size_t i = first; i < g->results.size(); ++i) fetches.push_back(g->results[i]);
  std::vector<Tensor> got;
  std::map<std::string, Tensor> before = session.variables().snapshot();
  const std::string backend = args.get("--backend", "reference");
  if (backend == "reference") {
    TS_CHECK(!args.has("--passes") && !args.has("--repeat"), "--passes and --repeat need --backend cpu");
    std::vector<Feed> feeds;
    for (size_t i = 0; i < arg_values.size(); ++i) feeds.push_back({g->args[i]->out(), arg_values[i]});
    got = interpret(*g, feeds, fetches, g->control_results, &session.variables());
  } else {
    TS_CHECK(backend == "cpu", "--backend must be cpu or reference, got '", backend, "'");
    got = run_on_cpu(g, fetches, targets, arg_values, session.variables(), module, args);
  }
  std::vector<std::pair<std::string, Tensor>> outputs = {{"loss", got[0]}};
  for (size_t i = 0; i < target_names.size(); ++i) outputs.push_back({"grad/" + target_names[i], got[i + 1]});
  // The variables' values too, so a test can pair them with another runtime's variables.
  for (const std::string& name : target_names)
    if (session.variables().contains(name)) outputs.push_back({"value/" + name, session.variables().read(name)});
  // Every variable before and after the run: a training-mode forward moves BatchNorm's
  // moving statistics (tests compare them with TensorFlow's).
  if (args.has("--all-variables"))
    for (const auto& [key, value] : session.variables().snapshot()) {
      if (before.count(key)) outputs.push_back({"before/" + key, before.at(key)});
      outputs.push_back({"after/" + key, value});
    }
  for (const auto& [k, t] : outputs) std::printf("%s: %s\n", k.c_str(), t.debug_string(4).c_str());
  std::string out = args.get("--output");
  if (!out.empty()) npy::save_npz(out, outputs);
  return 0;
}

}  // namespace tessera::cli
