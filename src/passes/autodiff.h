// Reverse-mode automatic differentiation on the IR: a Graph -> Graph transformation that
// appends gradient results to a function-form graph. Each op's gradient is its
// OpDef::grad (ir/grad.h), defined next to the op.
#pragma once
#include <string>
#include <vector>

#include "ir/graph.h"

namespace tessera::passes {

// Something to differentiate with respect to: the gradient is summed over `values` (the
// several reads of one variable, or a single arg output).
struct GradTarget {
  std::string name;
  std::vector<Value> values;
};

// Appends one result per target, named "grad/<name>": d sum(loss) / d target (zeros when the
// loss does not depend on it). Gradients of values used more than once are summed; only
// nodes between the targets and the loss are differentiated. Fails naming the node when an
// op on that path has no gradient.
void differentiate(Graph& g, Value loss, const std::vector<GradTarget>& targets);

// Targets for the graph's args that have a floating dtype (name = arg name).
std::vector<GradTarget> arg_targets(const Graph& g, const std::vector<int>& arg_indices);

// Trainable variables: every float variable the loss reads, one target per variable (its
// ReadVariableOps grouped by store key; name = the key). Reads through an _Arg resource are
// grouped by the arg. Fails (unimplemented) when the loss depends on a handle used another
// way (e.g. by ResourceGather), whose gradient would otherwise be silently missing.
// The non-const form first moves reads of variables inside While/If/Case functions (Keras
// RNNs read their weights in the loop body) out of them, when the function never writes the
// variable: the value enters as an extra argument, so those reads become targets too.
std::vector<GradTarget> variable_targets(Graph& g, Value loss);
std::vector<GradTarget> variable_targets(const Graph& g, Value loss);

// The hoisting step of the non-const variable_targets, for callers that collect targets
// themselves (the train step builder): reads of variables inside the While/If/Case
// functions the loss depends on move out when the function never writes the variable.
void hoist_variable_reads(Graph& g, Value loss);
// Whether control-flow node `n` (in `g`) still uses its resource input `input` inside its
// functions: false once hoist_variable_reads has moved every read out (a loop passing the
// handle through unchanged does not count). True for any other op.
bool function_uses_handle(const Graph& g, const Node& n, size_t input);

}  // namespace tessera::passes
