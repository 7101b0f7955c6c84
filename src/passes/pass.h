// Optimisation passes: each is a Graph -> Graph rewrite in its own file, registered here by
// name. A pass rewrites the graph it is given in place and must keep it valid (the pipeline
// runs the verifier after every pass when asked), keep `graph.args` / `graph.results` meaning
// the same tensors, and never change what a result computes beyond float rounding.
#pragma once
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"

namespace tessera::passes {

struct PassContext {
  // Variable values after restore, for passes that freeze variables the graph never assigns.
  const ResourceStore* variables = nullptr;
  // Variables something else in the module writes (another signature, an init op): a graph
  // that only reads them must still read them, so they are never frozen. Fill it with
  // written_variables(module) (passes/signature_graph.h); without it a variable is frozen
  // whenever the graph being optimised does not write it.
  const std::set<std::string>* written_variables = nullptr;
  bool verify = true;  // run verify_graph after each pass
  // Called after each pass with its name and the graph (for --dump-ir-after and tests).
  std::function<void(const std::string& pass, const Graph& graph)> after_pass;
};

struct Pass {
  std::string name;     // "fold_constants": the name on the command line
  std::string summary;  // one line for `tessera passes`
  std::function<void(Graph&, const PassContext&)> run;
};

// Every pass, in default pipeline order.
const std::vector<Pass>& all_passes();
const Pass& find_pass(const std::string& name);  // error lists the known names
std::vector<std::string> default_pipeline();

// Runs the named passes in order on `graph` (a function-form graph: args and results set).
void run_passes(Graph& graph, const std::vector<std::string>& names, const PassContext& ctx = {});

}  // namespace tessera::passes
