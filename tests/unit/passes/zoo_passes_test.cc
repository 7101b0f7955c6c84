// Every pass alone, and the default pipeline, on every inference-tier zoo model: the optimised
// signature graph must numerically match the unoptimised one on the reference interpreter
// (batch 1 inputs from the zoo). Prints node counts per pass. Skipped without the zoo
// ($TESSERA_ZOO_DIR, default ~/.cache/tessera/zoo); TESSERA_ZOO_MODELS=a,b limits the models.
#include <gtest/gtest.h>

#include <set>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "io/json_tensor.h"
#include "io/npy.h"
#include "ir/interpreter.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/pass.h"
#include "passes/pass_test_util.h"
#include "passes/signature_graph.h"
#include "runtime/model.h"
#include "zoo_test_util.h"
#include "support/file.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

using tessera::testing::zoo_dir;

struct ZooModel {
  std::string name, path, signature;
  std::vector<std::string> outputs;
};

std::vector<ZooModel> inference_models(const fs::path& dir) {
  std::string text;
  {
    std::ifstream f(dir / "manifest.json");
    text.assign(std::istreambuf_iterator<char>(f), {});
  }
  rapidjson::Document doc = parse_json(text, "manifest.json");
  std::string only = std::getenv("TESSERA_ZOO_MODELS") ? std::getenv("TESSERA_ZOO_MODELS") : "";
  std::vector<ZooModel> out;
  for (const auto& m : doc["models"].GetArray()) {
    if (std::string(m["tier"].GetString()) != "inference") continue;
    ZooModel z{m["name"].GetString(), m["path"].GetString(),
               m["signature"].IsString() ? m["signature"].GetString() : "", {}};
    for (const auto& o : m["outputs"].GetArray()) z.outputs.push_back(o["name"].GetString());
    if (!only.empty() && ("," + only + ",").find("," + z.name + ",") == std::string::npos) continue;
    out.push_back(z);
  }
  return out;
}

// A GraphDef has no signatures: bind the zoo's tensor names ("x:0") instead.
Signature tensor_signature(const Module& m, const npy::NamedTensors& inputs, const std::vector<std::string>& outputs) {
  Signature sig;
  sig.key = "tensors";
  auto bind = [&](const std::string& name) {
    size_t colon = name.rfind(':');
    Node* n = m.graph->find(name.substr(0, colon));
    TS_CHECK(n, "tensor '", name, "' not in the graph");
    Value v{n, colon == std::string::npos ? 0 : std::stoi(name.substr(colon + 1))};
    return TensorSpec{name, name, v, n->outputs[v.index].dtype, n->outputs[v.index].shape};
  };
  for (const auto& [name, t] : inputs) sig.inputs.push_back(bind(name));
  for (const auto& name : outputs) sig.outputs.push_back(bind(name));
  return sig;
}

std::vector<Tensor> run_graph(const Graph& g, const std::vector<Tensor>& args, const Model& model) {
  ResourceStore store;  // a fresh copy per run: some signatures assign
  store.restore(model.variables());
  std::vector<Feed> feeds;
  for (size_t i = 0; i < args.size(); ++i) feeds.push_back({g.args[i]->out(), args[i]});
  return interpret(g, feeds, g.results, g.control_results, &store);
}

TEST(ZooPasses, EveryPassAndThePipelineMatchTheReference) {
  fs::path dir = zoo_dir();
  if (!fs::exists(dir / "manifest.json")) GTEST_SKIP() << "no zoo at " << dir;
  std::vector<std::vector<std::string>> runs;
  for (const auto& p : passes::all_passes()) runs.push_back({p.name});
  runs.push_back(passes::default_pipeline());
  for (const ZooModel& z : inference_models(dir)) {
    SCOPED_TRACE(z.name);
    auto model = Model::load((dir / z.path).string());
    npy::NamedTensors inputs = npy::load_npz((dir / z.name / "inputs_b1.npz").string());
    Signature sig = z.signature.empty() ? tensor_signature(model->module(), inputs, z.outputs)
                                        : model->signature(z.signature);
    auto args_for = [&](const npy::NamedTensors& named) {
      std::vector<Tensor> out;
      for (const TensorSpec& spec : sig.inputs) {
        auto it = std::find_if(named.begin(), named.end(), [&](const auto& kv) { return kv.first == spec.key; });
        if (it == named.end()) ADD_FAILURE() << "zoo inputs lack '" << spec.key << "'";
        else out.push_back(it->second);
      }
      return out;
    };
    std::vector<Tensor> args = args_for(inputs);
    ASSERT_EQ(args.size(), sig.inputs.size());
    ResourceStore vars;
    vars.restore(model->variables());
    passes::PassContext ctx;
    ctx.variables = &vars;
    // As the compile driver does: variables only the restore/init ops write are frozen.
    std::set<std::string> written = passes::written_variables(model->module());
    ctx.written_variables = &written;
    auto base = signature_graph(model->module(), sig);
    std::vector<Tensor> ref = run_graph(*base, args, *model);
    // The signature graph's text reads back to the same graph (weights are still variables).
    {
      PrintOptions full{.with_library = true, .max_inline_elements = 1 << 14};
      std::string text = print_graph(*base, full);
      try {
        EXPECT_EQ(print_graph(*parse_graph(text), full), text) << "IR text round trip";
      } catch (const Error& e) {
        ADD_FAILURE() << "IR text round trip: " << e.what();
      }
    }
    const std::string base_text = print_graph(*base, PrintOptions{.with_library = false, .max_inline_elements = 4});
    std::string line = z.name + ": " + std::to_string(base->nodes().size()) + " nodes;";
    for (const auto& names : runs) {
      bool pipeline = names.size() > 1;
      std::string label = pipeline ? "pipeline" : names[0];
      SCOPED_TRACE(label);
      auto g = signature_graph(model->module(), sig);
      ctx.after_pass = nullptr;
      // TESSERA_ZOO_DUMP_DIR=dir writes the pipeline's IR after every pass (for debugging).
      if (const char* dump = std::getenv("TESSERA_ZOO_DUMP_DIR"); dump && pipeline) {
        ctx.after_pass = [&, step = 0](const std::string& pass, const Graph& graph) mutable {
          std::ofstream(fs::path(dump) / (z.name + "." + std::to_string(step++) + "." + pass + ".ir"))
              << print_graph(graph, PrintOptions{.with_library = false, .max_inline_elements = 4});
        };
      }
      size_t before = g->nodes().size();
      auto t0 = std::chrono::steady_clock::now();
      try {
        passes::run_passes(*g, names, ctx);
      } catch (const Error& e) {
        ADD_FAILURE() << e.what();
        continue;
      }
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      // A pass that changed nothing needs no run (weights print as previews; any rewrite of a
      // constant changes its name or preview).
      PrintOptions brief{.with_library = false, .max_inline_elements = 4};
      if (!pipeline && print_graph(*g, brief) == base_text) continue;
      std::vector<Tensor> got;
      try {
        got = run_graph(*g, args, *model);
      } catch (const Error& e) {
        ADD_FAILURE() << e.what();
        continue;
      }
      ASSERT_EQ(got.size(), ref.size());
      for (size_t i = 0; i < ref.size(); ++i) EXPECT_NUMERIC_MATCH(ref[i], got[i]) << "output " << i;
      // Keras models never assign their weights: every read must have become a constant.
      // (Recurrent layers read theirs inside While bodies, which the passes do not enter yet.)
      bool keras = (z.name.ends_with("_k3") || z.name.ends_with("_tfk")) && !z.name.starts_with("gru") &&
                   !z.name.starts_with("lstm");
      if (pipeline && keras)
        for (const auto& n : g->nodes()) EXPECT_NE(n->op, "ReadVariableOp") << n->name << " was not frozen";
      if (pipeline && fs::exists(dir / z.name / "inputs_b8.npz")) {
        // Another batch size through the same optimised graph (shapes stay symbolic).
        std::vector<Tensor> args8 = args_for(npy::load_npz((dir / z.name / "inputs_b8.npz").string()));
        std::vector<Tensor> ref8 = run_graph(*base, args8, *model), got8 = run_graph(*g, args8, *model);
        for (size_t i = 0; i < ref8.size(); ++i) EXPECT_NUMERIC_MATCH(ref8[i], got8[i]) << "batch 8 output " << i;
      }
      if (pipeline) {
        std::map<std::string, int> ops;
        for (const auto& n : g->nodes()) ++ops[n->op];
        line += " pipeline -> " + std::to_string(g->nodes().size()) + " (" + std::to_string(static_cast<int>(ms)) + " ms) [";
        for (const auto& [op, count] : ops) line += op + ":" + std::to_string(count) + " ";
        line += "]";
      } else if (g->nodes().size() != before) {
        line += " " + label + " " + std::to_string(static_cast<long>(g->nodes().size()) - static_cast<long>(before)) + ";";
      }
    }
    std::printf("[zoo passes] %s\n", line.c_str());
  }
}

}  // namespace
}  // namespace tessera
