// A node-for-node copy of a function-form graph (nodes, args, results, control results) that
// borrows `library` (the one the function lives in): the starting point for rewriting a library
// function without touching the original (hoisted variable reads, gradient functions).
#pragma once
#include <memory>
#include <string>

#include "ir/graph.h"

namespace tessera {

// The copy is named `name`; it is not added to the library.
std::shared_ptr<Graph> copy_function(const Graph& fn, const std::string& name,
                                     const std::shared_ptr<FunctionLibrary>& library);

}  // namespace tessera
