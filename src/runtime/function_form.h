// Module + Signature -> a function-form Graph (args = the signature's inputs in order, results =
// its outputs in order, control results = its targets) holding only the nodes the signature
// needs. The passes and backends work on this form. (Local helper until passes/signature_graph.h
// lands in main; same contract.)
#pragma once
#include <memory>

#include "ir/module.h"

namespace tessera {

std::shared_ptr<Graph> signature_function(const Module& module, const Signature& signature);

}  // namespace tessera
