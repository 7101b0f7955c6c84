// Shared by the zoo gradient tests: a model's serving signature turned into a gradient graph.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "passes/autodiff.h"
#include "passes/pass_util.h"
#include "passes/signature_graph.h"
#include "runtime/model.h"

namespace tessera::testing {

// The serving signature with loss = sum of every output appended, differentiated with
// respect to every variable the loss reads; the results are the outputs, then the gradients
// (`*num_grads` of them).
inline std::shared_ptr<Graph> sum_loss_gradient_graph(const Model& model, size_t* num_grads) {
  auto g = signature_graph(model.module(), model.signature("serving_default"));
  std::vector<Value> parts;
  for (const Value& out : g->results) {
    const ValueInfo& info = out.node->outputs.at(out.index);
    std::vector<int32_t> axes;
    for (int32_t i = 0; i < info.shape.rank(); ++i) axes.push_back(i);
    Node* ax = passes::add_const(*g, "loss/axes", Tensor::from_vector<int32_t>(axes, {info.shape.rank()}));
    parts.push_back(passes::add_node(*g, "loss/sum", "Sum", {out, ax->out()}, {{"T", info.dtype}})->out());
  }
  Value loss = parts.size() == 1 ? parts[0]
                                 : passes::add_node(*g, "loss/total", "AddN", parts,
                                                    {{"T", DType::kFloat32}, {"N", static_cast<int64_t>(parts.size())}})
                                       ->out();
  auto targets = passes::variable_targets(*g, loss);
  *num_grads = targets.size();
  passes::differentiate(*g, loss, targets);
  return g;
}

}  // namespace tessera::testing
