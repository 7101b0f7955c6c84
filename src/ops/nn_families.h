// Shared pieces of the nn op family (nn_ops.cc, conv_ops.cc, pool_ops.cc): the registration
// entry points register_nn_ops calls, a packed GEMM used by MatMul/BatchMatMul/Einsum/Conv, and
// the window geometry (SAME/VALID/EXPLICIT padding) conv and pooling share.
#pragma once
#include <string>
#include <vector>

#include "ops/op_helpers.h"

namespace tessera {

void register_conv_ops(OpRegistry& r);  // conv_ops.cc: Conv2D/3D, depthwise, conv backprop-input
void register_pool_ops(OpRegistry& r);  // pool_ops.cc: Max/AvgPool(3D), MaxPoolV2

namespace nn {

// The type kernels accumulate in: float for float/half/bfloat16 (as TF's CPU kernels do),
// double for double, int64 for integer types (the final cast wraps exactly like TF's int
// arithmetic, since wrapping is compatible with + and *).
template <typename T> struct AccOf { using type = int64_t; };
template <> struct AccOf<float> { using type = float; };
template <> struct AccOf<float16> { using type = float; };
template <> struct AccOf<bfloat16> { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <typename T> using Acc = typename AccOf<T>::type;

// C[i*ldc + j] (+)= sum_k A(i,k) * B(k,j), where A(i,k) = a[i*a_rs + k*a_cs] and
// B(k,j) = b[k*b_rs + j*b_cs] (strides express transposes without copies).
// Cache-blocked and register-tiled; single-threaded. Instantiated for float, double, int64_t.
template <typename A>
void gemm(int64_t m, int64_t n, int64_t k, const A* a, int64_t a_rs, int64_t a_cs, const A* b,
          int64_t b_rs, int64_t b_cs, A* c, int64_t ldc, bool accumulate);

// Calls f.template operator()<A>() with the accumulator type for outputs of dtype t.
template <typename F>
void with_acc(DType t, const char* what, F&& f) {
  switch (t) {
    case DType::kFloat32: case DType::kFloat16: case DType::kBFloat16:
      return f.template operator()<float>();
    case DType::kFloat64: return f.template operator()<double>();
    case DType::kInt8: case DType::kInt16: case DType::kInt32: case DType::kInt64:
    case DType::kUInt8: case DType::kUInt16: case DType::kUInt32: case DType::kUInt64:
      return f.template operator()<int64_t>();
    default: fail(what, ": unsupported dtype ", dtype_name(t));
  }
}

// Any real tensor's elements converted to the accumulator type A.
template <typename A>
std::vector<A> load(const Tensor& t) {
  std::vector<A> out(static_cast<size_t>(t.num_elements()));
  dispatch(RealTypes{}, t.dtype(), "input", [&]<typename T>() {
    const T* p = t.data<T>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<A>(p[i]);
  });
  return out;
}

// A tensor of `dtype` from accumulator values, rounding once per element.
template <typename A>
Tensor store(const A* v, DType dtype, Shape shape) {
  Tensor out(dtype, std::move(shape));
  dispatch(RealTypes{}, dtype, "output", [&]<typename T>() {
    T* o = out.data<T>();
    for (int64_t i = 0; i < out.num_elements(); ++i) o[i] = static_cast<T>(v[i]);
  });
  return out;
}

// Errors unless t is one of `ok` (the dtypes TF has CPU kernels for).
void check_dtype_in(DType t, std::initializer_list<DType> ok, const char* op);

// Spatial layout parsing shared by conv and pooling.
struct Layout {
  bool channels_first = false;  // NCHW / NCDHW
  int spatial = 2;              // 2 or 3 spatial dims
};
Layout parse_layout(const std::string& data_format, int spatial_dims);
// Positions of batch, channel and the i-th spatial dim in a tensor of this layout.
inline int batch_dim(const Layout&) { return 0; }
inline int channel_dim(const Layout& l) { return l.channels_first ? 1 : l.spatial + 1; }
inline int spatial_dim(const Layout& l, int i) { return l.channels_first ? 2 + i : 1 + i; }

// One spatial dimension of a sliding window: output size and padding before, as TF computes
// them for SAME/VALID/EXPLICIT. Unknown input (-1) gives an unknown output.
struct Window {
  int64_t out = 0;
  int64_t pad_before = 0;
  int64_t pad_after = 0;
};
enum class Padding { kSame, kValid, kExplicit };
Padding parse_padding(const std::string& s);
Window window(int64_t in, int64_t ksize, int64_t stride, int64_t dilation, Padding padding,
              int64_t explicit_before = 0, int64_t explicit_after = 0);

// Reads a per-dimension attribute list (strides/ksize/dilations) of rank+2 entries in the
// layout's order and returns the spatial entries; checks batch/channel entries are 1 when
// `batch_channel_one`.
std::vector<int64_t> spatial_attr(const Node& node, const std::vector<int64_t>& values,
                                  const Layout& layout, const char* what, bool batch_channel_one);

// Permutes a row-major tensor's elements: out dim i is in dim perm[i]. Works on raw element
// bytes, so one instantiation serves every dtype of the same size.
void transpose_bytes(const void* in, const Shape& in_shape, const std::vector<int>& perm,
                     size_t elem_size, void* out);
Tensor transpose(const Tensor& t, const std::vector<int>& perm);

}  // namespace nn
}  // namespace tessera
