// Pooling: MaxPool, MaxPoolV2 (window and strides as operands), AvgPool, MaxPool3D, AvgPool3D,
// and the 2D gradients MaxPoolGrad, AvgPoolGrad.
// Computed in channels-last layout (channels-first is transposed in and out); 2D pooling is
// the 3D loop with a unit depth. As in TF: max pooling starts from the dtype's lowest value and
// keeps it unless an element is strictly greater (so NaN and -inf never win), and average
// pooling divides by the number of in-bounds elements (SAME padding is not counted).
#include <algorithm>
#include <limits>

#include "ir/grad.h"
#include "ops/nn_families.h"

namespace tessera {
namespace {

using nn::Layout;
using nn::Padding;

struct PoolAttrs {
  Layout layout;
  Padding padding = Padding::kValid;
  std::vector<int64_t> ksize, strides, pad_before, pad_after;  // spatial entries
};

PoolAttrs pool_attrs(const Node& node, int spatial, const std::vector<int64_t>& ksize,
                     const std::vector<int64_t>& strides) {
  PoolAttrs a;
  a.layout = nn::parse_layout(node.attr_or<std::string>("data_format", spatial == 2 ? "NHWC" : "NDHWC"), spatial);
  a.padding = nn::parse_padding(node.attr<std::string>("padding"));
  a.ksize = nn::spatial_attr(node, ksize, a.layout, "ksize", true);
  a.strides = nn::spatial_attr(node, strides, a.layout, "strides", true);
  for (int64_t k : a.ksize) TS_CHECK(k >= 1, "ksize must be positive, got ", k);
  a.pad_before.assign(spatial, 0);
  a.pad_after.assign(spatial, 0);
  if (a.padding == Padding::kExplicit) {
    auto ep = node.attr_or<std::vector<int64_t>>("explicit_paddings", {});
    size_t rank = static_cast<size_t>(spatial + 2);
    TS_CHECK(ep.size() == 2 * rank, "explicit_paddings must have ", 2 * rank, " entries, got ", ep.size());
    for (int i = 0; i < spatial; ++i) {
      int d = nn::spatial_dim(a.layout, i);
      a.pad_before[i] = ep[2 * d];
      a.pad_after[i] = ep[2 * d + 1];
      TS_CHECK(a.pad_before[i] < a.ksize[i] && a.pad_after[i] < a.ksize[i],
               "explicit padding must be smaller than the window size");
    }
  }
  return a;
}

std::vector<int64_t> attr_ints(const Node& node, const char* key) {
  return node.attr<std::vector<int64_t>>(key);
}

nn::Window pool_window(const PoolAttrs& a, int i, int64_t in) {
  return nn::window(in, a.ksize[i], a.strides[i], 1, a.padding, a.pad_before[i], a.pad_after[i]);
}

void infer_pool_with(InferContext& c, int spatial, const std::optional<std::vector<int64_t>>& ksize,
                     const std::optional<std::vector<int64_t>>& strides) {
  const PartialShape& x = c.input(0).shape;
  DType t = c.attr<DType>("T");
  int rank = spatial + 2;
  if (!x.known_rank) {
    c.set_output(0, t, PartialShape::unknown());
    return;
  }
  TS_CHECK(x.rank() == rank, "input must be ", rank, "-dimensional, got ", x.str());
  PartialShape out = x;
  if (!ksize || !strides) {
    Layout l = nn::parse_layout(c.attr_or<std::string>("data_format", spatial == 2 ? "NHWC" : "NDHWC"), spatial);
    for (int i = 0; i < spatial; ++i) out.dims[nn::spatial_dim(l, i)] = -1;
    c.set_output(0, t, out);
    return;
  }
  PoolAttrs a = pool_attrs(c.node, spatial, *ksize, *strides);
  for (int i = 0; i < spatial; ++i) {
    int d = nn::spatial_dim(a.layout, i);
    out.dims[d] = pool_window(a, i, x.dims[d]).out;
  }
  c.set_output(0, t, out);
}

template <typename T>
nn::Acc<T> lowest_of() {
  if constexpr (std::is_same_v<T, float16>) return -65504.0f;
  else if constexpr (std::is_same_v<T, bfloat16>) return -3.38953139e38f;
  else return std::numeric_limits<T>::lowest();
}

template <typename T>
void pool_loop(const PoolAttrs& a, const Tensor& x, bool is_max, Tensor& y) {
  using A = nn::Acc<T>;
  int sp = a.layout.spatial, off = 3 - sp;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, pad[3] = {0, 0, 0};
  for (int i = 0; i < sp; ++i) {
    nn::Window w = pool_window(a, i, x.dim(1 + i));
    in[off + i] = x.dim(1 + i);
    out[off + i] = w.out;
    k[off + i] = a.ksize[i];
    s[off + i] = a.strides[i];
    pad[off + i] = w.pad_before;
  }
  int64_t batch = x.dim(0), C = x.dim(x.rank() - 1);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  std::vector<A> acc(static_cast<size_t>(C));
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t od = 0; od < out[0]; ++od)
      for (int64_t oh = 0; oh < out[1]; ++oh)
        for (int64_t ow = 0; ow < out[2]; ++ow) {
          int64_t lo[3], hi[3], o[3] = {od, oh, ow};
          for (int i = 0; i < 3; ++i) {
            int64_t start = o[i] * s[i] - pad[i];
            lo[i] = std::max<int64_t>(start, 0);
            hi[i] = std::min(start + k[i], in[i]);
          }
          std::fill(acc.begin(), acc.end(), is_max ? lowest_of<T>() : A(0));
          for (int64_t id = lo[0]; id < hi[0]; ++id)
            for (int64_t ih = lo[1]; ih < hi[1]; ++ih)
              for (int64_t iw = lo[2]; iw < hi[2]; ++iw) {
                const T* src = xp + (((n * in[0] + id) * in[1] + ih) * in[2] + iw) * C;
                if (is_max) {
                  for (int64_t ch = 0; ch < C; ++ch) {
                    A v = static_cast<A>(src[ch]);
                    if (v > acc[ch]) acc[ch] = v;
                  }
                } else {
                  for (int64_t ch = 0; ch < C; ++ch) acc[ch] += static_cast<A>(src[ch]);
                }
              }
          T* dst = yp + (((n * out[0] + od) * out[1] + oh) * out[2] + ow) * C;
          int64_t count = std::max<int64_t>(hi[0] - lo[0], 0) * std::max<int64_t>(hi[1] - lo[1], 0) *
                          std::max<int64_t>(hi[2] - lo[2], 0);
          for (int64_t ch = 0; ch < C; ++ch)
            dst[ch] = static_cast<T>(is_max || count == 0 ? acc[ch] : acc[ch] / static_cast<A>(count));
        }
}

template <typename Ts>
void pool_compute(KernelContext& c, int spatial, bool is_max, const std::vector<int64_t>& ksize,
                  const std::vector<int64_t>& strides, Ts types, const char* what) {
  PoolAttrs a = pool_attrs(c.node, spatial, ksize, strides);
  Tensor x = c.input(0);
  int rank = spatial + 2;
  TS_CHECK(x.rank() == rank, "input must be ", rank, "-dimensional, got ", shape_str(x.shape()));
  std::vector<int> to_last = {0}, to_first = {0, spatial + 1};
  for (int i = 0; i < spatial; ++i) {
    to_last.push_back(2 + i);
    to_first.push_back(1 + i);
  }
  to_last.push_back(1);
  if (a.layout.channels_first) x = nn::transpose(x, to_last);
  Shape out_shape = {x.dim(0)};
  for (int i = 0; i < spatial; ++i) out_shape.push_back(pool_window(a, i, x.dim(1 + i)).out);
  out_shape.push_back(x.dim(rank - 1));
  Tensor y(x.dtype(), out_shape);
  dispatch(types, x.dtype(), what, [&]<typename T>() { pool_loop<T>(a, x, is_max, y); });
  c.set_output(0, a.layout.channels_first ? nn::transpose(y, to_first) : y);
}

using MaxPoolTypes = Types<float, double, float16, bfloat16, int32_t, int64_t, uint8_t, int8_t,
                           int16_t, uint16_t, uint32_t, uint64_t>;
using AvgPoolTypes = Types<float, double, float16, bfloat16>;
using Pool3DTypes = Types<float, bfloat16>;

// ---- MaxPoolGrad / AvgPoolGrad ----
// The gradients of 2D pooling, in channels-last layout like the forward loop: max pooling
// sends each output's gradient to the first maximum in its window (the element the forward
// loop kept), average pooling spreads it evenly over the in-bounds elements.

template <typename T>
void pool_backward(const PoolAttrs& a, const Shape& xs, const T* xp, const T* dyp, bool is_max, T* dxp) {
  using A = nn::Acc<T>;
  int64_t in[2] = {xs[1], xs[2]}, out[2], pad[2];
  for (int i = 0; i < 2; ++i) {
    nn::Window w = pool_window(a, i, in[i]);
    out[i] = w.out;
    pad[i] = w.pad_before;
  }
  const int64_t C = xs[3];
  std::vector<A> acc(static_cast<size_t>(xs[0] * in[0] * in[1] * C), A(0));
  for (int64_t n = 0; n < xs[0]; ++n)
    for (int64_t oh = 0; oh < out[0]; ++oh)
      for (int64_t ow = 0; ow < out[1]; ++ow) {
        int64_t h0 = std::max<int64_t>(oh * a.strides[0] - pad[0], 0);
        int64_t h1 = std::min(oh * a.strides[0] - pad[0] + a.ksize[0], in[0]);
        int64_t w0 = std::max<int64_t>(ow * a.strides[1] - pad[1], 0);
        int64_t w1 = std::min(ow * a.strides[1] - pad[1] + a.ksize[1], in[1]);
        const T* g = dyp + ((n * out[0] + oh) * out[1] + ow) * C;
        auto at = [&](int64_t h, int64_t w) { return ((n * in[0] + h) * in[1] + w) * C; };
        if (h1 <= h0 || w1 <= w0) continue;
        if (!is_max) {
          const A count = static_cast<A>((h1 - h0) * (w1 - w0));
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w)
              for (int64_t ch = 0; ch < C; ++ch) acc[at(h, w) + ch] += static_cast<A>(g[ch]) / count;
          continue;
        }
        for (int64_t ch = 0; ch < C; ++ch) {
          A best = lowest_of<T>();
          int64_t where = -1;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) {
              A v = static_cast<A>(xp[at(h, w) + ch]);
              if (where < 0 || v > best) {
                best = v;
                where = at(h, w) + ch;
              }
            }
          acc[where] += static_cast<A>(g[ch]);
        }
      }
  for (size_t i = 0; i < acc.size(); ++i) dxp[i] = static_cast<T>(acc[i]);
}

// Inputs: max: (orig_input, orig_output, grad); avg: (orig_input_shape, grad).
void pool_grad_compute(KernelContext& c, bool is_max) {
  PoolAttrs a = pool_attrs(c.node, 2, attr_ints(c.node, "ksize"), attr_ints(c.node, "strides"));
  Tensor x, dy = c.input(is_max ? 2 : 1);
  Shape xs;
  if (is_max) {
    x = c.input(0);
    xs = x.shape();
  } else {
    xs = c.input(0).to_int_vector();
  }
  TS_CHECK(xs.size() == 4 && dy.rank() == 4, "pooling gradients need 4-D tensors, got ", shape_str(xs),
           " and ", shape_str(dy.shape()));
  const std::vector<int> to_last = {0, 2, 3, 1}, to_first = {0, 3, 1, 2};
  if (a.layout.channels_first) {
    if (is_max) x = nn::transpose(x, to_last);
    dy = nn::transpose(dy, to_last);
    xs = {xs[0], xs[2], xs[3], xs[1]};
  }
  for (int i = 0; i < 2; ++i)
    TS_CHECK(pool_window(a, i, xs[1 + i]).out == dy.dim(1 + i), "grad has shape ", shape_str(dy.shape()),
             ", pooling the input gives spatial dim ", i, " = ", pool_window(a, i, xs[1 + i]).out);
  Tensor dx(dy.dtype(), xs);
  dispatch(AvgPoolTypes{}, dy.dtype(), is_max ? "MaxPoolGrad" : "AvgPoolGrad", [&]<typename T>() {
    pool_backward<T>(a, xs, is_max ? x.data<T>() : nullptr, dy.data<T>(), is_max, dx.data<T>());
  });
  c.set_output(0, a.layout.channels_first ? nn::transpose(dx, to_first) : dx);
}

AttrMap pool_grad_attrs(const Node& n) {
  AttrMap a;
  for (const char* k : {"T", "ksize", "strides", "padding", "explicit_paddings", "data_format"})
    if (n.has_attr(k)) a[k] = n.attrs.at(k);
  return a;
}

GradList grad_max_pool(GradContext& c) {
  return {c.op("MaxPoolGrad", {c.x(0), c.y(), c.dy()}, pool_grad_attrs(c.node))};
}

GradList grad_avg_pool(GradContext& c) {
  return {c.op("AvgPoolGrad", {c.shape(c.x(0)), c.dy()}, pool_grad_attrs(c.node))};
}

}  // namespace

// OpDef::rowwise of a pooling op: its windows span one row (ksize and strides 1 on dim 0).
static bool pool_rows(const Node& node, const std::vector<bool>& batched) {
  if (batched.size() != 1 || !batched[0]) return false;
  const auto k = node.attr_or<std::vector<int64_t>>("ksize", {});
  const auto s = node.attr_or<std::vector<int64_t>>("strides", {});
  return !k.empty() && k[0] == 1 && !s.empty() && s[0] == 1;
}

void register_pool_ops(OpRegistry& r) {
  const AttrMap max_defaults = {{"T", DType::kFloat32}, {"explicit_paddings", std::vector<int64_t>{}},
                                {"data_format", std::string("NHWC")}};
  add_with_grad(r, {.name = "MaxPool", .attr_defaults = max_defaults,
                    .infer = [](InferContext& c) {
                      infer_pool_with(c, 2, attr_ints(c.node, "ksize"), attr_ints(c.node, "strides"));
                    },
                    .compute = [](KernelContext& c) {
                      pool_compute(c, 2, true, attr_ints(c.node, "ksize"), attr_ints(c.node, "strides"),
                                   MaxPoolTypes{}, "MaxPool");
                    },
                    .rowwise = pool_rows},
                grad_max_pool);
  r.add({.name = "MaxPoolGrad", .attr_defaults = max_defaults,
         .infer = [](InferContext& c) { c.set_output(0, c.input(2).dtype, c.input(0).shape); },
         .compute = [](KernelContext& c) { pool_grad_compute(c, true); }});
  r.add({.name = "MaxPoolV2",
         .attr_defaults = {{"T", DType::kFloat32}, {"data_format", std::string("NHWC")}},
         .infer = [](InferContext& c) {
           infer_pool_with(c, 2, ops::known_ints(c, 1), ops::known_ints(c, 2));
         },
         .compute = [](KernelContext& c) {
           pool_compute(c, 2, true, c.input(1).to_int_vector(), c.input(2).to_int_vector(),
                        MaxPoolTypes{}, "MaxPoolV2");
         }});
  add_with_grad(r, {.name = "AvgPool", .attr_defaults = {{"data_format", std::string("NHWC")}},
                    .infer = [](InferContext& c) {
                      infer_pool_with(c, 2, attr_ints(c.node, "ksize"), attr_ints(c.node, "strides"));
                    },
                    .compute = [](KernelContext& c) {
                      pool_compute(c, 2, false, attr_ints(c.node, "ksize"), attr_ints(c.node, "strides"),
                                   AvgPoolTypes{}, "AvgPool");
                    },
                    .rowwise = pool_rows},
                grad_avg_pool);
  r.add({.name = "AvgPoolGrad", .attr_defaults = {{"data_format", std::string("NHWC")}},
         .infer = [](InferContext& c) {
           auto dims = ops::known_ints(c, 0);
           c.set_output(0, c.input(1).dtype, dims ? PartialShape(*dims) : PartialShape(std::vector<int64_t>(4, -1)));
         },
         .compute = [](KernelContext& c) { pool_grad_compute(c, false); }});
  for (bool is_max : {true, false}) {
    r.add({.name = is_max ? "MaxPool3D" : "AvgPool3D",
           .attr_defaults = {{"data_format", std::string("NDHWC")}},
           .infer = [](InferContext& c) {
             infer_pool_with(c, 3, attr_ints(c.node, "ksize"), attr_ints(c.node, "strides"));
           },
           .compute = [is_max](KernelContext& c) {
             pool_compute(c, 3, is_max, attr_ints(c.node, "ksize"), attr_ints(c.node, "strides"),
                          Pool3DTypes{}, is_max ? "MaxPool3D" : "AvgPool3D");
           }});
  }
}

}  // namespace tessera
