// `tessera inspect MODEL`: what a model offers (signatures with dtypes/shapes), what it is
// made of (op histogram, variables), and what Tessera cannot run yet (unsupported ops).
#include <cstdio>
#include <map>
#include <set>

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
    std::printf("usage: tessera inspect MODEL [--tags serve]\n"
                "  MODEL: a SavedModel directory, or a binary (.pb) or text (.pbtxt) GraphDef\n");
    return args.has("--help") ? 0 : 2;
  }
  LoadOptions options;
  options.allow_unsupported = true;
  if (args.has("--tags")) {
    options.tags.clear();
    std::string tags = args.get("--tags");
    for (size_t pos = 0; pos <= tags.size();) {
      size_t comma = tags.find(',', pos);
      if (comma == std::string::npos) comma = tags.size();
      if (comma > pos) options.tags.push_back(tags.substr(pos, comma - pos));
      pos = comma + 1;
    }
  }
  auto model = Model::load(args.positional[0], options);
  const Module& m = model->module();
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

int cmd_ops(int argc, char** argv) {
  for (const auto& name : OpRegistry::global().names()) std::printf("%s\n", name.c_str());
  return 0;
}

}  // namespace tessera::cli
