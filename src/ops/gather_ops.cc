// Index-driven ops: Gather, GatherV2, GatherNd, ScatterNd, TensorScatter{Update,Add,Sub,Max,Min},
// OneHot, Where, Unique, UniqueWithCounts, DynamicPartition, DynamicStitch.
#include <algorithm>
#include <cmath>
#include <complex>
#include <unordered_map>

#include "ir/grad.h"
#include "ops/array_families.h"
#include "ops/array_util.h"

namespace tessera {
namespace {

using namespace ops::array;

// "[1,2]": the multi-dimensional position of flat element `flat` in `shape`, for messages.
std::string position(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] > 0) {
      idx[d] = flat % shape[d];
      flat /= shape[d];
    }
  }
  std::string out = "[";
  for (size_t d = 0; d < idx.size(); ++d) out += (d ? "," : "") + std::to_string(idx[d]);
  return out + "]";
}

std::string join_ints(const int64_t* v, int64_t n) {
  std::string out = "[";
  for (int64_t i = 0; i < n; ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  return out + "]";
}

Shape prefix(const Shape& s, size_t n) { return Shape(s.begin(), s.begin() + n); }

// ---------------------------------------------------------------------------------------------
// Gather, GatherV2.

struct GatherDims {
  int64_t axis, batch_dims;
};

GatherDims gather_dims(int64_t axis, int64_t batch_dims, int64_t params_rank, int64_t indices_rank) {
  if (batch_dims < -indices_rank || batch_dims > indices_rank)
    fail("Expected batch_dims in the range [", -indices_rank, ", ", indices_rank, "], but got ", batch_dims);
  if (batch_dims < 0) batch_dims += indices_rank;
  if (axis < -params_rank || axis >= params_rank)
    fail("Expected axis in the range [", -params_rank, ", ", params_rank, "), but got ", axis);
  if (axis < 0) axis += params_rank;
  if (batch_dims >= params_rank && params_rank > 0)
    fail("batch_dims (", batch_dims, ") must be less than rank(params) (", params_rank, ").");
  if (batch_dims > axis) fail("batch_dims (", batch_dims, ") must be less than or equal to axis (", axis, ").");
  return {axis, batch_dims};
}

void infer_gather(InferContext& c) {
  const ValueInfo &params = c.input(0), &indices = c.input(1);
  const bool v2 = c.node.op == "GatherV2";
  std::optional<std::vector<int64_t>> axis = v2 ? ops::known_ints(c, 2) : std::vector<int64_t>{0};
  int64_t batch_dims = v2 ? c.attr_or<int64_t>("batch_dims", 0) : 0;
  const int64_t pr = params.shape.rank(), ir = indices.shape.rank();
  if (pr < 0 || ir < 0 || !axis || axis->size() != 1) {
    if (batch_dims < 0 && ir >= 0) batch_dims += ir;
    c.set_output(0, params.dtype, unknown_dims(pr < 0 || ir < 0 ? -1 : pr + ir - 1 - batch_dims));
    return;
  }
  if (pr == 0) fail("params must be at least 1 dimensional");
  GatherDims g = gather_dims((*axis)[0], batch_dims, pr, ir);
  std::vector<int64_t> dims(params.shape.dims.begin(), params.shape.dims.begin() + g.axis);
  for (int64_t i = 0; i < g.batch_dims; ++i)
    dims[i] = merge_dim(dims[i], indices.shape.dims[i], "batch dimensions of params and indices");
  dims.insert(dims.end(), indices.shape.dims.begin() + g.batch_dims, indices.shape.dims.end());
  dims.insert(dims.end(), params.shape.dims.begin() + g.axis + 1, params.shape.dims.end());
  c.set_output(0, params.dtype, PartialShape(dims));
  set_known_if_determined(c);
}

void gather_kernel(KernelContext& c) {
  const bool v2 = c.node.op == "GatherV2";
  const int64_t axis = v2 ? scalar_operand(c.input(2), "axis") : 0;
  c.set_output(0, gather(c.input(0), c.input(1), axis, v2 ? c.attr_or<int64_t>("batch_dims", 0) : 0));
}

// ---------------------------------------------------------------------------------------------
// GatherNd.

void infer_gather_nd(InferContext& c) {
  const ValueInfo &params = c.input(0), &indices = c.input(1);
  const PartialShape &ps = params.shape, &is = indices.shape;
  if (is.known_rank && is.rank() == 0) fail("indices must be at least a vector");
  if (!ps.known_rank || !is.known_rank || is.dims.back() < 0) {
    c.set_output(0, params.dtype, PartialShape::unknown());
    return;
  }
  const int64_t k = is.dims.back();
  if (k > ps.rank()) fail("index innermost dimension length must be <= params rank; saw: ", k, " vs. ", ps.rank());
  std::vector<int64_t> dims(is.dims.begin(), is.dims.end() - 1);
  dims.insert(dims.end(), ps.dims.begin() + k, ps.dims.end());
  c.set_output(0, params.dtype, PartialShape(dims));
}

// Flat slice numbers of each index row into the leading `k` dims of `shape`; `what` words the
// out-of-range error ("param shape" / "shape").
std::vector<int64_t> nd_rows(const Tensor& indices, const Shape& shape, const char* what) {
  if (indices.rank() == 0) fail("indices must be at least a vector");
  const int64_t k = indices.dim(indices.rank() - 1);
  if (k > static_cast<int64_t>(shape.size()))
    fail("index innermost dimension length must be <= ", what, " rank; saw: ", k, " vs. ", shape.size());
  const Shape batch_shape = prefix(indices.shape(), indices.rank() - 1);
  const int64_t rows = num_elements(batch_shape);
  std::vector<int64_t> idx = read_ints(indices);
  std::vector<int64_t> out(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    int64_t flat = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t v = idx[r * k + j];
      if (v < 0 || v >= shape[j])
        fail("indices", position(r, batch_shape), " = ", join_ints(&idx[r * k], k), " does not index into ",
             what, " ", shape_str(shape));
      flat = flat * shape[j] + v;
    }
    out[r] = flat;
  }
  return out;
}

void gather_nd_kernel(KernelContext& c) {
  const Tensor &params = c.input(0), &indices = c.input(1);
  std::vector<int64_t> rows = nd_rows(indices, params.shape(), "param shape");
  const int64_t k = indices.dim(indices.rank() - 1);
  Shape out_shape = prefix(indices.shape(), indices.rank() - 1);
  for (int64_t d = k; d < params.rank(); ++d) out_shape.push_back(params.dim(d));
  const int64_t slice = product(params.shape(), k, params.shape().size());
  Tensor out(params.dtype(), out_shape);
  if (out.num_elements() > 0) {
    with_elem_type(params.dtype(), [&]<typename E>() {
      const E* src = elems<E>(params);
      E* dst = elems<E>(out);
      for (size_t r = 0; r < rows.size(); ++r) std::copy(src + rows[r] * slice, src + (rows[r] + 1) * slice, dst + r * slice);
    });
  }
  c.set_output(0, out);
}

// ---------------------------------------------------------------------------------------------
// ScatterNd, TensorScatter*.

enum class Combine { kAssign, kAdd, kSub, kMax, kMin };

Combine combine_of(const std::string& op) {
  if (op == "ScatterNd" || op == "TensorScatterAdd") return Combine::kAdd;
  if (op == "TensorScatterSub") return Combine::kSub;
  if (op == "TensorScatterMax") return Combine::kMax;
  if (op == "TensorScatterMin") return Combine::kMin;
  return Combine::kAssign;
}

template <typename T>
void combine(T& a, const T& b, Combine how) {
  if constexpr (std::is_same_v<T, bool>) {
    a = a || b;  // TF adds bools as logical or
  } else if constexpr (std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>) {
    float x = static_cast<float>(a), y = static_cast<float>(b);
    if (how == Combine::kAdd) a = T(x + y);
    else if (how == Combine::kSub) a = T(x - y);
    else if (how == Combine::kMax) a = x < y ? b : a;
    else a = y < x ? b : a;
  } else if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;  // wrap on overflow like TF instead of UB
    if (how == Combine::kAdd) a = static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
    else if (how == Combine::kSub) a = static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
    else if (how == Combine::kMax) a = a < b ? b : a;
    else a = b < a ? b : a;
  } else {
    if (how == Combine::kAdd) a = a + b;
    else if (how == Combine::kSub) a = a - b;
    else if constexpr (!std::is_same_v<T, std::complex<float>> && !std::is_same_v<T, std::complex<double>>) {
      if (how == Combine::kMax) a = a < b ? b : a;
      else a = b < a ? b : a;
    }
  }
}

// Scatters `updates` (rows of `slice` elements) into `out` at `rows`.
void scatter_into(Tensor& out, const std::vector<int64_t>& rows, const Tensor& updates, int64_t slice, Combine how) {
  if (out.num_elements() == 0 || slice == 0) return;
  if (how == Combine::kAssign) {  // later rows win, as TF's sequential CPU kernel does
    with_elem_type(out.dtype(), [&]<typename E>() {
      const E* src = elems<E>(updates);
      E* dst = elems<E>(out);
      for (size_t r = 0; r < rows.size(); ++r) std::copy(src + r * slice, src + (r + 1) * slice, dst + rows[r] * slice);
    });
    return;
  }
  auto run = [&]<typename T>(T* dst, const T* src) {
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t k = 0; k < slice; ++k) combine(dst[rows[r] * slice + k], src[r * slice + k], how);
  };
  if (out.dtype() == DType::kString) {
    if (how != Combine::kAdd) fail("string tensors only support ScatterNd");
    std::string* dst = out.strings().data();
    const std::string* src = updates.strings().data();
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t k = 0; k < slice; ++k) dst[rows[r] * slice + k] += src[r * slice + k];
    return;
  }
  if (how == Combine::kMax || how == Combine::kMin) {
    dispatch(RealTypes{}, out.dtype(), "TensorScatterMax/Min", [&]<typename T>() {
      run(out.data<T>(), updates.data<T>());
    });
  } else if (out.dtype() == DType::kBool) {
    if (how != Combine::kAdd) fail("bool tensors only support ScatterNd and TensorScatterUpdate");
    run(out.data<bool>(), updates.data<bool>());
  } else {
    dispatch(Types<float, double, float16, bfloat16, int32_t, int64_t, uint8_t, int8_t, int16_t, uint16_t,
                   uint32_t, uint64_t, std::complex<float>, std::complex<double>>{},
             out.dtype(), "scatter", [&]<typename T>() { run(out.data<T>(), updates.data<T>()); });
  }
}

// Checks updates.shape == indices.shape[:-1] + shape[k:].
void check_updates(const Tensor& indices, const Tensor& updates, const Shape& shape) {
  const int64_t k = indices.dim(indices.rank() - 1);
  Shape want = prefix(indices.shape(), indices.rank() - 1);
  for (size_t d = k; d < shape.size(); ++d) want.push_back(shape[d]);
  if (updates.shape() != want)
    fail("updates must have shape indices.shape[:-1] + shape[", k, ":] = ", shape_str(want), ", got ",
         shape_str(updates.shape()));
}

void scatter_nd_kernel(KernelContext& c) {
  const Tensor &indices = c.input(0), &updates = c.input(1);
  const Tensor& shape_t = c.input(2);
  if (shape_t.rank() != 1) fail("shape must be a vector, got ", shape_str(shape_t.shape()));
  Shape shape = read_ints(shape_t);
  for (int64_t d : shape)
    if (d < 0) fail("Dimensions of shape must be non-negative: ", shape_str(shape));
  if (indices.rank() == 0) fail("indices must be at least a vector");
  check_updates(indices, updates, shape);
  std::vector<int64_t> rows = nd_rows(indices, shape, "shape");
  const int64_t k = indices.dim(indices.rank() - 1);
  Tensor out(updates.dtype(), shape);
  scatter_into(out, rows, updates, product(shape, k, shape.size()), Combine::kAdd);
  c.set_output(0, out);
}

void tensor_scatter_kernel(KernelContext& c) {
  const Tensor &tensor = c.input(0), &indices = c.input(1), &updates = c.input(2);
  if (indices.rank() == 0) fail("indices must be at least a vector");
  check_updates(indices, updates, tensor.shape());
  std::vector<int64_t> rows = nd_rows(indices, tensor.shape(), "shape");
  const int64_t k = indices.dim(indices.rank() - 1);
  Tensor out = tensor.clone();
  scatter_into(out, rows, updates, product(tensor.shape(), k, tensor.shape().size()), combine_of(c.node.op));
  c.set_output(0, out);
}

// ---------------------------------------------------------------------------------------------
// OneHot.

int64_t one_hot_axis(const Node& node, int64_t rank) {
  int64_t axis = node.attr_or<int64_t>("axis", -1);
  if (axis < -1 || axis > rank) fail("Expected axis to be -1 or between [0, ", rank, "].  But received: ", axis);
  return axis == -1 ? rank : axis;
}

void infer_one_hot(InferContext& c) {
  const ValueInfo& indices = c.input(0);
  auto depth = ops::known_ints(c, 1);
  if (!indices.shape.known_rank) {
    c.set_output(0, c.input(2).dtype, PartialShape::unknown());
    return;
  }
  std::vector<int64_t> dims = indices.shape.dims;
  int64_t d = depth && depth->size() == 1 ? (*depth)[0] : -1;
  if (depth && d < 0) fail("depth must be non-negative, got: ", d);
  dims.insert(dims.begin() + one_hot_axis(c.node, indices.shape.rank()), d);
  c.set_output(0, c.input(2).dtype, PartialShape(dims));
}

void one_hot_kernel(KernelContext& c) {
  const Tensor &indices = c.input(0), &on = c.input(2), &off = c.input(3);
  const int64_t depth = scalar_operand(c.input(1), "depth");
  if (c.input(1).rank() != 0) fail("depth must be a scalar");
  if (depth < 0) fail("depth must be non-negative, got: ", depth);
  if (on.rank() != 0) fail("on_value must be a scalar, but got: ", shape_str(on.shape()));
  if (off.rank() != 0) fail("off_value must be a scalar, but got: ", shape_str(off.shape()));
  const int64_t axis = one_hot_axis(c.node, indices.rank());
  Shape out_shape = indices.shape();
  out_shape.insert(out_shape.begin() + axis, depth);
  const int64_t before = product(indices.shape(), 0, axis);
  const int64_t after = product(indices.shape(), axis, indices.shape().size());
  std::vector<int64_t> idx = read_ints(indices);
  Tensor out(on.dtype(), out_shape);
  if (out.num_elements() > 0) {
    with_elem_type(on.dtype(), [&]<typename E>() {
      E* o = elems<E>(out);
      const E on_v = elems<E>(on)[0];
      std::fill(o, o + out.num_elements(), elems<E>(off)[0]);
      for (int64_t p = 0; p < before; ++p)
        for (int64_t s = 0; s < after; ++s) {
          const int64_t v = idx[p * after + s];
          if (v >= 0 && v < depth) o[(p * depth + v) * after + s] = on_v;
        }
    });
  }
  c.set_output(0, out);
}

// ---------------------------------------------------------------------------------------------
// Where.

template <typename T>
bool nonzero(const T& v) {
  if constexpr (std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>) return static_cast<float>(v) != 0.0f;
  else return v != T(0);
}

void where_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> hits;
  dispatch(PodTypes{}, x.dtype(), "Where", [&]<typename T>() {
    const T* p = x.data<T>();
    for (int64_t i = 0; i < x.num_elements(); ++i)
      if (nonzero(p[i])) hits.push_back(i);
  });
  const int64_t rank = x.rank();
  Tensor out(DType::kInt64, {static_cast<int64_t>(hits.size()), rank});
  int64_t* o = out.data<int64_t>();
  for (size_t h = 0; h < hits.size(); ++h) {
    int64_t flat = hits[h];
    for (int64_t d = rank; d-- > 0;) {
      o[h * rank + d] = flat % x.dim(d);
      flat /= x.dim(d);
    }
  }
  c.set_output(0, out);
}

// ---------------------------------------------------------------------------------------------
// Unique, UniqueWithCounts: first-occurrence order; NaNs never equal each other.

using UniqueTypes = Types<float, double, float16, bfloat16, int32_t, int64_t, uint8_t, int8_t, int16_t,
                          uint16_t, uint32_t, uint64_t, bool>;

template <typename T, typename K>
void unique_impl(const T* x, int64_t n, std::vector<int64_t>& idx, std::vector<int64_t>& firsts,
                 std::vector<int64_t>& counts) {
  std::unordered_map<K, int64_t> seen;
  seen.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t slot;
    if constexpr (std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>) {
      // TF hashes 16-bit floats by their bits: -0 and 0 stay distinct, and NaN equals nothing.
      if (std::isnan(static_cast<float>(x[i]))) {
        slot = -1;
      } else {
        slot = seen.try_emplace(x[i].bits, static_cast<int64_t>(firsts.size())).first->second;
      }
    } else {
      slot = seen.try_emplace(x[i], static_cast<int64_t>(firsts.size())).first->second;
    }
    if (slot < 0 || slot == static_cast<int64_t>(firsts.size())) {
      slot = static_cast<int64_t>(firsts.size());
      firsts.push_back(i);
      counts.push_back(0);
    }
    idx[i] = slot;
    ++counts[slot];
  }
}

void unique_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  if (x.rank() != 1) fail("unique expects a 1D vector, got shape ", shape_str(x.shape()));
  const int64_t n = x.num_elements();
  std::vector<int64_t> idx(static_cast<size_t>(n)), firsts, counts;
  if (x.dtype() == DType::kString) {
    unique_impl<std::string, std::string>(x.strings().data(), n, idx, firsts, counts);
  } else {
    dispatch(UniqueTypes{}, x.dtype(), "Unique", [&]<typename T>() {
      using K = std::conditional_t<std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>, uint16_t, T>;
      unique_impl<T, K>(x.data<T>(), n, idx, firsts, counts);
    });
  }
  std::vector<std::vector<int64_t>> off{std::vector<int64_t>(firsts)};
  c.set_output(0, gather_offsets(x, {static_cast<int64_t>(firsts.size())}, off));
  const DType idx_type = c.attr_or<DType>("out_idx", DType::kInt32);
  c.set_output(1, make_ints(idx_type, idx));
  if (c.node.op == "UniqueWithCounts") c.set_output(2, make_ints(idx_type, counts));
}

void infer_unique(InferContext& c) {
  const ValueInfo& x = c.input(0);
  if (x.shape.known_rank && x.shape.rank() != 1) fail("unique expects a 1D vector, got shape ", x.shape.str());
  const DType idx_type = c.attr_or<DType>("out_idx", DType::kInt32);
  c.set_output(0, x.dtype, PartialShape({-1}));
  c.set_output(1, idx_type, x.shape.known_rank ? x.shape : PartialShape({-1}));
  if (c.node.op == "UniqueWithCounts") c.set_output(2, idx_type, PartialShape({-1}));
}

// ---------------------------------------------------------------------------------------------
// DynamicPartition, DynamicStitch, ParallelDynamicStitch.

void infer_dynamic_partition(InferContext& c) {
  const ValueInfo &data = c.input(0), &parts = c.input(1);
  const int64_t num = c.attr<int64_t>("num_partitions");
  PartialShape out = PartialShape::unknown();
  if (data.shape.known_rank && parts.shape.known_rank) {
    if (parts.shape.rank() > data.shape.rank())
      fail("partitions rank ", parts.shape.rank(), " exceeds data rank ", data.shape.rank());
    std::vector<int64_t> dims{-1};
    dims.insert(dims.end(), data.shape.dims.begin() + parts.shape.rank(), data.shape.dims.end());
    out = PartialShape(dims);
  }
  for (int64_t i = 0; i < num; ++i) c.set_output(i, data.dtype, out);
}

void dynamic_partition_kernel(KernelContext& c) {
  const Tensor &data = c.input(0), &parts = c.input(1);
  const int64_t num = c.attr<int64_t>("num_partitions");
  const Shape& ds = data.shape();
  bool prefix_ok = parts.rank() <= data.rank();
  for (int64_t d = 0; prefix_ok && d < parts.rank(); ++d) prefix_ok = parts.dim(d) == ds[d];
  if (!prefix_ok)
    fail("data.shape must start with partitions.shape, got data.shape = ", shape_str(ds),
         ", partitions.shape = ", shape_str(parts.shape()));
  std::vector<int64_t> p = read_ints(parts);
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(num));
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] < 0 || p[i] >= num)
      fail("partitions", position(static_cast<int64_t>(i), parts.shape()), " = ", p[i], " is not in [0, ", num, ")");
    rows[p[i]].push_back(static_cast<int64_t>(i));
  }
  const int64_t slice = product(ds, parts.rank(), ds.size());
  for (int64_t k = 0; k < num; ++k) {
    Shape shape{static_cast<int64_t>(rows[k].size())};
    shape.insert(shape.end(), ds.begin() + parts.rank(), ds.end());
    Tensor out(data.dtype(), shape);
    if (out.num_elements() > 0) {
      with_elem_type(data.dtype(), [&]<typename E>() {
        const E* src = elems<E>(data);
        E* dst = elems<E>(out);
        for (int64_t r : rows[k]) dst = std::copy(src + r * slice, src + (r + 1) * slice, dst);
      });
    }
    c.set_output(k, out);
  }
}

void infer_dynamic_stitch(InferContext& c) {
  const size_t n = c.num_inputs() / 2;
  const ValueInfo &idx0 = c.input(0), &data0 = c.input(n);
  PartialShape out = PartialShape::unknown();
  if (idx0.shape.known_rank && data0.shape.known_rank && data0.shape.rank() >= idx0.shape.rank()) {
    std::vector<int64_t> dims{-1};
    dims.insert(dims.end(), data0.shape.dims.begin() + idx0.shape.rank(), data0.shape.dims.end());
    out = PartialShape(dims);
  }
  c.set_output(0, data0.dtype, out);
}

// merged[indices[m][i]] = data[m][i]; later (m, i) win, as TF's CPU kernel does.
void dynamic_stitch_kernel(KernelContext& c) {
  const size_t n = c.num_inputs() / 2;
  if (n == 0 || c.num_inputs() != 2 * n) fail("DynamicStitch needs N indices and N data tensors");
  const Tensor &idx0 = c.input(0), &data0 = c.input(n);
  if (data0.rank() < idx0.rank()) fail("data[0] rank is smaller than indices[0] rank");
  const Shape rest(data0.shape().begin() + idx0.rank(), data0.shape().end());
  const int64_t slice = num_elements(rest);
  std::vector<std::vector<int64_t>> idx(n);
  int64_t rows = 0;
  for (size_t m = 0; m < n; ++m) {
    const Tensor &im = c.input(m), &dm = c.input(n + m);
    Shape want = im.shape();
    want.insert(want.end(), rest.begin(), rest.end());
    if (dm.shape() != want)
      fail("data[", m, "].shape = ", shape_str(dm.shape()), " does not start with indices[", m,
           "].shape = ", shape_str(im.shape()), " followed by ", shape_str(rest));
    idx[m] = read_ints(im);
    for (int64_t v : idx[m]) {
      if (v < 0) fail("indices[", m, "] contains the negative index ", v);
      rows = std::max(rows, v + 1);
    }
  }
  Shape shape{rows};
  shape.insert(shape.end(), rest.begin(), rest.end());
  Tensor out(data0.dtype(), shape);
  if (out.num_elements() > 0) {
    with_elem_type(data0.dtype(), [&]<typename E>() {
      E* dst = elems<E>(out);
      for (size_t m = 0; m < n; ++m) {
        const E* src = elems<E>(c.input(n + m));
        for (size_t i = 0; i < idx[m].size(); ++i)
          std::copy(src + i * slice, src + (i + 1) * slice, dst + idx[m][i] * slice);
      }
    });
  }
  c.set_output(0, out);
}

}  // namespace

Tensor ops::array::gather(const Tensor& params, const Tensor& indices, int64_t axis_value, int64_t batch_dims) {
  if (params.rank() == 0) fail("params must be at least 1 dimensional");
  GatherDims g = gather_dims(axis_value, batch_dims, params.rank(), indices.rank());
  for (int64_t i = 0; i < g.batch_dims; ++i)
    if (params.dim(i) != indices.dim(i))
      fail("params.shape[", i, "]: ", params.dim(i), " should be equal to indices.shape[", i, "]: ", indices.dim(i));
  const Shape& ps = params.shape();
  const int64_t batch = product(ps, 0, g.batch_dims), outer = product(ps, g.batch_dims, g.axis);
  const int64_t n = ps[g.axis], inner = product(ps, g.axis + 1, ps.size());
  const int64_t count = product(indices.shape(), g.batch_dims, indices.shape().size());
  Shape out_shape = prefix(ps, g.axis);
  for (int64_t d = g.batch_dims; d < indices.rank(); ++d) out_shape.push_back(indices.dim(d));
  for (size_t d = g.axis + 1; d < ps.size(); ++d) out_shape.push_back(ps[d]);
  std::vector<int64_t> idx = read_ints(indices);
  for (size_t i = 0; i < idx.size(); ++i)
    if (idx[i] < 0 || idx[i] >= n)
      fail("indices", position(static_cast<int64_t>(i), indices.shape()), " = ", idx[i], " is not in [0, ", n, ")");
  Tensor out(params.dtype(), out_shape);
  if (out.num_elements() == 0) return out;
  with_elem_type(params.dtype(), [&]<typename E>() {
    const E* src = elems<E>(params);
    E* dst = elems<E>(out);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t o = 0; o < outer; ++o) {
        const E* base = src + (b * outer + o) * n * inner;
        for (int64_t i = 0; i < count; ++i, dst += inner) {
          const E* row = base + idx[b * count + i] * inner;
          std::copy(row, row + inner, dst);
        }
      }
  });
  return out;
}

// GatherV2 gradient (axis 0, no batch dims): scatter-add the gradient rows into zeros shaped
// like params (ScatterNd sums duplicate indices).
GradList grad_gather(GradContext& c) {
  GradList out(c.node.inputs.size());
  if (!c.needs(0)) return out;
  const bool v2 = c.node.op == "GatherV2";
  int64_t axis = 0;
  if (v2) {
    auto ax = c.known_ints(2);
    TS_CHECK(ax && ax->size() == 1, "gradient needs the axis at compile time");
    axis = (*ax)[0];
    if (axis < 0) axis += c.shape_of(c.x(0)).rank();
  }
  if (axis != 0 || c.node.attr_or<int64_t>("batch_dims", 0) != 0)
    fail_code(ErrorCode::kUnimplemented, "gradient of a gather along axis ", axis, " (only axis 0)");
  Value params = c.x(0), g = c.dy();
  DType it = c.dtype(c.x(1));
  Value flat = c.op("Reshape", {c.x(1), c.ints({-1, 1})}, {{"T", it}, {"Tshape", DType::kInt32}});
  Value pshape = c.shape(params, it);
  Value rest = c.op("Slice", {pshape, c.cast(c.ints({1}), it), c.cast(c.ints({-1}), it)}, {{"T", it}, {"Index", it}});
  Value rows_shape = c.op("ConcatV2", {c.cast(c.ints({-1}), it), rest, c.int_scalar(0)},
                          {{"T", it}, {"N", int64_t{2}}, {"Tidx", DType::kInt32}});
  Value rows = c.reshape(g, rows_shape);
  out[0] = c.op("ScatterNd", {flat, rows, pshape}, {{"T", c.dtype(g)}, {"Tindices", it}});
  return out;
}

void register_gather_ops(OpRegistry& r) {
  add_with_grad(r, {.name = "Gather", .attr_defaults = {{"validate_indices", true}}, .infer = infer_gather,
                    .compute = gather_kernel}, grad_gather);
  add_with_grad(r, {.name = "GatherV2", .attr_defaults = {{"batch_dims", int64_t{0}}}, .infer = infer_gather,
                    .compute = gather_kernel}, grad_gather);
  const AttrMap policy = {{"bad_indices_policy", std::string()}};
  r.add({.name = "GatherNd", .attr_defaults = policy, .infer = infer_gather_nd, .compute = gather_nd_kernel});
  r.add({.name = "ScatterNd", .attr_defaults = policy,
         .infer = [](InferContext& c) {
           c.set_output(0, c.input(1).dtype, shape_from_partial(partial_input(c, 2)));
         },
         .compute = scatter_nd_kernel});
  for (const char* name : {"TensorScatterUpdate", "TensorScatterAdd", "TensorScatterSub", "TensorScatterMax",
                           "TensorScatterMin"})
    r.add({.name = name, .attr_defaults = policy, .infer = [](InferContext& c) { ops::infer_same_as_input(c); },
           .compute = tensor_scatter_kernel});
  r.add({.name = "OneHot", .attr_defaults = {{"axis", int64_t{-1}}, {"TI", DType::kInt64}},
         .infer = infer_one_hot, .compute = one_hot_kernel});
  r.add({.name = "Where", .attr_defaults = {{"T", DType::kBool}},
         .infer = [](InferContext& c) {
           c.set_output(0, DType::kInt64, PartialShape({-1, c.input(0).shape.rank()}));
         },
         .compute = where_kernel});
  r.add({.name = "Unique", .attr_defaults = {{"out_idx", DType::kInt32}},
         .output_args = {{"y", "", ""}, {"idx", "", ""}}, .infer = infer_unique, .compute = unique_kernel});
  r.add({.name = "UniqueWithCounts", .attr_defaults = {{"out_idx", DType::kInt32}},
         .output_args = {{"y", "", ""}, {"idx", "", ""}, {"count", "", ""}}, .infer = infer_unique,
         .compute = unique_kernel});
  r.add({.name = "DynamicPartition", .output_args = {{"outputs", "num_partitions", ""}},
         .infer = infer_dynamic_partition, .compute = dynamic_partition_kernel});
  for (const char* name : {"DynamicStitch", "ParallelDynamicStitch"})
    r.add({.name = name, .infer = infer_dynamic_stitch, .compute = dynamic_stitch_kernel});
}

}  // namespace tessera
