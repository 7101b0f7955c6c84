// Which SavedModel bundle keys restore which variable. The Trainer keys variables by their
// resource-store key (VarHandleOp container/shared_name, e.g. "/Variable_3"); checkpoints and
// exports need the bundle keys ("variables/0/.ATTRIBUTES/VARIABLE_VALUE"). The importer's
// restore graph says which: RestoreV2's tensor_names[i] is assigned (AssignVariableOp) to the
// handle of one variable. A Keras 3 export restores a variable from several keys.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "ir/module.h"
#include "ir/tensor.h"

namespace tessera::train {

// resource key -> bundle keys (sorted). Empty when the module has no restore graph.
std::map<std::string, std::vector<std::string>> bundle_keys_by_resource(const Module& module);

// Re-keys `by_resource` values by their bundle keys (every key of each variable); resource keys
// with no bundle key are kept as they are, so nothing is silently dropped.
std::map<std::string, Tensor> to_bundle_keys(const std::map<std::string, Tensor>& by_resource,
                                             const std::map<std::string, std::vector<std::string>>& keys);

}  // namespace tessera::train
