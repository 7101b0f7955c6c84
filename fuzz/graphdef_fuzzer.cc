// Fuzzes the GraphDef importer: bytes -> GraphDef proto -> IR (function inlining, TF1
// variable rewriting, shape inference with attribute values it has never seen). Any
// tessera::Error is an acceptable answer; crashes, hangs and sanitizer reports are not.
#include <cstddef>
#include <cstdint>

#include "frontend/tf/graph_import.h"
#include "ir/interpreter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tensorflow::GraphDef graph_def;
  if (!graph_def.ParseFromArray(data, static_cast<int>(size))) return 0;
  try {
    auto imported = tessera::tf::import_graph(graph_def, tessera::tf::all_node_names(graph_def),
                                              {/*allow_unsupported=*/true});
    (void)imported;
  } catch (const tessera::Error&) {
  }
  return 0;
}
