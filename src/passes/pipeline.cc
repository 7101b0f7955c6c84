#include <sstream>

#include "ir/verifier.h"
#include "passes/pass.h"
#include "support/error.h"

namespace tessera::passes {

const std::vector<Pass>& all_passes() {
  static const std::vector<Pass> passes = {};
  return passes;
}

const Pass& find_pass(const std::string& name) {
  std::ostringstream known;
  for (const Pass& p : all_passes()) {
    if (p.name == name) return p;
    known << " " << p.name;
  }
  fail_code(ErrorCode::kInvalidArgument, "unknown pass '", name, "'; known passes:", known.str());
}

std::vector<std::string> default_pipeline() {
  std::vector<std::string> names;
  for (const Pass& p : all_passes()) names.push_back(p.name);
  return names;
}

void run_passes(Graph& graph, const std::vector<std::string>& names, const PassContext& ctx) {
  for (const std::string& name : names) {
    const Pass& pass = find_pass(name);
    with_context("pass " + name, [&] {
      pass.run(graph, ctx);
      if (ctx.verify) verify_graph(graph);
    });
    if (ctx.after_pass) ctx.after_pass(name, graph);
  }
}

}  // namespace tessera::passes
