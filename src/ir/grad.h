// Reverse-mode gradients: what an op's `OpDef::grad` sees, and small builders that gradient
// definitions share. A gradient function emits ordinary IR nodes (named under
// "gradients/<forward node>/") into the forward graph; it never runs anything. Shapes are read
// at run time with Shape ops, which inference folds to constants when they are static, so one
// gradient graph serves every batch size. The pass that drives this is passes/autodiff.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ir/op_registry.h"

namespace tessera {

// Registers an op with its gradient (OpDef::grad): the op family files call this right beside
// each differentiable op's definition.
void add_with_grad(OpRegistry& r, OpDef def, GradFn grad);
// The op's gradient, or nullptr if it has none.
const GradFn* find_grad(const std::string& op);
// Every op with a gradient (for the coverage test).
std::vector<std::string> ops_with_grad();

struct GradContext {
  Graph& graph;
  Node& node;                                 // the forward node
  std::vector<std::optional<Value>> out_grads;  // d loss / d output i (absent: unused, zero)
  std::vector<bool> wanted;                   // per input: does the loss need its gradient?

  // Forward input / output.
  Value x(size_t i) const { return node.inputs.at(i); }
  Value y(int i = 0) { return node.out(i); }
  bool needs(size_t i) const { return i < wanted.size() && wanted[i]; }
  // d loss / d output i, or zeros shaped like the output when it is unused.
  Value dy(int i = 0);
  bool has_dy(int i) const { return i < static_cast<int>(out_grads.size()) && out_grads[i].has_value(); }

  // Adds a node (its name derived from `op`), infers it, returns the node.
  Node* emit(const std::string& op, std::vector<Value> inputs, AttrMap attrs = {});
  // Output 0 of emit(...).
  Value op(const std::string& op, std::vector<Value> inputs, AttrMap attrs = {}) {
    return emit(op, std::move(inputs), std::move(attrs))->out(0);
  }

  // Elementwise helpers; "T" is taken from the first operand.
  Value unary(const std::string& op, Value a);
  Value binary(const std::string& op, Value a, Value b);
  Value add(Value a, Value b) { return binary("AddV2", a, b); }
  Value sub(Value a, Value b) { return binary("Sub", a, b); }
  Value mul(Value a, Value b) { return binary("Mul", a, b); }
  Value div(Value a, Value b) { return binary("RealDiv", a, b); }
  Value neg(Value a) { return unary("Neg", a); }
  // A scalar constant of `like`'s dtype.
  Value scalar(double v, Value like);
  // Scalar/vector int32 constants.
  Value ints(const std::vector<int32_t>& v);
  Value int_scalar(int32_t v);
  // Shape of `v` as int32 (folded to a constant by inference when static).
  Value shape(Value v, DType out_type = DType::kInt32);
  Value cast(Value v, DType to);
  // 1 where `pred` (bool) holds, else 0, in `like`'s dtype.
  Value mask(Value pred, Value like) { return cast(pred, dtype(like)); }
  Value select(Value pred, Value a, Value b);  // SelectV2 (broadcasting)
  Value zeros_like(Value v) { return unary("ZerosLike", v); }
  Value reshape(Value v, Value shape);
  // Sum of `g` over the axes broadcasting added or stretched to produce it from `like`'s
  // shape, reshaped to that shape (the gradient of a broadcasting operand).
  Value reduce_to(Value g, Value like);
  // Sum over `axes` (int32 vector), optionally keeping reduced dims.
  Value sum(Value v, Value axes, bool keep_dims = false);
  // `g`, the gradient of a reduction of `x` over `axes` (keep_dims=false), brought back to
  // `x`'s rank with the reduced dims as 1.
  Value unreduce(Value g, Value x, Value axes);

  static DType dtype(Value v) { return v.node->outputs.at(v.index).dtype; }
  static const PartialShape& shape_of(Value v) { return v.node->outputs.at(v.index).shape; }
  // Input i's compile-time integer value, if inference knows it.
  std::optional<std::vector<int64_t>> known_ints(size_t i) const;
};

// Whether gradients can flow through values of this dtype (floating point).
bool is_differentiable(DType t);

// The reverse sweep (passes/autodiff and the control-flow gradients use it): `seeds` pairs
// values with their incoming gradients; for each target group, the gradient summed over its
// values, or nullopt if no seed depends on it. Adds nodes to `g`; fails naming the node when
// an op on a path has no gradient.
std::vector<std::optional<Value>> backprop(Graph& g, const std::vector<std::pair<Value, Value>>& seeds,
                                           const std::vector<std::vector<Value>>& targets);

}  // namespace tessera
