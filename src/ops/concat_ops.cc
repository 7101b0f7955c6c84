// Joining and splitting along an axis: Concat, ConcatV2, Pack, Unpack, Split, SplitV.
#include <algorithm>

#include "ir/grad.h"
#include "ops/array_families.h"
#include "ops/array_util.h"

namespace tessera {
namespace {

using namespace ops::array;

// Interleaves inputs: for each of `outer` rows, input i contributes `inner[i]` elements.
Tensor join_rows(const std::vector<const Tensor*>& inputs, const std::vector<int64_t>& inner, int64_t outer,
                 const Shape& out_shape) {
  Tensor out(inputs[0]->dtype(), out_shape);
  if (out.num_elements() == 0) return out;
  with_elem_type(out.dtype(), [&]<typename E>() {
    E* dst = elems<E>(out);
    for (int64_t o = 0; o < outer; ++o)
      for (size_t i = 0; i < inputs.size(); ++i) {
        const E* src = elems<E>(*inputs[i]) + o * inner[i];
        dst = std::copy(src, src + inner[i], dst);
      }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Concat, ConcatV2.

struct ConcatLayout {
  size_t first, count, axis_input;
};
ConcatLayout concat_layout(const Node& node) {
  const size_t n = node.inputs.size();
  if (n < 2) fail("Concat needs an axis and at least one value");
  if (node.op == "Concat") return {1, n - 1, 0};
  return {0, n - 1, n - 1};
}

int64_t concat_axis(int64_t axis, int64_t rank) {
  if (rank == 0) fail("Can't concatenate scalars (use tf.stack instead)");
  if (axis < -rank || axis >= rank)
    fail("ConcatOp : Expected concatenating dimensions in the range [", -rank, ", ", rank, "), but got ", axis);
  return axis < 0 ? axis + rank : axis;
}

void infer_concat(InferContext& c) {
  const ConcatLayout l = concat_layout(c.node);
  const DType dtype = c.input(l.first).dtype;
  int64_t rank = -1;
  for (size_t i = l.first; i < l.first + l.count; ++i) {
    const int64_t r = c.input(i).shape.rank();
    if (r < 0) continue;
    if (rank >= 0 && r != rank) fail("Shape must be rank ", rank, " but is rank ", r, " for input ", i);
    rank = r;
  }
  auto axis = ops::known_ints(c, l.axis_input);
  if (rank < 0 || !axis || axis->size() != 1) {
    if (rank == 0) fail("Can't concatenate scalars (use tf.stack instead)");
    c.set_output(0, dtype, unknown_dims(rank));
    return;
  }
  const int64_t a = concat_axis((*axis)[0], rank);
  std::vector<int64_t> dims(rank, -1);
  dims[a] = 0;
  for (size_t i = l.first; i < l.first + l.count; ++i) {
    const PartialShape& s = c.input(i).shape;
    if (!s.known_rank) {
      dims[a] = -1;
      continue;
    }
    for (int64_t d = 0; d < rank; ++d) {
      if (d == a) dims[a] = dims[a] < 0 || s.dims[d] < 0 ? -1 : dims[a] + s.dims[d];
      else dims[d] = merge_dim(dims[d], s.dims[d], "ConcatOp: dimensions of inputs should match");
    }
  }
  c.set_output(0, dtype, PartialShape(dims));
  set_known_if_determined(c);
}

void concat_kernel(KernelContext& c) {
  const ConcatLayout l = concat_layout(c.node);
  const Tensor& first = c.input(l.first);
  const int64_t axis = concat_axis(scalar_operand(c.input(l.axis_input), "axis"), first.rank());
  std::vector<const Tensor*> inputs;
  std::vector<int64_t> inner;
  Shape out_shape = first.shape();
  out_shape[axis] = 0;
  for (size_t i = l.first; i < l.first + l.count; ++i) {
    const Tensor& t = c.input(i);
    bool ok = t.rank() == first.rank() && t.dtype() == first.dtype();
    for (int64_t d = 0; ok && d < t.rank(); ++d) ok = d == axis || t.dim(d) == first.dim(d);
    if (!ok)
      fail("ConcatOp : Dimension ", axis, " is the concat axis; other dimensions must match: shape[0] = ",
           shape_str(first.shape()), " vs. shape[", i - l.first, "] = ", shape_str(t.shape()));
    out_shape[axis] += t.dim(axis);
    inputs.push_back(&t);
    inner.push_back(product(t.shape(), axis, t.shape().size()));
  }
  c.set_output(0, join_rows(inputs, inner, product(first.shape(), 0, axis), out_shape));
}

// ---------------------------------------------------------------------------------------------
// Pack, Unpack.

int64_t pack_axis(const Node& node, int64_t rank) {  // rank of the packed output
  int64_t axis = node.attr_or<int64_t>("axis", 0);
  if (axis < -rank || axis >= rank)
    fail("axis = ", axis, " not in [", -rank, ", ", rank, ")");
  return axis < 0 ? axis + rank : axis;
}

void infer_pack(InferContext& c) {
  PartialShape merged = PartialShape::unknown();
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    const PartialShape& s = c.input(i).shape;
    if (!s.known_rank) continue;
    if (!merged.known_rank) {
      merged = s;
      continue;
    }
    if (s.rank() != merged.rank())
      fail("Shapes of all inputs must match: values[0].shape = ", merged.str(), " != values[", i, "].shape = ", s.str());
    for (size_t d = 0; d < s.dims.size(); ++d)
      merged.dims[d] = merge_dim(merged.dims[d], s.dims[d], "Pack: shapes of all inputs must match");
  }
  const DType dtype = c.input(0).dtype;
  if (!merged.known_rank) {
    c.set_output(0, dtype, PartialShape::unknown());
    return;
  }
  const int64_t axis = pack_axis(c.node, merged.rank() + 1);
  merged.dims.insert(merged.dims.begin() + axis, static_cast<int64_t>(c.num_inputs()));
  c.set_output(0, dtype, merged);
  set_known_if_determined(c);
}

void pack_kernel(KernelContext& c) {
  const Tensor& first = c.input(0);
  const int64_t axis = pack_axis(c.node, first.rank() + 1);
  std::vector<const Tensor*> inputs;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    if (c.input(i).shape() != first.shape())
      fail("Shapes of all inputs must match: values[0].shape = ", shape_str(first.shape()), " != values[", i,
           "].shape = ", shape_str(c.input(i).shape()));
    inputs.push_back(&c.input(i));
  }
  Shape out_shape = first.shape();
  out_shape.insert(out_shape.begin() + axis, static_cast<int64_t>(inputs.size()));
  const int64_t inner = product(first.shape(), axis, first.shape().size());
  c.set_output(0, join_rows(inputs, std::vector<int64_t>(inputs.size(), inner),
                            product(first.shape(), 0, axis), out_shape));
}

void infer_unpack(InferContext& c) {
  const ValueInfo& in = c.input(0);
  const int64_t num = c.attr<int64_t>("num");
  PartialShape out = PartialShape::unknown();
  if (in.shape.known_rank) {
    const int64_t axis = pack_axis(c.node, in.shape.rank());
    const int64_t d = in.shape.dims[axis];
    if (d >= 0 && d != num) fail("Input shape axis ", axis, " must equal ", num, ", got shape ", in.shape.str());
    out = in.shape;
    out.dims.erase(out.dims.begin() + axis);
  }
  for (int64_t i = 0; i < num; ++i) c.set_output(i, in.dtype, out);
}

void unpack_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  const int64_t num = c.attr<int64_t>("num");
  const int64_t axis = pack_axis(c.node, x.rank());
  if (x.dim(axis) != num)
    fail("Input shape axis ", axis, " must equal ", num, ", got shape ", shape_str(x.shape()));
  Shape out_shape = x.shape();
  out_shape.erase(out_shape.begin() + axis);
  for (int64_t i = 0; i < num; ++i) c.set_output(i, slice_axis(x, axis, i, 1).reshaped(out_shape));
}

// ---------------------------------------------------------------------------------------------
// Split, SplitV.

int64_t split_axis(int64_t dim, int64_t rank) {
  if (dim < -rank || dim >= rank)
    fail("-input rank(-", rank, ") <= split_dim < input rank (", rank, "), but got ", dim);
  return dim < 0 ? dim + rank : dim;
}

// Resolves SplitV's size_splits against the split dimension's size (-1 if unknown).
std::vector<int64_t> split_sizes(std::vector<int64_t> sizes, int64_t dim) {
  int64_t unknown = -1, total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == -1) {
      if (unknown >= 0) fail("There can only be one -1 in the input.");
      unknown = static_cast<int64_t>(i);
    } else if (sizes[i] < 0) {
      fail("size_splits must be non-negative (or -1), got ", sizes[i], " at index ", i);
    } else {
      total += sizes[i];
    }
  }
  if (dim < 0) return sizes;
  if ((unknown < 0 && total != dim) || (unknown >= 0 && total > dim))
    fail("Determined shape must either match input shape along split_dim exactly if fully specified, or be "
         "less than the size of the input along split_dim if not fully specified.  Got: ", total);
  if (unknown >= 0) sizes[unknown] = dim - total;
  return sizes;
}

void infer_split(InferContext& c) {
  const bool v = c.node.op == "SplitV";
  const ValueInfo& in = c.input(v ? 0 : 1);
  const int64_t num = c.attr<int64_t>("num_split");
  if (num < 1) fail("num_split must be >= 1, got ", num);
  auto dim = ops::known_ints(c, v ? 2 : 0);
  std::vector<PartialShape> outs(num, unknown_dims(in.shape.rank()));
  if (in.shape.known_rank && dim && dim->size() == 1) {
    const int64_t axis = split_axis((*dim)[0], in.shape.rank());
    const int64_t size = in.shape.dims[axis];
    std::vector<int64_t> sizes(num, -1);
    if (v) {
      std::optional<PartialInts> p = partial_input(c, 1);
      if (p && static_cast<int64_t>(p->size()) != num)
        fail("size_splits has ", p->size(), " entries but num_split is ", num);
      bool all_known = p.has_value();
      for (int64_t i = 0; p && i < num; ++i) all_known &= (*p)[i].known();
      if (all_known) {
        std::vector<int64_t> raw;
        for (const PartialInt& e : *p) raw.push_back(e.value);
        sizes = split_sizes(raw, size);
      }
    } else if (size >= 0) {
      if (size % num)
        fail("Number of ways to split should evenly divide the split dimension, but got split_dim ", axis,
             " (size = ", size, ") and num_split ", num);
      sizes.assign(num, size / num);
    }
    for (int64_t i = 0; i < num; ++i) {
      outs[i] = in.shape;
      outs[i].dims[axis] = sizes[i];
    }
  }
  for (int64_t i = 0; i < num; ++i) c.set_output(i, in.dtype, outs[i]);
}

void split_kernel(KernelContext& c) {
  const bool v = c.node.op == "SplitV";
  const Tensor& x = c.input(v ? 0 : 1);
  const int64_t num = c.attr<int64_t>("num_split");
  const int64_t axis = split_axis(scalar_operand(c.input(v ? 2 : 0), "split_dim"), x.rank());
  std::vector<int64_t> sizes;
  if (v) {
    sizes = read_ints(c.input(1));
    if (static_cast<int64_t>(sizes.size()) != num)
      fail("size_splits has ", sizes.size(), " entries but num_split is ", num);
    sizes = split_sizes(sizes, x.dim(axis));
  } else {
    if (x.dim(axis) % num)
      fail("Number of ways to split should evenly divide the split dimension, but got split_dim ", axis,
           " (size = ", x.dim(axis), ") and num_split ", num);
    sizes.assign(num, x.dim(axis) / num);
  }
  int64_t start = 0;
  for (int64_t i = 0; i < num; ++i) {
    c.set_output(i, num == 1 ? x : slice_axis(x, axis, start, sizes[i]));
    start += sizes[i];
  }
}

// ---- gradients (ir/grad.h) -------------------------------------------------------------------

// The concatenation axis from a compile-time operand, normalised with the gradient's rank.
int64_t known_axis(GradContext& c, size_t input, Value g) {
  auto ax = c.known_ints(input);
  TS_CHECK(ax && ax->size() == 1, "gradient needs the axis at compile time");
  int64_t rank = c.shape_of(g).rank();
  TS_CHECK(rank >= 0, "gradient needs the rank");
  return ops::normalize_axis(c.node, (*ax)[0], rank);
}

// Concat/ConcatV2: split the gradient into pieces as wide as each input along the axis.
GradList grad_concat(GradContext& c) {
  const bool v2 = c.node.op == "ConcatV2";
  const size_t n = c.node.inputs.size() - 1, first = v2 ? 0 : 1;
  Value g = c.dy();
  GradList out(c.node.inputs.size());
  if (n == 1) {
    out[first] = g;
    return out;
  }
  int64_t axis = known_axis(c, v2 ? n : 0, g);
  std::vector<Value> sizes;
  for (size_t i = 0; i < n; ++i)
    sizes.push_back(c.op("Slice", {c.shape(c.x(first + i)), c.ints({static_cast<int32_t>(axis)}), c.ints({1})},
                         {{"T", DType::kInt32}, {"Index", DType::kInt32}}));
  sizes.push_back(c.int_scalar(0));  // the concat axis of the sizes
  Value size_v = c.op("ConcatV2", sizes, {{"T", DType::kInt32}, {"N", static_cast<int64_t>(n)}, {"Tidx", DType::kInt32}});
  Node* split = c.emit("SplitV", {g, size_v, c.int_scalar(static_cast<int32_t>(axis))},
                       {{"T", c.dtype(g)}, {"Tlen", DType::kInt32}, {"num_split", static_cast<int64_t>(n)}});
  for (size_t i = 0; i < n; ++i) out[first + i] = split->out(static_cast<int>(i));
  return out;
}

GradList grad_pack(GradContext& c) {
  const int64_t n = static_cast<int64_t>(c.node.inputs.size());
  Node* un = c.emit("Unpack", {c.dy()}, {{"T", c.dtype(c.dy())}, {"num", n}, {"axis", c.node.attr_or<int64_t>("axis", 0)}});
  GradList out;
  for (int i = 0; i < n; ++i) out.push_back(un->out(i));
  return out;
}

GradList grad_unpack(GradContext& c) {
  std::vector<Value> parts;
  for (int i = 0; i < c.node.num_outputs(); ++i) parts.push_back(c.dy(i));
  return {c.op("Pack", parts, {{"T", c.dtype(parts[0])}, {"N", static_cast<int64_t>(parts.size())},
                               {"axis", c.node.attr_or<int64_t>("axis", 0)}})};
}

// Split(axis, value) / SplitV(value, sizes, axis): concatenate the output gradients.
GradList grad_split(GradContext& c) {
  const bool v = c.node.op == "SplitV";
  std::vector<Value> parts;
  for (int i = 0; i < c.node.num_outputs(); ++i) parts.push_back(c.dy(i));
  const int64_t n = static_cast<int64_t>(parts.size());
  Value axis = c.x(v ? 2 : 0);
  parts.push_back(axis);
  Value dx = c.op("ConcatV2", parts, {{"T", c.dtype(parts[0])}, {"N", n}, {"Tidx", c.dtype(axis)}});
  GradList out(c.node.inputs.size());
  out[v ? 0 : 1] = dx;
  return out;
}

}  // namespace

void register_concat_ops(OpRegistry& r) {
  add_with_grad(r, {.name = "Concat", .infer = infer_concat, .compute = concat_kernel}, grad_concat);
  add_with_grad(r, {.name = "ConcatV2", .attr_defaults = {{"Tidx", DType::kInt32}}, .infer = infer_concat,
                    .compute = concat_kernel}, grad_concat);
  add_with_grad(r, {.name = "Pack", .attr_defaults = {{"axis", int64_t{0}}}, .infer = infer_pack,
                    .compute = pack_kernel}, grad_pack);
  add_with_grad(r, {.name = "Unpack", .attr_defaults = {{"axis", int64_t{0}}}, .output_args = {{"output", "num", ""}},
                    .infer = infer_unpack, .compute = unpack_kernel}, grad_unpack);
  add_with_grad(r, {.name = "Split", .output_args = {{"output", "num_split", ""}}, .infer = infer_split,
                    .compute = split_kernel}, grad_split);
  add_with_grad(r, {.name = "SplitV", .attr_defaults = {{"Tlen", DType::kInt64}},
                    .output_args = {{"output", "num_split", ""}}, .infer = infer_split, .compute = split_kernel},
                grad_split);
}

}  // namespace tessera
