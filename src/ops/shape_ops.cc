// Shape queries and shape-only rewrites: Shape, ShapeN, Size, Rank, Reshape, ExpandDims,
// Squeeze, Fill, Empty, Range, LinSpace, BroadcastArgs, BroadcastGradientArgs,
// InvertPermutation, Bitcast.
#include <algorithm>
#include <cmath>

#include "ir/grad.h"
#include "ops/array_families.h"
#include "ops/array_util.h"

namespace tessera {
namespace {

using namespace ops::array;
using ops::infer_same_as_input;

const std::vector<int64_t> kScalar{};

DType out_type(const Node& node, const char* key = "out_type") {
  return node.attr_or<DType>(key, DType::kInt32);
}

// Sets node.known[i] to `values` when they fit the output type (an int32 overflow is left to
// the kernel, which reports it).
void set_known(InferContext& c, size_t i, DType t, const std::vector<int64_t>& values, Shape shape) {
  try {
    Tensor v = make_ints(t, values, std::move(shape));
    c.node.known.resize(c.node.outputs.size());
    c.node.known[i] = v;
  } catch (const Error&) {
  }
}

// ---------------------------------------------------------------------------------------------
// Shape, ShapeN, Size, Rank: fold to constants when the input's static shape settles them.

void infer_shape_n(InferContext& c) {
  DType t = out_type(c.node);
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    const PartialShape& s = c.input(i).shape;
    c.set_output(i, t, PartialShape({s.rank()}));
  }
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    const PartialShape& s = c.input(i).shape;
    if (s.fully_known()) set_known(c, i, t, s.dims, {s.rank()});
  }
}

void shape_n_kernel(KernelContext& c) {
  DType t = out_type(c.node);
  for (size_t i = 0; i < c.num_inputs(); ++i) c.set_output(i, make_ints(t, c.input(i).shape()));
}

void infer_size(InferContext& c) {
  DType t = out_type(c.node);
  c.set_output(0, t, PartialShape(kScalar));
  const PartialShape& s = c.input(0).shape;
  if (s.fully_known()) set_known(c, 0, t, {num_elements(s.dims)}, {});
}

void infer_rank(InferContext& c) {
  c.set_output(0, DType::kInt32, PartialShape(kScalar));
  const PartialShape& s = c.input(0).shape;
  if (s.known_rank) set_known(c, 0, DType::kInt32, {s.rank()}, {});  // the rank alone decides it
}

// ---------------------------------------------------------------------------------------------
// Reshape.

// Validates a Reshape target and finds the -1 entry (or -1 if none).
int64_t reshape_unknown_index(const std::vector<int64_t>& sizes) {
  int64_t unknown = -1;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == -1) {
      if (unknown != -1) fail("Only one input size may be -1, not both ", unknown, " and ", d);
      unknown = static_cast<int64_t>(d);
    } else if (sizes[d] < -1) {
      fail("Size ", d, " must be non-negative, not ", sizes[d]);
    }
  }
  return unknown;
}

// The output shape of reshaping `in` to `sizes` (TensorFlow's rules, including 0-sized dims:
// zeros are left out of the product so the -1 entry can still be inferred).
Shape reshape_target(const Shape& in, std::vector<int64_t> sizes) {
  const int64_t unknown = reshape_unknown_index(sizes);
  const int64_t in_count = num_elements(in);
  bool sizes_have_zero = false;
  int64_t product = 1;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (static_cast<int64_t>(d) == unknown) continue;
    if (sizes[d] == 0) sizes_have_zero = true;
    else if (sizes[d] > 0) {
      if (product > INT64_MAX / sizes[d]) fail("Reshape: requested shape has too many elements");
      product *= sizes[d];
    }
  }
  if (unknown >= 0) {
    int64_t count = 1;
    for (int64_t d : in)
      if (d > 0 || !sizes_have_zero) count *= d;
    const int64_t missing = count / product;
    if (product * missing != count)
      fail("Input to reshape is a tensor with ", in_count,
           " values, but the requested shape requires a multiple of ", product);
    sizes[unknown] = missing;
  }
  const int64_t out_count = num_elements(sizes);
  if (out_count != in_count)
    fail("Input to reshape is a tensor with ", in_count, " values, but the requested shape has ", out_count);
  return sizes;
}

void infer_reshape(InferContext& c) {
  const ValueInfo& in = c.input(0);
  std::optional<PartialInts> target = partial_input(c, 1);
  if (!target) {
    c.set_output(0, in.dtype, PartialShape::unknown());
    return;
  }
  std::vector<int64_t> sizes;
  bool all_known = true;
  for (const PartialInt& e : *target) {
    sizes.push_back(e.known() ? e.value : -2);  // -2 marks "not known at compile time"
    all_known &= e.known();
  }
  std::vector<int64_t> checkable;  // the known entries, for the -1/negative checks
  for (int64_t s : sizes) checkable.push_back(s == -2 ? 0 : s);
  const int64_t unknown = reshape_unknown_index(checkable);
  if (all_known && in.shape.fully_known()) {
    c.set_output(0, in.dtype, PartialShape(reshape_target(in.shape.dims, sizes)));
    return;
  }
  std::vector<int64_t> dims(sizes.size());
  for (size_t d = 0; d < sizes.size(); ++d) dims[d] = sizes[d] < 0 ? -1 : sizes[d];
  if (unknown >= 0 && in.shape.known_rank) {
    // The -1 entry is still computable if every unknown input dim reappears in the target as
    // that same dimension (e.g. reshape(x, [shape(x)[0], -1])) and the rest is known.
    std::vector<bool> matched(in.shape.dims.size(), false);
    int64_t in_known = 1, out_known = 1;
    bool ok = true;
    for (size_t d = 0; d < sizes.size() && ok; ++d) {
      if (static_cast<int64_t>(d) == unknown) continue;
      const PartialInt& e = (*target)[d];
      if (e.known()) {
        ok = e.value > 0;
        out_known *= std::max<int64_t>(e.value, 1);
      } else if (e.of == c.node.inputs[0] && e.dim >= 0 && e.dim < in.shape.rank() &&
                 in.shape.dims[e.dim] < 0 && !matched[e.dim]) {
        matched[e.dim] = true;
      } else {
        ok = false;
      }
    }
    for (size_t d = 0; d < in.shape.dims.size() && ok; ++d) {
      if (in.shape.dims[d] >= 0) in_known *= in.shape.dims[d];
      else ok = matched[d];
    }
    if (ok && in_known > 0 && in_known % out_known == 0) dims[unknown] = in_known / out_known;
  }
  c.set_output(0, in.dtype, PartialShape(dims));
}

void reshape_kernel(KernelContext& c) {
  const Tensor& shape = c.input(1);
  if (shape.rank() > 1) fail("sizes input must be 1-D, not ", shape_str(shape.shape()));
  c.set_output(0, c.input(0).reshaped(reshape_target(c.input(0).shape(), read_ints(shape))));
}

// ---------------------------------------------------------------------------------------------
// ExpandDims, Squeeze.

int64_t expand_axis(int64_t dim, int64_t rank) {
  if (dim < -1 - rank || dim > rank)
    fail("Tried to expand dim index ", dim, " for tensor with ", rank, " dimensions.");
  return dim < 0 ? dim + rank + 1 : dim;
}

void infer_expand_dims(InferContext& c) {
  const ValueInfo& in = c.input(0);
  auto dim = ops::known_ints(c, 1);
  if (!in.shape.known_rank) {
    c.set_output(0, in.dtype, PartialShape::unknown());
    return;
  }
  if (!dim) {
    c.set_output(0, in.dtype, unknown_dims(in.shape.rank() + 1));
    return;
  }
  if (dim->size() != 1) fail("'dim' must be a tensor with a single value");
  std::vector<int64_t> dims = in.shape.dims;
  dims.insert(dims.begin() + expand_axis((*dim)[0], in.shape.rank()), 1);
  c.set_output(0, in.dtype, PartialShape(dims));
}

void expand_dims_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> dim = read_ints(c.input(1));
  if (dim.size() != 1) fail("'dim' must be a tensor with a single value");
  Shape shape = x.shape();
  shape.insert(shape.begin() + expand_axis(dim[0], x.rank()), 1);
  c.set_output(0, x.reshaped(shape));
}

// Which dims Squeeze removes from a shape whose dims may be unknown (-1). Returns nullopt when
// that cannot be decided at compile time (no squeeze_dims and an unknown dim).
std::optional<std::vector<bool>> squeezed(const std::vector<int64_t>& dims, const std::vector<int64_t>& axes) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  std::vector<bool> drop(dims.size(), false);
  if (axes.empty()) {
    for (size_t d = 0; d < dims.size(); ++d) {
      if (dims[d] < 0) return std::nullopt;
      drop[d] = dims[d] == 1;
    }
    return drop;
  }
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      fail("Tried to squeeze dim index ", a, " for tensor with ", rank, " dimensions.");
    int64_t d = a < 0 ? a + rank : a;
    if (dims[d] >= 0 && dims[d] != 1)
      fail("Can not squeeze dim[", d, "], expected a dimension of 1, got ", dims[d]);
    drop[d] = true;
  }
  return drop;
}

void infer_squeeze(InferContext& c) {
  const ValueInfo& in = c.input(0);
  if (!in.shape.known_rank) {
    c.set_output(0, in.dtype, PartialShape::unknown());
    return;
  }
  auto drop = squeezed(in.shape.dims, int_list_attr(c.node, "squeeze_dims"));
  if (!drop) {
    c.set_output(0, in.dtype, PartialShape::unknown());
    return;
  }
  std::vector<int64_t> dims;
  for (size_t d = 0; d < drop->size(); ++d)
    if (!(*drop)[d]) dims.push_back(in.shape.dims[d]);
  c.set_output(0, in.dtype, PartialShape(dims));
}

void squeeze_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  auto drop = squeezed(x.shape(), int_list_attr(c.node, "squeeze_dims"));
  Shape shape;
  for (size_t d = 0; d < drop->size(); ++d)
    if (!(*drop)[d]) shape.push_back(x.dim(d));
  c.set_output(0, x.reshaped(shape));
}

// ---------------------------------------------------------------------------------------------
// Fill, Empty.

Shape checked_dims(const Tensor& dims, const char* what) {
  if (dims.rank() != 1) fail(what, " must be a vector, got shape ", shape_str(dims.shape()));
  Shape shape = read_ints(dims);
  for (int64_t d : shape)
    if (d < 0) fail(what, " must not contain negative values, got ", shape_str(shape));
  return shape;
}

// A tensor of `shape` with every element `value` (a one-element tensor).
Tensor filled(const Tensor& value, const Shape& shape) {
  std::vector<std::vector<int64_t>> zeros;
  for (int64_t d : shape) zeros.emplace_back(static_cast<size_t>(d), 0);
  return gather_offsets(value, shape, zeros);
}

void infer_fill(InferContext& c) {
  const ValueInfo& value = c.input(1);
  if (value.shape.known_rank && value.shape.rank() != 0)
    fail("value must be a scalar, got shape ", value.shape.str());
  c.set_output(0, value.dtype, shape_from_partial(partial_input(c, 0)));
}

void fill_kernel(KernelContext& c) {
  const Tensor& value = c.input(1);
  if (value.rank() != 0) fail("value must be a scalar, got shape ", shape_str(value.shape()));
  c.set_output(0, filled(value, checked_dims(c.input(0), "dims")));
}

// ---------------------------------------------------------------------------------------------
// Range, LinSpace. Arithmetic happens in T (16-bit floats round after each operation, as TF's
// Eigen half arithmetic does), so results match TF bit for bit.

template <typename T>
using Calc = std::conditional_t<std::is_same_v<T, double>, double,
                                std::conditional_t<std::is_integral_v<T>, T, float>>;

template <typename T>
T t_sub(T a, T b) { return static_cast<T>(static_cast<Calc<T>>(a) - static_cast<Calc<T>>(b)); }
template <typename T>
T t_add(T a, T b) { return static_cast<T>(static_cast<Calc<T>>(a) + static_cast<Calc<T>>(b)); }
template <typename T>
T t_mul(T a, T b) { return static_cast<T>(static_cast<Calc<T>>(a) * static_cast<Calc<T>>(b)); }
template <typename T>
T t_div(T a, T b) { return static_cast<T>(static_cast<Calc<T>>(a) / static_cast<Calc<T>>(b)); }

using RangeTypes = Types<float, double, float16, bfloat16, int8_t, int16_t, int32_t, int64_t,
                         uint16_t, uint32_t, uint64_t>;

Tensor range_tensor(const Tensor& start_t, const Tensor& limit_t, const Tensor& delta_t) {
  for (const Tensor* t : {&start_t, &limit_t, &delta_t})
    if (t->rank() != 0) fail("start, limit and delta must be scalars, got shape ", shape_str(t->shape()));
  return dispatch(RangeTypes{}, start_t.dtype(), "Range", [&]<typename T>() {
    const T start = start_t.data<T>()[0], limit = limit_t.data<T>()[0], delta = delta_t.data<T>()[0];
    const double s = static_cast<double>(start), l = static_cast<double>(limit), d = static_cast<double>(delta);
    if (d == 0) fail("Requires delta != 0: ", d);
    if (d > 0 && s > l) fail("Requires start <= limit when delta > 0: ", s, "/", l);
    if (d < 0 && s < l) fail("Requires start >= limit when delta < 0: ", s, "/", l);
    int64_t size;
    if constexpr (std::is_integral_v<T>) {
      // Magnitudes in uint64 so unsigned and extreme int64 ranges do not overflow.
      auto mag = [](T a, T b) { return a > b ? static_cast<uint64_t>(a) - static_cast<uint64_t>(b)
                                             : static_cast<uint64_t>(b) - static_cast<uint64_t>(a); };
      uint64_t span = mag(limit, start), step = mag(delta, T(0));
      uint64_t n = span / step + (span % step != 0 ? 1 : 0);
      if (n > static_cast<uint64_t>(INT64_MAX)) fail("Requires ((limit - start) / delta) <= ", INT64_MAX);
      size = static_cast<int64_t>(n);
    } else {
      double n = std::ceil(std::abs(static_cast<double>(t_div(t_sub(limit, start), delta))));
      if (!(n <= 9.2e18)) fail("Requires ((limit - start) / delta) <= ", INT64_MAX);
      size = static_cast<int64_t>(n);
    }
    Tensor out(dtype_of<T>, {size});
    T* o = out.data<T>();
    for (int64_t i = 0; i < size; ++i) {
      if constexpr (std::is_integral_v<T>)
        o[i] = static_cast<T>(static_cast<uint64_t>(start) + static_cast<uint64_t>(i) * static_cast<uint64_t>(delta));
      else
        o[i] = t_add(start, t_mul(static_cast<T>(static_cast<Calc<T>>(i)), delta));
    }
    return out;
  });
}

void infer_range(InferContext& c) {
  DType t = c.input(0).dtype;
  const Tensor *s = c.input_value(0), *l = c.input_value(1), *d = c.input_value(2);
  if (s && l && d) {
    c.set_output(0, t, PartialShape({range_tensor(*s, *l, *d).num_elements()}));
    return;
  }
  c.set_output(0, t, PartialShape({-1}));
}

void infer_linspace(InferContext& c) {
  auto num = ops::known_ints(c, 2);
  c.set_output(0, c.input(0).dtype, PartialShape({num && num->size() == 1 ? (*num)[0] : -1}));
}

void linspace_kernel(KernelContext& c) {
  const Tensor &start_t = c.input(0), &stop_t = c.input(1);
  if (start_t.rank() != 0) fail("start must be a scalar, not shape ", shape_str(start_t.shape()));
  if (stop_t.rank() != 0) fail("stop must be a scalar, not shape ", shape_str(stop_t.shape()));
  if (c.input(2).rank() != 0) fail("num must be a scalar, not shape ", shape_str(c.input(2).shape()));
  const int64_t num = read_ints(c.input(2))[0];
  if (num <= 0) fail("Requires num > 0: ", num);
  Tensor out(start_t.dtype(), {num});
  dispatch(FloatTypes{}, start_t.dtype(), "LinSpace", [&]<typename T>() {
    const T start = start_t.data<T>()[0], stop = stop_t.data<T>()[0];
    T* o = out.data<T>();
    if (num == 1) {
      o[0] = start;
      return;
    }
    const T step = t_div(t_sub(stop, start), static_cast<T>(static_cast<Calc<T>>(num - 1)));
    for (int64_t i = 0; i < num - 1; ++i)
      o[i] = t_add(start, t_mul(step, static_cast<T>(static_cast<Calc<T>>(i))));
    o[num - 1] = stop;
  });
  c.set_output(0, out);
}

// ---------------------------------------------------------------------------------------------
// BroadcastArgs, BroadcastGradientArgs.

std::vector<int64_t> vector_operand(const Tensor& t, const char* what) {
  if (t.rank() != 1) fail(what, " must be a vector, got shape ", shape_str(t.shape()));
  return read_ints(t);
}

void broadcast_args_kernel(KernelContext& c) {
  Shape a = vector_operand(c.input(0), "s0"), b = vector_operand(c.input(1), "s1");
  c.set_output(0, make_ints(c.input(0).dtype(), ops::broadcast(a, b)));
}

void infer_broadcast_args(InferContext& c) {
  const PartialShape &a = c.input(0).shape, &b = c.input(1).shape;
  int64_t n = -1;
  if (a.fully_known() && b.fully_known() && a.rank() == 1 && b.rank() == 1)
    n = std::max(a.dims[0], b.dims[0]);
  c.set_output(0, c.input(0).dtype, PartialShape({n}));
}

// For each operand, the output dims its gradient must be summed over: where it is (or is
// extended with) 1 and the other operand is not, and where both are 1 (unless the shapes are
// identical: then nothing).
void broadcast_gradient_args_kernel(KernelContext& c) {
  Shape a = vector_operand(c.input(0), "s0"), b = vector_operand(c.input(1), "s1");
  size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> ra, rb;
  for (size_t i = 0; i < rank && a != b; ++i) {  // identical shapes need no reduction at all
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    const int64_t axis = static_cast<int64_t>(i);
    if (da == db) {
      if (da == 1) {
        ra.push_back(axis);
        rb.push_back(axis);
      }
    } else if (da == 1) {
      ra.push_back(axis);
    } else if (db == 1) {
      rb.push_back(axis);
    } else {
      fail("Incompatible shapes: ", shape_str(a), " vs. ", shape_str(b));
    }
  }
  DType t = c.input(0).dtype();
  c.set_output(0, make_ints(t, ra));
  c.set_output(1, make_ints(t, rb));
}

// ---------------------------------------------------------------------------------------------
// InvertPermutation, Bitcast.

void invert_permutation_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> p = vector_operand(x, "x");
  const int64_t n = static_cast<int64_t>(p.size());
  std::vector<int64_t> inv(p.size(), -1);
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] < 0 || p[i] >= n) fail(p[i], " is not between 0 and ", n);
    if (inv[p[i]] != -1) fail(p[i], " is duplicated in the input.");
    inv[p[i]] = i;
  }
  c.set_output(0, make_ints(x.dtype(), inv));
}

// The Bitcast output shape: an extra last dim when narrowing, one less when widening.
PartialShape bitcast_shape(const PartialShape& in, DType from, DType to) {
  const int64_t a = static_cast<int64_t>(dtype_size(from)), b = static_cast<int64_t>(dtype_size(to));
  if (a == 0 || b == 0) fail("Bitcast needs fixed-size types, not ", dtype_name(from), " to ", dtype_name(to));
  if (a == b || !in.known_rank) return in;
  std::vector<int64_t> dims = in.dims;
  if (a > b) {
    if (a % b) fail("Cannot bitcast from ", dtype_name(from), " to ", dtype_name(to));
    dims.push_back(a / b);
  } else {
    if (dims.empty() || (dims.back() >= 0 && dims.back() != b / a) || b % a)
      fail("Cannot bitcast from ", dtype_name(from), " to ", dtype_name(to), ": shape ", in.str(),
           " must end in a dimension of ", b / a);
    dims.pop_back();
  }
  return PartialShape(dims);
}

void infer_bitcast(InferContext& c) {
  DType to = c.attr<DType>("type");
  c.set_output(0, to, bitcast_shape(c.input(0).shape, c.input(0).dtype, to));
}

void bitcast_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  DType to = c.attr<DType>("type");
  if (!is_pod(x.dtype())) fail("Bitcast of ", dtype_name(x.dtype()), " is not supported");
  Tensor out(to, bitcast_shape(PartialShape(x.shape()), x.dtype(), to).dims);
  std::memcpy(out.mutable_raw(), x.raw(), x.nbytes());
  c.set_output(0, out);
}

}  // namespace

// Gradient of ops that only change the shape: reshape the gradient back.
GradList grad_reshape_back(GradContext& c) {
  GradList out(c.node.inputs.size());
  out[0] = c.reshape(c.dy(), c.shape(c.x(0)));
  return out;
}

// OpDef::rowwise of Reshape: a known target [-1, d1, ...] that regroups each row's known
// elements, so row r stays row r.
static bool reshape_rows(const Node& node, const std::vector<bool>& batched) {
  if (batched.size() != 2 || !batched[0] || batched[1]) return false;
  const PartialShape& in = node.inputs[0].node->outputs[node.inputs[0].index].shape;
  std::optional<std::vector<int64_t>> to = ops::known_ints(node, 1);
  if (!in.known_rank || in.rank() < 1 || !to || to->empty() || (*to)[0] != -1) return false;
  int64_t row_in = 1, row_out = 1;
  for (int64_t i = 1; i < in.rank(); ++i) {
    if (in.dims[i] < 0) return false;
    row_in *= in.dims[i];
  }
  for (size_t i = 1; i < to->size(); ++i) {
    if ((*to)[i] < 0) return false;
    row_out *= (*to)[i];
  }
  return row_in == row_out;
}

void register_shape_ops(OpRegistry& r) {
  const AttrMap out_int32 = {{"out_type", DType::kInt32}};
  r.add({.name = "Shape", .attr_defaults = out_int32,
         .infer = [](InferContext& c) {
           infer_shape_n(c);
         },
         .compute = [](KernelContext& c) { c.set_output(0, make_ints(out_type(c.node), c.input(0).shape())); }});
  r.add({.name = "ShapeN", .attr_defaults = out_int32, .output_args = {{"output", "N", ""}},
         .infer = infer_shape_n, .compute = shape_n_kernel});
  r.add({.name = "Size", .attr_defaults = out_int32, .infer = infer_size,
         .compute = [](KernelContext& c) {
           c.set_output(0, make_ints(out_type(c.node), {c.input(0).num_elements()}, {}));
         }});
  r.add({.name = "Rank", .infer = infer_rank, .compute = [](KernelContext& c) {
           c.set_output(0, make_ints(DType::kInt32, {c.input(0).rank()}, {}));
         }});
  add_with_grad(r, {.name = "Reshape", .attr_defaults = {{"Tshape", DType::kInt32}}, .infer = infer_reshape,
         .compute = reshape_kernel, .rowwise = reshape_rows}, grad_reshape_back);
  add_with_grad(r, {.name = "ExpandDims", .attr_defaults = {{"Tdim", DType::kInt32}}, .infer = infer_expand_dims,
         .compute = expand_dims_kernel}, grad_reshape_back);
  add_with_grad(r, {.name = "Squeeze", .attr_defaults = {{"squeeze_dims", std::vector<int64_t>{}}},
         .infer = infer_squeeze, .compute = squeeze_kernel}, grad_reshape_back);
  r.add({.name = "Fill", .attr_defaults = {{"index_type", DType::kInt32}}, .infer = infer_fill,
         .compute = fill_kernel});
  r.add({.name = "Empty", .attr_defaults = {{"init", false}}, .stateful = true,  // as in TF: never folded
         .infer = [](InferContext& c) {
           c.set_output(0, c.attr<DType>("dtype"), shape_from_partial(partial_input(c, 0)));
         },
         .compute = [](KernelContext& c) {
           // Contents are unspecified unless init; zeros satisfy both.
           c.set_output(0, Tensor(c.attr<DType>("dtype"), checked_dims(c.input(0), "shape")));
         }});
  r.add({.name = "Range", .attr_defaults = {{"Tidx", DType::kInt32}}, .infer = infer_range,
         .compute = [](KernelContext& c) {
           c.set_output(0, range_tensor(c.input(0), c.input(1), c.input(2)));
         }});
  r.add({.name = "LinSpace", .attr_defaults = {{"Tidx", DType::kInt32}}, .infer = infer_linspace,
         .compute = linspace_kernel});
  r.add({.name = "BroadcastArgs", .attr_defaults = {{"T", DType::kInt32}}, .infer = infer_broadcast_args,
         .compute = broadcast_args_kernel});
  r.add({.name = "BroadcastGradientArgs", .attr_defaults = {{"T", DType::kInt32}},
         .output_args = {{"r0", "", ""}, {"r1", "", ""}},
         .infer = [](InferContext& c) {
           c.set_output(0, c.input(0).dtype, PartialShape({-1}));
           c.set_output(1, c.input(0).dtype, PartialShape({-1}));
         },
         .compute = broadcast_gradient_args_kernel});
  r.add({.name = "InvertPermutation", .attr_defaults = {{"T", DType::kInt32}},
         .infer = [](InferContext& c) { infer_same_as_input(c); }, .compute = invert_permutation_kernel});
  r.add({.name = "Bitcast", .infer = infer_bitcast, .compute = bitcast_kernel});
}

}  // namespace tessera
