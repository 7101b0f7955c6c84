// Keras 3 losses and metrics as IR nodes (exact formulas: the epsilon clipping of
// probabilities, and Keras's use of a Softmax/Sigmoid output's input as logits).
#pragma once
#include <string>

#include "train/step_builder.h"

namespace tessera::train {

// The dtype the labels arg has for this loss (int64 class ids for the sparse loss).
DType label_dtype(const LossSpec& spec);
void check_loss(const LossSpec& spec);

// Per-sample loss (the loss's own reduction over the last axis done; batch axes kept).
// `output` is the model output; when it is produced by Softmax (CE) or Sigmoid (BCE),
// possibly through Identity, the loss uses its input as logits, as Keras does (whatever
// from_logits says).
Value per_sample_loss(GraphBuilder& b, const LossSpec& spec, Value output, Value labels);

// Sum over the batch of a metric's per-sample value (accuracy: Keras's rule for the loss
// kind: sparse -> argmax == label; one output unit -> output > 0.5; else argmax == argmax).
Value metric_sum(GraphBuilder& b, const std::string& metric, const LossSpec& spec, Value output, Value labels);

}  // namespace tessera::train
