// A Module is what the importer hands to the rest of Tessera: one graph, its named signatures
// (TF SignatureDefs), and how to bring its variables to their saved values.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace tessera {

struct TensorSpec {
  std::string key;        // the signature's name for it ("x", "output_0")
  std::string tensor;     // the graph tensor it binds ("serving_default_x:0")
  Value value;            // that tensor in the IR graph
  DType dtype = DType::kInvalid;
  PartialShape shape;
};

struct Signature {
  std::string key;          // "serving_default"
  std::string method_name;  // "tensorflow/serving/predict"
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  // Targets run with the signature for their side effects (TF1 signatures that assign).
  std::vector<Node*> targets;

  const TensorSpec* find_input(const std::string& key) const;
  const TensorSpec* find_output(const std::string& key) const;
};

// Running `target` with the checkpoint prefix fed to `filename` restores every variable.
struct RestoreSpec {
  Value filename;
  Node* target = nullptr;
  std::string prefix;  // "<export dir>/variables/variables"
};

struct Module {
  std::shared_ptr<Graph> graph;
  std::map<std::string, Signature> signatures;
  std::optional<RestoreSpec> restore;
  std::vector<Node*> init_targets;  // run once after restore (TF main/init ops)
  // Graph tensors fed with the absolute path of an asset file while restoring and initialising
  // (TF's AssetFileDef): e.g. a vocabulary a lookup table reads at init.
  std::vector<std::pair<Value, std::string>> asset_paths;
  std::string source;               // the path it came from, for messages
  std::string format;               // "saved_model (TF2)", "graphdef", ...
  std::string tf_version;           // from MetaInfoDef, when recorded

  // Looks up a signature; the error lists the available keys.
  const Signature& signature(const std::string& key) const;
};

}  // namespace tessera
