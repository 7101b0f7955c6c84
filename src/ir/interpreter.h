// The reference executor: runs a Graph node by node with each op's reference kernel. It is the
// oracle every optimised backend is compared with, so it favours obviousness over speed.
#pragma once
#include <utility>
#include <vector>

#include "ir/op_registry.h"

namespace tessera {

struct Feed {
  Value value;
  Tensor tensor;
};

// Computes `fetches` (and runs `targets` for their side effects) given `feeds`. Only the nodes
// these need are executed. Variables live in `resources`.
std::vector<Tensor> interpret(const Graph& graph, const std::vector<Feed>& feeds,
                              const std::vector<Value>& fetches, const std::vector<Node*>& targets,
                              ResourceStore* resources);

// Calls a function graph (args -> results), running its control results too.
std::vector<Tensor> call_function(const Graph& fn, std::vector<Tensor> args,
                                  ResourceStore* resources);

}  // namespace tessera
