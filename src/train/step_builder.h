// The step builder: turns a training endpoint (a signature of the loaded module) into the
// function-form graphs the Trainer runs (docs/training.md, "Training step"):
//   kFull:   forward + loss + backward + clipping + optimizer update, one graph (1 replica);
//   kGrad:   forward + loss + backward on one replica's slice; gradients, loss/metric sums and
//            the forward's own variable assignments (BatchNorm moving statistics) as results;
//   kUpdate: clipping + optimizer update from (all-reduced) gradients fed as args;
//   kEval:   forward + loss + metrics, nothing written.
// Per-step scalars (1 / loss element count, learning rate, Adam's bias-corrected step size,
// dropout seed and sample offset) are scalar args the host fills in, so one compiled graph
// serves every step and every batch size.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/module.h"
#include "ir/op_registry.h"
#include "runtime/executable.h"
#include "train/trainer.h"

namespace tessera::train {

// Small helper for emitting float32 arithmetic into a graph (inferred as it goes).
class GraphBuilder {
 public:
  GraphBuilder(Graph& g, std::string prefix) : g_(g), prefix_(std::move(prefix)) {}
  Graph& graph() { return g_; }

  Value scalar(double v, DType t = DType::kFloat32);
  Value i32s(const std::vector<int32_t>& v);  // 1-D int32 const
  // `op` with inputs; "T" is set from input 0's dtype unless given in `attrs`.
  Value op(const std::string& op, std::vector<Value> inputs, AttrMap attrs = {});
  Value add(Value a, Value b) { return op("AddV2", {a, b}); }
  Value sub(Value a, Value b) { return op("Sub", {a, b}); }
  Value mul(Value a, Value b) { return op("Mul", {a, b}); }
  Value div(Value a, Value b) { return op("RealDiv", {a, b}); }
  Value neg(Value a) { return op("Neg", {a}); }
  Value square(Value a) { return op("Square", {a}); }
  Value sqrt(Value a) { return op("Sqrt", {a}); }
  Value log(Value a) { return op("Log", {a}); }
  Value cast(Value a, DType to);
  // Sum / Mean over the given axes (negative = from the end).
  Value reduce(const std::string& op, Value v, std::vector<int32_t> axes, bool keep_dims = false);
  Value sum_all(Value v);  // scalar sum over every axis (rank must be known)
  Value argmax_last(Value v);  // int64 index of the largest element on the last axis
  // A scalar _Arg appended to the graph's args.
  Node* arg(const std::string& name, DType t, PartialShape shape);
  // Handle of the variable with store key `key` (container "/" shared_name).
  Value handle(const std::string& key, DType t, const PartialShape& shape);
  Value read(Value handle, DType t);
  Node* assign(Value handle, Value value, DType t, const std::vector<Node*>& after = {});

 private:
  Graph& g_;
  std::string prefix_;
};

DType dtype_of(const Value& v);
const PartialShape& pshape_of(const Value& v);

enum class StepKind { kFull, kGrad, kUpdate, kEval };

// What each arg of a built graph carries (the host fills args by role, in order).
enum class ArgRole { kFeature, kLabels, kInvCount, kDropoutSeed, kSampleOffset, kHyper, kGrad };
struct ArgSpec {
  ArgRole role;
  std::string name;  // hyper name ("lr", "alpha"), gradient's variable key, feature key
  int index = 0;     // feature index
  DType dtype = DType::kFloat32;
};

struct StepProgram {
  StepKind kind = StepKind::kFull;
  std::shared_ptr<Graph> graph;  // function-form, not yet optimised
  std::vector<ArgSpec> args;
  // Results, in order: "loss_sum", "metric/<name>"..., then for kGrad "grad/<key>"... and
  // "assign/<key>"... (values the forward assigns to non-trainable variables).
  std::vector<std::string> results;
};

// What the step needs besides the graphs: the trainable variables and the slots to create.
struct StepInfo {
  std::string endpoint;                  // signature the forward came from
  std::string output;                    // the endpoint output the loss reads
  std::vector<std::string> trainable;    // store keys, in a fixed (sorted) order
  std::vector<std::string> assigned;     // store keys the forward itself assigns
  std::map<std::string, std::map<std::string, std::string>> slot_keys;  // var key -> slot -> store key
  int64_t loss_elems_per_sample = 1;     // per-sample loss elements (sum_over_batch_size divisor)
  int64_t classes = -1;                  // the output's last dimension when known
  std::vector<std::string> metrics;
  bool has_dropout_args = false;
  // Input: when set, only these store keys may be trainable (the object graph's list).
  std::optional<std::set<std::string>> trainable_filter;
};

// Endpoint discovery (shared conventions): explicit name, else train_forward, else
// tessera_training_forward, else serving_default. `eval` picks serving_default, else serve.
std::string discover_endpoint(const Module& module, const std::string& requested, bool eval);

// SavedModel bundle key of each variable the module restores from its checkpoint, by store
// key (from the restore graph: AssignVariableOp(handle, RestoreV2 output i) <- tensor_names[i]).
std::map<std::string, std::string> bundle_keys(const Module& module);
// Store keys of the variables the SavedModel's object graph lists under the root's
// `trainable_variables` (matched to the variables the graph restores by full name, so alias
// copies count too); nullopt when the model has no such list.
std::optional<std::set<std::string>> object_graph_trainables(const Module& module);
// Store keys of the variables a signature's graph touches (reads or writes).
std::set<std::string> signature_variables(const Module& module, const std::string& signature);

// Builds one program. `variables` holds the current values (shapes of trainables/slots).
// `batch` > 0 fixes the batch dimension of the features and labels (the program then runs only
// at that batch size): with every shape known, the shape arithmetic of broadcasting gradients
// (Shape, BroadcastGradientArgs, Sum over no axes, Reshape to the same shape) folds away and
// the backward's elementwise work fuses like the forward's.
StepProgram build_program(StepKind kind, const Module& module, const std::string& endpoint, const TrainOptions& o,
                          const ResourceStore& variables, StepInfo* info, int64_t batch = -1);

// Runs the default pipeline (cpu target; nothing frozen: every variable may be written by the
// step or a restore) or no passes (reference), and makes the executable.
std::shared_ptr<Executable> compile_program(StepProgram& p, const TrainOptions& o, int threads);
// Another executable of a program compile_program has already optimised: its own kernels,
// caches and memory plans, so it runs at the same time as the first (replicas on threads).
std::shared_ptr<Executable> another_executable(const StepProgram& p, const TrainOptions& o, int threads);

}  // namespace tessera::train
