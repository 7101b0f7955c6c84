// The loop `tessera train` runs around a Trainer: feeds it batches from the input pipeline,
// shows progress, evaluates, writes TensorBoard scalars, checkpoints, resumes and exports.
// Kept apart from the CLI's flag parsing so unit tests can drive it with a fake Trainer.
//
// With a Communicator of several processes (mpirun) every rank runs the same pipeline and
// hands the Trainer the whole global batch (the Trainer takes its rank's slice); only rank 0
// prints, writes event files, checkpoints, stats and the export.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace tessera::train {

struct LoopOptions {
  int64_t steps = 0;  // total optimizer steps (counting those done before a resume); < 0: until the data ends
  size_t num_features = 1;  // leading components of an element that are model inputs (the rest: labels)
  // Evaluation on the validation pipeline (one pass): at the end, and every eval_every steps.
  int64_t eval_every = 0;
  // Checkpoints: every `checkpoint_every` steps and at the end when `checkpoint_dir` is set.
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;
  int keep = 5;
  bool resume = false;  // continue from the latest checkpoint in checkpoint_dir, if any
  ModelLayout layout;   // the SavedModel's object graph, for checkpoints
  CheckpointWriteOptions checkpoint_options;
  // TensorBoard: scalars every step; `graph_def` (serialized GraphDef) once.
  std::string logdir;
  std::string graph_def;
  // Export of the trained variables into a copy of `model_dir` (a SavedModel) at the end.
  std::string export_dir;
  std::string model_dir;
  // Output.
  FILE* progress_out = stderr;
  bool quiet = false;
  bool tty = false;          // one self-rewriting progress line
  int64_t log_every = 100;   // non-TTY: a progress line every N steps
  std::string stats_json;    // path; "" = none
  int64_t stats_warmup = 5;  // steps left out of the samples/s median
  std::string run_description;  // recorded in the stats ("model", flags)
};

struct EvalResult {
  double loss = 0;
  double accuracy = -1;
  int64_t samples = 0;
};

struct LoopResult {
  RunStats stats;
  int64_t first_step = 0;  // the trainer's step count when this run started (> 0 after resume)
  int64_t last_step = 0;
  bool resumed = false;
  std::string resumed_from;
  bool has_eval = false;
  EvalResult eval;
};

// One pass over `data` with Trainer::evaluate, weighting each batch by its size.
EvalResult evaluate_dataset(Trainer& trainer, const DatasetPtr& data, size_t num_features);

LoopResult run_training(Trainer& trainer, const DatasetPtr& train, const DatasetPtr& validation,
                        const LoopOptions& options, Communicator* comm = nullptr);

}  // namespace tessera::train
