// The C++ API: load a model once, run its signatures from any number of Sessions. A Model is
// immutable after load (graph, signatures, restored variable values); a Session owns a copy of
// the variables, so stateful signatures (counters, training) affect only that session.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/module.h"
#include "ir/op_registry.h"

namespace tessera {

struct LoadOptions {
  std::vector<std::string> tags = {"serve"};
  bool allow_unsupported = false;  // load for inspection even if some ops are unknown
  bool skip_variables = false;     // load the graph only (inspection of structure)
};

class Model {
 public:
  static std::shared_ptr<const Model> load(const std::string& path, const LoadOptions& options = {});

  const Module& module() const { return module_; }
  const std::string& path() const { return module_.source; }
  const std::map<std::string, Signature>& signatures() const { return module_.signatures; }
  const Signature& signature(const std::string& key) const { return module_.signature(key); }
  // Variable values after restore + init, keyed by resource key.
  const std::map<std::string, Tensor>& variables() const { return variables_; }
  // op type -> node names for ops Tessera does not support (only with allow_unsupported).
  const std::map<std::string, std::vector<std::string>>& unsupported_ops() const { return unsupported_; }

 private:
  Module module_;
  std::map<std::string, Tensor> variables_;
  std::map<std::string, std::vector<std::string>> unsupported_;
};

using TensorMap = std::map<std::string, Tensor>;

class Session {
 public:
  explicit Session(std::shared_ptr<const Model> model);

  // Runs a signature: inputs keyed by the signature's input names; returns the requested
  // outputs (all when `outputs` is empty) keyed by output name. Inputs are checked against the
  // signature (names, dtypes, shapes) with errors that name the input.
  TensorMap run(const std::string& signature, const TensorMap& inputs,
                const std::vector<std::string>& outputs = {});

  // Runs by graph tensor names ("x:0"), as a TF1 Session::Run does.
  std::vector<Tensor> run_tensors(const std::vector<std::pair<std::string, Tensor>>& feeds,
                                  const std::vector<std::string>& fetches,
                                  const std::vector<std::string>& targets = {});

  const Model& model() const { return *model_; }
  ResourceStore& variables() { return variables_; }

 private:
  std::shared_ptr<const Model> model_;
  ResourceStore variables_;
};

}  // namespace tessera
