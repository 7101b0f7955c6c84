// Batch normalisation in training mode as Tessera ops (docs/fused_ops.md). The training step
// builder rewrites Keras 3's BatchNormalization training subgraph (tf.nn.moments +
// tf.nn.batch_normalization, passes/fuse_batch_norm_training.cc) into TsBatchNormTraining, and
// its gradient is one TsBatchNormTrainingGrad, so the cpu backend runs a few passes over the
// activations instead of ~25 elementwise ops, reductions and broadcasts.
//
// Not FusedBatchNormV3(is_training=True): its batch_variance output is Bessel-corrected, while
// Keras's moving-variance update reads the population variance that tf.nn.moments returns.
//
// The channel axis is the last one; statistics reduce over every other axis.
#include <cmath>

#include "ir/grad.h"
#include "ops/elementwise_util.h"
#include "ops/op_helpers.h"

namespace tessera {
namespace {

using namespace ew;
using BnTypes = Types<float, double>;

void check_activation(const Node& node) {
  const std::string act = node.attr_or<std::string>("activation", "");
  TS_CHECK(act.empty() || act == "Relu", "activation must be \"\" or \"Relu\", got '", act, "'");
}

// x as [rows, channels].
struct Rows {
  int64_t rows = 0, channels = 0;
};

Rows rows_of(const Tensor& x) {
  TS_CHECK(x.rank() >= 1, "input must have rank >= 1");
  Rows r;
  r.channels = x.dim(x.rank() - 1);
  r.rows = r.channels == 0 ? 0 : x.num_elements() / r.channels;
  return r;
}

void check_vec(const Tensor& t, int64_t c, const char* what) {
  TS_CHECK(t.rank() == 1 && t.dim(0) == c, what, " must have shape [", c, "] (the channel count), got ",
           shape_str(t.shape()));
}

// [C] inputs must match x's last dimension where both are known.
int64_t channels_of(InferContext& c, const std::vector<size_t>& vecs) {
  const PartialShape& x = c.input(0).shape;
  TS_CHECK(!x.known_rank || x.rank() >= 1, "input must have rank >= 1, got ", x.str());
  int64_t ch = x.known_rank ? x.dims.back() : -1;
  for (size_t i : vecs) {
    const PartialShape& s = c.input(i).shape;
    if (!s.known_rank) continue;
    TS_CHECK(s.rank() == 1, "input ", i, " must be a vector, got ", s.str());
    TS_CHECK(ch < 0 || s.dims[0] < 0 || s.dims[0] == ch, "input ", i, " has ", s.dims[0], " elements, x has ", ch,
             " channels");
    if (ch < 0) ch = s.dims[0];
  }
  return ch;
}

void check_types(InferContext& c, size_t n) {
  DType t = c.attr<DType>("T");
  TS_CHECK(t == DType::kFloat32 || t == DType::kFloat64, "T must be float32 or float64, got ", dtype_name(t));
  for (size_t i = 0; i < n; ++i)
    TS_CHECK(c.input(i).dtype == t, "input ", i, " is ", dtype_name(c.input(i).dtype), ", T is ", dtype_name(t));
  check_activation(c.node);
}

// ---- TsBatchNormTraining(x, scale, offset) -> (y, mean, variance) ----------------------------

void infer_bn_training(InferContext& c) {
  check_types(c, 3);
  int64_t ch = channels_of(c, {1, 2});
  DType t = c.attr<DType>("T");
  c.set_output(0, t, c.input(0).shape);
  c.set_output(1, t, PartialShape({ch}));
  c.set_output(2, t, PartialShape({ch}));
}

// Statistics in double, two passes (mean, then squared deviations), so the reference is
// accurate whatever the data's offset; y = (x − mean)·k + offset with k = scale·rsqrt(var +
// eps). tf.nn.batch_normalization computes x·k + (offset − mean·k), the same function, but
// centring first keeps y's low bits when the mean is large against the spread.
void bn_training_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  const Rows r = rows_of(x);
  const int64_t C = r.channels;
  check_vec(c.input(1), C, "scale");
  check_vec(c.input(2), C, "offset");
  const double eps = c.attr_or<float>("epsilon", 1e-3f);
  const bool relu = c.attr_or<std::string>("activation", "") == "Relu";
  dispatch(BnTypes{}, x.dtype(), "TsBatchNormTraining", [&]<typename T>() -> void {
    const T *px = x.data<T>(), *scale = c.input(1).data<T>(), *offset = c.input(2).data<T>();
    std::vector<double> sum(static_cast<size_t>(C), 0.0), sq(static_cast<size_t>(C), 0.0);
    for (int64_t i = 0; i < r.rows; ++i)
      for (int64_t ch = 0; ch < C; ++ch) sum[ch] += px[i * C + ch];
    Tensor mean(x.dtype(), {C}), var(x.dtype(), {C});
    for (int64_t ch = 0; ch < C; ++ch) mean.data<T>()[ch] = static_cast<T>(r.rows ? sum[ch] / r.rows : 0.0);
    for (int64_t i = 0; i < r.rows; ++i)
      for (int64_t ch = 0; ch < C; ++ch) {
        const double d = static_cast<double>(px[i * C + ch]) - mean.data<T>()[ch];
        sq[ch] += d * d;
      }
    for (int64_t ch = 0; ch < C; ++ch) var.data<T>()[ch] = static_cast<T>(r.rows ? sq[ch] / r.rows : 0.0);
    std::vector<T> k(static_cast<size_t>(C));
    for (int64_t ch = 0; ch < C; ++ch)
      k[ch] = static_cast<T>(scale[ch] / std::sqrt(static_cast<T>(var.data<T>()[ch] + static_cast<T>(eps))));
    Tensor y(x.dtype(), x.shape());
    T* py = y.data<T>();
    for (int64_t i = 0; i < r.rows; ++i)
      for (int64_t ch = 0; ch < C; ++ch) {
        const T v = (px[i * C + ch] - mean.data<T>()[ch]) * k[ch] + offset[ch];
        py[i * C + ch] = relu && v < T(0) ? T(0) : v;
      }
    c.set_output(0, std::move(y));
    c.set_output(1, std::move(mean));
    c.set_output(2, std::move(var));
  });
}

// ---- TsBatchNormTrainingGrad(dy, x, scale, mean, variance[, y]) -> (dx, dscale, doffset, dx_sum)
// With activation Relu, y (the forward op's output 0) is input 5 and dy is first masked to
// y > 0. Then with x̂ = (x − mean)·rstd, rstd = rsqrt(var + eps), n rows:
//   doffset = Σ dy, dscale = Σ dy·x̂, dx = scale·rstd·(dy − doffset/n − x̂·dscale/n),
// and dx_sum = Σ dx per channel, the sum of the dx values as stored (what a Sum of dx would
// give: the gradient of a bias added before the batch norm, fold_batch_norm_grad_sum).

size_t grad_inputs(const Node& n) { return n.attr_or<std::string>("activation", "") == "Relu" ? 6 : 5; }

void infer_bn_training_grad(InferContext& c) {
  const size_t n = grad_inputs(c.node);
  TS_CHECK(c.num_inputs() == n, "expects ", n, " inputs, got ", c.num_inputs());
  check_types(c, n);
  int64_t ch = channels_of(c, {2, 3, 4});
  DType t = c.attr<DType>("T");
  c.set_output(0, t, c.input(1).shape);
  c.set_output(1, t, PartialShape({ch}));
  c.set_output(2, t, PartialShape({ch}));
  c.set_output(3, t, PartialShape({ch}));
}

void bn_training_grad_kernel(KernelContext& c) {
  const Tensor& dy = c.input(0);
  const Tensor& x = c.input(1);
  TS_CHECK(dy.shape() == x.shape(), "dy has shape ", shape_str(dy.shape()), ", x ", shape_str(x.shape()));
  const bool relu = grad_inputs(c.node) == 6;
  if (relu) TS_CHECK(c.input(5).shape() == x.shape(), "y has shape ", shape_str(c.input(5).shape()));
  const Rows r = rows_of(x);
  const int64_t C = r.channels;
  check_vec(c.input(2), C, "scale");
  check_vec(c.input(3), C, "mean");
  check_vec(c.input(4), C, "variance");
  const double eps = c.attr_or<float>("epsilon", 1e-3f);
  dispatch(BnTypes{}, x.dtype(), "TsBatchNormTrainingGrad", [&]<typename T>() -> void {
    const T *pg = dy.data<T>(), *px = x.data<T>(), *scale = c.input(2).data<T>();
    const T *mean = c.input(3).data<T>(), *var = c.input(4).data<T>();
    const T* py = relu ? c.input(5).data<T>() : nullptr;
    auto g_at = [&](int64_t i) -> double { return py && !(py[i] > T(0)) ? 0.0 : static_cast<double>(pg[i]); };
    std::vector<double> rstd(static_cast<size_t>(C)), sg(static_cast<size_t>(C), 0.0), sgx(static_cast<size_t>(C), 0.0);
    for (int64_t ch = 0; ch < C; ++ch) rstd[ch] = 1.0 / std::sqrt(static_cast<double>(var[ch]) + static_cast<T>(eps));
    for (int64_t i = 0; i < r.rows; ++i)
      for (int64_t ch = 0; ch < C; ++ch) {
        const double g = g_at(i * C + ch);
        sg[ch] += g;
        sgx[ch] += g * (px[i * C + ch] - static_cast<double>(mean[ch])) * rstd[ch];
      }
    Tensor dx(x.dtype(), x.shape()), dscale(x.dtype(), {C}), doffset(x.dtype(), {C}), dsum(x.dtype(), {C});
    std::vector<double> sdx(static_cast<size_t>(C), 0.0);
    const double n = static_cast<double>(std::max<int64_t>(r.rows, 1));
    for (int64_t i = 0; i < r.rows; ++i)
      for (int64_t ch = 0; ch < C; ++ch) {
        const double xhat = (px[i * C + ch] - static_cast<double>(mean[ch])) * rstd[ch];
        dx.data<T>()[i * C + ch] =
            static_cast<T>(scale[ch] * rstd[ch] * (g_at(i * C + ch) - sg[ch] / n - xhat * sgx[ch] / n));
        sdx[ch] += dx.data<T>()[i * C + ch];
      }
    for (int64_t ch = 0; ch < C; ++ch) {
      dscale.data<T>()[ch] = static_cast<T>(sgx[ch]);
      doffset.data<T>()[ch] = static_cast<T>(sg[ch]);
      dsum.data<T>()[ch] = static_cast<T>(sdx[ch]);
    }
    c.set_output(0, std::move(dx));
    c.set_output(1, std::move(dscale));
    c.set_output(2, std::move(doffset));
    c.set_output(3, std::move(dsum));
  });
}

// The forward op's gradient. y's gradient (the loss path) is one TsBatchNormTrainingGrad. The
// statistics outputs usually feed only the moving-average updates; when a loss reads them,
// their gradients are added as tf.nn.moments defines them: d mean/dx = 1/n, and the variance
// is a mean of squared deviations from a stopped mean, so d var/dx = 2(x − mean)/n.
GradList grad_bn_training(GradContext& c) {
  Value x = c.x(0);
  const std::string act = c.node.attr_or<std::string>("activation", "");
  AttrMap attrs = {{"T", c.dtype(x)}, {"epsilon", c.node.attr_or<float>("epsilon", 1e-3f)}, {"activation", act}};
  GradList out(3);
  std::optional<Value> dx;
  if (c.has_dy(0)) {
    std::vector<Value> in = {c.dy(0), x, c.x(1), c.y(1), c.y(2)};
    if (act == "Relu") in.push_back(c.y(0));
    Node* g = c.emit("TsBatchNormTrainingGrad", in, attrs);
    dx = g->out(0);
    if (c.needs(1)) out[1] = g->out(1);
    if (c.needs(2)) out[2] = g->out(2);
  }
  if (c.has_dy(1) || c.has_dy(2)) {
    Value n = c.div(c.cast(c.op("Size", {x}, {{"T", c.dtype(x)}, {"out_type", DType::kInt32}}), c.dtype(x)),
                    c.cast(c.op("Size", {c.y(1)}, {{"T", c.dtype(x)}, {"out_type", DType::kInt32}}), c.dtype(x)));
    Value extra = c.div(c.dy(1), n);  // [C], broadcasts over x's rows
    if (c.has_dy(2)) {
      Value dev = c.sub(x, c.y(1));
      Value t = c.mul(dev, c.div(c.mul(c.dy(2), c.scalar(2, x)), n));
      extra = c.add(t, extra);
    }
    dx = dx ? c.add(*dx, extra) : c.add(c.zeros_like(x), extra);
  }
  if (c.needs(0) && dx) out[0] = dx;
  return out;
}

}  // namespace

void register_batch_norm_ops(OpRegistry& r) {
  add_with_grad(r, {.name = "TsBatchNormTraining",
                    .attr_defaults = {{"epsilon", 1e-3f}, {"activation", std::string()}, {"T", DType::kFloat32}},
                    .output_args = {{"y"}, {"mean"}, {"variance"}},
                    .infer = infer_bn_training, .compute = bn_training_kernel},
                grad_bn_training);
  r.add({.name = "TsBatchNormTrainingGrad",
         .attr_defaults = {{"epsilon", 1e-3f}, {"activation", std::string()}, {"T", DType::kFloat32}},
         .output_args = {{"dx"}, {"dscale"}, {"doffset"}, {"dx_sum"}},
         .infer = infer_bn_training_grad, .compute = bn_training_grad_kernel});
}

}  // namespace tessera
