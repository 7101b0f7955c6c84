// Keras 3 optimizers (SGD with momentum/Nesterov, Adam, AdamW, RMSprop) and gradient clipping
// as IR nodes: each update reads the variable and its slots from the ResourceStore and writes
// them back with AssignVariableOp. Per-step scalars (learning rate, Adam's bias-corrected step
// size) are graph args whose values `hyper_values` computes on the host.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "train/step_builder.h"

namespace tessera::train {

void check_optimizer(const OptimizerSpec& o);
// Slot names in creation order: adam/adamw {m, v}; sgd {momentum} when momentum > 0;
// rmsprop {velocity} (+ momentum when momentum > 0).
std::vector<std::string> slot_names(const OptimizerSpec& o);
// Store key of a slot variable.
std::string slot_key(const std::string& var_key, const std::string& slot);
// Names of the scalar args the update reads ("lr", "alpha").
std::vector<std::string> hyper_names(const OptimizerSpec& o);
// Their values for the step after `iterations` optimizer steps, at learning rate `lr`.
std::map<std::string, double> hyper_values(const OptimizerSpec& o, double lr, int64_t iterations);

struct UpdateVar {
  std::string key;
  DType dtype = DType::kFloat32;
  PartialShape shape;
  Value grad;
  std::vector<Node*> after;  // reads the write must follow (the forward's reads of it)
};

// Clips the gradients in place (clipnorm per variable, or global_clipnorm), as Keras does.
void emit_clipping(GraphBuilder& b, const OptimizerSpec& o, std::vector<UpdateVar>& vars);
// Weight decay (adamw, or weight_decay > 0) then the optimizer's update of every variable.
void emit_update(GraphBuilder& b, const OptimizerSpec& o, const std::vector<UpdateVar>& vars,
                 const std::map<std::string, Value>& hypers);

}  // namespace tessera::train
