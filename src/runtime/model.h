// The C++ API: load a model once, run its signatures from any number of Sessions. A Model is
// immutable after load (graph, signatures, restored variable values, compiled executables); a
// Session owns a copy of the variables, so stateful signatures (counters, training) affect
// only that session.
//
// Targets: "reference" interprets the imported graph as is (or, with explicit passes, the
// optimised graph); "cpu" compiles each signature (default pass pipeline) for the cpu backend,
// once, lazily and thread-safely, reusing the on-disk compile cache. A `.tsr` artifact
// (detected by its magic number) loads its compiled signatures without importing anything.
#pragma once
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ir/module.h"
#include "ir/op_registry.h"
#include "runtime/artifact.h"
#include "runtime/compiler.h"

namespace tessera {

struct LoadOptions {
  std::vector<std::string> tags = {"serve"};
  bool allow_unsupported = false;  // load for inspection even if some ops are unknown
  bool skip_variables = false;     // load the graph only (inspection of structure)
  // tf_keras SavedModels: also import the training-mode call as the signature
  // "tessera_training_forward" (frontend/tf/training_function.h). Unset: on for uncompiled
  // loads (the reference target without passes: inspection, `tessera train`, whose trainer
  // compiles its own programs), off for compiled ones, which would compile (and serve) every
  // signature.
  std::optional<bool> training_signature;
  // "" = "reference" for a SavedModel/GraphDef, the artifact's own target for a .tsr.
  std::string target;
  std::optional<std::vector<std::string>> passes;  // nullopt = default pipeline (compiled targets)
  int threads = 0;      // cpu: intra-op threads, 0 = every core
  int inter_op = 0;     // cpu: steps run at once, 0 = the backend's default
  int concurrent_runs = 1;  // cpu: runs of one signature at once (a server's run threads)
  std::string isa;      // cpu: "" = TESSERA_ISA or the best available
  // cpu: "fp32" or "bf16"; "" = fp32 for a SavedModel/GraphDef, the artifact's for a .tsr.
  std::string precision;
  bool use_cache = true;  // cpu target from a SavedModel/GraphDef: use the on-disk compile cache
  std::function<void(const std::string&, const Graph&)> after_pass;  // IR dumps
};

class Model {
 public:
  static std::shared_ptr<const Model> load(const std::string& path, const LoadOptions& options = {});

  // The imported module. For a model loaded from a .tsr its graph is null (signatures hold
  // metadata only; each compiled signature has its own graph).
  const Module& module() const { return module_; }
  const std::string& path() const { return module_.source; }
  const std::map<std::string, Signature>& signatures() const { return module_.signatures; }
  const Signature& signature(const std::string& key) const { return module_.signature(key); }
  // Variable values after restore + init, keyed by resource key.
  const std::map<std::string, Tensor>& variables() const { return variables_; }
  // op type -> node names for ops Tessera does not support (only with allow_unsupported).
  const std::map<std::string, std::vector<std::string>>& unsupported_ops() const { return unsupported_; }

  const std::string& target() const { return target_; }
  // True if signatures run through compiled executables (cpu target, explicit passes, .tsr).
  bool compiled() const { return compiled_; }
  // The compiled form of a signature; compiles it on first use (thread-safe).
  const CompiledSignature& compiled_signature(const std::string& key) const;
  // Compiles every signature (for `tessera compile` and the cache).
  std::map<std::string, CompiledSignature> compile_all() const;
  // Set when loaded from a .tsr (directly or from the compile cache).
  const std::optional<ArtifactInfo>& artifact_info() const { return artifact_info_; }
  // Encoded rdu mappings stored in the .tsr, by signature (backend/rdu/mapping_codec.h).
  const std::map<std::string, std::string>& rdu_mappings() const { return rdu_mappings_; }
  // A signature compiled for inputs whose shapes the SignatureDef does not declare (TF does not
  // enforce SignatureDef shapes; TF Serving feeds whatever the graph takes): the signature graph
  // re-inferred for `shapes` (by input key; dim 0 is left free so batches of any size share one
  // entry). Fails, naming the input or node, when a placeholder's own
  // shape or a node's shape function rejects them. At most kMaxShapeVariants entries (least
  // recently used dropped; failures are kept too, so a bad shape is not recompiled per call).
  // A model from the compile cache imports its source once for this; a .tsr has no source
  // graph and answers with an error.
  std::shared_ptr<const CompiledSignature> compiled_for_shapes(const std::string& key,
                                                               const std::map<std::string, Shape>& shapes) const;
  static constexpr size_t kMaxShapeVariants = 16;
  bool cache_hit() const { return cache_hit_; }
  double compile_seconds() const;  // time spent compiling so far (0 for a .tsr or cache hit)
  const CompileOptions& compile_options() const { return compile_options_; }

 private:
  static std::shared_ptr<Model> from_artifact(Artifact artifact, const std::string& path, const LoadOptions& options);

  struct Slot {
    std::once_flag once;
    CompiledSignature compiled;
  };

  Module module_;
  std::map<std::string, Tensor> variables_;
  std::map<std::string, std::vector<std::string>> unsupported_;
  std::string target_ = "reference";
  bool compiled_ = false;
  bool cache_hit_ = false;
  CompileOptions compile_options_;
  std::optional<ArtifactInfo> artifact_info_;
  std::map<std::string, std::string> rdu_mappings_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::unique_ptr<Slot>> slots_;
  mutable double compile_seconds_ = 0;

  // compiled_for_shapes: the imported source of a compile-cache hit, and the variants.
  struct Variant {
    std::once_flag once;
    std::shared_ptr<const CompiledSignature> compiled;
    std::optional<Error> error;
  };
  const Model& shape_source() const;
  std::vector<std::string> tags_;
  mutable std::once_flag source_once_;
  mutable std::shared_ptr<const Model> source_;
  mutable std::list<std::pair<std::string, std::shared_ptr<Variant>>> variants_;  // most recent first
};

// The dtype a signature input is fed as: its graph tensor's own dtype. A SignatureDef's dtype is
// metadata (TF feeds the named tensor and checks only its real dtype; some TF1 exports disagree,
// e.g. half_plus_three's regress signature declares DT_FLOAT for a DT_STRING placeholder).
DType input_dtype(const TensorSpec& spec);

using TensorMap = std::map<std::string, Tensor>;

class Session {
 public:
  explicit Session(std::shared_ptr<const Model> model);

  // Runs a signature: inputs keyed by the signature's input names; returns the requested
  // outputs (all when `outputs` is empty) keyed by output name. Inputs are checked against the
  // signature (names, dtypes, shapes) with errors that name the input.
  TensorMap run(const std::string& signature, const TensorMap& inputs,
                const std::vector<std::string>& outputs = {});

  // Runs by graph tensor names ("x:0"), as a TF1 Session::Run does (imported graph only).
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
