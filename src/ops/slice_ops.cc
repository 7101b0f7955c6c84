// Ops where each output element is one input element (or a fill value), all built on
// gather_offsets: StridedSlice, Slice, Transpose, ConjugateTranspose, Tile, Pad, PadV2,
// MirrorPad, BroadcastTo, ReverseV2, Reverse, SpaceToBatchND, BatchToSpaceND, SpaceToDepth,
// DepthToSpace, Roll, ReverseSequence.
#include <algorithm>
#include <complex>
#include <cstring>

#include "ir/grad.h"
#include "ops/array_families.h"
#include "ops/array_util.h"

namespace tessera {
namespace {

using namespace ops::array;
using Offsets = std::vector<std::vector<int64_t>>;

// Offsets reading every input dim in order (the identity), to be adjusted per op.
Offsets identity_offsets(const Shape& shape) {
  std::vector<int64_t> strides = ops::strides_of(shape);
  Offsets off(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) off[d] = linear_offsets(shape[d], 0, 1, strides[d]);
  return off;
}

std::vector<int64_t> vector_input(const Tensor& t, const char* what) {
  if (t.rank() != 1) fail(what, " must be a vector, got shape ", shape_str(t.shape()));
  return read_ints(t);
}

// An [n, 2] integer matrix operand (paddings, crops) as pairs.
std::vector<std::pair<int64_t, int64_t>> pairs_input(const Tensor& t, int64_t n, const char* what) {
  if (t.rank() != 2 || t.dim(1) != 2)
    fail(what, " must be a matrix with 2 columns: ", shape_str(t.shape()));
  if (t.dim(0) != n) fail("The first dimension of ", what, " must be ", n, ": ", shape_str(t.shape()));
  std::vector<int64_t> v = read_ints(t);
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t i = 0; i < n; ++i) out.emplace_back(v[2 * i], v[2 * i + 1]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// StridedSlice.

void infer_strided_slice(InferContext& c) {
  const ValueInfo& in = c.input(0);
  auto strides = ops::known_ints(c, 3);
  if (!strides || !in.shape.known_rank) {
    c.set_output(0, in.dtype, PartialShape::unknown());
    return;
  }
  StridedSliceArgs a = strided_slice_args(c.node);
  a.strides = *strides;
  for (size_t i : {1, 2}) {
    std::optional<PartialInts> p = partial_input(c, i);
    std::vector<int64_t>& v = i == 1 ? a.begin : a.end;
    if (p && p->size() == strides->size()) {
      for (const PartialInt& e : *p) v.push_back(e.value);  // kUnknown where unknown
    } else {
      v.assign(strides->size(), kUnknown);
    }
  }
  StridedSliceSpec spec = strided_slice_spec(in.shape.dims, a);
  c.set_output(0, in.dtype, PartialShape(spec.final_shape));
  set_known_if_determined(c);
}

void strided_slice_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  StridedSliceArgs a = strided_slice_args(c.node);
  a.begin = vector_input(c.input(1), "begin");
  a.end = vector_input(c.input(2), "end");
  a.strides = vector_input(c.input(3), "strides");
  StridedSliceSpec spec = strided_slice_spec(x.shape(), a);
  std::vector<int64_t> strides = ops::strides_of(x.shape());
  Offsets off(x.shape().size());
  for (size_t d = 0; d < off.size(); ++d)
    off[d] = linear_offsets(spec.size[d], spec.begin[d], spec.stride[d], strides[d]);
  c.set_output(0, gather_offsets(x, spec.size, off).reshaped(spec.final_shape));
}

// ---------------------------------------------------------------------------------------------
// Slice.

// Resolves size -1 and checks the ranges; dims may be -1 (unknown) at inference.
void check_slice(int64_t i, int64_t dim, int64_t begin, int64_t& size) {
  if (dim < 0) return;
  if (begin < 0 || begin > dim) fail("Expected begin[", i, "] in [0, ", dim, "], but got ", begin);
  if (size == -1) size = dim - begin;
  if (size < 0 || begin + size > dim) fail("Expected size[", i, "] in [0, ", dim - begin, "], but got ", size);
}

void infer_slice(InferContext& c) {
  const ValueInfo& in = c.input(0);
  std::optional<PartialInts> begin = partial_input(c, 1), size = partial_input(c, 2);
  int64_t rank = in.shape.rank();
  if (rank < 0 && size) rank = static_cast<int64_t>(size->size());
  if (rank < 0 && begin) rank = static_cast<int64_t>(begin->size());
  if (rank < 0) {
    c.set_output(0, in.dtype, PartialShape::unknown());
    return;
  }
  if ((begin && static_cast<int64_t>(begin->size()) != rank) || (size && static_cast<int64_t>(size->size()) != rank))
    fail("Expected begin and size arguments to be 1-D tensors of size ", rank);
  std::vector<int64_t> dims(rank, -1);
  for (int64_t i = 0; i < rank; ++i) {
    const int64_t dim = in.shape.known_rank ? in.shape.dims[i] : -1;
    const int64_t b = begin && (*begin)[i].known() ? (*begin)[i].value : kUnknown;
    int64_t s = size && (*size)[i].known() ? (*size)[i].value : kUnknown;
    if (s == kUnknown) continue;
    if (s >= 0) dims[i] = s;
    if (b != kUnknown) {
      check_slice(i, dim, b, s);
      if (s >= 0) dims[i] = s;
    }
  }
  c.set_output(0, in.dtype, PartialShape(dims));
  set_known_if_determined(c);
}

void slice_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> begin = vector_input(c.input(1), "begin"), size = vector_input(c.input(2), "size");
  if (static_cast<int64_t>(begin.size()) != x.rank() || static_cast<int64_t>(size.size()) != x.rank())
    fail("Expected begin and size arguments to be 1-D tensors of size ", x.rank(), ", but got shapes ",
         shape_str(c.input(1).shape()), " and ", shape_str(c.input(2).shape()), " instead.");
  std::vector<int64_t> strides = ops::strides_of(x.shape());
  Offsets off(begin.size());
  for (size_t i = 0; i < begin.size(); ++i) {
    check_slice(static_cast<int64_t>(i), x.dim(i), begin[i], size[i]);
    off[i] = linear_offsets(size[i], begin[i], 1, strides[i]);
  }
  c.set_output(0, gather_offsets(x, size, off));
}

// ---------------------------------------------------------------------------------------------
// Transpose, ConjugateTranspose.

void check_permutation(const std::vector<int64_t>& perm, int64_t rank) {
  if (static_cast<int64_t>(perm.size()) != rank)
    fail("transpose expects a vector of size ", rank, ". But input(1) is a vector of size ", perm.size());
  std::vector<bool> seen(perm.size(), false);
  for (size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] < 0 || perm[i] >= rank) fail(perm[i], " is out of range [0 .. ", rank, ")");
    if (seen[perm[i]]) fail(perm[i], " is duplicated in perm");
    seen[perm[i]] = true;
  }
}

void infer_transpose(InferContext& c) {
  const ValueInfo& in = c.input(0);
  auto perm = ops::known_ints(c, 1);
  int64_t rank = in.shape.rank();
  if (perm && rank >= 0) {
    check_permutation(*perm, rank);
    std::vector<int64_t> dims;
    for (int64_t p : *perm) dims.push_back(in.shape.dims[p]);
    c.set_output(0, in.dtype, PartialShape(dims));
    return;
  }
  if (rank < 0 && perm) rank = static_cast<int64_t>(perm->size());
  const PartialShape& ps = c.input(1).shape;
  if (rank < 0 && ps.rank() == 1) rank = ps.dims[0];
  c.set_output(0, in.dtype, unknown_dims(rank));
}

Tensor transpose_input(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> perm = vector_input(c.input(1), "perm");
  check_permutation(perm, x.rank());
  return transpose(x, perm);
}

void conjugate_transpose_kernel(KernelContext& c) {
  Tensor y = transpose_input(c);
  if (y.dtype() == DType::kComplex64 || y.dtype() == DType::kComplex128) {
    dispatch(Types<std::complex<float>, std::complex<double>>{}, y.dtype(), "ConjugateTranspose",
             [&]<typename T>() {
               T* p = y.data<T>();
               for (int64_t i = 0; i < y.num_elements(); ++i) p[i] = std::conj(p[i]);
             });
  }
  c.set_output(0, y);
}

// ---------------------------------------------------------------------------------------------
// Tile, BroadcastTo.

void infer_tile(InferContext& c) {
  const ValueInfo& in = c.input(0);
  std::optional<PartialInts> mult = partial_input(c, 1);
  int64_t rank = in.shape.rank();
  if (rank < 0 && mult) rank = static_cast<int64_t>(mult->size());
  if (rank < 0) {
    c.set_output(0, in.dtype, PartialShape::unknown());
    return;
  }
  if (mult && static_cast<int64_t>(mult->size()) != rank)
    fail("Expected multiples argument to be a vector of length ", rank, " but got length ", mult->size());
  std::vector<int64_t> dims(rank, -1);
  for (int64_t i = 0; i < rank; ++i) {
    const int64_t d = in.shape.known_rank ? in.shape.dims[i] : -1;
    const int64_t m = mult && (*mult)[i].known() ? (*mult)[i].value : -1;
    if (mult && (*mult)[i].known() && m < 0) fail("Expected multiples[", i, "] >= 0, but got ", m);
    if (d == 0 || m == 0) dims[i] = 0;
    else if (d > 0 && m > 0) dims[i] = d * m;
  }
  c.set_output(0, in.dtype, PartialShape(dims));
}

void tile_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> mult = vector_input(c.input(1), "multiples");
  if (static_cast<int64_t>(mult.size()) != x.rank())
    fail("Expected multiples argument to be a vector of length ", x.rank(), " but got length ", mult.size());
  std::vector<int64_t> strides = ops::strides_of(x.shape());
  Shape out_shape(mult.size());
  Offsets off(mult.size());
  for (size_t i = 0; i < mult.size(); ++i) {
    if (mult[i] < 0) fail("Expected multiples[", i, "] >= 0, but got ", mult[i]);
    out_shape[i] = x.dim(i) * mult[i];
    for (int64_t j = 0; j < out_shape[i]; ++j) off[i].push_back((j % x.dim(i)) * strides[i]);
  }
  c.set_output(0, gather_offsets(x, out_shape, off));
}

void infer_broadcast_to(InferContext& c) {
  const ValueInfo& in = c.input(0);
  PartialShape out = shape_from_partial(partial_input(c, 1));
  if (out.known_rank && in.shape.known_rank) {
    const int64_t r = out.rank(), ri = in.shape.rank();
    if (ri > r) fail("Rank of input (", ri, ") must be no greater than rank of output shape (", r, ").");
    for (int64_t k = 0; k < ri; ++k) {
      const int64_t di = in.shape.dims[k];
      int64_t& d = out.dims[r - ri + k];
      if (d < 0 && di > 1) d = di;
      else if (d >= 0 && di >= 0 && di != 1 && di != d)
        fail("Unable to broadcast tensor of shape ", in.shape.str(), " to tensor of shape ", out.str());
    }
  }
  c.set_output(0, in.dtype, out);
}

void broadcast_to_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  Shape shape = vector_input(c.input(1), "shape");
  const int64_t r = static_cast<int64_t>(shape.size()), ri = x.rank();
  auto bad = [&] {
    fail("Unable to broadcast tensor of shape ", shape_str(x.shape()), " to tensor of shape ", shape_str(shape));
  };
  if (ri > r) bad();
  for (int64_t d : shape)
    if (d < 0) fail("shape must not contain negative values: ", shape_str(shape));
  std::vector<int64_t> strides = ops::strides_of(x.shape());
  Offsets off(shape.size());
  for (int64_t d = 0; d < r; ++d) {
    const int64_t k = d - (r - ri);
    if (k >= 0 && x.dim(k) != 1 && x.dim(k) != shape[d]) bad();
    const int64_t stride = k < 0 || x.dim(k) == 1 ? 0 : strides[k];
    off[d] = linear_offsets(shape[d], 0, 1, stride);
  }
  c.set_output(0, gather_offsets(x, shape, off));
}

// ---------------------------------------------------------------------------------------------
// Pad, PadV2, MirrorPad.

enum class PadMode { kConstant, kReflect, kSymmetric };

PadMode pad_mode(const Node& node) {
  if (node.op != "MirrorPad") return PadMode::kConstant;
  const std::string& mode = node.attr<std::string>("mode");
  if (mode == "REFLECT") return PadMode::kReflect;
  if (mode == "SYMMETRIC") return PadMode::kSymmetric;
  fail("mode must be REFLECT or SYMMETRIC, not '", mode, "'");
}

void check_padding(PadMode mode, int64_t dim, int64_t before, int64_t after) {
  if (before < 0 || after < 0) fail("Paddings must be non-negative: ", before, " ", after);
  if (dim < 0) return;
  if (mode == PadMode::kReflect && (before >= dim || after >= dim))
    fail("paddings must be less than the dimension size: ", before, ", ", after, " not less than ", dim);
  if (mode == PadMode::kSymmetric && (before > dim || after > dim))
    fail("paddings must be no greater than the dimension size: ", before, ", ", after, " greater than ", dim);
}

void infer_pad(InferContext& c) {
  const ValueInfo& in = c.input(0);
  const PartialShape& ps = c.input(1).shape;
  int64_t rank = in.shape.rank();
  if (rank < 0 && ps.known_rank && ps.rank() == 2) rank = ps.dims[0];
  if (c.node.op == "PadV2" && c.input(2).shape.rank() > 0)
    fail("constant_values must be a scalar. Got: ", c.input(2).shape.str());
  auto pads = ops::known_ints(c, 1);
  if (rank < 0 || !pads) {
    c.set_output(0, in.dtype, unknown_dims(rank));
    return;
  }
  if (static_cast<int64_t>(pads->size()) != 2 * rank)
    fail("The first dimension of paddings must be the rank of inputs ", rank, ", got ", pads->size() / 2);
  std::vector<int64_t> dims(rank, -1);
  for (int64_t i = 0; i < rank; ++i) {
    const int64_t d = in.shape.known_rank ? in.shape.dims[i] : -1;
    check_padding(pad_mode(c.node), d, (*pads)[2 * i], (*pads)[2 * i + 1]);
    if (d >= 0) dims[i] = d + (*pads)[2 * i] + (*pads)[2 * i + 1];
  }
  c.set_output(0, in.dtype, PartialShape(dims));
}

void pad_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  const PadMode mode = pad_mode(c.node);
  auto pads = pairs_input(c.input(1), x.rank(), "paddings");
  const Tensor* fill = nullptr;
  if (c.node.op == "PadV2") {
    if (c.input(2).rank() != 0) fail("constant_values must be a scalar. Got: ", shape_str(c.input(2).shape()));
    fill = &c.input(2);
  }
  std::vector<int64_t> strides = ops::strides_of(x.shape());
  Shape out_shape(x.rank());
  Offsets off(x.rank());
  for (int64_t i = 0; i < x.rank(); ++i) {
    const auto [before, after] = pads[i];
    const int64_t n = x.dim(i);
    check_padding(mode, n, before, after);
    out_shape[i] = n + before + after;
    for (int64_t j = 0; j < out_shape[i]; ++j) {
      int64_t s = j - before;  // source index; outside [0, n) it is padding
      if (s < 0) s = mode == PadMode::kReflect ? -s : mode == PadMode::kSymmetric ? -s - 1 : -1;
      else if (s >= n) s = mode == PadMode::kReflect ? 2 * n - 2 - s : mode == PadMode::kSymmetric ? 2 * n - 1 - s : -1;
      off[i].push_back(s < 0 ? -1 : s * strides[i]);
    }
  }
  c.set_output(0, gather_offsets(x, out_shape, off, fill));
}

// ---------------------------------------------------------------------------------------------
// ReverseV2, Reverse.

Tensor reverse_dims(const Tensor& x, const std::vector<bool>& rev) {
  Offsets off = identity_offsets(x.shape());
  for (size_t d = 0; d < rev.size(); ++d)
    if (rev[d]) std::reverse(off[d].begin(), off[d].end());
  return gather_offsets(x, x.shape(), off);
}

void reverse_v2_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> axes = read_ints(c.input(1));
  if (c.input(1).rank() != 1) fail("'axis' must be 1-D, not ", shape_str(c.input(1).shape()));
  std::vector<bool> rev(x.rank(), false);
  for (int64_t a : axes) {
    if (a < -x.rank() || a >= x.rank())
      fail("'axis'[", a, "] = ", a, " is out of valid range [", -x.rank(), ", ", x.rank() - 1, "]");
    int64_t d = a < 0 ? a + x.rank() : a;
    if (rev[d]) fail("axis ", d, " specified more than once.");
    rev[d] = true;
  }
  c.set_output(0, reverse_dims(x, rev));
}

void reverse_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  const Tensor& dims = c.input(1);
  if (dims.rank() != 1 || dims.num_elements() != x.rank())
    fail("'dims' must have the same number of values as 'input' has dimensions. 'input' has ", x.rank(),
         "'dims' has ", dims.num_elements(), " values");
  const bool* p = dims.data<bool>();
  c.set_output(0, reverse_dims(x, std::vector<bool>(p, p + dims.num_elements())));
}

// ---------------------------------------------------------------------------------------------
// SpaceToBatchND, BatchToSpaceND.

struct BlockArgs {
  std::vector<int64_t> block;
  std::vector<std::pair<int64_t, int64_t>> pads;  // paddings or crops
};

BlockArgs block_args(const Tensor& block_t, const Tensor& pads_t, int64_t rank, const char* pads_name) {
  BlockArgs a;
  a.block = vector_input(block_t, "block_shape");
  const int64_t m = static_cast<int64_t>(a.block.size());
  if (rank < 1 + m) fail("input rank should be >= ", 1 + m, " instead of ", rank);
  a.pads = pairs_input(pads_t, m, pads_name);
  for (int64_t i = 0; i < m; ++i) {
    if (a.block[i] < 1) fail("All values in block_shape must be positive, got value, ", a.block[i], " at index ", i, ".");
    if (a.pads[i].first < 0 || a.pads[i].second < 0)
      fail("All values in ", pads_name, " must be non-negative");
  }
  return a;
}

// Output shape of SpaceToBatchND / BatchToSpaceND given known operands (dims may be -1).
std::vector<int64_t> block_output_shape(bool to_batch, const std::vector<int64_t>& in, const BlockArgs& a) {
  std::vector<int64_t> out = in;
  const size_t m = a.block.size();
  const int64_t prod = product(a.block, 0, m);
  if (to_batch) {
    if (in[0] >= 0) out[0] = in[0] * prod;
  } else if (in[0] >= 0) {
    if (in[0] % prod) fail("Input batch dimension (", in[0], ") is not divisible by product of block sizes (", prod, ")");
    out[0] = in[0] / prod;
  }
  for (size_t i = 0; i < m; ++i) {
    const int64_t d = in[1 + i];
    if (d < 0) continue;
    const int64_t edge = a.pads[i].first + a.pads[i].second;
    if (to_batch) {
      if ((d + edge) % a.block[i])
        fail("padded_shape[", i, "]=", d + edge, " is not divisible by block_shape[", i, "]=", a.block[i]);
      out[1 + i] = (d + edge) / a.block[i];
    } else {
      if (d * a.block[i] < edge)
        fail("Cropped size must be non-negative: start: ", a.pads[i].first, " end: ", a.pads[i].second,
             " size ", d * a.block[i]);
      out[1 + i] = d * a.block[i] - edge;
    }
  }
  return out;
}

void infer_block_op(InferContext& c) {
  const ValueInfo& in = c.input(0);
  const Tensor *block = c.input_value(1), *pads = c.input_value(2);
  if (!in.shape.known_rank || !block || !pads) {
    c.set_output(0, in.dtype, unknown_dims(in.shape.rank()));
    return;
  }
  const bool to_batch = c.node.op == "SpaceToBatchND";
  BlockArgs a = block_args(*block, *pads, in.shape.rank(), to_batch ? "paddings" : "crops");
  c.set_output(0, in.dtype, PartialShape(block_output_shape(to_batch, in.shape.dims, a)));
}

void space_to_batch_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  BlockArgs a = block_args(c.input(1), c.input(2), x.rank(), "paddings");
  const Shape out_shape = block_output_shape(true, x.shape(), a);
  const size_t m = a.block.size();
  // 1. Zero-pad the spatial dims.
  std::vector<int64_t> in_strides = ops::strides_of(x.shape());
  Shape padded_shape = x.shape();
  Offsets pad_off = identity_offsets(x.shape());
  for (size_t i = 0; i < m; ++i) {
    const int64_t n = x.dim(1 + i), before = a.pads[i].first;
    padded_shape[1 + i] = n + before + a.pads[i].second;
    pad_off[1 + i].clear();
    for (int64_t j = 0; j < padded_shape[1 + i]; ++j)
      pad_off[1 + i].push_back(j < before || j >= before + n ? -1 : (j - before) * in_strides[1 + i]);
  }
  Tensor padded = gather_offsets(x, padded_shape, pad_off);
  // 2. Move block offsets to the front: [b_1..b_M, batch, q_1..q_M, rest].
  std::vector<int64_t> ps = ops::strides_of(padded_shape);
  Shape shape;
  Offsets off;
  for (size_t i = 0; i < m; ++i) {
    shape.push_back(a.block[i]);
    off.push_back(linear_offsets(a.block[i], 0, 1, ps[1 + i]));
  }
  shape.push_back(x.dim(0));
  off.push_back(linear_offsets(x.dim(0), 0, 1, ps[0]));
  for (size_t i = 0; i < m; ++i) {
    shape.push_back(out_shape[1 + i]);
    off.push_back(linear_offsets(out_shape[1 + i], 0, a.block[i], ps[1 + i]));
  }
  for (size_t d = 1 + m; d < padded_shape.size(); ++d) {
    shape.push_back(padded_shape[d]);
    off.push_back(linear_offsets(padded_shape[d], 0, 1, ps[d]));
  }
  c.set_output(0, gather_offsets(padded, shape, off).reshaped(out_shape));
}

void batch_to_space_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  BlockArgs a = block_args(c.input(1), c.input(2), x.rank(), "crops");
  const Shape out_shape = block_output_shape(false, x.shape(), a);
  const size_t m = a.block.size();
  std::vector<int64_t> s = ops::strides_of(x.shape());
  const int64_t batch = out_shape[0];
  Offsets off = identity_offsets(out_shape);
  for (size_t d = 0; d < out_shape.size(); ++d)
    if (d == 0 || d > m) off[d] = linear_offsets(out_shape[d], 0, 1, s[d]);
  // Input batch index = (block position, row-major over the block dims) * batch + b.
  int64_t block_stride = 1;
  for (size_t i = m; i-- > 0;) {
    off[1 + i].clear();
    for (int64_t j = 0; j < out_shape[1 + i]; ++j) {
      const int64_t p = j + a.pads[i].first;  // position in the uncropped output
      off[1 + i].push_back((p / a.block[i]) * s[1 + i] + (p % a.block[i]) * block_stride * batch * s[0]);
    }
    block_stride *= a.block[i];
  }
  c.set_output(0, gather_offsets(x, out_shape, off));
}

// ---------------------------------------------------------------------------------------------
// SpaceToDepth, DepthToSpace (NHWC, and NCHW as TF's GPU kernels define it).

struct DepthArgs {
  int64_t block;
  bool nchw;
};

DepthArgs depth_args(const Node& node) {
  DepthArgs a{node.attr<int64_t>("block_size"), false};
  if (a.block < 2) fail("Block size should be > 1, but was: ", a.block);
  const std::string& format = node.attr_or<std::string>("data_format", "NHWC");
  if (format == "NCHW") a.nchw = true;
  else if (format != "NHWC") fail("data_format ", format, " is not supported");
  return a;
}

// Input dims as (N, H, W, C) whatever the layout; -1 where unknown.
std::vector<int64_t> nhwc(const std::vector<int64_t>& d, bool nchw) {
  return nchw ? std::vector<int64_t>{d[0], d[2], d[3], d[1]} : d;
}
std::vector<int64_t> from_nhwc(const std::vector<int64_t>& d, bool nchw) {
  return nchw ? std::vector<int64_t>{d[0], d[3], d[1], d[2]} : d;
}

std::vector<int64_t> depth_output_shape(bool to_depth, const std::vector<int64_t>& in, const DepthArgs& a) {
  if (in.size() != 4) fail("input rank should be 4 instead of ", in.size());
  std::vector<int64_t> d = nhwc(in, a.nchw), o = d;
  const int64_t b = a.block;
  if (to_depth) {
    if ((d[1] >= 0 && d[1] % b) || (d[2] >= 0 && d[2] % b))
      fail("Image height ", d[1], " and width ", d[2], " should be divisible by block_size: ", b);
    o = {d[0], d[1] < 0 ? -1 : d[1] / b, d[2] < 0 ? -1 : d[2] / b, d[3] < 0 ? -1 : d[3] * b * b};
  } else {
    if (d[3] >= 0 && d[3] % (b * b))
      fail("Input depth dimension ", d[3], " should be divisible by: ", b * b);
    o = {d[0], d[1] < 0 ? -1 : d[1] * b, d[2] < 0 ? -1 : d[2] * b, d[3] < 0 ? -1 : d[3] / (b * b)};
  }
  return from_nhwc(o, a.nchw);
}

void infer_depth_op(InferContext& c) {
  const ValueInfo& in = c.input(0);
  DepthArgs a = depth_args(c.node);
  if (!in.shape.known_rank) {
    c.set_output(0, in.dtype, unknown_dims(4));
    return;
  }
  c.set_output(0, in.dtype, PartialShape(depth_output_shape(c.node.op == "SpaceToDepth", in.shape.dims, a)));
}

void depth_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  const DepthArgs a = depth_args(c.node);
  const bool to_depth = c.node.op == "SpaceToDepth";
  const Shape out_shape = depth_output_shape(to_depth, x.shape(), a);
  const int64_t b = a.block;
  // Strides of N, H, W, C in the input whatever its layout.
  std::vector<int64_t> s = nhwc(ops::strides_of(x.shape()), a.nchw);
  std::vector<int64_t> o = nhwc(out_shape, a.nchw);  // output N, H, W, C
  Offsets off(4);
  off[0] = linear_offsets(o[0], 0, 1, s[0]);
  if (to_depth) {  // out(n, h, w, (by*b + bx)*C + c) = in(n, h*b + by, w*b + bx, c)
    const int64_t channels = o[3] / (b * b);
    off[1] = linear_offsets(o[1], 0, b, s[1]);
    off[2] = linear_offsets(o[2], 0, b, s[2]);
    for (int64_t ch = 0; ch < o[3]; ++ch)
      off[3].push_back((ch / (b * channels)) * s[1] + ((ch / channels) % b) * s[2] + (ch % channels) * s[3]);
  } else {  // out(n, h*b + by, w*b + bx, c) = in(n, h, w, (by*b + bx)*C + c)
    const int64_t channels = o[3];
    for (int64_t h = 0; h < o[1]; ++h) off[1].push_back((h / b) * s[1] + (h % b) * b * channels * s[3]);
    for (int64_t w = 0; w < o[2]; ++w) off[2].push_back((w / b) * s[2] + (w % b) * channels * s[3]);
    off[3] = linear_offsets(o[3], 0, 1, s[3]);
  }
  if (a.nchw) off = {off[0], off[3], off[1], off[2]};
  c.set_output(0, gather_offsets(x, out_shape, off));
}

// ---------------------------------------------------------------------------------------------
// Roll, ReverseSequence.

void roll_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> shift = read_ints(c.input(1)), axis = read_ints(c.input(2));
  if (c.input(1).rank() > 1) fail("shift must be a scalar or a 1-D vector, got ", shape_str(c.input(1).shape()));
  if (c.input(2).rank() > 1) fail("axis must be a scalar or a 1-D vector, got ", shape_str(c.input(2).shape()));
  if (shift.size() != axis.size())
    fail("shift and axis must have the same size, got ", shift.size(), " and ", axis.size());
  std::vector<int64_t> total(x.rank(), 0);  // repeated axes add up
  for (size_t i = 0; i < axis.size(); ++i) {
    int64_t a = axis[i] < 0 ? axis[i] + x.rank() : axis[i];
    if (a < 0 || a >= x.rank()) fail("axis ", axis[i], " is out of range for a tensor of rank ", x.rank());
    total[a] += shift[i];
  }
  std::vector<int64_t> strides = ops::strides_of(x.shape());
  Offsets off = identity_offsets(x.shape());
  for (int64_t d = 0; d < x.rank(); ++d) {
    const int64_t n = x.dim(d);
    if (n == 0) continue;
    const int64_t s = ((total[d] % n) + n) % n;
    for (int64_t j = 0; j < n; ++j) off[d][j] = ((j - s + n) % n) * strides[d];
  }
  c.set_output(0, gather_offsets(x, x.shape(), off));
}

void reverse_sequence_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  const int64_t seq_dim = c.attr<int64_t>("seq_dim"), batch_dim = c.attr_or<int64_t>("batch_dim", 0);
  const int64_t rank = x.rank();
  if (seq_dim < 0 || seq_dim >= rank) fail("seq_dim ", seq_dim, " is out of range for rank ", rank);
  if (batch_dim < 0 || batch_dim >= rank) fail("batch_dim ", batch_dim, " is out of range for rank ", rank);
  if (seq_dim == batch_dim) fail("seq_dim == batch_dim == ", seq_dim);
  std::vector<int64_t> lens = vector_input(c.input(1), "seq_lengths");
  if (static_cast<int64_t>(lens.size()) != x.dim(batch_dim))
    fail("Length of seq_lengths != input.dims(", batch_dim, "), (", lens.size(), " vs. ", x.dim(batch_dim), ")");
  for (size_t b = 0; b < lens.size(); ++b) {
    if (lens[b] < 0) fail("seq_lengths(", b, ") < 0");
    if (lens[b] > x.dim(seq_dim)) fail("seq_lens(", b, ") > input.dims(", seq_dim, ")");
  }
  std::vector<int64_t> strides = ops::strides_of(x.shape());
  const int64_t sb = strides[batch_dim], ss = strides[seq_dim], nb = x.dim(batch_dim), ns = x.dim(seq_dim);
  Tensor out = x.clone();
  with_elem_type(x.dtype(), [&]<typename E>() {
    const E* src = elems<E>(x);
    E* dst = elems<E>(out);
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      const int64_t b = (i / sb) % nb, s = (i / ss) % ns;
      if (s < lens[b]) dst[i] = src[i + (lens[b] - 1 - 2 * s) * ss];
    }
  });
  c.set_output(0, out);
}

// ---------------------------------------------------------------------------------------------
// StridedSliceGrad(shape, begin, end, strides, dy): dy written into zeros of `shape` where
// StridedSlice with the same operands and masks read (the gradient of StridedSlice).

void infer_strided_slice_grad(InferContext& c) {
  auto dims = ops::known_ints(c, 0);
  DType t = c.input(4).dtype;
  if (dims) return c.set_output(0, t, PartialShape(*dims));
  const PartialShape& s = c.input(0).shape;
  c.set_output(0, t, s.known_rank && s.rank() == 1 ? unknown_dims(s.dims[0]) : PartialShape::unknown());
}

void strided_slice_grad_kernel(KernelContext& c) {
  Shape shape = vector_input(c.input(0), "shape");
  StridedSliceArgs a = strided_slice_args(c.node);
  a.begin = vector_input(c.input(1), "begin");
  a.end = vector_input(c.input(2), "end");
  a.strides = vector_input(c.input(3), "strides");
  StridedSliceSpec spec = strided_slice_spec(shape, a);
  const Tensor& dy = c.input(4);
  TS_CHECK(dy.num_elements() == product(spec.size, 0, spec.size.size()), "dy has shape ",
           shape_str(dy.shape()), ", the slice has ", shape_str(spec.final_shape));
  Tensor dx(dy.dtype(), shape);
  std::vector<int64_t> strides = ops::strides_of(shape);
  Offsets off(shape.size());
  for (size_t d = 0; d < off.size(); ++d)
    off[d] = linear_offsets(spec.size[d], spec.begin[d], spec.stride[d], strides[d]);
  // Walk the slice in row-major order; slices never hit an element twice, so stores suffice.
  const size_t esize = dtype_size(dy.dtype());
  const char* src = static_cast<const char*>(dy.raw());
  char* dst = static_cast<char*>(dx.mutable_raw());
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < dy.num_elements(); ++i) {
    int64_t o = 0;
    for (size_t d = 0; d < idx.size(); ++d) o += off[d][idx[d]];
    std::memcpy(dst + o * esize, src + i * esize, esize);
    for (size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < spec.size[d]) break;
      idx[d] = 0;
    }
  }
  c.set_output(0, std::move(dx));
}

// ---------------------------------------------------------------------------------------------
// Gradients (ir/grad.h).

GradList grad_strided_slice(GradContext& c) {
  AttrMap attrs;
  for (const char* k : {"begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"})
    attrs[k] = c.node.attr_or<int64_t>(k, 0);
  DType index = c.dtype(c.x(1));
  attrs["T"] = c.dtype(c.y());
  attrs["Index"] = index;
  return {c.op("StridedSliceGrad", {c.shape(c.x(0), index), c.x(1), c.x(2), c.x(3), c.dy()}, attrs),
          std::nullopt, std::nullopt, std::nullopt};
}

// Slice: pad the gradient back with [begin, dim - begin - size] per axis.
GradList grad_slice(GradContext& c) {
  Value g = c.dy();
  DType index = c.dtype(c.x(1));
  Value begin = c.x(1);
  Value after = c.binary("Sub", c.binary("Sub", c.shape(c.x(0), index), begin), c.shape(g, index));
  Value pads = c.op("Pack", {begin, after}, {{"T", index}, {"N", int64_t{2}}, {"axis", int64_t{1}}});
  return {c.op("Pad", {g, pads}, {{"T", c.dtype(g)}, {"Tpaddings", index}}), std::nullopt, std::nullopt};
}

GradList grad_transpose(GradContext& c) {
  DType pt = c.dtype(c.x(1));
  Value inv = c.op("InvertPermutation", {c.x(1)}, {{"T", pt}});
  return {c.op("Transpose", {c.dy(), inv}, {{"T", c.dtype(c.x(0))}, {"Tperm", pt}}), std::nullopt};
}

// Tile: view the gradient as [m0, d0, m1, d1, ...] and sum over the multiples' axes.
GradList grad_tile(GradContext& c) {
  DType mt = c.dtype(c.x(1));
  Value both = c.op("Pack", {c.x(1), c.shape(c.x(0), mt)}, {{"T", mt}, {"N", int64_t{2}}, {"axis", int64_t{1}}});
  Value split_shape = c.op("Reshape", {both, c.ints({-1})}, {{"T", mt}, {"Tshape", DType::kInt32}});
  Value n = c.op("Size", {split_shape}, {{"T", mt}, {"out_type", DType::kInt32}});
  Value axes = c.op("Range", {c.int_scalar(0), n, c.int_scalar(2)}, {{"Tidx", DType::kInt32}});
  return {c.sum(c.reshape(c.dy(), split_shape), axes), std::nullopt};
}

GradList grad_broadcast_to(GradContext& c) { return {c.reduce_to(c.dy(), c.x(0)), std::nullopt}; }

// Pad/PadV2: the gradient is the unpadded window (none for constant_values, as TF).
GradList grad_pad(GradContext& c) {
  DType pt = c.dtype(c.x(1));
  Value pads = c.x(1);
  Value first = c.op("Slice", {pads, c.cast(c.ints({0, 0}), pt), c.cast(c.ints({-1, 1}), pt)},
                     {{"T", pt}, {"Index", pt}});
  Value begin = c.op("Reshape", {first, c.ints({-1})}, {{"T", pt}, {"Tshape", DType::kInt32}});
  Value dx = c.op("Slice", {c.dy(), begin, c.shape(c.x(0), pt)}, {{"T", c.dtype(c.dy())}, {"Index", pt}});
  GradList out(c.node.inputs.size());
  out[0] = dx;
  return out;
}

GradList grad_reverse_v2(GradContext& c) {
  return {c.op("ReverseV2", {c.dy(), c.x(1)}, {{"T", c.dtype(c.dy())}, {"Tidx", c.dtype(c.x(1))}}), std::nullopt};
}

}  // namespace

void register_slice_ops(OpRegistry& r) {
  const int64_t zero = 0;
  const AttrMap masks = {{"begin_mask", zero}, {"end_mask", zero}, {"ellipsis_mask", zero},
                         {"new_axis_mask", zero}, {"shrink_axis_mask", zero}};
  add_with_grad(r, {.name = "StridedSlice", .attr_defaults = masks,
                    .infer = infer_strided_slice, .compute = strided_slice_kernel}, grad_strided_slice);
  r.add({.name = "StridedSliceGrad", .attr_defaults = masks,
         .infer = infer_strided_slice_grad, .compute = strided_slice_grad_kernel});
  add_with_grad(r, {.name = "Slice", .infer = infer_slice, .compute = slice_kernel}, grad_slice);
  add_with_grad(r, {.name = "Transpose", .attr_defaults = {{"Tperm", DType::kInt32}}, .infer = infer_transpose,
                    .compute = [](KernelContext& c) { c.set_output(0, transpose_input(c)); }},
                grad_transpose);
  r.add({.name = "ConjugateTranspose", .attr_defaults = {{"Tperm", DType::kInt32}},
         .infer = infer_transpose, .compute = conjugate_transpose_kernel});
  add_with_grad(r, {.name = "Tile", .attr_defaults = {{"Tmultiples", DType::kInt32}}, .infer = infer_tile,
                    .compute = tile_kernel}, grad_tile);
  add_with_grad(r, {.name = "BroadcastTo", .attr_defaults = {{"Tidx", DType::kInt32}}, .infer = infer_broadcast_to,
                    .compute = broadcast_to_kernel}, grad_broadcast_to);
  for (const char* name : {"Pad", "PadV2", "MirrorPad"})  // MirrorPad: no gradient yet
    add_with_grad(r, {.name = name, .attr_defaults = {{"Tpaddings", DType::kInt32}}, .infer = infer_pad,
                      .compute = pad_kernel}, std::string(name) == "MirrorPad" ? GradFn() : GradFn(grad_pad));
  add_with_grad(r, {.name = "ReverseV2", .attr_defaults = {{"Tidx", DType::kInt32}},
                    .infer = [](InferContext& c) { ops::infer_same_as_input(c); }, .compute = reverse_v2_kernel},
                grad_reverse_v2);
  r.add({.name = "Reverse", .infer = [](InferContext& c) { ops::infer_same_as_input(c); },
         .compute = reverse_kernel});
  r.add({.name = "SpaceToBatchND",
         .attr_defaults = {{"Tblock_shape", DType::kInt32}, {"Tpaddings", DType::kInt32}},
         .infer = infer_block_op, .compute = space_to_batch_kernel});
  r.add({.name = "BatchToSpaceND",
         .attr_defaults = {{"Tblock_shape", DType::kInt32}, {"Tcrops", DType::kInt32}},
         .infer = infer_block_op, .compute = batch_to_space_kernel});
  r.add({.name = "Roll", .infer = [](InferContext& c) { ops::infer_same_as_input(c); }, .compute = roll_kernel});
  r.add({.name = "ReverseSequence", .attr_defaults = {{"batch_dim", int64_t{0}}, {"Tlen", DType::kInt64}},
         .infer = [](InferContext& c) { ops::infer_same_as_input(c); }, .compute = reverse_sequence_kernel});
  for (const char* name : {"SpaceToDepth", "DepthToSpace"})
    r.add({.name = name, .attr_defaults = {{"data_format", std::string("NHWC")}}, .infer = infer_depth_op,
           .compute = depth_kernel});
}

}  // namespace tessera
