// Training checkpoints in TensorFlow's TensorBundle format, laid out the way a TF2
// tf.train.Checkpoint of (model, optimizer) would be, so TF tooling reads them:
//
//   <variable key>                          every variable, under its SavedModel bundle key
//                                           (and under each alias key of the same variable)
//   <variable path>/.OPTIMIZER_SLOT/optimizer/<slot>/.ATTRIBUTES/VARIABLE_VALUE
//                                           each optimizer slot (m, v, momentum, velocity)
//   optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE          int64: optimizer iterations (step)
//   save_counter/.ATTRIBUTES/VARIABLE_VALUE            int64: checkpoints written so far
//   tessera/dropout_seed/.ATTRIBUTES/VARIABLE_VALUE    int64: the dropout seed (uint64 bits)
//   tessera/samples_seen/.ATTRIBUTES/VARIABLE_VALUE    int64: global index of the next sample
//   tessera/input_position/.ATTRIBUTES/VARIABLE_VALUE  int64[2]: PipelineState (elements, fingerprint)
//   _CHECKPOINTABLE_OBJECT_GRAPH            the SavedModel's own TrackableObjectGraph plus
//                                           nodes for the optimizer (children `iter`, with
//                                           slot_variables), save_counter and tessera
//
// where <variable path> is the variable key without "/.ATTRIBUTES/VARIABLE_VALUE".
// A directory holds `ckpt-<step>` prefixes and TF's `checkpoint` state file; the writer's
// ordering (data, index, then state file; each fsynced and renamed) makes the latest complete
// checkpoint survive a crash at any point (io/tensor_bundle_writer.h).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "io/tensor_bundle_writer.h"
#include "train/dataset.h"
#include "train/trainer.h"

namespace tessera::train {

inline constexpr const char* kObjectGraphKey = "_CHECKPOINTABLE_OBJECT_GRAPH";
inline constexpr const char* kIterationsKey = "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE";
inline constexpr const char* kSaveCounterKey = "save_counter/.ATTRIBUTES/VARIABLE_VALUE";
inline constexpr const char* kDropoutSeedKey = "tessera/dropout_seed/.ATTRIBUTES/VARIABLE_VALUE";
inline constexpr const char* kSamplesSeenKey = "tessera/samples_seen/.ATTRIBUTES/VARIABLE_VALUE";
inline constexpr const char* kInputPositionKey = "tessera/input_position/.ATTRIBUTES/VARIABLE_VALUE";

// What a SavedModel's variables bundle says about the layout of its variables.
struct ModelLayout {
  std::string object_graph;  // serialized TrackableObjectGraph; "" when the bundle has none
  // key -> the other keys that hold the same variable (Keras 3 exports save each variable
  // twice: under variables/N and _all_variables/M, same full_name and the same value).
  std::map<std::string, std::vector<std::string>> aliases;
  // Trainer variable key (resource key) -> the bundle keys that restore it (variable_keys.h).
  // Empty: the Trainer's keys are the bundle keys.
  std::map<std::string, std::vector<std::string>> bundle_keys;
  // Fingerprints of the original values by bundle key, and the Trainer's trainable keys: when
  // several variables map to one bundle key (a Keras 3 copy that the functions never use), the
  // trained one wins, then one that changed from its original value.
  std::map<std::string, uint64_t> original_fingerprints;
  std::vector<std::string> trainable;
};

// Fingerprint of a numeric tensor's dtype, shape and bytes.
uint64_t tensor_fingerprint(const Tensor& t);

// The Trainer's variables (by its keys) as bundle tensors: every bundle key of each variable,
// aliases included, resolved by the precedence above.
std::map<std::string, Tensor> variables_by_bundle_key(const std::map<std::string, Tensor>& variables,
                                                      const ModelLayout& layout);

// The bundle key a checkpoint stores variable `key` under (and derives its slot keys from):
// the first of its bundle keys not starting with '_' (Keras 3's `variables/N` rather than the
// `_all_variables/M` copy), or `key` itself when the layout has no mapping.
std::string primary_bundle_key(const ModelLayout& layout, const std::string& key);
// Every bundle key holding variable `key` (primary first), aliases included.
std::vector<std::string> all_bundle_keys(const ModelLayout& layout, const std::string& key);

// Reads `<dir>/variables/variables` (an empty layout when the model has no variables bundle).
ModelLayout read_model_layout(const std::string& saved_model_dir);
// The same, from a bundle's tensors (for tests).
ModelLayout model_layout_from_bundle(const std::map<std::string, Tensor>& bundle);

// "<path>/.OPTIMIZER_SLOT/optimizer/<slot>/.ATTRIBUTES/VARIABLE_VALUE".
std::string checkpoint_slot_key(const std::string& variable_key, const std::string& slot);
// The variable's object path: its key without "/.ATTRIBUTES/VARIABLE_VALUE".
std::string variable_path(const std::string& variable_key);

// Every tensor of a checkpoint of `state` (object graph included).
std::map<std::string, Tensor> checkpoint_tensors(const TrainState& state, const PipelineState& input,
                                                 const ModelLayout& layout, int64_t save_counter);
// The TrackableObjectGraph for those tensors: the layout's graph plus the new nodes.
std::string checkpoint_object_graph(const TrainState& state, const ModelLayout& layout);

// Fills `state` (its keys and slot names say what to read: pass trainer.state()) and `input`
// from the checkpoint `prefix`. Errors name the prefix and the missing or mismatched key.
void read_checkpoint(const std::string& prefix, TrainState* state, PipelineState* input,
                     const ModelLayout& layout = {});

class CheckpointManager {
 public:
  // `keep` <= 0 keeps every checkpoint. Picks up the checkpoints already listed in `dir`.
  CheckpointManager(std::string dir, int keep, ModelLayout layout, CheckpointWriteOptions options = {});
  // Writes ckpt-<state.step>, makes it the latest and deletes the oldest beyond `keep`.
  std::string save(const TrainState& state, const PipelineState& input);
  std::string latest() const;  // full prefix or ""
  const std::vector<std::string>& all() const { return all_; }  // names, oldest first

 private:
  std::string dir_;
  int keep_;
  ModelLayout layout_;
  CheckpointWriteOptions options_;
  std::vector<std::string> all_;
  int64_t save_counter_ = 0;
};

// The all_model_checkpoint_paths of `dir`/checkpoint (names as written), oldest first.
std::vector<std::string> listed_checkpoints(const std::string& dir);

}  // namespace tessera::train
