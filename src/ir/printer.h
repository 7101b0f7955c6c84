// A readable text form of the IR, one node per line in execution order:
//   dense/MatMul = MatMul(x, dense/kernel/read) {transpose_a=false, ...} : float32[?,512]
// Inputs print as "node" (output 0) or "node:k"; control inputs as "^node". Library
// functions follow the main graph.
#pragma once
#include <string>

#include "ir/graph.h"

namespace tessera {

std::string print_graph(const Graph& graph, bool with_library = true);

}  // namespace tessera
