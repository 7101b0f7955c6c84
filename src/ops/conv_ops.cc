// Convolutions: Conv2D, Conv3D, DepthwiseConv2dNative, Conv2DBackpropInput and
// Conv3DBackpropInputV2 (the ops Conv2DTranspose/Conv3DTranspose emit), Conv2DBackpropFilter. Everything runs in
// channels-last layout (channels-first inputs are transposed in and out), and 2D is the 3D
// code with a unit depth. Regular convolutions use
// im2col over chunks of output positions followed by the shared packed GEMM; the transposed
// convolution is the GEMM with the filter transposed followed by col2im.
#include <algorithm>

#include "ir/grad.h"
#include "ops/nn_families.h"

namespace tessera {
namespace {

using nn::gemm;
using nn::Layout;
using nn::Padding;

constexpr int kMaxSpatial = 3;

struct ConvAttrs {
  Layout layout;
  Padding padding = Padding::kValid;
  std::vector<int64_t> strides, dilations, pad_before, pad_after;  // spatial entries
};

ConvAttrs conv_attrs(const Node& node, int spatial) {
  ConvAttrs a;
  std::string def_format = spatial == 2 ? "NHWC" : "NDHWC";
  a.layout = nn::parse_layout(node.attr_or<std::string>("data_format", def_format), spatial);
  a.padding = nn::parse_padding(node.attr<std::string>("padding"));
  a.strides = nn::spatial_attr(node, node.attr<std::vector<int64_t>>("strides"), a.layout, "strides", true);
  std::vector<int64_t> dil = node.attr_or<std::vector<int64_t>>(
      "dilations", std::vector<int64_t>(static_cast<size_t>(spatial + 2), 1));
  a.dilations = nn::spatial_attr(node, dil, a.layout, "dilations", true);
  a.pad_before.assign(spatial, 0);
  a.pad_after.assign(spatial, 0);
  if (a.padding == Padding::kExplicit) {
    auto ep = node.attr_or<std::vector<int64_t>>("explicit_paddings", {});
    size_t rank = static_cast<size_t>(spatial + 2);
    TS_CHECK(ep.size() == 2 * rank, "explicit_paddings must have ", 2 * rank, " entries, got ", ep.size());
    int cd = nn::channel_dim(a.layout);
    TS_CHECK(ep[0] == 0 && ep[1] == 0 && ep[2 * cd] == 0 && ep[2 * cd + 1] == 0,
             "explicit_paddings in the batch and depth dimensions must be 0");
    for (int i = 0; i < spatial; ++i) {
      int d = nn::spatial_dim(a.layout, i);
      a.pad_before[i] = ep[2 * d];
      a.pad_after[i] = ep[2 * d + 1];
    }
  } else {
    TS_CHECK(node.attr_or<std::vector<int64_t>>("explicit_paddings", {}).empty(),
             "explicit_paddings must be empty unless padding is EXPLICIT");
  }
  return a;
}

nn::Window conv_window(const ConvAttrs& a, int i, int64_t in, int64_t k) {
  return nn::window(in, k, a.strides[i], a.dilations[i], a.padding, a.pad_before[i], a.pad_after[i]);
}

// Channels-last <-> layout permutations for a rank-(spatial+2) tensor.
std::vector<int> to_channels_last(int spatial) {
  std::vector<int> p = {0};
  for (int i = 0; i < spatial; ++i) p.push_back(2 + i);
  p.push_back(1);
  return p;
}
std::vector<int> to_channels_first(int spatial) {
  std::vector<int> p = {0, spatial + 1};
  for (int i = 0; i < spatial; ++i) p.push_back(1 + i);
  return p;
}

// A shape in the layout's dim order from batch, spatial sizes and channels.
PartialShape layout_shape(const Layout& l, int64_t n, const std::vector<int64_t>& sp, int64_t ch) {
  std::vector<int64_t> d(static_cast<size_t>(l.spatial + 2));
  d[0] = n;
  d[nn::channel_dim(l)] = ch;
  for (int i = 0; i < l.spatial; ++i) d[nn::spatial_dim(l, i)] = sp[i];
  return PartialShape(d);
}

// The geometry of one convolution in channels-last form, always with 3 spatial dims (2D
// convolutions get a unit leading depth).
struct ConvGeom {
  int64_t batch = 0, in_ch = 0, out_ch = 0, groups = 1;
  int64_t in[kMaxSpatial], k[kMaxSpatial], out[kMaxSpatial];
  int64_t stride[kMaxSpatial], dil[kMaxSpatial], pad[kMaxSpatial];
  int64_t in_positions() const { return in[0] * in[1] * in[2]; }
  int64_t out_positions() const { return out[0] * out[1] * out[2]; }
  int64_t kvol() const { return k[0] * k[1] * k[2]; }
  int64_t cin_g() const { return in_ch / groups; }
  int64_t cout_g() const { return out_ch / groups; }
};

// Fills spatial entries (right-aligned into 3) from per-dim sizes.
ConvGeom make_geom(const ConvAttrs& a, int64_t batch, const std::vector<int64_t>& in_sp,
                   const std::vector<int64_t>& k_sp, int64_t in_ch, int64_t out_ch, int64_t groups) {
  ConvGeom g;
  g.batch = batch;
  g.in_ch = in_ch;
  g.out_ch = out_ch;
  g.groups = groups;
  int sp = a.layout.spatial, off = kMaxSpatial - sp;
  for (int i = 0; i < kMaxSpatial; ++i) {
    g.in[i] = g.k[i] = g.out[i] = g.stride[i] = g.dil[i] = 1;
    g.pad[i] = 0;
  }
  for (int i = 0; i < sp; ++i) {
    nn::Window w = conv_window(a, i, in_sp[i], k_sp[i]);
    g.in[off + i] = in_sp[i];
    g.k[off + i] = k_sp[i];
    g.out[off + i] = w.out;
    g.stride[off + i] = a.strides[i];
    g.dil[off + i] = a.dilations[i];
    g.pad[off + i] = w.pad_before;
  }
  return g;
}

// For output positions [p0, p1) and group grp, writes rows of the patch matrix:
// row (p - p0), column ((kd*KH + kh)*KW + kw)*cin_g + ci. Padding reads as zero.
template <typename A>
void im2col(const ConvGeom& g, const A* x, int64_t p0, int64_t p1, int64_t grp, A* col) {
  int64_t cin_g = g.cin_g(), cols = g.kvol() * cin_g;
  for (int64_t p = p0; p < p1; ++p) {
    int64_t ow = p % g.out[2], oh = (p / g.out[2]) % g.out[1], od = p / (g.out[2] * g.out[1]);
    A* row = col + (p - p0) * cols;
    for (int64_t kd = 0; kd < g.k[0]; ++kd) {
      int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
      for (int64_t kh = 0; kh < g.k[1]; ++kh) {
        int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          int64_t iw = ow * g.stride[2] - g.pad[2] + kw * g.dil[2];
          A* dst = row + ((kd * g.k[1] + kh) * g.k[2] + kw) * cin_g;
          if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1] || iw < 0 || iw >= g.in[2]) {
            std::fill(dst, dst + cin_g, A(0));
          } else {
            const A* src = x + ((id * g.in[1] + ih) * g.in[2] + iw) * g.in_ch + grp * cin_g;
            std::copy(src, src + cin_g, dst);
          }
        }
      }
    }
  }
}

// The inverse scatter: adds patch-matrix rows back into the input positions they came from.
template <typename A>
void col2im(const ConvGeom& g, const A* col, int64_t p0, int64_t p1, int64_t grp, A* x) {
  int64_t cin_g = g.cin_g(), cols = g.kvol() * cin_g;
  for (int64_t p = p0; p < p1; ++p) {
    int64_t ow = p % g.out[2], oh = (p / g.out[2]) % g.out[1], od = p / (g.out[2] * g.out[1]);
    const A* row = col + (p - p0) * cols;
    for (int64_t kd = 0; kd < g.k[0]; ++kd) {
      int64_t id = od * g.stride[0] - g.pad[0] + kd * g.dil[0];
      if (id < 0 || id >= g.in[0]) continue;
      for (int64_t kh = 0; kh < g.k[1]; ++kh) {
        int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
        if (ih < 0 || ih >= g.in[1]) continue;
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          int64_t iw = ow * g.stride[2] - g.pad[2] + kw * g.dil[2];
          if (iw < 0 || iw >= g.in[2]) continue;
          const A* src = row + ((kd * g.k[1] + kh) * g.k[2] + kw) * cin_g;
          A* dst = x + ((id * g.in[1] + ih) * g.in[2] + iw) * g.in_ch + grp * cin_g;
          for (int64_t ci = 0; ci < cin_g; ++ci) dst[ci] += src[ci];
        }
      }
    }
  }
}

// Rows of the patch matrix per chunk: keeps the buffer around 16 MiB for big images.
int64_t chunk_rows(int64_t cols) {
  return std::max<int64_t>(64, (int64_t{4} << 20) / std::max<int64_t>(cols, 1));
}

// y[n, out..., out_ch] = conv(x[n, in..., in_ch], f[k..., cin_g, out_ch]).
template <typename A>
std::vector<A> conv_forward(const ConvGeom& g, const std::vector<A>& x, const std::vector<A>& f) {
  int64_t P = g.out_positions(), cin_g = g.cin_g(), cout_g = g.cout_g(), K = g.kvol() * cin_g;
  std::vector<A> y(static_cast<size_t>(g.batch * P * g.out_ch));
  if (y.empty()) return y;
  bool pointwise = g.kvol() == 1 && g.groups == 1 && g.pad[0] == 0 && g.pad[1] == 0 &&
                   g.pad[2] == 0 && g.stride[0] == 1 && g.stride[1] == 1 && g.stride[2] == 1;
  if (pointwise) {  // 1x1 convolution: the input already is the patch matrix
    gemm<A>(g.batch * P, g.out_ch, K, x.data(), g.in_ch, 1, f.data(), g.out_ch, 1, y.data(), g.out_ch, false);
    return y;
  }
  int64_t chunk = std::min(P, chunk_rows(K));
  std::vector<A> col(static_cast<size_t>(chunk * K));
  for (int64_t n = 0; n < g.batch; ++n) {
    const A* xn = x.data() + n * g.in_positions() * g.in_ch;
    for (int64_t grp = 0; grp < g.groups; ++grp)
      for (int64_t p0 = 0; p0 < P; p0 += chunk) {
        int64_t p1 = std::min(P, p0 + chunk);
        im2col(g, xn, p0, p1, grp, col.data());
        gemm<A>(p1 - p0, cout_g, K, col.data(), K, 1, f.data() + grp * cout_g, g.out_ch, 1,
                y.data() + (n * P + p0) * g.out_ch + grp * cout_g, g.out_ch, false);
      }
  }
  return y;
}

// ---- Conv2D / Conv3D ----

void infer_conv(InferContext& c, int spatial) {
  ConvAttrs a = conv_attrs(c.node, spatial);
  const PartialShape& x = c.input(0).shape;
  const PartialShape& f = c.input(1).shape;
  int rank = spatial + 2;
  TS_CHECK(!x.known_rank || x.rank() == rank, "input must be ", rank, "-dimensional, got ", x.str());
  TS_CHECK(!f.known_rank || f.rank() == rank, "filter must be ", rank, "-dimensional, got ", f.str());
  int64_t n = x.known_rank ? x.dims[0] : -1;
  int64_t cout = f.known_rank ? f.dims[rank - 1] : -1;
  std::vector<int64_t> out(static_cast<size_t>(spatial), -1);
  if (x.known_rank && f.known_rank) {
    int64_t cin = x.dims[nn::channel_dim(a.layout)], fin = f.dims[spatial];
    if (cin >= 0 && fin > 0 && cin % fin != 0)
      fail("input depth must be evenly divisible by filter depth: ", cin, " vs ", fin);
    for (int i = 0; i < spatial; ++i) {
      int64_t in = x.dims[nn::spatial_dim(a.layout, i)], k = f.dims[i];
      if (in >= 0 && k >= 0) out[i] = conv_window(a, i, in, k).out;
    }
  }
  c.set_output(0, c.attr<DType>("T"), layout_shape(a.layout, n, out, cout));
}

void conv_kernel(KernelContext& c, int spatial) {
  ConvAttrs a = conv_attrs(c.node, spatial);
  DType dt = c.attr<DType>("T");
  if (spatial == 2)
    nn::check_dtype_in(dt, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16, DType::kInt32}, "Conv2D");
  else
    nn::check_dtype_in(dt, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16}, "Conv3D");
  int rank = spatial + 2;
  Tensor x = c.input(0);
  const Tensor& f = c.input(1);
  TS_CHECK(x.rank() == rank, "input must be ", rank, "-dimensional, got ", shape_str(x.shape()));
  TS_CHECK(f.rank() == rank, "filter must be ", rank, "-dimensional, got ", shape_str(f.shape()));
  if (a.layout.channels_first) x = nn::transpose(x, to_channels_last(spatial));
  int64_t cin = x.dim(rank - 1), fin = f.dim(spatial), cout = f.dim(rank - 1);
  TS_CHECK(fin > 0 && cin % fin == 0, "input depth must be evenly divisible by filter depth: ", cin,
           " vs ", fin);
  int64_t groups = cin / fin;
  TS_CHECK(cout % groups == 0, "output depth ", cout, " must be a multiple of the number of groups ", groups);
  std::vector<int64_t> in_sp, k_sp;
  for (int i = 0; i < spatial; ++i) {
    in_sp.push_back(x.dim(1 + i));
    k_sp.push_back(f.dim(i));
  }
  ConvGeom g = make_geom(a, x.dim(0), in_sp, k_sp, cin, cout, groups);
  Shape out_shape = {g.batch};
  for (int i = 0; i < spatial; ++i) out_shape.push_back(g.out[kMaxSpatial - spatial + i]);
  out_shape.push_back(cout);
  nn::with_acc(dt, "Conv", [&]<typename A>() {
    std::vector<A> y = conv_forward<A>(g, nn::load<A>(x), nn::load<A>(f));
    Tensor out = nn::store(y.data(), dt, out_shape);
    c.set_output(0, a.layout.channels_first ? nn::transpose(out, to_channels_first(spatial)) : out);
  });
}

// ---- Conv2DBackpropInput / Conv3DBackpropInputV2 ----

// The input shape from `input_sizes`: rank entries in the layout's order, or just the spatial
// sizes (batch and depth then come from out_backprop and filter).
std::vector<int64_t> backprop_input_shape(const Layout& l, const std::vector<int64_t>& sizes,
                                          int64_t batch, int64_t depth) {
  size_t rank = static_cast<size_t>(l.spatial + 2);
  if (sizes.size() == rank) return sizes;
  TS_CHECK(sizes.size() == static_cast<size_t>(l.spatial), "input_sizes must have ", rank, " (or ",
           l.spatial, " spatial) elements, got ", sizes.size());
  return layout_shape(l, batch, sizes, depth).dims;
}

void infer_conv_backprop_input(InferContext& c, int spatial) {
  ConvAttrs a = conv_attrs(c.node, spatial);
  int rank = spatial + 2;
  const PartialShape& f = c.input(1).shape;
  const PartialShape& dy = c.input(2).shape;
  PartialShape out = PartialShape(std::vector<int64_t>(static_cast<size_t>(rank), -1));
  if (auto sizes = ops::known_ints(c, 0)) {
    int64_t batch = dy.known_rank && dy.rank() == rank ? dy.dims[0] : -1;
    int64_t depth = f.known_rank && f.rank() == rank ? f.dims[spatial] : -1;
    out = PartialShape(backprop_input_shape(a.layout, *sizes, batch, depth));
  }
  c.set_output(0, c.attr<DType>("T"), out);
}

void conv_backprop_input_kernel(KernelContext& c, int spatial) {
  ConvAttrs a = conv_attrs(c.node, spatial);
  DType dt = c.attr<DType>("T");
  if (spatial == 2)
    nn::check_dtype_in(dt, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16, DType::kInt32},
                       "Conv2DBackpropInput");
  else
    nn::check_dtype_in(dt, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16},
                       "Conv3DBackpropInputV2");
  int rank = spatial + 2;
  const Tensor& f = c.input(1);
  Tensor dy = c.input(2);
  TS_CHECK(f.rank() == rank, "filter must be ", rank, "-dimensional, got ", shape_str(f.shape()));
  TS_CHECK(dy.rank() == rank, "out_backprop must be ", rank, "-dimensional, got ", shape_str(dy.shape()));
  if (a.layout.channels_first) dy = nn::transpose(dy, to_channels_last(spatial));
  Shape in_shape = backprop_input_shape(a.layout, c.input(0).to_int_vector(), dy.dim(0), f.dim(spatial));
  for (int64_t d : in_shape) TS_CHECK(d >= 0, "input_sizes must be non-negative, got ", shape_str(in_shape));
  int64_t cin = in_shape[nn::channel_dim(a.layout)], fin = f.dim(spatial), cout = f.dim(rank - 1);
  TS_CHECK(in_shape[0] == dy.dim(0), "input batch ", in_shape[0], " does not match out_backprop batch ", dy.dim(0));
  TS_CHECK(fin > 0 && cin % fin == 0, "input depth ", cin, " must be a multiple of filter depth ", fin);
  TS_CHECK(dy.dim(rank - 1) == cout, "out_backprop depth ", dy.dim(rank - 1),
           " does not match filter output depth ", cout);
  int64_t groups = cin / fin;
  TS_CHECK(cout % groups == 0, "filter output depth ", cout, " must be a multiple of the groups ", groups);
  std::vector<int64_t> in_sp, k_sp;
  Shape last = {in_shape[0]};
  for (int i = 0; i < spatial; ++i) {
    in_sp.push_back(in_shape[nn::spatial_dim(a.layout, i)]);
    k_sp.push_back(f.dim(i));
    last.push_back(in_sp.back());
  }
  last.push_back(cin);
  ConvGeom g = make_geom(a, in_shape[0], in_sp, k_sp, cin, cout, groups);
  for (int i = 0; i < spatial; ++i)
    TS_CHECK(g.out[kMaxSpatial - spatial + i] == dy.dim(1 + i), "out_backprop spatial dim ", i, " is ",
             dy.dim(1 + i), " but the convolution of input_sizes gives ", g.out[kMaxSpatial - spatial + i]);
  nn::with_acc(dt, "ConvBackpropInput", [&]<typename A>() {
    std::vector<A> fv = nn::load<A>(f), dyv = nn::load<A>(dy);
    std::vector<A> dx(static_cast<size_t>(num_elements(last)), A(0));
    int64_t P = g.out_positions(), cin_g = g.cin_g(), cout_g = g.cout_g(), K = g.kvol() * cin_g;
    int64_t chunk = std::min(P, chunk_rows(K));
    std::vector<A> col(static_cast<size_t>(std::max<int64_t>(chunk, 0) * K));
    for (int64_t n = 0; n < g.batch && P > 0; ++n)
      for (int64_t grp = 0; grp < groups; ++grp)
        for (int64_t p0 = 0; p0 < P; p0 += chunk) {
          int64_t p1 = std::min(P, p0 + chunk);
          // col[p, r] = sum_co dy[p, co] * f[r, co]  (f viewed as [K, cout], transposed)
          gemm<A>(p1 - p0, K, cout_g, dyv.data() + (n * P + p0) * cout + grp * cout_g, cout, 1,
                  fv.data() + grp * cout_g, 1, cout, col.data(), K, false);
          col2im(g, col.data(), p0, p1, grp, dx.data() + n * g.in_positions() * cin);
        }
    Tensor out = nn::store(dx.data(), dt, last);
    c.set_output(0, a.layout.channels_first ? nn::transpose(out, to_channels_first(spatial)) : out);
  });
}

// ---- Conv2DBackpropFilter (the filter gradient of Conv2D) ----
// dF[k..., ci, co] = sum over batch and output positions of patch(x)[p, (k, ci)] · dy[p, co]:
// im2col of the input per chunk, then a GEMM with the patch matrix transposed, accumulated.

void infer_conv_backprop_filter(InferContext& c) {
  const PartialShape& f = c.input(1).shape;
  PartialShape out = PartialShape(std::vector<int64_t>(4, -1));
  if (auto sizes = ops::known_ints(c, 1)) out = PartialShape(*sizes);
  else if (f.known_rank && f.rank() == 1 && f.dims[0] >= 0) out = PartialShape(std::vector<int64_t>(f.dims[0], -1));
  TS_CHECK(out.rank() == 4, "filter_sizes must have 4 elements, got ", out.str());
  c.set_output(0, c.attr<DType>("T"), out);
}

void conv_backprop_filter_kernel(KernelContext& c) {
  const int spatial = 2, rank = 4;
  ConvAttrs a = conv_attrs(c.node, spatial);
  DType dt = c.attr<DType>("T");
  nn::check_dtype_in(dt, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16}, "Conv2DBackpropFilter");
  Tensor x = c.input(0), dy = c.input(2);
  Shape fs = c.input(1).to_int_vector();
  TS_CHECK(x.rank() == rank, "input must be 4-dimensional, got ", shape_str(x.shape()));
  TS_CHECK(dy.rank() == rank, "out_backprop must be 4-dimensional, got ", shape_str(dy.shape()));
  TS_CHECK(fs.size() == 4, "filter_sizes must have 4 elements, got ", fs.size());
  for (int64_t d : fs) TS_CHECK(d >= 0, "filter_sizes must be non-negative, got ", shape_str(fs));
  if (a.layout.channels_first) {
    x = nn::transpose(x, to_channels_last(spatial));
    dy = nn::transpose(dy, to_channels_last(spatial));
  }
  int64_t cin = x.dim(rank - 1), fin = fs[2], cout = fs[3];
  TS_CHECK(fin > 0 && cin % fin == 0, "input depth ", cin, " must be a multiple of filter depth ", fin);
  int64_t groups = cin / fin;
  TS_CHECK(cout % groups == 0, "filter output depth ", cout, " must be a multiple of the groups ", groups);
  TS_CHECK(dy.dim(0) == x.dim(0) && dy.dim(rank - 1) == cout, "out_backprop ", shape_str(dy.shape()),
           " does not match input ", shape_str(x.shape()), " and filter_sizes ", shape_str(fs));
  std::vector<int64_t> in_sp = {x.dim(1), x.dim(2)}, k_sp = {fs[0], fs[1]};
  ConvGeom g = make_geom(a, x.dim(0), in_sp, k_sp, cin, cout, groups);
  for (int i = 0; i < spatial; ++i)
    TS_CHECK(g.out[kMaxSpatial - spatial + i] == dy.dim(1 + i), "out_backprop spatial dim ", i, " is ",
             dy.dim(1 + i), " but the convolution gives ", g.out[kMaxSpatial - spatial + i]);
  nn::with_acc(dt, "Conv2DBackpropFilter", [&]<typename A>() {
    std::vector<A> xv = nn::load<A>(x), dyv = nn::load<A>(dy);
    std::vector<A> df(static_cast<size_t>(num_elements(fs)), A(0));
    int64_t P = g.out_positions(), cin_g = g.cin_g(), cout_g = g.cout_g(), K = g.kvol() * cin_g;
    int64_t chunk = std::min(P, chunk_rows(K));
    std::vector<A> col(static_cast<size_t>(std::max<int64_t>(chunk, 0) * K));
    for (int64_t n = 0; n < g.batch && P > 0; ++n) {
      const A* xn = xv.data() + n * g.in_positions() * cin;
      for (int64_t grp = 0; grp < groups; ++grp)
        for (int64_t p0 = 0; p0 < P; p0 += chunk) {
          int64_t p1 = std::min(P, p0 + chunk);
          im2col(g, xn, p0, p1, grp, col.data());
          // df[r, co] += sum_p col[p, r] * dy[p, co]  (col transposed: row stride 1, column stride K)
          gemm<A>(K, cout_g, p1 - p0, col.data(), 1, K, dyv.data() + (n * P + p0) * cout + grp * cout_g, cout, 1,
                  df.data() + grp * cout_g, cout, true);
        }
    }
    c.set_output(0, nn::store(df.data(), dt, fs));
  });
}

// ---- gradients (ir/grad.h) ----

AttrMap conv_grad_attrs(const Node& n) {
  AttrMap a;
  for (const char* k : {"T", "strides", "padding", "explicit_paddings", "data_format", "dilations"})
    if (n.has_attr(k)) a[k] = n.attrs.at(k);
  return a;
}

GradList grad_conv2d(GradContext& c) {
  Value x = c.x(0), f = c.x(1), g = c.dy();
  AttrMap attrs = conv_grad_attrs(c.node);
  GradList out(2);
  if (c.needs(0)) out[0] = c.op("Conv2DBackpropInput", {c.shape(x), f, g}, attrs);
  if (c.needs(1)) out[1] = c.op("Conv2DBackpropFilter", {x, c.shape(f), g}, attrs);
  return out;
}

// Conv2DBackpropInput is linear in (filter, out_backprop): its adjoints are Conv2D of the
// gradient (for out_backprop) and the filter gradient with the roles of x and dy swapped.
GradList grad_conv2d_backprop_input(GradContext& c) {
  Value f = c.x(1), g = c.dy();
  AttrMap attrs = conv_grad_attrs(c.node);
  GradList out(3);
  if (c.needs(1)) out[1] = c.op("Conv2DBackpropFilter", {g, c.shape(f), c.x(2)}, attrs);
  if (c.needs(2)) out[2] = c.op("Conv2D", {g, f}, attrs);
  return out;
}

// ---- DepthwiseConv2dNative ----

void infer_depthwise(InferContext& c) {
  ConvAttrs a = conv_attrs(c.node, 2);
  const PartialShape& x = c.input(0).shape;
  const PartialShape& f = c.input(1).shape;
  TS_CHECK(!x.known_rank || x.rank() == 4, "input must be 4-dimensional, got ", x.str());
  TS_CHECK(!f.known_rank || f.rank() == 4, "filter must be 4-dimensional, got ", f.str());
  int64_t n = x.known_rank ? x.dims[0] : -1, cout = -1;
  std::vector<int64_t> out = {-1, -1};
  if (x.known_rank && f.known_rank) {
    int64_t cin = x.dims[nn::channel_dim(a.layout)];
    if (cin >= 0 && f.dims[2] >= 0 && cin != f.dims[2])
      fail("input depth ", cin, " must equal filter in_depth ", f.dims[2]);
    if (f.dims[2] >= 0 && f.dims[3] >= 0) cout = f.dims[2] * f.dims[3];
    for (int i = 0; i < 2; ++i) {
      int64_t in = x.dims[nn::spatial_dim(a.layout, i)], k = f.dims[i];
      if (in >= 0 && k >= 0) out[i] = conv_window(a, i, in, k).out;
    }
  }
  c.set_output(0, c.attr<DType>("T"), layout_shape(a.layout, n, out, cout));
}

void depthwise_kernel(KernelContext& c) {
  ConvAttrs a = conv_attrs(c.node, 2);
  DType dt = c.attr<DType>("T");
  nn::check_dtype_in(dt, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16},
                     "DepthwiseConv2dNative");
  Tensor x = c.input(0);
  const Tensor& f = c.input(1);
  TS_CHECK(x.rank() == 4, "input must be 4-dimensional, got ", shape_str(x.shape()));
  TS_CHECK(f.rank() == 4, "filter must be 4-dimensional, got ", shape_str(f.shape()));
  if (a.layout.channels_first) x = nn::transpose(x, to_channels_last(2));
  int64_t cin = x.dim(3), mult = f.dim(3);
  TS_CHECK(f.dim(2) == cin, "input depth ", cin, " must equal filter in_depth ", f.dim(2));
  ConvGeom g = make_geom(a, x.dim(0), {x.dim(1), x.dim(2)}, {f.dim(0), f.dim(1)}, cin, cin * mult, 1);
  Shape out_shape = {g.batch, g.out[1], g.out[2], cin * mult};
  nn::with_acc(dt, "DepthwiseConv2dNative", [&]<typename A>() {
    std::vector<A> xv = nn::load<A>(x), fv = nn::load<A>(f);
    std::vector<A> y(static_cast<size_t>(num_elements(out_shape)), A(0));
    int64_t cout = cin * mult;
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t oh = 0; oh < g.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.out[2]; ++ow) {
          A* acc = y.data() + ((n * g.out[1] + oh) * g.out[2] + ow) * cout;
          for (int64_t kh = 0; kh < g.k[1]; ++kh) {
            int64_t ih = oh * g.stride[1] - g.pad[1] + kh * g.dil[1];
            if (ih < 0 || ih >= g.in[1]) continue;
            for (int64_t kw = 0; kw < g.k[2]; ++kw) {
              int64_t iw = ow * g.stride[2] - g.pad[2] + kw * g.dil[2];
              if (iw < 0 || iw >= g.in[2]) continue;
              const A* in = xv.data() + ((n * g.in[1] + ih) * g.in[2] + iw) * cin;
              const A* w = fv.data() + (kh * g.k[2] + kw) * cout;
              if (mult == 1) {
                for (int64_t ci = 0; ci < cin; ++ci) acc[ci] += in[ci] * w[ci];
              } else {
                for (int64_t ci = 0; ci < cin; ++ci)
                  for (int64_t m = 0; m < mult; ++m) acc[ci * mult + m] += in[ci] * w[ci * mult + m];
              }
            }
          }
        }
    Tensor out = nn::store(y.data(), dt, out_shape);
    c.set_output(0, a.layout.channels_first ? nn::transpose(out, to_channels_first(2)) : out);
  });
}

// A depthwise convolution with filter [H, W, C, M] is the grouped Conv2D (C groups) with the
// filter viewed as [H, W, 1, C*M] (output channel c*M + m in both), so its gradients are the
// grouped convolution's.
GradList grad_depthwise(GradContext& c) {
  Value x = c.x(0), f = c.x(1), g = c.dy();
  AttrMap attrs = conv_grad_attrs(c.node);
  Value hw = c.op("Slice", {c.shape(f), c.ints({0}), c.ints({2})}, {{"T", DType::kInt32}, {"Index", DType::kInt32}});
  Value grouped_shape = c.op("ConcatV2", {hw, c.ints({1, -1}), c.int_scalar(0)},
                             {{"T", DType::kInt32}, {"N", int64_t{2}}, {"Tidx", DType::kInt32}});
  Value grouped = c.reshape(f, grouped_shape);
  GradList out(2);
  if (c.needs(0)) out[0] = c.op("Conv2DBackpropInput", {c.shape(x), grouped, g}, attrs);
  if (c.needs(1))
    out[1] = c.reshape(c.op("Conv2DBackpropFilter", {x, c.shape(grouped), g}, attrs), c.shape(f));
  return out;
}

}  // namespace

void register_conv_ops(OpRegistry& r) {
  AttrMap conv2d_defaults = {{"use_cudnn_on_gpu", true},
                             {"explicit_paddings", std::vector<int64_t>{}},
                             {"data_format", std::string("NHWC")},
                             {"dilations", std::vector<int64_t>{1, 1, 1, 1}}};
  add_with_grad(r, {.name = "Conv2D", .attr_defaults = conv2d_defaults,
                    .infer = [](InferContext& c) { infer_conv(c, 2); },
                    .compute = [](KernelContext& c) { conv_kernel(c, 2); },
                    .rowwise = ops::rows_from_input0},
                grad_conv2d);
  r.add({.name = "Conv3D",
         .attr_defaults = {{"data_format", std::string("NDHWC")},
                           {"dilations", std::vector<int64_t>{1, 1, 1, 1, 1}}},
         .infer = [](InferContext& c) { infer_conv(c, 3); },
         .compute = [](KernelContext& c) { conv_kernel(c, 3); }});
  add_with_grad(r, {.name = "Conv2DBackpropInput", .attr_defaults = conv2d_defaults,
                    .infer = [](InferContext& c) { infer_conv_backprop_input(c, 2); },
                    .compute = [](KernelContext& c) { conv_backprop_input_kernel(c, 2); }},
                grad_conv2d_backprop_input);
  r.add({.name = "Conv2DBackpropFilter", .attr_defaults = conv2d_defaults,
         .infer = infer_conv_backprop_filter, .compute = conv_backprop_filter_kernel});
  r.add({.name = "Conv3DBackpropInputV2",
         .attr_defaults = {{"data_format", std::string("NDHWC")},
                           {"dilations", std::vector<int64_t>{1, 1, 1, 1, 1}},
                           {"Tshape", DType::kInt32}},
         .infer = [](InferContext& c) { infer_conv_backprop_input(c, 3); },
         .compute = [](KernelContext& c) { conv_backprop_input_kernel(c, 3); }});
  add_with_grad(r, {.name = "DepthwiseConv2dNative",
                    .attr_defaults = {{"explicit_paddings", std::vector<int64_t>{}},
                                      {"data_format", std::string("NHWC")},
                                      {"dilations", std::vector<int64_t>{1, 1, 1, 1}}},
                    .infer = infer_depthwise, .compute = depthwise_kernel, .rowwise = ops::rows_from_input0},
                grad_depthwise);
}

}  // namespace tessera
