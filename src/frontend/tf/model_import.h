// Entry point of the TensorFlow frontend: a path (SavedModel directory, binary or text
// GraphDef) -> Module. Rejects formats Tessera does not read with a message that says so.
#pragma once
#include <string>
#include <vector>

#include "frontend/tf/graph_import.h"
#include "ir/module.h"

namespace tessera::tf {

struct ModelImportOptions {
  std::vector<std::string> tags = {"serve"};  // SavedModel MetaGraph tag set
  bool allow_unsupported = false;             // see ImportOptions
  bool skip_variables = false;                // graph only: no checkpoint needed or read
  bool training_signature = false;            // tf_keras: add "tessera_training_forward"
};

struct ModelImport {
  Module module;
  std::map<std::string, std::vector<std::string>> unsupported;  // op -> nodes
};

ModelImport import_model(const std::string& path, const ModelImportOptions& options = {});

}  // namespace tessera::tf
