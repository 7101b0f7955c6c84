// Writer for TensorFlow's TensorBundle (checkpoint V2) format, the counterpart of
// TensorBundleReader: `<prefix>.data-00000-of-00001` holds the tensors' bytes back to back and
// `<prefix>.index` is a LevelDB-format sorted table mapping "" to a BundleHeaderProto and each
// tensor name to a BundleEntryProto (dtype, shape, shard, offset, size, masked CRC32C).
//
// Crash safety: both files are written under temporary names, fsynced and renamed into place,
// the data shard first and the index last, so `<prefix>.index` exists only once the checkpoint
// is complete. A checkpoint directory's `checkpoint` file (TF's CheckpointState text proto,
// what tf.train.latest_checkpoint reads) is replaced the same way, after the bundle. A crash at
// any point leaves the previous checkpoint and the `checkpoint` file pointing to it intact.
//
// Fault injection for tests: every completed stage calls Options::after_stage(stage); and if
// the environment variable TESSERA_CHECKPOINT_FAULT_STAGE=k is set, the process dies
// (_exit(86), no cleanup, like kill -9) right after stage k.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/tensor.h"

namespace tessera {

enum class CheckpointStage : int {
  kDataWritten = 1,     // data shard written and fsynced under its temporary name
  kDataRenamed = 2,     // data shard in place
  kIndexWritten = 3,    // index written and fsynced under its temporary name
  kIndexRenamed = 4,    // index in place: the bundle is complete
  kStateWritten = 5,    // new `checkpoint` file written under its temporary name
  kStateRenamed = 6,    // `checkpoint` file replaced: the new checkpoint is the latest
};
constexpr int kNumCheckpointStages = 6;
const char* checkpoint_stage_name(CheckpointStage s);

struct CheckpointWriteOptions {
  // Called after each stage; a test may throw from it to simulate a crash there.
  std::function<void(CheckpointStage)> after_stage;
};

class TensorBundleWriter {
 public:
  explicit TensorBundleWriter(std::string prefix, CheckpointWriteOptions options = {});
  // Numeric (any POD dtype) or string tensors; keys must be unique and non-empty.
  void add(const std::string& key, const Tensor& tensor);
  // Writes both files atomically (stages 1-4). The writer cannot be reused afterwards.
  void finish();

 private:
  std::string prefix_;
  CheckpointWriteOptions options_;
  std::map<std::string, Tensor> tensors_;  // sorted, as the index table requires
  bool finished_ = false;
};

// Convenience: writes `tensors` as the bundle `prefix`.
void write_tensor_bundle(const std::string& prefix, const std::map<std::string, Tensor>& tensors,
                         const CheckpointWriteOptions& options = {});

// The `checkpoint` file in `dir`: records `latest` (a prefix relative to dir, e.g. "ckpt-3")
// as model_checkpoint_path and `all` (oldest first, including latest) as
// all_model_checkpoint_paths (stages 5-6).
void write_checkpoint_state(const std::string& dir, const std::string& latest,
                            const std::vector<std::string>& all,
                            const CheckpointWriteOptions& options = {});
// The latest checkpoint prefix recorded in `dir`/checkpoint (joined with dir when relative),
// or "" when there is no such file.
std::string latest_checkpoint(const std::string& dir);

// The LevelDB-format table the index uses, from sorted (key, value) pairs (exposed for tests).
std::string build_sstable(const std::vector<std::pair<std::string, std::string>>& sorted_entries);

}  // namespace tessera
