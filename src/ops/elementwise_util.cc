#include "ops/elementwise_util.h"

#include <algorithm>

namespace tessera::ew {

Broadcast make_broadcast(const std::vector<const Shape*>& shapes) {
  TS_CHECK(!shapes.empty() && shapes.size() <= Broadcast::kMax, "make_broadcast: bad operand count");
  Broadcast p;
  p.num = static_cast<int>(shapes.size());
  p.out_shape = *shapes[0];
  for (size_t k = 1; k < shapes.size(); ++k) p.out_shape = ops::broadcast(p.out_shape, *shapes[k]);
  p.out_count = num_elements(p.out_shape);
  const size_t rank = p.out_shape.size();

  // Contiguous strides of each operand aligned to the output's rank; 0 where it broadcasts.
  std::vector<std::array<int64_t, Broadcast::kMax>> full(rank);
  for (int k = 0; k < p.num; ++k) {
    const Shape& s = *shapes[k];
    int64_t acc = 1;
    for (size_t d = rank; d-- > 0;) {
      int64_t dim = d >= rank - s.size() ? s[d - (rank - s.size())] : 1;
      full[d][k] = dim == 1 ? 0 : acc;
      acc *= dim;
    }
  }
  // Drop size-1 output dims and merge neighbours where every operand is either broadcast in
  // both or contiguous across both.
  for (size_t d = 0; d < rank; ++d) {
    const int64_t n = p.out_shape[d];
    if (n == 1) continue;
    bool merge = !p.dims.empty();
    for (int k = 0; merge && k < p.num; ++k) {
      const int64_t outer = p.strides.back()[k], inner = full[d][k];
      merge = (outer == 0 && inner == 0) || (outer != 0 && inner != 0 && outer == inner * n);
    }
    if (merge) {
      p.dims.back() *= n;
      p.strides.back() = full[d];
    } else {
      p.dims.push_back(n);
      p.strides.push_back(full[d]);
    }
  }
  if (!p.strides.empty()) p.inner = p.strides.back();
  return p;
}

PartialShape merge_partial(const PartialShape& a, const PartialShape& b) {
  if (!a.known_rank) return b;
  if (!b.known_rank) return a;
  if (a.dims.size() != b.dims.size())
    fail("shapes ", a.str(), " and ", b.str(), " must be equal");
  std::vector<int64_t> out(a.dims.size());
  for (size_t i = 0; i < out.size(); ++i) {
    if (a.dims[i] >= 0 && b.dims[i] >= 0 && a.dims[i] != b.dims[i])
      fail("shapes ", a.str(), " and ", b.str(), " must be equal");
    out[i] = a.dims[i] >= 0 ? a.dims[i] : b.dims[i];
  }
  return PartialShape(out);
}

std::vector<int64_t> reduction_axes(const Tensor& axes, int64_t rank) {
  if (axes.dtype() != DType::kInt32 && axes.dtype() != DType::kInt64)
    fail("reduction indices must be int32 or int64, got ", dtype_name(axes.dtype()));
  std::vector<int64_t> out;
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t a : axes.to_int_vector()) {
    if (a < -rank || a >= rank)
      fail("Invalid reduction dimension (", a, " for input with ", rank, " dimension(s)");
    int64_t n = a < 0 ? a + rank : a;
    if (seen[n]) fail("Invalid reduction arguments: Axes contains duplicate dimension: ", n);
    seen[n] = true;
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

int64_t scalar_axis(const Tensor& axis, int64_t rank, const char* what) {
  if (!is_integer(axis.dtype())) fail(what, ": axis must be an integer, got ", dtype_name(axis.dtype()));
  if (axis.rank() != 0) fail(what, ": axis must be a scalar, not ", shape_str(axis.shape()));
  int64_t a = axis.scalar_int();
  if (a < -rank || a >= rank)
    fail(what, ": Expected axis in the range [", -rank, ", ", rank, "), but got ", a);
  return a < 0 ? a + rank : a;
}

}  // namespace tessera::ew
