// nn op family, part 1: matrix products (MatMul, BatchMatMul*, Einsum), batch normalisation,
// LRN and image resizing, plus the helpers conv_ops.cc and pool_ops.cc share (GEMM, window
// geometry, transpose). Convolutions and pooling register from their own files.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "ir/grad.h"
#include "ops/nn_families.h"

namespace tessera {
namespace nn {

// ---------------------------------------------------------------------------------------------
// GEMM: the classic packed formulation. B is packed into NR-wide column panels and A into
// MR-tall row panels per cache block, and a fixed-size MR x NR accumulator tile (which the
// compiler keeps in vector registers) walks the shared K dimension.

template <typename A> struct TileOf { static constexpr int mr = 4, nr = 4; };
template <> struct TileOf<float> { static constexpr int mr = 4, nr = 8; };

template <typename A, int MR, int NR>
void micro_kernel(int64_t kc, const A* __restrict ap, const A* __restrict bp, A* __restrict c,
                  int64_t ldc, int mr, int nr, bool add) {
  A acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const A* av = ap + p * MR;
    const A* bv = bp + p * NR;
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < NR; ++j) acc[r][j] += av[r] * bv[j];
  }
  for (int r = 0; r < mr; ++r)
    for (int j = 0; j < nr; ++j) c[r * ldc + j] = add ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

template <typename A>
void gemm(int64_t m, int64_t n, int64_t k, const A* a, int64_t a_rs, int64_t a_cs, const A* b,
          int64_t b_rs, int64_t b_cs, A* c, int64_t ldc, bool accumulate) {
  constexpr int MR = TileOf<A>::mr, NR = TileOf<A>::nr;
  constexpr int64_t KC = 256, MC = 128, NC = 2048;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, A(0));
    return;
  }
  std::vector<A> bpack(static_cast<size_t>(std::min(KC, k) * ((std::min(NC, n) + NR - 1) / NR * NR)));
  std::vector<A> apack(static_cast<size_t>(std::min(KC, k) * ((std::min(MC, m) + MR - 1) / MR * MR)));
  for (int64_t jc = 0; jc < n; jc += NC) {
    int64_t nc = std::min(NC, n - jc);
    for (int64_t pc = 0; pc < k; pc += KC) {
      int64_t kc = std::min(KC, k - pc);
      bool add = accumulate || pc > 0;
      for (int64_t jp = 0; jp < nc; jp += NR) {  // pack B[pc.., jc+jp..] as [kc][NR]
        A* dst = bpack.data() + jp * kc;
        int nr = static_cast<int>(std::min<int64_t>(NR, nc - jp));
        for (int64_t p = 0; p < kc; ++p) {
          const A* src = b + (pc + p) * b_rs + (jc + jp) * b_cs;
          int j = 0;
          for (; j < nr; ++j) dst[p * NR + j] = src[j * b_cs];
          for (; j < NR; ++j) dst[p * NR + j] = A(0);
        }
      }
      for (int64_t ic = 0; ic < m; ic += MC) {
        int64_t mc = std::min(MC, m - ic);
        for (int64_t ip = 0; ip < mc; ip += MR) {  // pack A[ic+ip.., pc..] as [kc][MR]
          A* dst = apack.data() + ip * kc;
          int mr = static_cast<int>(std::min<int64_t>(MR, mc - ip));
          for (int r = 0; r < MR; ++r) {
            const A* src = a + (ic + ip + r) * a_rs + pc * a_cs;
            for (int64_t p = 0; p < kc; ++p) dst[p * MR + r] = r < mr ? src[p * a_cs] : A(0);
          }
        }
        for (int64_t jp = 0; jp < nc; jp += NR) {
          int nr = static_cast<int>(std::min<int64_t>(NR, nc - jp));
          for (int64_t ip = 0; ip < mc; ip += MR) {
            int mr = static_cast<int>(std::min<int64_t>(MR, mc - ip));
            micro_kernel<A, MR, NR>(kc, apack.data() + ip * kc, bpack.data() + jp * kc,
                                    c + (ic + ip) * ldc + jc + jp, ldc, mr, nr, add);
          }
        }
      }
    }
  }
}

template void gemm<float>(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*,
                          int64_t, int64_t, float*, int64_t, bool);
template void gemm<double>(int64_t, int64_t, int64_t, const double*, int64_t, int64_t,
                           const double*, int64_t, int64_t, double*, int64_t, bool);
template void gemm<int64_t>(int64_t, int64_t, int64_t, const int64_t*, int64_t, int64_t,
                            const int64_t*, int64_t, int64_t, int64_t*, int64_t, bool);

// ---------------------------------------------------------------------------------------------
// Window geometry and layouts.

Layout parse_layout(const std::string& f, int spatial) {
  if (spatial == 2 && (f == "NHWC" || f == "NCHW")) return {f == "NCHW", 2};
  if (spatial == 3 && (f == "NDHWC" || f == "NCDHW")) return {f == "NCDHW", 3};
  fail_code(ErrorCode::kUnimplemented, "data_format '", f, "' is not supported");
}

Padding parse_padding(const std::string& s) {
  if (s == "SAME") return Padding::kSame;
  if (s == "VALID") return Padding::kValid;
  if (s == "EXPLICIT") return Padding::kExplicit;
  fail("unknown padding '", s, "'");
}

Window window(int64_t in, int64_t ksize, int64_t stride, int64_t dilation, Padding padding,
              int64_t explicit_before, int64_t explicit_after) {
  TS_CHECK(stride >= 1, "stride must be positive, got ", stride);
  TS_CHECK(dilation >= 1, "dilation must be positive, got ", dilation);
  TS_CHECK(ksize >= 0, "window size must be non-negative, got ", ksize);
  if (in < 0 || ksize < 0) return {-1, 0, 0};
  int64_t eff = (ksize - 1) * dilation + 1;
  Window w;
  switch (padding) {
    case Padding::kValid: w.out = (in - eff + stride) / stride; break;
    case Padding::kSame: {
      w.out = (in + stride - 1) / stride;
      int64_t total = std::max<int64_t>((w.out - 1) * stride + eff - in, 0);
      w.pad_before = total / 2;
      w.pad_after = total - w.pad_before;
      break;
    }
    case Padding::kExplicit:
      TS_CHECK(explicit_before >= 0 && explicit_after >= 0, "explicit paddings must be non-negative");
      w.pad_before = explicit_before;
      w.pad_after = explicit_after;
      w.out = (in + explicit_before + explicit_after - eff + stride) / stride;
      break;
  }
  if (w.out < 0 || (padding != Padding::kSame && in + w.pad_before + w.pad_after - eff + stride < 0))
    fail("computed output size would be negative: input ", in, ", window ", eff, ", stride ",
         stride);
  return w;
}

std::vector<int64_t> spatial_attr(const Node& node, const std::vector<int64_t>& values,
                                  const Layout& layout, const char* what, bool batch_channel_one) {
  size_t rank = static_cast<size_t>(layout.spatial + 2);
  if (values.size() != rank)
    fail(what, " must have ", rank, " entries (one per dimension), got ", values.size());
  if (batch_channel_one && (values[0] != 1 || values[channel_dim(layout)] != 1))
    fail_code(ErrorCode::kUnimplemented, what,
              " in the batch and depth dimensions must be 1 (not supported otherwise)");
  std::vector<int64_t> out;
  for (int i = 0; i < layout.spatial; ++i) out.push_back(values[spatial_dim(layout, i)]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Transpose.

namespace {
template <typename E>
void transpose_typed(const E* in, const Shape& in_shape, const std::vector<int>& perm, E* out) {
  size_t r = perm.size();
  if (r == 0) {
    out[0] = in[0];
    return;
  }
  std::vector<int64_t> in_strides = ops::strides_of(in_shape);
  Shape out_shape(r);
  std::vector<int64_t> stride(r);
  for (size_t i = 0; i < r; ++i) {
    out_shape[i] = in_shape[perm[i]];
    stride[i] = in_strides[perm[i]];
  }
  int64_t total = num_elements(out_shape);
  if (total == 0) return;
  std::vector<int64_t> idx(r, 0);
  int64_t inner = out_shape[r - 1], inner_stride = stride[r - 1], src = 0;
  for (int64_t o = 0; o < total; o += inner) {
    for (int64_t j = 0; j < inner; ++j) out[o + j] = in[src + j * inner_stride];
    for (size_t d = r - 1; d-- > 0;) {
      src += stride[d];
      if (++idx[d] < out_shape[d]) break;
      src -= stride[d] * out_shape[d];
      idx[d] = 0;
    }
  }
}
}  // namespace

void transpose_bytes(const void* in, const Shape& in_shape, const std::vector<int>& perm,
                     size_t elem_size, void* out) {
  switch (elem_size) {
    case 1: return transpose_typed(static_cast<const uint8_t*>(in), in_shape, perm, static_cast<uint8_t*>(out));
    case 2: return transpose_typed(static_cast<const uint16_t*>(in), in_shape, perm, static_cast<uint16_t*>(out));
    case 4: return transpose_typed(static_cast<const uint32_t*>(in), in_shape, perm, static_cast<uint32_t*>(out));
    case 8: return transpose_typed(static_cast<const uint64_t*>(in), in_shape, perm, static_cast<uint64_t*>(out));
    default: fail("transpose: unsupported element size ", elem_size);
  }
}

void check_dtype_in(DType t, std::initializer_list<DType> ok, const char* op) {
  for (DType d : ok)
    if (d == t) return;
  fail(op, ": unsupported dtype ", dtype_name(t));
}

Tensor transpose(const Tensor& t, const std::vector<int>& perm) {
  TS_CHECK(is_pod(t.dtype()), "transpose: unsupported dtype ", dtype_name(t.dtype()));
  Shape out_shape(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) out_shape[i] = t.dim(perm[i]);
  Tensor out(t.dtype(), out_shape);
  transpose_bytes(t.raw(), t.shape(), perm, dtype_size(t.dtype()), out.mutable_raw());
  return out;
}

}  // namespace nn

namespace {

using nn::check_dtype_in;
using nn::gemm;
using nn::load;
using nn::store;
using nn::with_acc;
using ops::known_ints;

// ---------------------------------------------------------------------------------------------
// MatMul and BatchMatMul.

const std::initializer_list<DType> kMatMulDTypes = {
    DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16,
    DType::kInt32,   DType::kInt64,   DType::kInt16};

void infer_matmul(InferContext& c) {
  const PartialShape& a = c.input(0).shape;
  const PartialShape& b = c.input(1).shape;
  bool ta = c.attr_or<bool>("transpose_a", false), tb = c.attr_or<bool>("transpose_b", false);
  int64_t m = -1, n = -1, ka = -1, kb = -1;
  if (a.known_rank) {
    TS_CHECK(a.rank() == 2, "MatMul: In[0] must be a matrix, got shape ", a.str());
    m = a.dims[ta ? 1 : 0];
    ka = a.dims[ta ? 0 : 1];
  }
  if (b.known_rank) {
    TS_CHECK(b.rank() == 2, "MatMul: In[1] must be a matrix, got shape ", b.str());
    kb = b.dims[tb ? 1 : 0];
    n = b.dims[tb ? 0 : 1];
  }
  if (ka >= 0 && kb >= 0 && ka != kb)
    fail("Matrix size-incompatible: In[0]: ", a.str(), ", In[1]: ", b.str());
  c.set_output(0, c.attr<DType>("T"), PartialShape({m, n}));
}

void matmul_kernel(KernelContext& c) {
  const Tensor& a = c.input(0);
  const Tensor& b = c.input(1);
  DType dt = c.attr<DType>("T");
  check_dtype_in(dt, kMatMulDTypes, "MatMul");
  TS_CHECK(a.rank() == 2 && b.rank() == 2, "MatMul: inputs must be matrices, got ",
           shape_str(a.shape()), " and ", shape_str(b.shape()));
  bool ta = c.attr_or<bool>("transpose_a", false), tb = c.attr_or<bool>("transpose_b", false);
  int64_t m = a.dim(ta ? 1 : 0), k = a.dim(ta ? 0 : 1), kb = b.dim(tb ? 1 : 0), n = b.dim(tb ? 0 : 1);
  if (k != kb)
    fail("Matrix size-incompatible: In[0]: ", shape_str(a.shape()), ", In[1]: ", shape_str(b.shape()));
  with_acc(dt, "MatMul", [&]<typename A>() {
    std::vector<A> av = load<A>(a), bv = load<A>(b), out(static_cast<size_t>(m * n));
    // Element (i,p) of op(a): a is [m,k] (row stride k) or, transposed, [k,m] (row stride m).
    gemm<A>(m, n, k, av.data(), ta ? 1 : k, ta ? m : 1, bv.data(), tb ? 1 : n, tb ? k : 1,
            out.data(), n, false);
    c.set_output(0, store(out.data(), dt, {m, n}));
  });
}

// Batch shape of a batched-matmul operand and its row/col sizes after adjoint.
struct MatOperand {
  Shape batch;
  int64_t rows = 0, cols = 0;
};

PartialShape infer_batch_matmul_shape(const Node& node, const PartialShape& x,
                                      const PartialShape& y, bool adj_x, bool adj_y,
                                      bool broadcast) {
  if (!x.known_rank || !y.known_rank) return PartialShape::unknown();
  TS_CHECK(x.rank() >= 2, "In[0] ndims must be >= 2: ", x.rank());
  TS_CHECK(y.rank() >= 2, "In[1] ndims must be >= 2: ", y.rank());
  int64_t rx = x.rank(), ry = y.rank();
  int64_t m = x.dims[adj_x ? rx - 1 : rx - 2], kx = x.dims[adj_x ? rx - 2 : rx - 1];
  int64_t ky = y.dims[adj_y ? ry - 1 : ry - 2], n = y.dims[adj_y ? ry - 2 : ry - 1];
  if (kx >= 0 && ky >= 0 && kx != ky)
    fail("Matrix size-incompatible: In[0]: ", x.str(), ", In[1]: ", y.str());
  PartialShape bx(std::vector<int64_t>(x.dims.begin(), x.dims.end() - 2));
  PartialShape by(std::vector<int64_t>(y.dims.begin(), y.dims.end() - 2));
  PartialShape out;
  if (broadcast) {
    out = ops::broadcast(bx, by);
  } else {
    TS_CHECK(rx == ry, "In[0] and In[1] has different ndims: ", x.str(), " vs. ", y.str());
    out = bx;
    for (size_t i = 0; i < bx.dims.size(); ++i) {
      if (bx.dims[i] >= 0 && by.dims[i] >= 0 && bx.dims[i] != by.dims[i])
        fail("In[0].dim(", i, ") and In[1].dim(", i, ") must be the same: ", x.str(), " vs ", y.str());
      if (out.dims[i] < 0) out.dims[i] = by.dims[i];
    }
  }
  out.dims.push_back(m);
  out.dims.push_back(n);
  return out;
}

// out[b] = op(x[b]) @ op(y[b]) over broadcast batch dims; returns the output shape.
template <typename A>
std::vector<A> batch_matmul(const Node& node, const std::vector<A>& x, const Shape& xs, bool adj_x,
                            const std::vector<A>& y, const Shape& ys, bool adj_y, Shape* out_shape) {
  TS_CHECK(xs.size() >= 2, "In[0] ndims must be >= 2: ", xs.size());
  TS_CHECK(ys.size() >= 2, "In[1] ndims must be >= 2: ", ys.size());
  size_t rx = xs.size(), ry = ys.size();
  int64_t m = xs[adj_x ? rx - 1 : rx - 2], k = xs[adj_x ? rx - 2 : rx - 1];
  int64_t ky = ys[adj_y ? ry - 1 : ry - 2], n = ys[adj_y ? ry - 2 : ry - 1];
  if (k != ky)
    fail("Matrix size-incompatible: In[0]: ", shape_str(xs), ", In[1]: ", shape_str(ys));
  Shape bx(xs.begin(), xs.end() - 2), by(ys.begin(), ys.end() - 2);
  Shape bo = ops::broadcast(bx, by);
  int64_t batches = num_elements(bo);
  *out_shape = bo;
  out_shape->push_back(m);
  out_shape->push_back(n);
  std::vector<A> out(static_cast<size_t>(batches * m * n));
  int64_t x_rs = adj_x ? 1 : k, x_cs = adj_x ? m : 1, y_rs = adj_y ? 1 : n, y_cs = adj_y ? k : 1;
  // Only x carries a batch (y shared): one tall product instead of many small ones.
  if (num_elements(by) == 1 && !adj_x && num_elements(bx) == batches) {
    gemm<A>(batches * m, n, k, x.data(), k, 1, y.data(), y_rs, y_cs, out.data(), n, false);
    return out;
  }
  // Broadcast strides (0 where a dim is 1) of each operand's batch dims, aligned to bo.
  size_t r = bo.size();
  auto aligned = [&](const Shape& s) {
    std::vector<int64_t> st(r, 0);
    int64_t acc = 1;
    for (size_t i = s.size(); i-- > 0;) {
      st[r - s.size() + i] = s[i] == 1 ? 0 : acc;
      acc *= s[i];
    }
    return st;
  };
  std::vector<int64_t> sx = aligned(bx), sy = aligned(by), idx(r, 0);
  for (int64_t bi = 0; bi < batches; ++bi) {
    int64_t ox = 0, oy = 0;
    for (size_t d = 0; d < r; ++d) {
      ox += idx[d] * sx[d];
      oy += idx[d] * sy[d];
    }
    gemm<A>(m, n, k, x.data() + ox * m * k, x_rs, x_cs, y.data() + oy * k * n, y_rs, y_cs,
            out.data() + bi * m * n, n, false);
    for (size_t d = r; d-- > 0;) {
      if (++idx[d] < bo[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Gradients (ir/grad.h).

// d(a·b) for MatMul/BatchMatMul with transposes (adjoints): a' = g·bᵀ, b' = aᵀ·g, rearranged
// for each transpose combination so no explicit transpose is materialised.
GradList grad_matmul_like(GradContext& c, const std::string& op, const char* ka, const char* kb) {
  const bool ta = c.node.attr_or<bool>(ka, false), tb = c.node.attr_or<bool>(kb, false);
  Value a = c.x(0), b = c.x(1), g = c.dy();
  auto mm = [&](Value x, Value y, bool tx, bool ty) {
    return c.op(op, {x, y}, {{"T", c.dtype(x)}, {ka, tx}, {kb, ty}});
  };
  GradList out(2);
  if (c.needs(0)) out[0] = !ta ? (!tb ? mm(g, b, false, true) : mm(g, b, false, false))
                               : (!tb ? mm(b, g, false, true) : mm(b, g, true, true));
  if (c.needs(1)) out[1] = !tb ? (!ta ? mm(a, g, true, false) : mm(a, g, false, false))
                               : (!ta ? mm(g, a, true, false) : mm(g, a, true, true));
  // Batch dims broadcast in BatchMatMulV2: sum the gradient over them.
  if (op != "MatMul") {
    if (out[0]) out[0] = c.reduce_to(*out[0], a);
    if (out[1]) out[1] = c.reduce_to(*out[1], b);
  }
  return out;
}

// FusedBatchNorm: gradients of y (the statistics outputs feed moving averages, not losses).
// Training mode normalises with the batch statistics, so x's gradient has their terms:
//   dx = scale·rstd·(g − mean(g) − x̂·mean(g·x̂)); inference mode is an affine map of x.
GradList grad_fused_bn(GradContext& c) {
  for (int i = 1; i < c.node.num_outputs(); ++i)
    if (c.has_dy(i))
      fail_code(ErrorCode::kUnimplemented, "gradient through FusedBatchNorm's statistics outputs");
  Value x = c.x(0), scale = c.x(1), g = c.dy();
  int64_t rank = c.shape_of(x).rank();
  TS_CHECK(rank == 4 || rank == 5, "gradient needs a 4-D or 5-D input");
  const std::string format = c.node.attr_or<std::string>("data_format", "NHWC");
  const bool first = format == "NCHW" || format == "NCDHW";
  const int cd = first ? 1 : static_cast<int>(rank) - 1;
  std::vector<int32_t> axes_v, view(static_cast<size_t>(rank), 1);
  for (int32_t d = 0; d < rank; ++d)
    if (d != cd) axes_v.push_back(d);
  view[static_cast<size_t>(cd)] = -1;
  Value axes = c.ints(axes_v);
  auto chan = [&](Value v) { return first ? c.reshape(v, c.ints(view)) : v; };  // [C] -> broadcastable
  auto mean_keep = [&](Value v) {
    return c.op("Mean", {v, axes}, {{"T", c.dtype(v)}, {"Tidx", DType::kInt32}, {"keep_dims", true}});
  };
  Value eps = c.scalar(c.node.attr_or<float>("epsilon", 0.0001f), x);
  GradList out(5);
  const bool training = c.node.attr_or<bool>("is_training", true);
  if (training && !first && c.dtype(x) == c.dtype(scale) &&
      (c.dtype(x) == DType::kFloat32 || c.dtype(x) == DType::kFloat64)) {
    // Channels last: the one-op backward (ops/batch_norm_ops.cc) from the batch mean and
    // population variance the forward used (reserve_space_1/2, outputs 3 and 4).
    Node* bg = c.emit("TsBatchNormTrainingGrad", {g, x, scale, c.y(3), c.y(4)},
                      {{"T", c.dtype(x)}, {"epsilon", c.node.attr_or<float>("epsilon", 0.0001f)},
                       {"activation", std::string()}});
    if (c.needs(0)) out[0] = bg->out(0);
    out[1] = bg->out(1);
    out[2] = bg->out(2);
    return out;
  }
  if (training) {
    Value xc = c.sub(x, mean_keep(x));
    Value rstd = c.unary("Rsqrt", c.add(mean_keep(c.mul(xc, xc)), eps));
    Value xhat = c.mul(xc, rstd);
    Value gx = c.mul(g, xhat);
    if (c.needs(0)) {
      Value inner = c.sub(c.sub(g, mean_keep(g)), c.mul(xhat, mean_keep(gx)));
      out[0] = c.mul(c.mul(chan(scale), rstd), inner);
    }
    out[1] = c.sum(gx, axes);
    out[2] = c.sum(g, axes);
    return out;
  }
  Value mean = chan(c.x(3));
  Value rstd = c.unary("Rsqrt", c.add(chan(c.x(4)), eps));
  Value xc = c.sub(x, mean);
  Value k = c.mul(chan(scale), rstd);
  out[0] = c.mul(g, k);
  out[1] = c.sum(c.mul(g, c.mul(xc, rstd)), axes);
  Value gsum = c.sum(g, axes);
  out[2] = gsum;
  Value kv = c.mul(scale, c.unary("Rsqrt", c.add(c.x(4), eps)));  // per channel, [C]
  out[3] = c.neg(c.mul(gsum, kv));
  // d/dvar of (x-m)·s·(v+eps)^-1/2 = -1/2 (x-m)·s·(v+eps)^-3/2
  Value rstd_c = c.unary("Rsqrt", c.add(c.x(4), eps));
  out[4] = c.mul(c.sum(c.mul(g, xc), axes), c.mul(c.mul(kv, c.mul(rstd_c, rstd_c)), c.scalar(-0.5, g)));
  return out;
}

// Einsum with two operands "A,B->Z" (no ellipsis): each operand's gradient is the einsum of
// the output gradient with the other operand back to the operand's subscripts, which is
// exact when every operand index also appears in Z or in the other operand (no index summed
// within one operand alone, none repeated).
GradList grad_einsum(GradContext& c) {
  std::string eq = c.node.attr<std::string>("equation");
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  size_t comma = eq.find(','), arrow = eq.find("->");
  if (c.node.inputs.size() != 2 || comma == std::string::npos || arrow == std::string::npos ||
      eq.find('.') != std::string::npos)
    fail_code(ErrorCode::kUnimplemented, "gradient of einsum '", eq, "' (only two operands, no ellipsis)");
  std::string sub[2] = {eq.substr(0, comma), eq.substr(comma + 1, arrow - comma - 1)};
  std::string out = eq.substr(arrow + 2);
  GradList grads(2);
  for (int i = 0; i < 2; ++i) {
    if (!c.needs(static_cast<size_t>(i))) continue;
    const std::string &mine = sub[i], &other = sub[1 - i];
    for (char ch : mine)
      if (std::count(mine.begin(), mine.end(), ch) != 1 ||
          (out.find(ch) == std::string::npos && other.find(ch) == std::string::npos))
        fail_code(ErrorCode::kUnimplemented, "gradient of einsum '", eq, "' for operand ", i);
    grads[i] = c.op("Einsum", {c.dy(), c.x(1 - i)},
                    {{"T", c.dtype(c.dy())}, {"N", int64_t{2}}, {"equation", out + "," + other + "->" + mine}});
  }
  return grads;
}

void register_batch_matmul(OpRegistry& r) {
  AttrMap defaults = {{"adj_x", false}, {"adj_y", false}, {"grad_x", false}, {"grad_y", false}};
  for (int version : {1, 2, 3}) {
    std::string name = version == 1 ? "BatchMatMul" : "BatchMatMulV" + std::to_string(version);
    const char* out_attr = version == 3 ? "Tout" : "T";
    auto infer = [version, out_attr](InferContext& c) {
      PartialShape s = infer_batch_matmul_shape(c.node, c.input(0).shape, c.input(1).shape,
                                                c.attr_or<bool>("adj_x", false),
                                                c.attr_or<bool>("adj_y", false), version > 1);
      c.set_output(0, c.attr<DType>(out_attr), s);
    };
    auto compute = [version, out_attr, name](KernelContext& c) {
      DType out_t = c.attr<DType>(out_attr);
      if (version < 3) check_dtype_in(out_t, kMatMulDTypes, name.c_str());
      else
        check_dtype_in(out_t, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16,
                               DType::kInt16, DType::kInt32, DType::kInt64}, name.c_str());
      const Tensor& x = c.input(0);
      const Tensor& y = c.input(1);
      if (version == 1)
        TS_CHECK(x.rank() == y.rank() && std::equal(x.shape().begin(), x.shape().end() - std::min<int64_t>(2, x.rank()), y.shape().begin()),
                 "In[0] and In[1] must have compatible batch dimensions: ", shape_str(x.shape()),
                 " vs. ", shape_str(y.shape()));
      with_acc(out_t, name.c_str(), [&]<typename A>() {
        Shape os;
        std::vector<A> out = batch_matmul<A>(c.node, load<A>(x), x.shape(), c.attr_or<bool>("adj_x", false),
                                             load<A>(y), y.shape(), c.attr_or<bool>("adj_y", false), &os);
        c.set_output(0, store(out.data(), out_t, os));
      });
    };
    GradFn grad;  // V3 mixes input types: no gradient yet
    if (version < 3)
      grad = [](GradContext& c) { return grad_matmul_like(c, c.node.op, "adj_x", "adj_y"); };
    add_with_grad(r, {.name = name, .attr_defaults = defaults, .infer = infer, .compute = compute}, grad);
  }
}

// ---------------------------------------------------------------------------------------------
// Einsum. Each operand is first reduced to labels it shares with the other operand or the
// output (diagonals of repeated labels and sums over private labels happen in one strided
// walk), then laid out as [batch..., free..., contracted...] so the product is a batched GEMM.

struct EinsumSpec {
  std::vector<std::vector<int>> inputs;  // label ids per input dim (ellipsis dims expanded)
  std::vector<int> output;
};

// Label ids: letters are 0..51; ellipsis dims are 100 + position within the broadcast ellipsis.
EinsumSpec parse_einsum(const std::string& eq_raw, const std::vector<int64_t>& ranks) {
  std::string eq;
  for (char ch : eq_raw)
    if (ch != ' ') eq += ch;
  size_t arrow = eq.find("->");
  TS_CHECK(arrow != std::string::npos && eq.find("->", arrow + 1) == std::string::npos,
           "Einsum: expecting exactly one '->' in equation '", eq_raw, "'");
  std::vector<std::string> in_subs;
  std::string lhs = eq.substr(0, arrow), rhs = eq.substr(arrow + 2);
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    in_subs.push_back(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  TS_CHECK(in_subs.size() == ranks.size(), "Einsum: equation '", eq_raw, "' has ", in_subs.size(),
           " input subscripts but the op has ", ranks.size(), " inputs");
  TS_CHECK(ranks.size() == 1 || ranks.size() == 2, "Einsum: expecting 1 or 2 inputs, got ", ranks.size());
  // Splits one subscript into named labels before/after an optional ellipsis.
  auto split = [&](const std::string& s, std::vector<int>& before, std::vector<int>& after, bool& ell) {
    ell = false;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s.compare(i, 3, "...") == 0) {
        TS_CHECK(!ell, "Einsum: more than one ellipsis in '", s, "'");
        ell = true;
        i += 2;
        continue;
      }
      char ch = s[i];
      int id;
      if (ch >= 'a' && ch <= 'z') id = ch - 'a';
      else if (ch >= 'A' && ch <= 'Z') id = 26 + ch - 'A';
      else fail("Einsum: invalid character '", ch, "' in equation '", eq_raw, "'");
      (ell ? after : before).push_back(id);
    }
  };
  EinsumSpec spec;
  int64_t ell_rank = 0;
  std::vector<std::vector<int>> bef(in_subs.size()), aft(in_subs.size());
  std::vector<bool> has_ell(in_subs.size());
  for (size_t i = 0; i < in_subs.size(); ++i) {
    bool e;
    split(in_subs[i], bef[i], aft[i], e);
    has_ell[i] = e;
    int64_t named = static_cast<int64_t>(bef[i].size() + aft[i].size());
    if (ranks[i] >= 0) {
      if (e) {
        TS_CHECK(ranks[i] >= named, "Einsum: input ", i, " has rank ", ranks[i], " but subscript '",
                 in_subs[i], "' needs at least ", named);
        ell_rank = std::max(ell_rank, ranks[i] - named);
      } else {
        TS_CHECK(ranks[i] == named, "Einsum: input ", i, " has rank ", ranks[i], " but subscript '",
                 in_subs[i], "' has ", named, " labels");
      }
    }
  }
  for (size_t i = 0; i < in_subs.size(); ++i) {
    std::vector<int> labels = bef[i];
    if (has_ell[i]) {
      int64_t e = ranks[i] - static_cast<int64_t>(bef[i].size() + aft[i].size());
      for (int64_t j = ell_rank - e; j < ell_rank; ++j) labels.push_back(100 + static_cast<int>(j));
    }
    labels.insert(labels.end(), aft[i].begin(), aft[i].end());
    spec.inputs.push_back(labels);
  }
  std::vector<int> ob, oa;
  bool out_ell;
  split(rhs, ob, oa, out_ell);
  spec.output = ob;
  if (out_ell)
    for (int64_t j = 0; j < ell_rank; ++j) spec.output.push_back(100 + static_cast<int>(j));
  else if (ell_rank > 0)
    fail("Einsum: output contains ", ell_rank,
         " broadcasting dimension(s) but no ellipsis (...) was found in the output subscripts");
  spec.output.insert(spec.output.end(), oa.begin(), oa.end());
  for (size_t i = 0; i < spec.output.size(); ++i) {
    int l = spec.output[i];
    TS_CHECK(std::count(spec.output.begin(), spec.output.end(), l) == 1,
             "Einsum: output subscripts repeat a label in '", eq_raw, "'");
    bool found = false;
    for (const auto& in : spec.inputs) found |= std::count(in.begin(), in.end(), l) > 0;
    TS_CHECK(found, "Einsum: output label not found in any input in '", eq_raw, "'");
  }
  return spec;
}

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// Sizes of every label (-1 unknown); named labels must agree, ellipsis labels broadcast (1 vs
// n), so a 1 next to an unknown size stays unknown.
std::map<int, int64_t> einsum_sizes(const EinsumSpec& spec, const std::vector<PartialShape>& shapes) {
  std::map<int, std::vector<std::pair<size_t, int64_t>>> seen;  // label -> (input, size)
  for (size_t i = 0; i < shapes.size(); ++i)
    for (size_t d = 0; d < spec.inputs[i].size(); ++d)
      seen[spec.inputs[i][d]].push_back({i, shapes[i].known_rank ? shapes[i].dims[d] : -1});
  std::map<int, int64_t> size;
  for (const auto& [l, uses] : seen) {
    bool ellipsis = l >= 100, unknown = false;
    int64_t known = -1;
    for (const auto& [i, s] : uses) {
      if (s < 0) {
        unknown = true;
        continue;
      }
      if (ellipsis && s == 1) continue;
      if (known >= 0 && s != known)
        fail("Einsum: label '", l < 26 ? char('a' + l) : l < 52 ? char('A' + l - 26) : '.',
             "' has dimension ", s, " in input ", i, " (", shapes[i].str(), ") but ", known,
             " elsewhere");
      known = s;
    }
    if (known < 0 && ellipsis && !unknown) known = 1;  // every use is 1
    size[l] = known;
  }
  return size;
}

// out[out_labels] = sum over the input's other labels of in[...]; repeated input labels take
// the diagonal (their strides add up). Output dims use the input's own sizes.
template <typename A>
std::vector<A> relabel(const std::vector<A>& in, const Shape& in_shape, const std::vector<int>& in_labels,
                       const std::vector<int>& out_labels, Shape* out_shape) {
  std::vector<int64_t> strides = ops::strides_of(in_shape);
  std::map<int, std::pair<int64_t, int64_t>> info;  // label -> (size, combined stride)
  for (size_t d = 0; d < in_labels.size(); ++d) {
    auto& e = info[in_labels[d]];
    e.first = in_shape[d];
    e.second += strides[d];
  }
  std::vector<int64_t> osz, ost, ssz, sst;
  for (int l : out_labels) {
    osz.push_back(info.at(l).first);
    ost.push_back(info.at(l).second);
  }
  for (const auto& [l, e] : info)
    if (!contains(out_labels, l)) {
      ssz.push_back(e.first);
      sst.push_back(e.second);
    }
  *out_shape = osz;
  // Offsets of every summed position, computed once.
  std::vector<int64_t> sum_offsets;
  int64_t nsum = num_elements(ssz);
  sum_offsets.reserve(static_cast<size_t>(nsum));
  {
    std::vector<int64_t> idx(ssz.size(), 0);
    int64_t off = 0;
    for (int64_t s = 0; s < nsum; ++s) {
      sum_offsets.push_back(off);
      for (size_t d = ssz.size(); d-- > 0;) {
        off += sst[d];
        if (++idx[d] < ssz[d]) break;
        off -= sst[d] * ssz[d];
        idx[d] = 0;
      }
    }
  }
  int64_t total = num_elements(osz);
  std::vector<A> out(static_cast<size_t>(total));
  std::vector<int64_t> idx(osz.size(), 0);
  int64_t base = 0;
  for (int64_t o = 0; o < total; ++o) {
    A acc = 0;
    for (int64_t s : sum_offsets) acc += in[base + s];
    out[o] = acc;
    for (size_t d = osz.size(); d-- > 0;) {
      base += ost[d];
      if (++idx[d] < osz[d]) break;
      base -= ost[d] * osz[d];
      idx[d] = 0;
    }
  }
  return out;
}

void infer_einsum(InferContext& c) {
  std::vector<int64_t> ranks;
  std::vector<PartialShape> shapes;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    shapes.push_back(c.input(i).shape);
    ranks.push_back(shapes.back().rank());
  }
  DType t = c.attr<DType>("T");
  for (int64_t r : ranks)
    if (r < 0) {  // ellipsis widths unknown: only the output rank might be known; stay permissive
      c.set_output(0, t, PartialShape::unknown());
      return;
    }
  EinsumSpec spec = parse_einsum(c.attr<std::string>("equation"), ranks);
  auto size = einsum_sizes(spec, shapes);
  std::vector<int64_t> dims;
  for (int l : spec.output) dims.push_back(size.at(l));
  c.set_output(0, t, PartialShape(dims));
}

void einsum_kernel(KernelContext& c) {
  DType dt = c.attr<DType>("T");
  check_dtype_in(dt, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16,
                      DType::kInt32, DType::kInt64}, "Einsum");
  std::vector<int64_t> ranks;
  std::vector<PartialShape> shapes;
  for (const Tensor& t : c.inputs) {
    ranks.push_back(t.rank());
    shapes.push_back(PartialShape(t.shape()));
  }
  EinsumSpec spec = parse_einsum(c.attr<std::string>("equation"), ranks);
  auto size = einsum_sizes(spec, shapes);
  with_acc(dt, "Einsum", [&]<typename A>() {
    size_t n = c.num_inputs();
    // Labels each operand keeps: those in the output or in the other operand.
    std::vector<std::vector<int>> keep(n);
    std::vector<std::vector<A>> vals(n);
    std::vector<Shape> vshapes(n);
    for (size_t i = 0; i < n; ++i) {
      for (int l : spec.inputs[i]) {
        bool other = n == 2 && contains(spec.inputs[1 - i], l);
        if ((contains(spec.output, l) || other) && !contains(keep[i], l)) keep[i].push_back(l);
      }
    }
    if (n == 1) {
      Shape os;
      std::vector<A> out = relabel(load<A>(c.input(0)), c.input(0).shape(), spec.inputs[0], spec.output, &os);
      c.set_output(0, store(out.data(), dt, os));
      return;
    }
    std::vector<int> batch, contract, free0, free1;
    for (int l : spec.output) {
      bool in0 = contains(keep[0], l), in1 = contains(keep[1], l);
      if (in0 && in1) batch.push_back(l);
      else if (in0) free0.push_back(l);
      else free1.push_back(l);
    }
    for (int l : keep[0])
      if (!contains(spec.output, l)) contract.push_back(l);
    auto cat = [](std::initializer_list<const std::vector<int>*> parts) {
      std::vector<int> v;
      for (auto* p : parts) v.insert(v.end(), p->begin(), p->end());
      return v;
    };
    Shape s0, s1;
    std::vector<A> x = relabel(load<A>(c.input(0)), c.input(0).shape(), spec.inputs[0], cat({&batch, &free0, &contract}), &s0);
    std::vector<A> y = relabel(load<A>(c.input(1)), c.input(1).shape(), spec.inputs[1], cat({&batch, &contract, &free1}), &s1);
    // Collapse to [batch..., M, K] and [batch..., K, N].
    auto prod = [](const Shape& s, size_t from, size_t count) {
      int64_t p = 1;
      for (size_t i = from; i < from + count; ++i) p *= s[i];
      return p;
    };
    size_t nb = batch.size();
    Shape xs(s0.begin(), s0.begin() + nb), ys(s1.begin(), s1.begin() + nb);
    xs.push_back(prod(s0, nb, free0.size()));
    xs.push_back(prod(s0, nb + free0.size(), contract.size()));
    ys.push_back(prod(s1, nb, contract.size()));
    ys.push_back(prod(s1, nb + contract.size(), free1.size()));
    Shape ps;
    std::vector<A> p = batch_matmul<A>(c.node, x, xs, false, y, ys, false, &ps);
    // Result labels: batch (broadcast sizes), free0, free1; permute to the output order.
    std::vector<int> res_labels = cat({&batch, &free0, &free1});
    Shape res_shape;
    for (int l : res_labels) res_shape.push_back(size.at(l));
    Shape os;
    std::vector<A> out = relabel(p, res_shape, res_labels, spec.output, &os);
    c.set_output(0, store(out.data(), dt, os));
  });
}

// ---------------------------------------------------------------------------------------------
// FusedBatchNorm (V1/V2/V3), inference and training modes.

struct BnLayout {
  int64_t channels = 0, inner = 0, outer = 0;  // x viewed as [outer, channels, inner]
};

BnLayout bn_layout(const Tensor& x, const std::string& format) {
  TS_CHECK(x.rank() == 4 || x.rank() == 5, "input must be 4-dimensional (5 for 3D formats), got ",
           shape_str(x.shape()));
  bool first = format == "NCHW" || format == "NCDHW";
  TS_CHECK(first || format == "NHWC" || format == "NDHWC", "unsupported data_format '", format, "'");
  TS_CHECK((format.size() == 4) == (x.rank() == 4), "data_format '", format,
           "' does not match input rank ", x.rank());
  BnLayout l;
  int cd = first ? 1 : static_cast<int>(x.rank()) - 1;
  l.channels = x.dim(cd);
  l.outer = 1;
  l.inner = 1;
  for (int d = 0; d < cd; ++d) l.outer *= x.dim(d);
  for (int d = cd + 1; d < x.rank(); ++d) l.inner *= x.dim(d);
  return l;
}

void infer_fused_bn(InferContext& c, int version) {
  const PartialShape& x = c.input(0).shape;
  std::string format = c.attr_or<std::string>("data_format", "NHWC");
  int64_t ch = -1;
  if (x.known_rank) {
    TS_CHECK(x.rank() == 4 || x.rank() == 5, "input must be 4-dimensional, got ", x.str());
    bool first = format == "NCHW" || format == "NCDHW";
    ch = x.dims[first ? 1 : x.rank() - 1];
  }
  if (ch < 0 && c.input(1).shape.known_rank && c.input(1).shape.rank() == 1)
    ch = c.input(1).shape.dims[0];
  DType u = version == 1 ? c.attr<DType>("T") : c.attr<DType>("U");
  c.set_output(0, c.attr<DType>("T"), x);
  for (int i = 1; i <= 4; ++i) c.set_output(i, u, PartialShape({ch}));
  if (version == 3) c.set_output(5, u, PartialShape({0}));
}

void fused_bn_kernel(KernelContext& c, int version) {
  const Tensor& x = c.input(0);
  DType t = c.attr<DType>("T");
  DType u = version == 1 ? t : c.attr<DType>("U");
  check_dtype_in(t, {DType::kFloat32, DType::kFloat16, DType::kBFloat16}, "FusedBatchNorm");
  check_dtype_in(u, {DType::kFloat32, DType::kBFloat16}, "FusedBatchNorm");
  BnLayout l = bn_layout(x, c.attr_or<std::string>("data_format", "NHWC"));
  float eps = c.attr_or<float>("epsilon", 0.0001f);
  float factor = c.attr_or<float>("exponential_avg_factor", 1.0f);
  bool training = c.attr_or<bool>("is_training", true);
  std::vector<float> scale = load<float>(c.input(1)), offset = load<float>(c.input(2));
  std::vector<float> mean_in = load<float>(c.input(3)), var_in = load<float>(c.input(4));
  size_t C = static_cast<size_t>(l.channels);
  TS_CHECK(scale.size() == C, "scale must have ", C, " elements (the channel count), got ", scale.size());
  TS_CHECK(offset.size() == C, "offset must have ", C, " elements, got ", offset.size());
  bool have_running = mean_in.size() == C && var_in.size() == C;
  if (!training || factor != 1.0f)
    TS_CHECK(have_running, "mean and variance must have ", C, " elements, got ", mean_in.size(),
             " and ", var_in.size());
  std::vector<float> xv = load<float>(x);
  std::vector<float> mean(C), var(C);  // the statistics used for normalisation
  std::vector<float> out_mean(C), out_var(C);
  if (training) {
    int64_t count = l.outer * l.inner;
    // Double accumulation keeps long reductions (batch x spatial) accurate.
    std::vector<double> sum(C, 0.0), sq(C, 0.0);
    for (int64_t o = 0; o < l.outer; ++o)
      for (size_t ch = 0; ch < C; ++ch) {
        const float* p = xv.data() + (o * l.channels + ch) * l.inner;
        double s = 0;
        for (int64_t i = 0; i < l.inner; ++i) s += p[i];
        sum[ch] += s;
      }
    for (size_t ch = 0; ch < C; ++ch) mean[ch] = static_cast<float>(count ? sum[ch] / count : 0.0);
    for (int64_t o = 0; o < l.outer; ++o)
      for (size_t ch = 0; ch < C; ++ch) {
        const float* p = xv.data() + (o * l.channels + ch) * l.inner;
        double s = 0, m = mean[ch];
        for (int64_t i = 0; i < l.inner; ++i) s += (p[i] - m) * (p[i] - m);
        sq[ch] += s;
      }
    for (size_t ch = 0; ch < C; ++ch) {
      var[ch] = static_cast<float>(count ? sq[ch] / count : 0.0);
      float unbiased = static_cast<float>(count > 1 ? sq[ch] / (count - 1) : 0.0);
      if (count <= 1) unbiased = var[ch];
      out_mean[ch] = factor == 1.0f ? mean[ch] : (1 - factor) * mean_in[ch] + factor * mean[ch];
      out_var[ch] = factor == 1.0f ? unbiased : (1 - factor) * var_in[ch] + factor * unbiased;
    }
  } else {
    mean = mean_in;
    var = var_in;
    out_mean = mean_in;
    out_var = var_in;
  }
  std::vector<float> y(xv.size());
  for (size_t ch = 0; ch < C; ++ch) {
    float k = scale[ch] / std::sqrt(var[ch] + eps);
    float b = offset[ch] - mean[ch] * k;
    for (int64_t o = 0; o < l.outer; ++o) {
      size_t base = static_cast<size_t>((o * l.channels + ch) * l.inner);
      for (int64_t i = 0; i < l.inner; ++i) y[base + i] = xv[base + i] * k + b;
    }
  }
  Shape cs = {l.channels};
  c.set_output(0, store(y.data(), t, x.shape()));
  c.set_output(1, store(out_mean.data(), u, cs));
  c.set_output(2, store(out_var.data(), u, cs));
  c.set_output(3, store(mean.data(), u, cs));
  c.set_output(4, store(var.data(), u, cs));
  if (version == 3) c.set_output(5, Tensor(u, {0}));
}

// ---------------------------------------------------------------------------------------------
// LRN: out = x / (bias + alpha * sum of squares over a channel window)^beta.

void lrn_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  TS_CHECK(x.rank() == 4, "input must be 4-dimensional, got ", shape_str(x.shape()));
  int64_t r = c.attr_or<int64_t>("depth_radius", 5);
  float bias = c.attr_or<float>("bias", 1.0f), alpha = c.attr_or<float>("alpha", 1.0f),
        beta = c.attr_or<float>("beta", 0.5f);
  TS_CHECK(r >= 0, "depth_radius must be non-negative, got ", r);
  dispatch(Types<float, float16, bfloat16>{}, x.dtype(), "LRN", [&]<typename T>() {
    const T* in = x.data<T>();
    Tensor out(x.dtype(), x.shape());
    T* o = out.data<T>();
    int64_t depth = x.dim(3), rows = x.num_elements() / std::max<int64_t>(depth, 1);
    std::vector<float> v(static_cast<size_t>(depth));
    for (int64_t row = 0; row < rows && depth > 0; ++row) {
      for (int64_t d = 0; d < depth; ++d) v[d] = static_cast<float>(in[row * depth + d]);
      for (int64_t d = 0; d < depth; ++d) {
        float s = 0;
        for (int64_t j = std::max<int64_t>(0, d - r); j <= std::min(depth - 1, d + r); ++j) s += v[j] * v[j];
        o[row * depth + d] = static_cast<T>(v[d] * std::pow(bias + alpha * s, -beta));
      }
    }
    c.set_output(0, out);
  });
}

// ---------------------------------------------------------------------------------------------
// Image resizing (NHWC), with TF's coordinate conventions.

struct ResizeGeom {
  int64_t batch, in_h, in_w, channels, out_h, out_w;
  float scale_h, scale_w;
  bool align, half;
};

float resize_scale(int64_t in, int64_t out, bool align) {
  return align && out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1)
                          : static_cast<float>(in) / static_cast<float>(out);
}

void check_resize_attrs(bool align, bool half) {
  if (align && half) fail("If half_pixel_centers is True, align_corners must be False.");
}

ResizeGeom resize_geom(const KernelContext& c) {
  const Tensor& img = c.input(0);
  const Tensor& size = c.input(1);
  TS_CHECK(img.rank() == 4, "input must be 4-dimensional, got ", shape_str(img.shape()));
  TS_CHECK(size.rank() == 1 && size.num_elements() == 2, "size must be 1-dimensional with 2 elements, got ",
           shape_str(size.shape()));
  std::vector<int64_t> s = size.to_int_vector();
  ResizeGeom g;
  g.align = c.attr_or<bool>("align_corners", false);
  g.half = c.attr_or<bool>("half_pixel_centers", false);
  check_resize_attrs(g.align, g.half);
  g.batch = img.dim(0);
  g.in_h = img.dim(1);
  g.in_w = img.dim(2);
  g.channels = img.dim(3);
  g.out_h = s[0];
  g.out_w = s[1];
  TS_CHECK(g.out_h > 0 && g.out_w > 0, "output dimensions must be positive, got ", g.out_h, "x", g.out_w);
  TS_CHECK(g.in_h > 0 && g.in_w > 0, "input image must be non-empty, got ", shape_str(img.shape()));
  g.scale_h = resize_scale(g.in_h, g.out_h, g.align);
  g.scale_w = resize_scale(g.in_w, g.out_w, g.align);
  return g;
}

void infer_resize(InferContext& c, bool float_out) {
  const PartialShape& img = c.input(0).shape;
  check_resize_attrs(c.attr_or<bool>("align_corners", false), c.attr_or<bool>("half_pixel_centers", false));
  int64_t n = -1, ch = -1, h = -1, w = -1;
  if (img.known_rank) {
    TS_CHECK(img.rank() == 4, "input must be 4-dimensional, got ", img.str());
    n = img.dims[0];
    ch = img.dims[3];
  }
  if (auto s = known_ints(c, 1)) {
    TS_CHECK(s->size() == 2, "size must have 2 elements, got ", s->size());
    h = (*s)[0];
    w = (*s)[1];
  }
  c.set_output(0, float_out ? DType::kFloat32 : c.attr<DType>("T"), PartialShape({n, h, w, ch}));
}

struct Lerp {
  int64_t lower, upper;
  float frac;
};

std::vector<Lerp> bilinear_weights(int64_t out, int64_t in, float scale, bool half) {
  std::vector<Lerp> w(static_cast<size_t>(out));
  for (int64_t i = 0; i < out; ++i) {
    float pos = half ? (static_cast<float>(i) + 0.5f) * scale - 0.5f : static_cast<float>(i) * scale;
    float f = std::floor(pos);
    w[i].lower = std::max<int64_t>(static_cast<int64_t>(f), 0);
    w[i].upper = std::min<int64_t>(static_cast<int64_t>(std::ceil(pos)), in - 1);
    w[i].frac = pos - f;
  }
  return w;
}

void resize_bilinear_kernel(KernelContext& c) {
  ResizeGeom g = resize_geom(c);
  std::vector<float> x = load<float>(c.input(0));
  Tensor out(DType::kFloat32, {g.batch, g.out_h, g.out_w, g.channels});
  float* o = out.data<float>();
  auto ys = bilinear_weights(g.out_h, g.in_h, g.scale_h, g.half);
  auto xs = bilinear_weights(g.out_w, g.in_w, g.scale_w, g.half);
  int64_t C = g.channels;
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t oy = 0; oy < g.out_h; ++oy) {
      const float* top = x.data() + ((b * g.in_h + ys[oy].lower) * g.in_w) * C;
      const float* bot = x.data() + ((b * g.in_h + ys[oy].upper) * g.in_w) * C;
      float fy = ys[oy].frac;
      for (int64_t ox = 0; ox < g.out_w; ++ox) {
        int64_t l = xs[ox].lower * C, r = xs[ox].upper * C;
        float fx = xs[ox].frac;
        float* dst = o + ((b * g.out_h + oy) * g.out_w + ox) * C;
        for (int64_t ch = 0; ch < C; ++ch) {
          float t = top[l + ch] + (top[r + ch] - top[l + ch]) * fx;
          float d = bot[l + ch] + (bot[r + ch] - bot[l + ch]) * fx;
          dst[ch] = t + (d - t) * fy;
        }
      }
    }
  c.set_output(0, out);
}

std::vector<int64_t> nearest_index(int64_t out, int64_t in, float scale, bool align, bool half) {
  std::vector<int64_t> idx(static_cast<size_t>(out));
  for (int64_t i = 0; i < out; ++i) {
    float pos = half ? (static_cast<float>(i) + 0.5f) * scale : static_cast<float>(i) * scale;
    int64_t j = static_cast<int64_t>(align ? std::round(pos) : std::floor(pos));
    j = std::min(j, in - 1);
    if (half) j = std::max<int64_t>(j, 0);
    idx[i] = j;
  }
  return idx;
}

void resize_nearest_kernel(KernelContext& c) {
  ResizeGeom g = resize_geom(c);
  const Tensor& img = c.input(0);
  auto ys = nearest_index(g.out_h, g.in_h, g.scale_h, g.align, g.half);
  auto xs = nearest_index(g.out_w, g.in_w, g.scale_w, g.align, g.half);
  Tensor out(img.dtype(), {g.batch, g.out_h, g.out_w, g.channels});
  // A pure gather: copy whole channel rows as bytes.
  size_t es = dtype_size(img.dtype());
  TS_CHECK(is_pod(img.dtype()) && es > 0, "ResizeNearestNeighbor: unsupported dtype ", dtype_name(img.dtype()));
  const auto* in = static_cast<const std::byte*>(img.raw());
  auto* dst = static_cast<std::byte*>(out.mutable_raw());
  size_t row = static_cast<size_t>(g.channels) * es;
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t oy = 0; oy < g.out_h; ++oy)
      for (int64_t ox = 0; ox < g.out_w; ++ox)
        std::memcpy(dst + ((b * g.out_h + oy) * g.out_w + ox) * row,
                    in + ((b * g.in_h + ys[oy]) * g.in_w + xs[ox]) * row, row);
  c.set_output(0, out);
}

// Bicubic: Keys' cubic convolution with weights sampled from a 1024-entry table. Legacy mode
// uses A = -0.75 and clamps taps to the image; half-pixel mode uses A = -0.5, zeroes taps
// outside the image and renormalises the remaining weights.
struct Cubic {
  int64_t idx[4];
  float w[4];
};

constexpr int kCubicTable = 1024;

std::vector<float> cubic_table(float a) {
  std::vector<float> t((kCubicTable + 1) * 2);
  for (int i = 0; i <= kCubicTable; ++i) {
    float x = i * 1.0f / kCubicTable;
    t[i * 2] = ((a + 2) * x - (a + 3)) * x * x + 1;  // |x| <= 1
    x += 1.0f;
    t[i * 2 + 1] = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;  // 1 < |x| < 2
  }
  return t;
}

std::vector<Cubic> cubic_weights(int64_t out, int64_t in, float scale, bool half) {
  static const std::vector<float> legacy = cubic_table(-0.75f), keys = cubic_table(-0.5f);
  const std::vector<float>& table = half ? keys : legacy;
  std::vector<Cubic> res(static_cast<size_t>(out));
  for (int64_t i = 0; i < out; ++i) {
    Cubic& cw = res[i];
    float pos = half ? (static_cast<float>(i) + 0.5f) * scale - 0.5f : static_cast<float>(i) * scale;
    float f = std::floor(pos);
    int64_t base = static_cast<int64_t>(f);
    int64_t off = std::lrint((pos - f) * kCubicTable);
    cw.w[0] = table[off * 2 + 1];
    cw.w[1] = table[off * 2];
    cw.w[2] = table[(kCubicTable - off) * 2];
    cw.w[3] = table[(kCubicTable - off) * 2 + 1];
    if (half) {
      float sum = 0;
      for (int t = 0; t < 4; ++t) {
        int64_t j = base - 1 + t;
        if (j < 0 || j >= in) cw.w[t] = 0;
        sum += cw.w[t];
      }
      if (std::fabs(sum) >= 1000.0f * std::numeric_limits<float>::min())
        for (float& w : cw.w) w /= sum;
    }
    for (int t = 0; t < 4; ++t) cw.idx[t] = std::min(std::max<int64_t>(base - 1 + t, 0), in - 1);
  }
  return res;
}

void resize_bicubic_kernel(KernelContext& c) {
  ResizeGeom g = resize_geom(c);
  std::vector<float> x = load<float>(c.input(0));
  Tensor out(DType::kFloat32, {g.batch, g.out_h, g.out_w, g.channels});
  float* o = out.data<float>();
  auto ys = cubic_weights(g.out_h, g.in_h, g.scale_h, g.half);
  auto xs = cubic_weights(g.out_w, g.in_w, g.scale_w, g.half);
  int64_t C = g.channels;
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t oy = 0; oy < g.out_h; ++oy)
      for (int64_t ox = 0; ox < g.out_w; ++ox) {
        float* dst = o + ((b * g.out_h + oy) * g.out_w + ox) * C;
        const Cubic& cy = ys[oy];
        const Cubic& cx = xs[ox];
        for (int64_t ch = 0; ch < C; ++ch) {
          float rows[4];
          for (int t = 0; t < 4; ++t) {
            const float* r = x.data() + ((b * g.in_h + cy.idx[t]) * g.in_w) * C + ch;
            rows[t] = cx.w[0] * r[cx.idx[0] * C] + cx.w[1] * r[cx.idx[1] * C] +
                      cx.w[2] * r[cx.idx[2] * C] + cx.w[3] * r[cx.idx[3] * C];
          }
          dst[ch] = cy.w[0] * rows[0] + cy.w[1] * rows[1] + cy.w[2] * rows[2] + cy.w[3] * rows[3];
        }
      }
  c.set_output(0, out);
}

}  // namespace

void register_nn_ops(OpRegistry& r) {
  add_with_grad(r, {.name = "MatMul",
                    .attr_defaults = {{"transpose_a", false}, {"transpose_b", false}, {"grad_a", false}, {"grad_b", false}},
                    .infer = infer_matmul, .compute = matmul_kernel},
                [](GradContext& c) { return grad_matmul_like(c, "MatMul", "transpose_a", "transpose_b"); });
  register_batch_matmul(r);
  add_with_grad(r, {.name = "Einsum", .infer = infer_einsum, .compute = einsum_kernel}, grad_einsum);

  AttrMap bn_defaults = {{"epsilon", 0.0001f}, {"exponential_avg_factor", 1.0f},
                         {"data_format", std::string("NHWC")}, {"is_training", true}};
  std::vector<OutputArg> bn_outputs = {{"y"}, {"batch_mean"}, {"batch_variance"},
                                       {"reserve_space_1"}, {"reserve_space_2"}};
  for (int version : {1, 2, 3}) {
    std::string name = version == 1 ? "FusedBatchNorm" : "FusedBatchNormV" + std::to_string(version);
    std::vector<OutputArg> outs = bn_outputs;
    if (version == 3) outs.push_back({"reserve_space_3"});
    add_with_grad(r, {.name = name, .attr_defaults = bn_defaults, .output_args = outs,
                      .infer = [version](InferContext& c) { infer_fused_bn(c, version); },
                      .compute = [version](KernelContext& c) { fused_bn_kernel(c, version); }},
                  grad_fused_bn);
  }

  r.add({.name = "LRN",
         .attr_defaults = {{"depth_radius", int64_t{5}}, {"bias", 1.0f}, {"alpha", 1.0f},
                           {"beta", 0.5f}, {"T", DType::kFloat32}},
         .infer = [](InferContext& c) {
           ops::infer_same_as_input(c);
           const PartialShape& s = c.input(0).shape;
           TS_CHECK(!s.known_rank || s.rank() == 4, "input must be 4-dimensional, got ", s.str());
         },
         .compute = lrn_kernel});

  AttrMap resize_defaults = {{"align_corners", false}, {"half_pixel_centers", false}};
  r.add({.name = "ResizeBilinear", .attr_defaults = resize_defaults,
         .infer = [](InferContext& c) { infer_resize(c, true); }, .compute = resize_bilinear_kernel});
  r.add({.name = "ResizeNearestNeighbor", .attr_defaults = resize_defaults,
         .infer = [](InferContext& c) { infer_resize(c, false); }, .compute = resize_nearest_kernel});
  r.add({.name = "ResizeBicubic", .attr_defaults = resize_defaults,
         .infer = [](InferContext& c) { infer_resize(c, true); }, .compute = resize_bicubic_kernel});

  register_conv_ops(r);
  register_pool_ops(r);
}

}  // namespace tessera
