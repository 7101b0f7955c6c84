// A signature of a Module as a function-form Graph: the nodes its outputs and targets need,
// copied (same names, attributes, inferred types), with one _Arg per input (named by the
// input key) and the outputs as results (named by the output keys). Passes run on this graph;
// the library is shared with the module, and variable reads keep their resource keys, so it
// runs against the module's variables.
#pragma once
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ir/module.h"

namespace tessera {

std::shared_ptr<Graph> signature_graph(const Module& module, const Signature& signature);

// Gives the args of a fresh signature graph other shapes (one per arg, in order) and re-infers
// every node from them, so a node that cannot take the shapes fails here, named.
void reinfer_for_arg_shapes(Graph& fn, const std::vector<PartialShape>& shapes);

namespace passes {
// Resource keys of every variable whose handle (anywhere in the module's graph or library)
// reaches an op other than ReadVariableOp (Assign*, a loop or call, ...): PassContext's
// written_variables, so freeze_variables never freezes what another signature can change.
std::set<std::string> written_variables(const Module& module);
}  // namespace passes

}  // namespace tessera
