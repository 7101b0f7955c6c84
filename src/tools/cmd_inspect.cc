// `tessera inspect MODEL`: what a model offers (signatures with dtypes/shapes), what it is
// made of (op histogram, variables), and what Tessera cannot run yet (unsupported ops).
#include <cstdio>
#include <map>
#include <set>

#include "ir/printer.h"
#include "runtime/model.h"
#include "tools/cli.h"

namespace tessera::cli {
namespace {

void count_ops(const Graph& g, std::map<std::string, int>& hist, std::set<const Graph*>& seen) {
  if (!seen.insert(&g).second) return;
  for (const auto& n : g.nodes()) ++hist[n->op];
  if (g.library)
    for (const auto& [name, fn] : g.library->functions) count_ops(*fn, hist, seen);
}

void print_specs(const char* title, const std::vector<TensorSpec>& specs) {
  std::printf("    %s:\n", title);
  for (const auto& s : specs)
    std::printf("      %-24s %-8s %-16s <- %s\n", s.key.c_str(), dtype_name(s.dtype), s.shape.str().c_str(),
                s.tensor.c_str());
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  Args args = parse_args(argc, argv, {"--tags"});
  if (args.has("--help") || args.positional.size() != 1) {
    std::printf("usage: tessera inspect MODEL [--tags serve] [--ir] [--no-variables]\n"
                "  MODEL: a SavedModel directory, or a binary (.pb) or text (.pbtxt) GraphDef\n"
                "  --ir            print the imported IR (main graph and library functions) instead\n"
                "  --no-variables  import the graph only; do not read the checkpoint\n");
    return args.has("--help") ? 0 : 2;
  }
  LoadOptions options;
  options.allow_unsupported = true;
  options.skip_variables = args.has("--no-variables");
  apply_tags_flag(args, options);
  auto model = Model::load(args.positional[0], options);
  const Module& m = model->module();
  if (!m.graph) {  // a compiled .tsr: each signature has its own optimised graph
    const ArtifactInfo& info = *model->artifact_info();
    if (args.has("--ir")) {
      for (const auto& [key, sig] : m.signatures)
        std::fputs(print_graph(*model->compiled_signature(key).graph).c_str(), stdout);
      return 0;
    }
    std::printf("model:      %s\n", m.source.c_str());
    std::printf("format:     .tsr v%u for target %s%s%s (Tessera %s, oneDNN %s)\n", info.format_version,
                info.target.c_str(), info.isa.empty() ? "" : ", ISA ", info.isa.c_str(), info.tessera_version.c_str(),
                info.onednn_version.c_str());
    std::printf("precision:  %s\n", info.precision.c_str());
    std::printf("compiled from: %s\n", info.source.c_str());
    std::string passes, layouts;
    for (const auto& p : info.passes) passes += " " + p;
    for (const auto& l : info.packed_layouts) layouts += " " + l;
    std::printf("passes:    %s\n", passes.empty() ? " (none)" : passes.c_str());
    std::printf("packed layouts:%s\n", layouts.empty() ? " (none)" : layouts.c_str());
    std::printf("signatures: %zu\n", m.signatures.size());
    for (const auto& [key, sig] : m.signatures) {
      std::printf("  %s (%s): %zu nodes\n", key.c_str(), sig.method_name.c_str(),
                  model->compiled_signature(key).graph->nodes().size());
      print_specs("inputs", sig.inputs);
      print_specs("outputs", sig.outputs);
    }
    std::printf("variables:  %zu\n", model->variables().size());
    return 0;
  }
  if (args.has("--ir")) {
    std::fputs(print_graph(*m.graph).c_str(), stdout);
    return 0;
  }
  std::printf("model:      %s\n", m.source.c_str());
  std::printf("format:     %s%s%s\n", m.format.c_str(), m.tf_version.empty() ? "" : ", written by TensorFlow ",
              m.tf_version.c_str());
  std::printf("signatures: %zu\n", m.signatures.size());
  for (const auto& [key, sig] : m.signatures) {
    std::printf("  %s (%s)\n", key.c_str(), sig.method_name.c_str());
    print_specs("inputs", sig.inputs);
    print_specs("outputs", sig.outputs);
  }
  size_t var_bytes = 0;
  for (const auto& [k, t] : model->variables()) var_bytes += t.nbytes();
  std::printf("variables:  %zu (%.1f KiB)\n", model->variables().size(), var_bytes / 1024.0);

  std::map<std::string, int> hist;
  std::set<const Graph*> seen;
  count_ops(*m.graph, hist, seen);
  int total = 0;
  for (const auto& [op, n] : hist) total += n;
  std::printf("ops:        %d nodes, %zu op types\n", total, hist.size());
  for (const auto& [op, n] : hist) std::printf("  %-32s %d\n", op.c_str(), n);
  // Shape inference coverage over what the signatures compute (restore/save paths excluded).
  std::vector<Value> fetches;
  for (const auto& [key, sig] : m.signatures)
    for (const auto& o : sig.outputs) fetches.push_back(o.value);
  size_t values = 0, unknown_rank = 0;
  for (const Node* n : m.graph->schedule(fetches, {})) {
    for (const ValueInfo& v : n->outputs) {
      if (v.dtype == DType::kResource || v.dtype == DType::kVariant) continue;
      ++values;
      unknown_rank += !v.shape.known_rank;
    }
  }
  std::printf("shapes:     %zu values, %zu of unknown rank\n", values, unknown_rank);
  if (model->unsupported_ops().empty()) {
    std::printf("unsupported ops: none\n");
    return 0;
  }
  std::printf("unsupported ops: %zu\n", model->unsupported_ops().size());
  for (const auto& [op, nodes] : model->unsupported_ops()) {
    std::printf("  %-32s %zu node(s):", op.c_str(), nodes.size());
    for (size_t i = 0; i < nodes.size() && i < 5; ++i) std::printf(" %s", nodes[i].c_str());
    std::printf("%s\n", nodes.size() > 5 ? " ..." : "");
  }
  return 1;  // a model Tessera cannot run is a failure for scripts
}

namespace {

// JSON for an attribute default, so tests can compare with TensorFlow's op registry.
std::string attr_json(const AttrValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t>) return std::to_string(x);
        else if constexpr (std::is_same_v<T, float>) return str_cat(x);
        else if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::string>) {
          std::string out = "\"";
          for (char c : x) {
            if (c == '"' || c == '\\') out += '\\';
            if (static_cast<unsigned char>(c) < 32) out += str_cat("\\u00", "0123456789abcdef"[(c >> 4) & 15], "0123456789abcdef"[c & 15]);
            else out += c;
          }
          return out + "\"";
        } else if constexpr (std::is_same_v<T, DType>) return str_cat("\"", dtype_name(x), "\"");
        else if constexpr (std::is_same_v<T, PartialShape>) {
          if (!x.known_rank) return "null";
          std::string out = "[";
          for (size_t i = 0; i < x.dims.size(); ++i) out += (i ? "," : "") + std::to_string(x.dims[i]);
          return out + "]";
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<float>> ||
                             std::is_same_v<T, std::vector<std::string>> || std::is_same_v<T, std::vector<DType>> ||
                             std::is_same_v<T, std::vector<PartialShape>>) {
          std::string out = "[";
          for (size_t i = 0; i < x.size(); ++i) out += (i ? "," : "") + attr_json(AttrValue(x[i]));
          return out + "]";
        } else {
          return str_cat("\"<", attr_kind_name(AttrValue(x)), ">\"");
        }
      },
      static_cast<const AttrVariant&>(v));
}

}  // namespace

int cmd_ops(int argc, char** argv) {
  Args args = parse_args(argc, argv, {});
  const OpRegistry& registry = OpRegistry::global();
  for (const auto& name : registry.names()) {
    if (!args.has("--json")) {
      std::printf("%s\n", name.c_str());
      continue;
    }
    const OpDef* def = registry.find(name);
    std::string defaults;
    for (const auto& [key, value] : def->attr_defaults)
      defaults += str_cat(defaults.empty() ? "" : ",", "\"", key, "\":", attr_json(value));
    std::printf("{\"op\":\"%s\",\"stateful\":%s,\"defaults\":{%s}}\n", name.c_str(),
                def->stateful ? "true" : "false", defaults.c_str());
  }
  return 0;
}

}  // namespace tessera::cli
