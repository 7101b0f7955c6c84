// `tessera run MODEL`: run a signature (or, with --fetch, arbitrary graph tensors) on inputs
// from .npy/.npz/JSON and write the outputs to an .npz keyed by output name.
#include <cstdio>
#include <filesystem>

#include "io/json_tensor.h"
#include "io/npy.h"
#include "runtime/model.h"
#include "support/file.h"
#include "tools/cli.h"

namespace tessera::cli {
namespace {

const char* kUsage =
    "usage: tessera run MODEL [--signature NAME] --input SPEC... [--output OUT.npz]\n"
    "                  [--fetch TENSOR]... [--run-target NODE]... [--tags serve]\n"
    "                  [--target cpu|reference] [--passes a,b|none] [--threads N] [--inter-op N] [--isa ISA]\n"
    "                  [--precision fp32|bf16] [--no-cache] [--training-signature]\n"
    "  MODEL         a SavedModel directory, a .pb/.pbtxt GraphDef, or a compiled .tsr\n"
    "  --target      cpu (default: compiled, cached in $TESSERA_CACHE_DIR) or reference (the\n"
    "                reference interpreter on the imported graph, or on the optimised graph\n"
    "                with --passes)\n"
    "  --passes      passes to run (comma-separated), none, or default\n"
    "  --threads N   cpu intra-op threads (default: every core)\n"
    "  --inter-op N  cpu: independent ops run at once, sharing the threads (default 1)\n"
    "  --isa ISA     avx512, avx2 or scalar (default: $TESSERA_ISA or the best available)\n"
    "  --precision P fp32 or bf16 matmul/conv (default: fp32, or a .tsr's own; docs/bf16.md)\n"
    "  --signature   signature to run (default serving_default)\n"
    "  --training-signature  tf_keras SavedModel: import the training-mode call as the signature\n"
    "                tessera_training_forward also on compiled targets (reference: always)\n"
    "  --input SPEC  KEY=FILE.npy | KEY=FILE.json | KEY=<JSON literal> | FILE.npz | FILE.json\n"
    "                (.npz members and JSON object keys name the inputs)\n"
    "  --fetch T     run graph tensors by name (e.g. y:0) instead of a signature; inputs are\n"
    "                then keyed by tensor name too (reference interpreter, imported graph)\n"
    "  --run-target N  run graph node N for its side effects (with --fetch)\n"
    "  --output OUT  write outputs to OUT.npz (keys = output names, or the fetched names)\n";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Raw input values before dtype resolution: either a tensor or a JSON value to convert.
struct PendingInput {
  std::string key;
  Tensor tensor;
  std::shared_ptr<rapidjson::Document> json_doc;
  const rapidjson::Value* json = nullptr;
};

void add_json_object(const std::string& path, std::vector<PendingInput>& out) {
  auto doc = std::make_shared<rapidjson::Document>(parse_json(read_file(path), "'" + path + "'"));
  TS_CHECK(doc->IsObject(), "'", path, "': expected a JSON object mapping input names to values");
  for (auto& m : doc->GetObject()) out.push_back({m.name.GetString(), {}, doc, &m.value});
}

std::vector<PendingInput> parse_inputs(const std::vector<std::string>& specs) {
  std::vector<PendingInput> out;
  for (const std::string& spec : specs) {
    auto eq = spec.find('=');
    if (eq == std::string::npos) {
      if (ends_with(spec, ".npz")) {
        for (auto& [k, t] : npy::load_npz(spec)) out.push_back({k, t, nullptr, nullptr});
      } else if (ends_with(spec, ".json")) {
        add_json_object(spec, out);
      } else {
        fail("--input '", spec, "': expected KEY=VALUE, FILE.npz or FILE.json");
      }
      continue;
    }
    std::string key = spec.substr(0, eq), value = spec.substr(eq + 1);
    if (ends_with(value, ".npy")) {
      out.push_back({key, npy::load_npy(value), nullptr, nullptr});
    } else {
      std::string text = ends_with(value, ".json") ? read_file(value) : value;
      auto doc = std::make_shared<rapidjson::Document>(parse_json(text, "input '" + key + "'"));
      out.push_back({key, {}, doc, doc.get()});
    }
  }
  return out;
}

Tensor resolve(const PendingInput& in, DType dtype) {
  if (in.tensor.valid()) return in.tensor;
  return json_to_tensor(*in.json, dtype, "input '" + in.key + "'");
}

void report(const std::vector<std::pair<std::string, Tensor>>& outputs, const std::string& path) {
  for (const auto& [k, t] : outputs) std::printf("%s: %s\n", k.c_str(), t.debug_string(6).c_str());
  if (!path.empty()) npy::save_npz(path, outputs);
}

}  // namespace

int cmd_run(int argc, char** argv) {
  std::vector<std::string> flags = {"--signature", "--input", "--output", "--fetch", "--run-target"};
  for (const auto& f : load_value_flags()) flags.push_back(f);
  Args args = parse_args(argc, argv, flags);
  if (args.has("--help") || args.positional.size() != 1) {
    std::printf("%s", kUsage);
    return args.has("--help") ? 0 : 2;
  }
  LoadOptions options;
  std::vector<std::string> fetches = args.all("--fetch");
  bool by_tensor_name = !fetches.empty() || args.has("--run-target");
  // Graph tensors by name exist only in the imported graph, which the reference target runs.
  apply_load_flags(args, options, by_tensor_name ? "reference" : "cpu");
  if (by_tensor_name && (options.target != "reference" || options.passes))
    fail("--fetch/--run-target run the imported graph: use --target reference without --passes");
  auto model = Model::load(args.positional[0], options);
  Session session(model);
  std::vector<PendingInput> inputs = parse_inputs(args.all("--input"));
  std::vector<std::pair<std::string, Tensor>> outputs;

  if (by_tensor_name) {
    const Graph& g = *model->module().graph;
    std::vector<std::pair<std::string, Tensor>> feeds;
    for (const auto& in : inputs) {
      std::string name = in.key.find(':') == std::string::npos ? in.key + ":0" : in.key;
      Node* n = g.find(name.substr(0, name.find(':')));
      if (!n) fail_code(ErrorCode::kNotFound, "input '", in.key, "' names no node in the graph");
      feeds.push_back({name, resolve(in, n->outputs.at(0).dtype)});
    }
    std::vector<Tensor> results = session.run_tensors(feeds, fetches, args.all("--run-target"));
    for (size_t i = 0; i < fetches.size(); ++i) outputs.push_back({fetches[i], results[i]});
  } else {
    std::string sig_name = args.get("--signature", "serving_default");
    const Signature& sig = model->signature(sig_name);
    TensorMap feeds;
    for (const auto& in : inputs) {
      const TensorSpec* spec = sig.find_input(in.key);
      if (!spec) fail("signature '", sig_name, "' has no input '", in.key, "'");
      feeds[in.key] = resolve(in, spec->dtype);
    }
    for (auto& [k, t] : session.run(sig_name, feeds)) outputs.push_back({k, t});
  }
  report(outputs, args.get("--output"));
  return 0;
}

}  // namespace tessera::cli
