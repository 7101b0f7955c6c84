// Small shared pieces for op definitions: attribute access, axis handling, common inference.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "ir/op_registry.h"

namespace tessera::ops {

// The op's element type attribute (TF's "T" unless named otherwise).
inline DType type_attr(const Node& node, const std::string& key = "T") {
  return node.attr<DType>(key);
}

// The resource-store key of a VarHandleOp: container/shared_name (the node name when
// shared_name is empty). Two handle nodes with one key are the same variable.
std::string variable_handle_key(const Node& var_handle);

// Normalises a possibly negative axis into [0, rank); errors name the node.
int64_t normalize_axis(const Node& node, int64_t axis, int64_t rank);

// Output 0 has input i's dtype and shape.
void infer_same_as_input(InferContext& c, size_t i = 0);

// Numpy/TF broadcasting of two shapes; "Incompatible shapes: [2] vs. [3]" otherwise (TF's
// wording; callers run inside the node's error context). Unknown (-1) dims defer to the other.
PartialShape broadcast(const PartialShape& a, const PartialShape& b);
Shape broadcast(const Shape& a, const Shape& b);

// Row-major strides of a shape (in elements).
std::vector<int64_t> strides_of(const Shape& shape);

// Input i's compile-time value as integers, if known (e.g. a Reshape target or an axis), from
// shape inference's context or from the node.
std::optional<std::vector<int64_t>> known_ints(const InferContext& c, size_t i);
std::optional<std::vector<int64_t>> known_ints(const Node& node, size_t i);

// OpDef::rowwise rules shared by op families (see RowwiseFn).
// Elementwise with broadcasting: every batched input has the rank of every output (so its dim 0
// lines up with theirs), and every other input either has a lower rank or a dim 0 of 1.
bool rows_elementwise(const Node& node, const std::vector<bool>& batched);
// Input 0 is batched, input 1 (a filter or weight) is not, and any further input is either a
// parameter or batched with the output's rank (a fused residual): convolutions.
bool rows_from_input0(const Node& node, const std::vector<bool>& batched);

}  // namespace tessera::ops
