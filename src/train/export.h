// Export of a trained model as a SavedModel directory: the original's saved_model.pb (same
// signatures and object graph), its assets/ and assets.extra/, and variables/ rewritten with
// the trained values under the original bundle keys (aliases of a variable included; the
// `_CHECKPOINTABLE_OBJECT_GRAPH` entry and every other key are copied unchanged).
//
// fingerprint.pb is not copied: its checkpoint_hash describes the original variables, and TF
// loads a SavedModel without one (it only reads it for telemetry).
//
// The export is assembled in `<dst>.tmp-<pid>` and renamed into place, so `dst` is either
// absent, the previous export, or complete.
#pragma once
#include <map>
#include <string>

#include "ir/tensor.h"

namespace tessera::train {

// `values`: trained variables by bundle key. Every key must exist in the original bundle with
// the same dtype and shape. Replaces an existing `dst`.
void export_saved_model(const std::string& src_dir, const std::string& dst_dir,
                        const std::map<std::string, Tensor>& values);

}  // namespace tessera::train
