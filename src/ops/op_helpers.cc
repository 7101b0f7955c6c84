#include "ops/op_helpers.h"

namespace tessera::ops {

int64_t normalize_axis(const Node& node, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    fail(node.label(), ": axis ", axis, " out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

void infer_same_as_input(InferContext& c, size_t i) {
  const ValueInfo& in = c.input(i);
  c.set_output(0, in.dtype, in.shape);
}

PartialShape broadcast(const PartialShape& a, const PartialShape& b) {
  if (!a.known_rank || !b.known_rank) return PartialShape::unknown();
  size_t rank = std::max(a.dims.size(), b.dims.size());
  std::vector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.dims.size() ? 1 : a.dims[i - (rank - a.dims.size())];
    int64_t db = i < rank - b.dims.size() ? 1 : b.dims[i - (rank - b.dims.size())];
    if (da == 1) out[i] = db;
    else if (db == 1) out[i] = da;
    else if (da < 0) out[i] = db;
    else if (db < 0 || da == db) out[i] = da;
    else fail("Incompatible shapes: ", a.str(), " vs. ", b.str());
  }
  return PartialShape(out);
}

Shape broadcast(const Shape& a, const Shape& b) {
  if (a == b) return a;
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da == db || db == 1) out[i] = da;
    else if (da == 1) out[i] = db;
    else fail("Incompatible shapes: ", shape_str(a), " vs. ", shape_str(b));
  }
  return out;
}

std::vector<int64_t> strides_of(const Shape& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

std::optional<std::vector<int64_t>> known_ints(const InferContext& c, size_t i) { return known_ints(c.node, i); }

std::optional<std::vector<int64_t>> known_ints(const Node& node, size_t i) {
  if (i >= node.inputs.size()) return std::nullopt;
  const Value& v = node.inputs[i];
  if (v.index >= static_cast<int>(v.node->known.size())) return std::nullopt;
  const Tensor& t = v.node->known[v.index];
  if (!t.valid() || !is_integer(t.dtype())) return std::nullopt;
  return t.to_int_vector();
}

namespace {

int64_t input_rank(const Node& node, size_t i) {
  const PartialShape& s = node.inputs[i].node->outputs[node.inputs[i].index].shape;
  return s.known_rank ? s.rank() : -1;
}

// Every output's rank, or -1 when outputs differ or one is unknown.
int64_t output_rank(const Node& node) {
  int64_t rank = -1;
  for (const ValueInfo& o : node.outputs) {
    if (!o.shape.known_rank || (rank >= 0 && o.shape.rank() != rank)) return -1;
    rank = o.shape.rank();
  }
  return rank;
}

}  // namespace

bool rows_elementwise(const Node& node, const std::vector<bool>& batched) {
  const int64_t rank = output_rank(node);
  if (rank < 1) return false;
  bool any = false;
  for (size_t i = 0; i < node.inputs.size() && i < batched.size(); ++i) {
    const int64_t r = input_rank(node, i);
    if (batched[i]) {
      if (r != rank) return false;
      any = true;
      continue;
    }
    const PartialShape& s = node.inputs[i].node->outputs[node.inputs[i].index].shape;
    if (r < 0 || (r == rank && s.dims[0] != 1)) return false;
  }
  return any;
}

bool rows_from_input0(const Node& node, const std::vector<bool>& batched) {
  const int64_t rank = output_rank(node);
  if (rank < 1 || batched.empty() || !batched[0] || (batched.size() > 1 && batched[1])) return false;
  for (size_t i = 2; i < batched.size(); ++i)
    if (batched[i] && input_rank(node, i) != rank) return false;
  return true;
}

}  // namespace tessera::ops
