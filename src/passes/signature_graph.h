// A signature of a Module as a function-form Graph: the nodes its outputs and targets need,
// copied (same names, attributes, inferred types), with one _Arg per input (named by the
// input key) and the outputs as results (named by the output keys). Passes run on this graph;
// the library is shared with the module, and variable reads keep their resource keys, so it
// runs against the module's variables.
#pragma once
#include <memory>

#include "ir/module.h"

namespace tessera {

std::shared_ptr<Graph> signature_graph(const Module& module, const Signature& signature);

}  // namespace tessera
