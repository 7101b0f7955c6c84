// Shared pieces of the array op family (array_ops.cc, shape_ops.cc, slice_ops.cc,
// gather_ops.cc, concat_ops.cc): dtype-independent element movement, integer operand access,
// compile-time evaluation of shape vectors, and the StridedSlice index arithmetic.
#pragma once
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "ops/op_helpers.h"

namespace tessera::ops::array {

// ---------------------------------------------------------------------------------------------
// Data movement without caring what the bytes mean: most array ops only copy elements, so their
// kernels are instantiated per element *size* (7 variants) instead of per dtype (15+).

// A fixed-size element moved as raw bytes. A char array may alias any object type.
template <size_t N>
struct Raw {
  unsigned char b[N];
};

// Calls f.template operator()<E>() with E the storage type of `t`'s elements: Raw<size> for
// fixed-size dtypes, std::string for strings, VariantPtr for resource/variant.
template <typename F>
decltype(auto) with_elem_type(DType t, F&& f) {
  if (t == DType::kString) return f.template operator()<std::string>();
  if (t == DType::kResource || t == DType::kVariant) return f.template operator()<VariantPtr>();
  switch (dtype_size(t)) {
    case 1: return f.template operator()<Raw<1>>();
    case 2: return f.template operator()<Raw<2>>();
    case 4: return f.template operator()<Raw<4>>();
    case 8: return f.template operator()<Raw<8>>();
    case 16: return f.template operator()<Raw<16>>();
    default: fail("unsupported dtype ", dtype_name(t));
  }
}

template <typename E>
const E* elems(const Tensor& t) {
  if constexpr (std::is_same_v<E, std::string>) return t.strings().data();
  else if constexpr (std::is_same_v<E, VariantPtr>) return t.variants().data();
  else return static_cast<const E*>(t.raw());
}
template <typename E>
E* elems(Tensor& t) {
  if constexpr (std::is_same_v<E, std::string>) return t.strings().data();
  else if constexpr (std::is_same_v<E, VariantPtr>) return t.variants().data();
  else return static_cast<E*>(t.mutable_raw());
}

// The general "each output element comes from one input element" kernel. Output element
// (j_0, ..., j_{n-1}) of `out_shape` is src[sum_d offsets[d][j_d]] (offsets in elements), or the
// fill value (`fill`'s single element, else zero/empty) where any offsets[d][j_d] is negative.
// Slicing, transposes, tiling, padding, reversal and broadcasting are all this with different
// per-dimension offset tables.
Tensor gather_offsets(const Tensor& src, const Shape& out_shape,
                      const std::vector<std::vector<int64_t>>& offsets, const Tensor* fill = nullptr);

// Offsets for output dim of size n reading input dim with stride `stride`: (start + j*step)*stride.
std::vector<int64_t> linear_offsets(int64_t n, int64_t start, int64_t step, int64_t stride);

// A copy of `src` with axes permuted (output dim k = input dim perm[k]).
Tensor transpose(const Tensor& src, const std::vector<int64_t>& perm);

// GatherV2's semantics (also for ResourceGather): params[..., indices, ...] along `axis`, the
// first `batch_dims` dims shared; out-of-range indices are errors naming the index.
Tensor gather(const Tensor& params, const Tensor& indices, int64_t axis, int64_t batch_dims);

// Elements [start, start+len) along `axis`, as a new tensor.
Tensor slice_axis(const Tensor& src, int64_t axis, int64_t start, int64_t len);

// ---------------------------------------------------------------------------------------------
// Integer operands.

// Any integer tensor as int64 (one dtype dispatch, not one per element).
std::vector<int64_t> read_ints(const Tensor& t);
// An int32 or int64 tensor holding `values`; int32 overflow is an error.
Tensor make_ints(DType dtype, const std::vector<int64_t>& values, Shape shape);
Tensor make_ints(DType dtype, const std::vector<int64_t>& values);  // 1-D
// A scalar (or single-element) integer operand, with `what` naming it in errors.
int64_t scalar_operand(const Tensor& t, const char* what);

// An attribute holding a list of ints (absent or empty: empty).
std::vector<int64_t> int_list_attr(const Node& node, const std::string& key);

// Product of dims [from, to).
int64_t product(const std::vector<int64_t>& dims, size_t from, size_t to);

// ---------------------------------------------------------------------------------------------
// Compile-time knowledge of integer vectors (shape arithmetic such as
// Pack(StridedSlice(Shape(x), 0), 784)). Each element is a known value, or unknown; an unknown
// element taken from a dimension of some tensor remembers which (so Reshape can cancel it
// against its own input's unknown dimension, as TensorFlow's dimension handles do).
constexpr int64_t kUnknown = std::numeric_limits<int64_t>::min();
struct PartialInt {
  int64_t value = kUnknown;
  Value of{};        // when unknown: the tensor whose dimension this is (node null if none)
  int64_t dim = -1;  // ... and which dimension
  bool known() const { return value != kUnknown; }
};
using PartialInts = std::vector<PartialInt>;

// The flattened elements of `v` as far as they are known, or nullopt if even the element count
// is unknown. Follows Shape/ShapeN, Pack, ConcatV2, StridedSlice, Slice, GatherV2, Identity,
// Cast and known constants.
std::optional<PartialInts> partial_value(const Value& v);
inline std::optional<PartialInts> partial_input(const InferContext& c, size_t i) {
  if (i >= c.node.inputs.size()) return std::nullopt;
  return partial_value(c.node.inputs[i]);
}
// The dims a partially known shape vector denotes (-1 where unknown), or an unknown-rank shape.
PartialShape shape_from_partial(const std::optional<PartialInts>& p);

// If the value of this node's output 0 (an integer type) is fully determined by partially
// known inputs, records it in c.node.known so later shape arithmetic folds.
void set_known_if_determined(InferContext& c);

// ---------------------------------------------------------------------------------------------
// Shapes at inference time.

// Merges two partial dims that must agree; errors when both are known and differ.
int64_t merge_dim(int64_t a, int64_t b, const char* what);
// A known-rank shape of `rank` unknown dims (or unknown rank when rank < 0).
PartialShape unknown_dims(int64_t rank);

// ---------------------------------------------------------------------------------------------
// StridedSlice: TensorFlow's sparse-to-dense slice specification and its per-dim ranges.
struct StridedSliceArgs {
  std::vector<int64_t> begin, end, strides;  // kUnknown allowed in begin/end (inference)
  int64_t begin_mask = 0, end_mask = 0, ellipsis_mask = 0, new_axis_mask = 0, shrink_axis_mask = 0;
};
struct StridedSliceSpec {
  // Per input dim: first index, step and element count (-1 if unknown, inference only).
  std::vector<int64_t> begin, stride, size;
  // The output shape (new axes added, shrunk axes removed); -1 where unknown.
  std::vector<int64_t> final_shape;
};
StridedSliceArgs strided_slice_args(const Node& node);  // masks from attributes
// `input_dims` may contain -1 (unknown); then the corresponding sizes are unknown.
StridedSliceSpec strided_slice_spec(const std::vector<int64_t>& input_dims, const StridedSliceArgs& a);

}  // namespace tessera::ops::array
