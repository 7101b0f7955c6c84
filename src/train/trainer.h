// Training a loaded SavedModel: the whole step (forward in training mode, loss, backward,
// optimizer update) built as one IR graph and compiled by the same pass pipeline as inference.
// With replicas (in one process, or across processes through a Communicator) the step splits
// into a gradient program per replica slice, an all-reduce, and an update program.
//
// This header is the contract between the step builder (trainer.cc and friends) and its users
// (`tessera train`, checkpoints, export, benchmarks). See docs/training.md.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/tensor.h"
#include "runtime/model.h"
#include "train/communicator.h"

namespace tessera::train {

// Keras 3 names; defaults are Keras 3's.
struct LossSpec {
  // sparse_categorical_crossentropy | categorical_crossentropy | binary_crossentropy | mse | mae
  std::string name = "sparse_categorical_crossentropy";
  bool from_logits = false;
  std::string output;  // the endpoint output the loss reads; "" = its only output
};

struct OptimizerSpec {
  std::string name = "adam";  // sgd | adam | adamw | rmsprop
  double learning_rate = 1e-3;
  double beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-7;  // adam/adamw (rmsprop: epsilon)
  double weight_decay = 0.0;  // adamw's default is 0.004 (set by the flag parser)
  double momentum = 0.0;      // sgd, rmsprop
  bool nesterov = false;      // sgd
  double rho = 0.9;           // rmsprop
  double clipnorm = 0.0;         // > 0: clip each gradient to this L2 norm
  double global_clipnorm = 0.0;  // > 0: clip all gradients together to this L2 norm
};

struct ScheduleSpec {
  std::string name = "constant";  // constant | exponential | cosine
  int64_t decay_steps = 0;
  double decay_rate = 0.0;   // exponential
  bool staircase = false;    // exponential
  double alpha = 0.0;        // cosine: final fraction of the initial rate
  int64_t warmup_steps = 0;  // linear warmup from 0 to the initial rate, before the schedule
};

struct TrainOptions {
  std::string endpoint;  // training-mode forward signature; "" = discovered (docs/training.md)
  std::string eval_endpoint;  // inference-mode signature for evaluation; "" = discovered
  LossSpec loss;
  OptimizerSpec optimizer;
  ScheduleSpec schedule;
  std::vector<std::string> metrics = {"accuracy"};
  std::string target = "cpu";  // cpu | reference | rdu (rdu: cpu numerics + simulated step time)
  int threads = 0;
  int replicas = 1;            // in-process data parallel replicas (global batch split by index)
  // The global batch most steps use (0: unknown). The one-program step is compiled for it with
  // every shape static, which lets more of the backward fold and fuse; a step of another size
  // (an epoch's partial last batch) compiles its own program on first use.
  int64_t batch = 0;
  bool sync_batch_norm = false;
  uint64_t seed = 0;           // dropout stream
  Communicator* comm = nullptr;  // cross-process all-reduce; nullptr = this process only
};

struct StepResult {
  double loss = 0;                      // mean over the global batch
  std::map<std::string, double> metrics;  // e.g. "accuracy", over the global batch
  int64_t samples = 0;                  // global batch size
  double seconds = 0;                   // wall time of the step (excluding input wait)
};

// Everything a checkpoint holds besides the input position.
struct TrainState {
  std::map<std::string, Tensor> variables;  // every variable by SavedModel bundle key
  // optimizer slots: variable key -> slot name ("m", "v", "momentum", ...) -> value
  std::map<std::string, std::map<std::string, Tensor>> slots;
  int64_t step = 0;           // optimizer iterations done
  uint64_t seed = 0;          // dropout seed
  int64_t samples_seen = 0;   // global sample index of the next step's first sample
};

class Trainer {
 public:
  virtual ~Trainer() = default;
  static std::unique_ptr<Trainer> create(std::shared_ptr<const Model> model, const TrainOptions& options);

  // One step on a global batch: `features` are the endpoint's inputs in signature order
  // (dimension 0 = batch), `labels` the loss target. Replicas (and processes) take
  // contiguous index ranges of the batch. Dropout masks depend only on (seed, variable
  // layer, global sample index), so they do not depend on how the batch is split.
  virtual StepResult step(const std::vector<Tensor>& features, const Tensor& labels) = 0;
  // Loss and metrics of the inference-mode endpoint with the current variables.
  virtual StepResult evaluate(const std::vector<Tensor>& features, const Tensor& labels) = 0;

  virtual TrainState state() const = 0;
  virtual void restore(const TrainState& state) = 0;
  virtual std::vector<std::string> trainable_keys() const = 0;
  virtual double learning_rate() const = 0;  // the rate the next step uses
  virtual int64_t step_count() const = 0;
  // The compiled step graph (for TensorBoard's graph tab and --dump-ir).
  virtual const Graph& step_graph() const = 0;
  // rdu target: the simulated seconds of one step at this batch size (0 on other targets).
  virtual double simulated_step_seconds() const { return 0; }
};

}  // namespace tessera::train
