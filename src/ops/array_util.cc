#include "ops/array_util.h"

#include <algorithm>

namespace tessera::ops::array {

// ---------------------------------------------------------------------------------------------
// Element movement.

namespace {

template <typename E>
void gather_offsets_impl(const E* src, E* dst, const Shape& shape,
                         const std::vector<std::vector<int64_t>>& off, const E& fill) {
  const size_t n = shape.size();
  if (n == 0) {
    *dst = *src;
    return;
  }
  const std::vector<int64_t>& inner = off[n - 1];
  const int64_t len = shape[n - 1];
  // A contiguous, unpadded innermost run becomes a block copy.
  bool contiguous = len > 0 && inner[0] >= 0;
  for (int64_t k = 1; contiguous && k < len; ++k) contiguous = inner[k] == inner[0] + k;
  const int64_t rows = len == 0 ? 0 : num_elements(Shape(shape.begin(), shape.end() - 1));
  std::vector<int64_t> idx(n - 1, 0);
  for (int64_t r = 0; r < rows; ++r, dst += len) {
    int64_t base = 0;
    bool pad = false;
    for (size_t d = 0; d + 1 < n; ++d) {
      int64_t o = off[d][idx[d]];
      pad |= o < 0;
      base += o;
    }
    if (pad) {
      std::fill(dst, dst + len, fill);
    } else if (contiguous) {
      std::copy(src + base + inner[0], src + base + inner[0] + len, dst);
    } else {
      for (int64_t k = 0; k < len; ++k) dst[k] = inner[k] < 0 ? fill : src[base + inner[k]];
    }
    for (size_t d = n - 1; d-- > 0;) {  // odometer over the outer dims
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

}  // namespace

Tensor gather_offsets(const Tensor& src, const Shape& out_shape,
                      const std::vector<std::vector<int64_t>>& offsets, const Tensor* fill) {
  TS_CHECK(offsets.size() == out_shape.size(), "gather_offsets: rank mismatch");
  for (size_t d = 0; d < out_shape.size(); ++d)
    TS_CHECK(static_cast<int64_t>(offsets[d].size()) == out_shape[d], "gather_offsets: dim ", d);
  Tensor out(src.dtype(), out_shape);
  if (out.num_elements() == 0) return out;
  with_elem_type(src.dtype(), [&]<typename E>() {
    E f{};
    if (fill) {
      TS_CHECK(fill->dtype() == src.dtype() && fill->num_elements() == 1, "fill value must be a ",
               dtype_name(src.dtype()), " scalar");
      f = elems<E>(*fill)[0];
    }
    gather_offsets_impl<E>(elems<E>(src), elems<E>(out), out_shape, offsets, f);
  });
  return out;
}

std::vector<int64_t> linear_offsets(int64_t n, int64_t start, int64_t step, int64_t stride) {
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) out[j] = (start + j * step) * stride;
  return out;
}

Tensor transpose(const Tensor& src, const std::vector<int64_t>& perm) {
  std::vector<int64_t> strides = strides_of(src.shape());
  Shape out_shape(perm.size());
  std::vector<std::vector<int64_t>> off(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) {
    out_shape[k] = src.dim(perm[k]);
    off[k] = linear_offsets(out_shape[k], 0, 1, strides[perm[k]]);
  }
  return gather_offsets(src, out_shape, off);
}

Tensor slice_axis(const Tensor& src, int64_t axis, int64_t start, int64_t len) {
  Shape out_shape = src.shape();
  out_shape[axis] = len;
  Tensor out(src.dtype(), out_shape);
  const int64_t outer = product(src.shape(), 0, axis);
  const int64_t inner = product(src.shape(), axis + 1, src.shape().size());
  const int64_t in_row = src.dim(axis) * inner, out_row = len * inner;
  if (out.num_elements() == 0) return out;
  with_elem_type(src.dtype(), [&]<typename E>() {
    const E* s = elems<E>(src) + start * inner;
    E* d = elems<E>(out);
    for (int64_t o = 0; o < outer; ++o) std::copy(s + o * in_row, s + o * in_row + out_row, d + o * out_row);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Integer operands.

std::vector<int64_t> read_ints(const Tensor& t) {
  std::vector<int64_t> out(static_cast<size_t>(t.num_elements()));
  dispatch(Types<int32_t, int64_t, int16_t, int8_t, uint8_t, uint16_t, uint32_t, uint64_t>{}, t.dtype(),
           "integer operand", [&]<typename T>() {
             const T* p = t.data<T>();
             for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int64_t>(p[i]);
           });
  return out;
}

Tensor make_ints(DType dtype, const std::vector<int64_t>& values, Shape shape) {
  Tensor t(dtype, std::move(shape));
  TS_CHECK(static_cast<size_t>(t.num_elements()) == values.size(), "make_ints: size mismatch");
  dispatch(Types<int32_t, int64_t, int16_t>{}, dtype, "integer output", [&]<typename T>() {
    T* p = t.data<T>();
    for (size_t i = 0; i < values.size(); ++i) {
      if (values[i] < std::numeric_limits<T>::min() || values[i] > std::numeric_limits<T>::max())
        fail("value ", values[i], " does not fit in ", dtype_name(dtype));
      p[i] = static_cast<T>(values[i]);
    }
  });
  return t;
}

Tensor make_ints(DType dtype, const std::vector<int64_t>& values) {
  return make_ints(dtype, values, Shape{static_cast<int64_t>(values.size())});
}

int64_t scalar_operand(const Tensor& t, const char* what) {
  if (t.num_elements() != 1) fail(what, " must be a scalar, got shape ", shape_str(t.shape()));
  return read_ints(t)[0];
}

std::vector<int64_t> int_list_attr(const Node& node, const std::string& key) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) return {};
  if (const auto* v = std::get_if<std::vector<int64_t>>(&it->second)) return *v;
  if (std::holds_alternative<std::monostate>(it->second)) return {};
  fail("attribute '", key, "' is ", attr_kind_name(it->second), ", expected a list of ints");
}

int64_t product(const std::vector<int64_t>& dims, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i) p *= dims[i];
  return p;
}

// ---------------------------------------------------------------------------------------------
// Partially known integer vectors.

namespace {

constexpr int kMaxDepth = 24;
constexpr size_t kMaxPartial = 64;  // shape vectors are short; anything longer is not worth it

PartialInt known_int(int64_t v) { return PartialInt{v}; }

std::optional<PartialInts> partial_value_at(const Value& v, int depth);

// The unknown-valued fallback: as many unknown elements as the value's static shape says.
std::optional<PartialInts> unknown_elements(const Value& v) {
  const ValueInfo& info = v.node->outputs.at(v.index);
  if (!info.shape.fully_known()) return std::nullopt;
  int64_t n = num_elements(info.shape.dims);
  if (n > static_cast<int64_t>(kMaxPartial)) return std::nullopt;
  return PartialInts(static_cast<size_t>(n));
}

std::optional<PartialInts> partial_from_op(const Value& v, int depth) {
  const Node& n = *v.node;
  const std::string& op = n.op;
  auto input = [&](size_t i) -> std::optional<PartialInts> {
    if (i >= n.inputs.size()) return std::nullopt;
    return partial_value_at(n.inputs[i], depth + 1);
  };
  if ((op == "Shape" && v.index == 0) || op == "ShapeN") {
    const Value& in = n.inputs.at(op == "Shape" ? 0 : v.index);
    const PartialShape& s = in.node->outputs.at(in.index).shape;
    if (!s.known_rank) return std::nullopt;
    PartialInts out;
    for (size_t d = 0; d < s.dims.size(); ++d) {
      if (s.dims[d] >= 0) out.push_back(known_int(s.dims[d]));
      else out.push_back(PartialInt{kUnknown, in, static_cast<int64_t>(d)});
    }
    return out;
  }
  if (op == "Identity" || op == "StopGradient" || op == "Snapshot" || op == "EnsureShape" ||
      (op == "Cast" && is_integer(n.outputs.at(0).dtype)))
    return input(0);
  if (op == "Pack") {
    if (n.attr_or<int64_t>("axis", 0) != 0) return std::nullopt;
    PartialInts out;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      std::optional<PartialInts> p = input(i);
      if (!p) return std::nullopt;
      out.insert(out.end(), p->begin(), p->end());
    }
    return out;
  }
  if (op == "ConcatV2" || op == "Concat") {
    size_t first = op == "Concat" ? 1 : 0;
    size_t count = n.inputs.size() - 1;
    auto axis = ops::known_ints(n, op == "Concat" ? 0 : n.inputs.size() - 1);
    if (!axis || axis->size() != 1 || ((*axis)[0] != 0 && (*axis)[0] != -1)) return std::nullopt;
    PartialInts out;
    for (size_t i = first; i < first + count; ++i) {
      if (n.inputs[i].node->outputs.at(n.inputs[i].index).shape.rank() != 1) return std::nullopt;
      std::optional<PartialInts> p = input(i);
      if (!p) return std::nullopt;
      out.insert(out.end(), p->begin(), p->end());
    }
    return out;
  }
  if (op == "StridedSlice" || op == "Slice") {
    const Value& in = n.inputs.at(0);
    if (in.node->outputs.at(in.index).shape.rank() != 1) return std::nullopt;
    std::optional<PartialInts> p = input(0);
    if (!p) return std::nullopt;
    const int64_t len = static_cast<int64_t>(p->size());
    int64_t begin, stride = 1, size;
    if (op == "Slice") {
      auto b = ops::known_ints(n, 1), s = ops::known_ints(n, 2);
      if (!b || !s || b->size() != 1 || s->size() != 1) return std::nullopt;
      begin = (*b)[0];
      size = (*s)[0] == -1 ? len - begin : (*s)[0];
      if (begin < 0 || size < 0 || begin + size > len) return std::nullopt;
    } else {
      StridedSliceArgs a = strided_slice_args(n);
      auto b = ops::known_ints(n, 1), e = ops::known_ints(n, 2), s = ops::known_ints(n, 3);
      if (!b || !e || !s || a.ellipsis_mask || a.new_axis_mask) return std::nullopt;
      a.begin = *b;
      a.end = *e;
      a.strides = *s;
      try {
        StridedSliceSpec spec = strided_slice_spec({len}, a);
        begin = spec.begin[0];
        stride = spec.stride[0];
        size = spec.size[0];
      } catch (const Error&) {
        return std::nullopt;  // the kernel reports it
      }
    }
    PartialInts out;
    for (int64_t j = 0; j < size; ++j) out.push_back((*p)[begin + j * stride]);
    return out;
  }
  if (op == "GatherV2" || op == "Gather") {
    if (op == "GatherV2") {
      auto axis = ops::known_ints(n, 2);
      if (!axis || axis->size() != 1 || (*axis)[0] != 0 || n.attr_or<int64_t>("batch_dims", 0) != 0)
        return std::nullopt;
    }
    const Value& in = n.inputs.at(0);
    if (in.node->outputs.at(in.index).shape.rank() != 1) return std::nullopt;
    std::optional<PartialInts> p = input(0);
    auto idx = ops::known_ints(n, 1);
    if (!p || !idx) return std::nullopt;
    PartialInts out;
    for (int64_t i : *idx) {
      if (i < 0 || i >= static_cast<int64_t>(p->size())) return std::nullopt;
      out.push_back((*p)[i]);
    }
    return out;
  }
  return std::nullopt;
}

std::optional<PartialInts> partial_value_at(const Value& v, int depth) {
  if (!v.node || v.index >= v.node->num_outputs()) return std::nullopt;
  if (v.index < static_cast<int>(v.node->known.size())) {
    const Tensor& t = v.node->known[v.index];
    if (t.valid() && is_integer(t.dtype()) && t.num_elements() <= static_cast<int64_t>(kMaxPartial)) {
      PartialInts out;
      for (int64_t x : read_ints(t)) out.push_back(known_int(x));
      return out;
    }
  }
  if (depth < kMaxDepth && is_integer(v.node->outputs[v.index].dtype)) {
    std::optional<PartialInts> p = partial_from_op(v, depth);
    if (p && p->size() <= kMaxPartial) {
      // The op-derived count must agree with the static shape (guards against misreading).
      const PartialShape& s = v.node->outputs[v.index].shape;
      if (!s.fully_known() || num_elements(s.dims) == static_cast<int64_t>(p->size())) return p;
    }
  }
  return unknown_elements(v);
}

}  // namespace

std::optional<PartialInts> partial_value(const Value& v) { return partial_value_at(v, 0); }

PartialShape shape_from_partial(const std::optional<PartialInts>& p) {
  if (!p) return PartialShape::unknown();
  std::vector<int64_t> dims;
  for (const PartialInt& e : *p) dims.push_back(e.known() && e.value >= 0 ? e.value : -1);
  return PartialShape(dims);
}

void set_known_if_determined(InferContext& c) {
  if (c.node.outputs.empty() || !is_integer(c.node.outputs[0].dtype)) return;
  const ValueInfo& info = c.node.outputs[0];
  if (!info.shape.fully_known()) return;
  std::optional<PartialInts> p = partial_value(c.node.out(0));
  if (!p || static_cast<int64_t>(p->size()) != num_elements(info.shape.dims)) return;
  std::vector<int64_t> values;
  for (const PartialInt& e : *p) {
    if (!e.known()) return;
    values.push_back(e.value);
  }
  DType t = info.dtype;
  if (t != DType::kInt32 && t != DType::kInt64 && t != DType::kInt16) return;
  try {
    Tensor value = make_ints(t, values, info.shape.dims);
    c.node.known.resize(c.node.outputs.size());
    c.node.known[0] = value;
  } catch (const Error&) {
  }
}

// ---------------------------------------------------------------------------------------------
// Inference helpers.

int64_t merge_dim(int64_t a, int64_t b, const char* what) {
  if (a < 0) return b;
  if (b < 0 || a == b) return a;
  fail(what, ": dimension ", a, " does not match ", b);
}

PartialShape unknown_dims(int64_t rank) {
  if (rank < 0) return PartialShape::unknown();
  return PartialShape(std::vector<int64_t>(static_cast<size_t>(rank), -1));
}

// ---------------------------------------------------------------------------------------------
// StridedSlice.

StridedSliceArgs strided_slice_args(const Node& node) {
  StridedSliceArgs a;
  a.begin_mask = node.attr_or<int64_t>("begin_mask", 0);
  a.end_mask = node.attr_or<int64_t>("end_mask", 0);
  a.ellipsis_mask = node.attr_or<int64_t>("ellipsis_mask", 0);
  a.new_axis_mask = node.attr_or<int64_t>("new_axis_mask", 0);
  a.shrink_axis_mask = node.attr_or<int64_t>("shrink_axis_mask", 0);
  return a;
}

StridedSliceSpec strided_slice_spec(const std::vector<int64_t>& input_dims, const StridedSliceArgs& a) {
  const int64_t sparse_n = static_cast<int64_t>(a.begin.size());
  if (static_cast<int64_t>(a.end.size()) != sparse_n || static_cast<int64_t>(a.strides.size()) != sparse_n)
    fail("Expected begin, end, and strides to be 1D equal size tensors, but got ", a.begin.size(), ", ",
         a.end.size(), " and ", a.strides.size(), " elements");
  if (sparse_n > 32) fail("StridedSlice: ", sparse_n, " slice dimensions is more than the 32 supported");
  auto bit = [](int64_t mask, int64_t i) { return i < 63 && ((mask >> i) & 1) != 0; };
  int64_t ellipsis_mask = a.ellipsis_mask;
  if (ellipsis_mask & (ellipsis_mask - 1)) fail("Multiple ellipses in slice spec not allowed");

  // Sparse spec: count new axes after the ellipsis; an absent ellipsis is implied at the end.
  bool ellipsis_seen = false;
  int64_t new_axes_after_ellipsis = 0;
  for (int64_t i = 0; i < sparse_n; ++i) {
    if (ellipsis_seen && bit(a.new_axis_mask, i)) ++new_axes_after_ellipsis;
    if (bit(ellipsis_mask, i)) ellipsis_seen = true;
  }
  int64_t n = sparse_n;
  if (!ellipsis_seen) ellipsis_mask |= int64_t{1} << n++;

  // Dense spec over the input's dims.
  const int64_t rank = static_cast<int64_t>(input_dims.size());
  constexpr int64_t kNewAxis = -1, kShrink = -2;
  std::vector<int64_t> begin(rank, 0), end(rank, 0), stride(rank, 1);
  std::vector<bool> bmask(rank, false), emask(rank, false), shrink(rank, false);
  std::vector<int64_t> gather;  // per output dim: dense dim, kNewAxis or kShrink
  int64_t full = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (bit(ellipsis_mask, i)) {
      int64_t next = std::min(rank - (n - i) + 1 + new_axes_after_ellipsis, rank);
      for (; full < next; ++full) {
        bmask[full] = emask[full] = true;
        gather.push_back(full);
      }
    } else if (bit(a.new_axis_mask, i)) {
      gather.push_back(kNewAxis);
    } else {
      if (full == rank) fail("Index out of range using input dim ", full, "; input has only ", rank, " dims");
      begin[full] = a.begin[i];
      end[full] = a.end[i];
      stride[full] = a.strides[i];
      bmask[full] = bit(a.begin_mask, i);
      emask[full] = bit(a.end_mask, i);
      shrink[full] = bit(a.shrink_axis_mask, i);
      gather.push_back(shrink[full] ? kShrink : full);
      ++full;
    }
  }

  StridedSliceSpec spec;
  spec.begin.assign(rank, 0);
  spec.stride.assign(rank, 1);
  spec.size.assign(rank, -1);
  for (int64_t i = 0; i < rank; ++i) {
    const int64_t s = stride[i];
    const int64_t dim = input_dims[i];
    if (s == 0) fail("strides[", i, "] must be non-zero");
    if (shrink[i] && s <= 0) fail("only stride 1 allowed on non-range indexing.");
    spec.stride[i] = s;
    if (dim < 0) {  // unknown dim (inference)
      spec.size[i] = shrink[i] ? 1 : -1;
      continue;
    }
    const bool begin_known = bmask[i] || begin[i] != kUnknown;
    const bool end_known = emask[i] || end[i] != kUnknown;
    // Valid index range for this direction; masked ends take its extreme.
    const int64_t lo = s > 0 ? 0 : -1, hi = s > 0 ? dim : dim - 1;
    auto canonical = [&](int64_t x, bool masked, bool is_end) {
      if (masked) return (s > 0) == is_end ? hi : lo;
      int64_t fwd = x < 0 ? dim + x : x;
      return fwd < lo ? lo : fwd > hi ? hi : fwd;
    };
    if (shrink[i]) {
      if (begin[i] == kUnknown) {
        spec.size[i] = 1;
        continue;
      }
      int64_t fwd = begin[i] < 0 ? dim + begin[i] : begin[i];
      if (fwd < 0 || fwd >= dim) fail("slice index ", begin[i], " of dimension ", i, " out of bounds.");
      spec.begin[i] = fwd;
      spec.size[i] = 1;
      continue;
    }
    if (!begin_known || !end_known) continue;  // size unknown
    int64_t b = canonical(begin[i], bmask[i], false);
    int64_t e = canonical(end[i], emask[i], true);
    int64_t interval = e - b;
    int64_t size;
    if (interval == 0 || ((interval < 0) != (s < 0))) size = 0;
    else size = interval / s + (interval % s != 0 ? 1 : 0);
    spec.begin[i] = b;
    spec.size[i] = size;
  }
  for (int64_t g : gather) {
    if (g == kNewAxis) spec.final_shape.push_back(1);
    else if (g >= 0) spec.final_shape.push_back(spec.size[g]);
  }
  return spec;
}

}  // namespace tessera::ops::array
