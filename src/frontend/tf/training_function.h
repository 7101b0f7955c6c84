// tf_keras SavedModels keep the model's call traced with training=True (the object graph's
// root `__call__` has one concrete function per training value). The importer exposes that
// trace as a synthetic signature, kTrainingSignature, with the serving signature's inputs and
// outputs: a Placeholder per input and a call of the training-mode function on them and on
// the variables it captures, added to the MetaGraph before import.
#pragma once
#include "tensorflow/core/protobuf/meta_graph.pb.h"

namespace tessera::tf {

inline constexpr const char* kTrainingSignature = "tessera_training_forward";

// Adds kTrainingSignature to `mg` when the object graph has a training-mode call function that
// matches "serving_default" and uses only ops Tessera knows; returns whether it did. Leaves
// `mg` unchanged otherwise (Keras 3 exports, TF1 models, custom modules).
bool add_training_signature(tensorflow::MetaGraphDef& mg);

}  // namespace tessera::tf
