// GraphDef (+ FunctionDefLibrary) -> IR. Function calls (PartitionedCall,
// StatefulPartitionedCall, direct calls) are inlined, TF1 reference variables become resource
// variables, and If/While/Case bodies become library Graphs. Only the part of the graph that
// the requested roots need is imported, so a SavedModel's save path never matters.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "tensorflow/core/framework/graph.pb.h"

namespace tessera::tf {

struct ImportOptions {
  // Keep nodes whose op Tessera does not know (for `tessera inspect`); otherwise importing
  // fails with a list of every unsupported op type and its nodes.
  bool allow_unsupported = false;
};

struct ImportResult {
  std::shared_ptr<Graph> graph;
  // op type -> node names, for ops the registry does not know (only with allow_unsupported).
  std::map<std::string, std::vector<std::string>> unsupported;
};

// `roots` are node names or tensor names ("y:0") whose producers must be imported.
ImportResult import_graph(const tensorflow::GraphDef& graph_def, const std::vector<std::string>& roots,
                          const ImportOptions& options = {});

// Every node of the GraphDef is a root (frozen graphs).
std::vector<std::string> all_node_names(const tensorflow::GraphDef& graph_def);

}  // namespace tessera::tf
