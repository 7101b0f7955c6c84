// Structural checks of a Graph: every edge points at an existing output of a node of the same
// graph, names are unique, the graph is acyclic, supported nodes have typed outputs, function
// references resolve, and function args/results belong to the function. Run after import and
// (later) after every pass; throws an Error listing every problem found.
#pragma once
#include "ir/graph.h"

namespace tessera {

void verify_graph(const Graph& graph);

}  // namespace tessera
