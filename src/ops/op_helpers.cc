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

std::optional<std::vector<int64_t>> known_ints(const InferContext& c, size_t i) {
  const Tensor* t = c.input_value(i);
  if (!t || !(is_integer(t->dtype()))) return std::nullopt;
  return t->to_int_vector();
}

}  // namespace tessera::ops
