// Reductions (Sum/Mean/Max/Min/Prod/All/Any/EuclideanNorm/L2Loss), ArgMax/ArgMin,
// Softmax/LogSoftmax, Cumsum/Cumprod and TopKV2.
//
// Axis reductions accumulate into an output-shaped buffer while reading the input once in
// memory order (the broadcast iterator with the accumulator as a broadcast operand), so both
// "reduce the last dims" and "reduce the leading/middle dims" are cache friendly. Float sums
// and products accumulate in double and round once; integers wrap like TF's.
#include <algorithm>
#include <numeric>
#include <optional>

#include "ir/grad.h"
#include "ops/elementwise_util.h"
#include "ops/op_helpers.h"

namespace tessera {
namespace {

using namespace ew;

using ArgTypes = Types<float, double, float16, bfloat16, int32_t, int64_t, uint8_t, int8_t,
                       int16_t, uint16_t, uint32_t, uint64_t, bool>;
using IndexTypes = Types<int16_t, uint16_t, int32_t, int64_t>;

// Accumulator for sums: double for floats, 64-bit wrapping integers otherwise (TF's Mean of
// small integer types does not overflow at the element type; its Sum wraps, which the final
// narrowing reproduces).
template <typename T>
using SumAcc = std::conditional_t<is_floating<T>, double,
                                  std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

template <typename A> A acc_add(A a, A b) {
  if constexpr (std::is_integral_v<A>) return static_cast<A>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
  else return a + b;
}
template <typename A> A acc_mul(A a, A b) {
  if constexpr (std::is_integral_v<A>) return static_cast<A>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
  else return a * b;
}

template <typename T, typename A> T store(A v) {
  if constexpr (std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>) return T(static_cast<float>(v));
  else return static_cast<T>(v);
}

// ---- axis reductions -----------------------------------------------------------------------

struct ReducePlan {
  Shape view;       // input rank, reduced dims set to 1
  Shape out_shape;  // view, or without the reduced dims
  int64_t count = 1;  // input elements per output element
};

ReducePlan plan_reduce(const Shape& in, const Tensor& axes, bool keep_dims) {
  ReducePlan p;
  p.view = in;
  std::vector<int64_t> ax = reduction_axes(axes, static_cast<int64_t>(in.size()));
  for (int64_t a : ax) {
    p.count *= in[a];
    p.view[a] = 1;
  }
  for (size_t d = 0; d < in.size(); ++d)
    if (keep_dims || !std::binary_search(ax.begin(), ax.end(), static_cast<int64_t>(d)))
      p.out_shape.push_back(p.view[d]);
  return p;
}

// Folds every input element into acc[output index] with `comb`; acc starts at `init`.
template <typename T, typename A, typename Comb>
std::vector<A> accumulate(const Tensor& x, const ReducePlan& plan, A init, Comb comb) {
  std::vector<A> acc(static_cast<size_t>(num_elements(plan.view)), init);
  Broadcast p = make_broadcast({&x.shape(), &plan.view});
  const T* in = x.data<T>();
  const bool acc_inner = p.inner[1] != 0;
  p.for_each_row([&](int64_t o, const int64_t* off, int64_t n) {
    const T* src = in + o;
    A* a = acc.data() + off[1];
    if (acc_inner) {
      for (int64_t i = 0; i < n; ++i) a[i] = comb(a[i], src[i]);
    } else {
      A v = *a;
      for (int64_t i = 0; i < n; ++i) v = comb(v, src[i]);
      *a = v;
    }
  });
  return acc;
}

// OpDef::rowwise of a reduction: the axes are known and leave the batch dim alone.
bool reduce_rows(const Node& node, const std::vector<bool>& batched) {
  if (batched.size() != 2 || !batched[0] || batched[1]) return false;
  const PartialShape& in = node.inputs[0].node->outputs[node.inputs[0].index].shape;
  std::optional<std::vector<int64_t>> axes = ops::known_ints(node, 1);
  if (!in.known_rank || !axes) return false;
  for (int64_t a : *axes)
    if (a == 0 || a == -in.rank()) return false;
  return true;
}

// A reduction op: `run<T>(x, plan, out)` fills `out`.
template <typename... Ts, typename Run>
void add_reduction(OpRegistry& r, const char* name, Types<Ts...>, Run run, bool to_bool = false,
                   GradFn grad = {}) {
  add_with_grad(r, {.name = name,
         .attr_defaults = {{"keep_dims", false}, {"Tidx", DType::kInt32}},
         .infer = [to_bool](InferContext& c) {
           const ValueInfo& in = c.input(0);
           const bool keep = c.attr_or<bool>("keep_dims", false);
           const DType dt = to_bool ? DType::kBool : in.dtype;
           if (!in.shape.known_rank) return c.set_output(0, dt, PartialShape::unknown());
           const int64_t rank = in.shape.rank();
           if (auto axes = ops::known_ints(c, 1)) {
             Tensor t = Tensor::from_vector(*axes, {static_cast<int64_t>(axes->size())});
             std::vector<int64_t> ax = reduction_axes(t, rank);
             std::vector<int64_t> dims;
             for (int64_t d = 0; d < rank; ++d) {
               bool reduced = std::binary_search(ax.begin(), ax.end(), d);
               if (!reduced) dims.push_back(in.shape.dims[d]);
               else if (keep) dims.push_back(1);
             }
             return c.set_output(0, dt, PartialShape(dims));
           }
           const PartialShape& axes_shape = c.input(1).shape;
           if (keep) return c.set_output(0, dt, PartialShape(std::vector<int64_t>(rank, -1)));
           if (axes_shape.known_rank && axes_shape.rank() <= 1) {
             int64_t k = axes_shape.rank() == 0 ? 1 : axes_shape.dims[0];
             if (k >= 0 && k <= rank)
               return c.set_output(0, dt, PartialShape(std::vector<int64_t>(rank - k, -1)));
           }
           c.set_output(0, dt, PartialShape::unknown());
         },
         .compute = [name, run](KernelContext& c) {
           const Tensor& x = c.input(0);
           ReducePlan plan = plan_reduce(x.shape(), c.input(1), c.attr_or<bool>("keep_dims", false));
           Tensor out(x.dtype(), plan.out_shape);
           dispatch(Types<Ts...>{}, x.dtype(), name, [&]<typename T>() -> void {
             run.template operator()<T>(x, plan, out);
           });
           c.set_output(0, std::move(out));
         },
         .rowwise = reduce_rows}, std::move(grad));
}

// Runs `accumulate` then writes fin(acc) for each output.
template <typename T, typename A, typename Comb, typename Fin>
void reduce_to(const Tensor& x, const ReducePlan& plan, Tensor& out, A init, Comb comb, Fin fin) {
  std::vector<A> acc = accumulate<T, A>(x, plan, init, comb);
  T* o = out.data<T>();
  for (size_t i = 0; i < acc.size(); ++i) o[i] = fin(acc[i]);
}

template <typename T> Calc<T> lowest() {
  if constexpr (is_floating<T>) return -std::numeric_limits<Calc<T>>::infinity();
  else return std::numeric_limits<T>::lowest();
}
template <typename T> Calc<T> highest() {
  if constexpr (is_floating<T>) return std::numeric_limits<Calc<T>>::infinity();
  else return std::numeric_limits<T>::max();
}


// ---- gradients (ir/grad.h) -------------------------------------------------------------------

// A reduction's output (or its gradient) with the reduced dims back as size 1.
Value kept_dims(GradContext& c, Value v) {
  if (c.node.attr_or<bool>("keep_dims", false)) return v;
  return c.unreduce(v, c.x(0), c.x(1));
}
Value broadcast_to_input(GradContext& c, Value v) {
  return c.op("BroadcastTo", {v, c.shape(c.x(0))}, {{"T", c.dtype(v)}, {"Tidx", DType::kInt32}});
}

GradList grad_sum(GradContext& c) { return {broadcast_to_input(c, kept_dims(c, c.dy())), std::nullopt}; }

// Sum's gradient scaled by (output size / input size), the reciprocal of the count.
GradList grad_mean(GradContext& c) {
  Value g = broadcast_to_input(c, kept_dims(c, c.dy()));
  auto size = [&](Value v) {
    return c.cast(c.op("Size", {v}, {{"T", c.dtype(v)}, {"out_type", DType::kInt32}}), c.dtype(g));
  };
  return {c.mul(g, c.div(size(c.y()), size(c.x(0)))), std::nullopt};
}

// The gradient goes to the elements equal to the extremum, split evenly between ties (as TF).
GradList grad_extremum(GradContext& c) {
  Value x = c.x(0);
  Value hit = c.mask(c.binary("Equal", x, kept_dims(c, c.y())), x);
  Value count = c.sum(hit, c.cast(c.x(1), DType::kInt32), /*keep_dims=*/true);
  return {c.mul(c.div(hit, count), kept_dims(c, c.dy())), std::nullopt};
}

GradList grad_l2_loss(GradContext& c) { return {c.mul(c.x(0), c.dy())}; }

// cumsum: each input adds into the outputs at and after it (before it when reversed), so
// its gradient is the cumulative sum of g in the other direction.
GradList grad_cumsum(GradContext& c) {
  const bool exclusive = c.node.attr_or<bool>("exclusive", false), reverse = c.node.attr_or<bool>("reverse", false);
  return {c.op("Cumsum", {c.dy(), c.x(1)}, {{"T", c.dtype(c.dy())}, {"Tidx", c.dtype(c.x(1))},
                                            {"exclusive", exclusive}, {"reverse", !reverse}}),
          std::nullopt};
}

// softmax: (g - sum(g * y)) * y over the last axis.
GradList grad_softmax(GradContext& c) {
  Value g = c.dy(), y = c.y();
  Value dot = c.sum(c.mul(g, y), c.ints({-1}), true);
  return {c.mul(c.sub(g, dot), y)};
}
// log_softmax: g - exp(y) * sum(g) over the last axis.
GradList grad_log_softmax(GradContext& c) {
  Value g = c.dy();
  return {c.sub(g, c.mul(c.unary("Exp", c.y()), c.sum(g, c.ints({-1}), true)))};
}

void register_axis_reductions(OpRegistry& r) {
  add_reduction(r, "Sum", RealTypes{}, []<typename T>(const Tensor& x, const ReducePlan& p, Tensor& out) {
    using A = SumAcc<T>;
    reduce_to<T, A>(x, p, out, A(0), [](A a, T v) { return acc_add(a, static_cast<A>(up(v))); },
                    [](A a) { return store<T>(a); });
  }, false, grad_sum);
  add_reduction(r, "Mean", RealTypes{}, []<typename T>(const Tensor& x, const ReducePlan& p, Tensor& out) {
    using A = SumAcc<T>;
    const A n = static_cast<A>(p.count);
    reduce_to<T, A>(x, p, out, A(0), [](A a, T v) { return acc_add(a, static_cast<A>(up(v))); },
                    [n](A a) {
                      if constexpr (std::is_integral_v<A>) return store<T>(n == 0 ? A(0) : a / n);
                      else return store<T>(a / n);  // 0/0: NaN for an empty reduction
                    });
  }, false, grad_mean);
  add_reduction(r, "Prod", RealTypes{}, []<typename T>(const Tensor& x, const ReducePlan& p, Tensor& out) {
    using A = SumAcc<T>;
    reduce_to<T, A>(x, p, out, A(1), [](A a, T v) { return acc_mul(a, static_cast<A>(up(v))); },
                    [](A a) { return store<T>(a); });
  });
  // Max/Min propagate NaN; an empty reduction gives -inf/lowest (Max) or +inf/max (Min).
  add_reduction(r, "Max", RealTypes{}, []<typename T>(const Tensor& x, const ReducePlan& p, Tensor& out) {
    using C = Calc<T>;
    reduce_to<T, C>(x, p, out, lowest<T>(), [](C a, T t) {
      C v = up(t);
      if constexpr (is_floating<T>) {
        if (std::isnan(v)) return v;
      }
      return a < v ? v : a;
    }, [](C a) { return static_cast<T>(a); });
  }, false, grad_extremum);
  add_reduction(r, "Min", RealTypes{}, []<typename T>(const Tensor& x, const ReducePlan& p, Tensor& out) {
    using C = Calc<T>;
    reduce_to<T, C>(x, p, out, highest<T>(), [](C a, T t) {
      C v = up(t);
      if constexpr (is_floating<T>) {
        if (std::isnan(v)) return v;
      }
      return v < a ? v : a;
    }, [](C a) { return static_cast<T>(a); });
  }, false, grad_extremum);
  // sqrt(sum(x*x)); for integers the squares and the sum wrap in T and the root truncates.
  add_reduction(r, "EuclideanNorm", RealTypes{}, []<typename T>(const Tensor& x, const ReducePlan& p, Tensor& out) {
    using A = SumAcc<T>;
    reduce_to<T, A>(x, p, out, A(0), [](A a, T t) {
      if constexpr (is_floating<T>) {
        double v = up(t);
        return a + v * v;
      } else {
        return acc_add(a, static_cast<A>(wmul(t, t)));
      }
    }, [](A a) {
      if constexpr (is_floating<T>) return store<T>(std::sqrt(a));
      else return float_to_int<T>(std::sqrt(static_cast<double>(static_cast<T>(a))), false);
    });
  });
  add_reduction(r, "All", Types<bool>{}, []<typename T>(const Tensor& x, const ReducePlan& p, Tensor& out) {
    reduce_to<bool, uint8_t>(x, p, out, 1, [](uint8_t a, bool v) { return uint8_t(a && v); },
                             [](uint8_t a) { return a != 0; });
  }, true);
  add_reduction(r, "Any", Types<bool>{}, []<typename T>(const Tensor& x, const ReducePlan& p, Tensor& out) {
    reduce_to<bool, uint8_t>(x, p, out, 0, [](uint8_t a, bool v) { return uint8_t(a || v); },
                             [](uint8_t a) { return a != 0; });
  }, true);

  add_with_grad(r, {.name = "L2Loss",
         .infer = [](InferContext& c) { c.set_output(0, c.input(0).dtype, PartialShape(std::vector<int64_t>{})); },
         .compute = [](KernelContext& c) {
           const Tensor& x = c.input(0);
           Tensor out(x.dtype(), {});
           dispatch(FloatTypes{}, x.dtype(), "L2Loss", [&]<typename T>() -> void {
             const T* a = x.data<T>();
             double s = 0;
             for (int64_t i = 0; i < x.num_elements(); ++i) {
               double v = up(a[i]);
               s += v * v;
             }
             out.data<T>()[0] = store<T>(s / 2);
           });
           c.set_output(0, std::move(out));
         }}, grad_l2_loss);
}

// ---- single-axis ops: [outer, n, inner] views ------------------------------------------------

struct AxisView {
  int64_t outer = 1, n = 1, inner = 1;
};
AxisView axis_view(const Shape& s, int64_t axis) {
  AxisView v;
  for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
    if (d < axis) v.outer *= s[d];
    else if (d == axis) v.n = s[d];
    else v.inner *= s[d];
  }
  return v;
}

// The axis operand's value when known at compile time, for inference.
std::optional<int64_t> known_axis(const InferContext& c, size_t i) {
  auto v = ops::known_ints(c, i);
  if (!v || v->size() != 1) return std::nullopt;
  return (*v)[0];
}

template <bool kMax>
void add_arg_reduction(OpRegistry& r, const char* name) {
  r.add({.name = name,
         .attr_defaults = {{"Tidx", DType::kInt32}, {"output_type", DType::kInt64}},
         .infer = [](InferContext& c) {
           const DType dt = c.attr_or<DType>("output_type", DType::kInt64);
           const PartialShape& in = c.input(0).shape;
           if (!in.known_rank) return c.set_output(0, dt, PartialShape::unknown());
           std::vector<int64_t> dims(in.dims);
           if (auto a = known_axis(c, 1)) {
             const int64_t rank = in.rank();
             if (*a < -rank || *a >= rank)
               fail("Expected dimension in the range [", -rank, ", ", rank, "), but got ", *a);
             dims.erase(dims.begin() + (*a < 0 ? *a + rank : *a));
             return c.set_output(0, dt, PartialShape(dims));
           }
           c.set_output(0, dt, in.rank() > 0 ? PartialShape(std::vector<int64_t>(in.rank() - 1, -1))
                                             : PartialShape::unknown());
         },
         .compute = [name](KernelContext& c) {
           const Tensor& x = c.input(0);
           const Tensor& dim = c.input(1);
           if (dim.num_elements() != 1) fail("dimension must be a scalar, got shape ", shape_str(dim.shape()));
           const int64_t rank = x.rank();
           int64_t axis = dim.scalar_int();
           if (axis < -rank || axis >= rank)
             fail("Expected dimension in the range [", -rank, ", ", rank, "), but got ", axis);
           if (axis < 0) axis += rank;
           if (x.dim(axis) == 0)
             fail("Reduction axis ", axis, " is empty in shape ", shape_str(x.shape()));
           const AxisView v = axis_view(x.shape(), axis);
           std::vector<int64_t> idx(static_cast<size_t>(v.outer * v.inner), 0);
           dispatch(ArgTypes{}, x.dtype(), name, [&]<typename T>() -> void {
             // Strict comparison against a running best that starts below (above) every value:
             // ties keep the first index and NaNs never win, as TF's CPU kernel.
             using C = Calc<T>;
             const T* in = x.data<T>();
             std::vector<C> best(static_cast<size_t>(v.inner));
             for (int64_t o = 0; o < v.outer; ++o) {
               int64_t* id = idx.data() + o * v.inner;
               std::fill(best.begin(), best.end(), kMax ? lowest<T>() : highest<T>());
               for (int64_t j = 0; j < v.n; ++j) {
                 const T* row = in + (o * v.n + j) * v.inner;
                 for (int64_t k = 0; k < v.inner; ++k) {
                   const C val = up(row[k]);
                   if (kMax ? best[k] < val : val < best[k]) {
                     best[k] = val;
                     id[k] = j;
                   }
                 }
               }
             }
           });
           Shape out_shape = x.shape();
           out_shape.erase(out_shape.begin() + axis);
           const DType dt = c.attr_or<DType>("output_type", DType::kInt64);
           Tensor out(dt, out_shape);
           dispatch(IndexTypes{}, dt, name, [&]<typename I>() -> void {
             std::copy(idx.begin(), idx.end(), out.data<I>());
           });
           c.set_output(0, std::move(out));
         }});
}

template <bool kLog>
void softmax_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  if (x.rank() < 1) fail("logits must have >= 1 dimension, got ", shape_str(x.shape()));
  Tensor out(x.dtype(), x.shape());
  dispatch(FloatTypes{}, x.dtype(), kLog ? "LogSoftmax" : "Softmax", [&]<typename T>() -> void {
    using C = Calc<T>;
    const int64_t n = x.dim(x.rank() - 1);
    if (n == 0) return;
    const int64_t rows = x.num_elements() / n;
    std::vector<C> e(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows; ++r) {
      const T* in = x.data<T>() + r * n;
      T* o = out.data<T>() + r * n;
      C m = up(in[0]);
      for (int64_t i = 1; i < n; ++i) m = std::max(m, up(in[i]));
      double sum = 0;
      if constexpr (kLog) {  // e = x - max
        for (int64_t i = 0; i < n; ++i) {
          e[i] = up(in[i]) - m;
          sum += std::exp(e[i]);
        }
        const C ls = static_cast<C>(std::log(sum));
        for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(e[i] - ls);
      } else {  // e = exp(x - max)
        for (int64_t i = 0; i < n; ++i) {
          e[i] = std::exp(up(in[i]) - m);
          sum += e[i];
        }
        const double inv = 1.0 / sum;
        for (int64_t i = 0; i < n; ++i) o[i] = store<T>(e[i] * inv);
      }
    }
  });
  c.set_output(0, std::move(out));
}

// Cumsum/Cumprod: the running value is kept in T (rounded each step, as TF's scan does).
template <bool kProd>
void scan_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  const Tensor& axis_t = c.input(1);
  if (axis_t.rank() != 0) fail("ScanOp: axis must be a scalar, not ", shape_str(axis_t.shape()));
  const int64_t rank = x.rank();
  int64_t axis = axis_t.scalar_int();
  if (axis < -rank || axis >= rank)
    fail("ScanOp: Expected scan axis in the range [", -rank, ", ", rank, "), but got ", axis);
  if (axis < 0) axis += rank;
  const bool exclusive = c.attr_or<bool>("exclusive", false);
  const bool reverse = c.attr_or<bool>("reverse", false);
  const AxisView v = axis_view(x.shape(), axis);
  Tensor out(x.dtype(), x.shape());
  dispatch(RealTypes{}, x.dtype(), kProd ? "Cumprod" : "Cumsum", [&]<typename T>() -> void {
    std::vector<T> acc(static_cast<size_t>(v.inner));
    const T* in = x.data<T>();
    T* o = out.data<T>();
    for (int64_t b = 0; b < v.outer; ++b) {
      std::fill(acc.begin(), acc.end(), static_cast<T>(kProd ? 1 : 0));
      for (int64_t s = 0; s < v.n; ++s) {
        const int64_t j = reverse ? v.n - 1 - s : s;
        const int64_t base = (b * v.n + j) * v.inner;
        for (int64_t k = 0; k < v.inner; ++k) {
          const T prev = acc[k];
          acc[k] = static_cast<T>(kProd ? wmul(up(prev), up(in[base + k])) : wadd(up(prev), up(in[base + k])));
          o[base + k] = exclusive ? prev : acc[k];
        }
      }
    }
  });
  c.set_output(0, std::move(out));
}

// ---- TopKV2 --------------------------------------------------------------------------------

void infer_top_k(InferContext& c) {
  const ValueInfo& in = c.input(0);
  const DType idx = c.attr_or<DType>("index_type", DType::kInt32);
  PartialShape s = in.shape;
  if (s.known_rank) {
    if (s.rank() < 1) fail("input must be >= 1-D, got shape ", s.str());
    int64_t k = -1;
    if (auto kv = known_axis(c, 1)) {
      k = *kv;
      if (k < 0) fail("Need k >= 0, got ", k);
      if (s.dims.back() >= 0 && s.dims.back() < k)
        fail("input must have at least k columns. Had ", s.dims.back(), ", needed ", k);
    }
    s.dims.back() = k;
  }
  c.set_output(0, in.dtype, s);
  c.set_output(1, idx, s);
}

void top_k_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  const Tensor& kt = c.input(1);
  if (x.rank() < 1) fail("input must be >= 1-D, got shape ", shape_str(x.shape()));
  if (kt.rank() != 0) fail("k must be 0-D, got shape ", shape_str(kt.shape()));
  const int64_t k = kt.scalar_int();
  if (k < 0) fail("Need k >= 0, got ", k);
  const int64_t n = x.dim(x.rank() - 1);
  if (n < k) fail("input must have at least k columns. Had ", n, ", needed ", k);
  Shape out_shape = x.shape();
  out_shape.back() = k;
  const int64_t rows = num_elements(Shape(x.shape().begin(), x.shape().end() - 1));
  Tensor values(x.dtype(), out_shape);
  std::vector<int64_t> picked(static_cast<size_t>(rows * k));
  dispatch(RealTypes{}, x.dtype(), "TopKV2", [&]<typename T>() -> void {
    using C = Calc<T>;
    std::vector<C> row(static_cast<size_t>(n));
    std::vector<int64_t> order(static_cast<size_t>(n));
    // Larger first, ties by lower index; NaN counts as larger than every number (a total
    // order, so the sort is well defined).
    auto before = [&](int64_t a, int64_t b) {
      const C va = row[a], vb = row[b];
      if constexpr (is_floating<T>) {
        const bool na = std::isnan(va), nb = std::isnan(vb);
        if (na || nb) return na && nb ? a < b : na;
      }
      if (va != vb) return va > vb;
      return a < b;
    };
    for (int64_t r = 0; r < rows && k > 0; ++r) {
      const T* in = x.data<T>() + r * n;
      for (int64_t i = 0; i < n; ++i) row[i] = up(in[i]);
      std::iota(order.begin(), order.end(), int64_t{0});
      std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
      T* vo = values.data<T>() + r * k;
      for (int64_t i = 0; i < k; ++i) {
        vo[i] = in[order[i]];
        picked[r * k + i] = order[i];
      }
    }
  });
  const DType idx_type = c.attr_or<DType>("index_type", DType::kInt32);
  Tensor indices(idx_type, out_shape);
  dispatch(Types<int16_t, int32_t, int64_t>{}, idx_type, "TopKV2", [&]<typename I>() -> void {
    std::copy(picked.begin(), picked.end(), indices.data<I>());
  });
  c.set_output(0, std::move(values));
  c.set_output(1, std::move(indices));
}

}  // namespace

void register_reduction_ops(OpRegistry& r) {
  register_axis_reductions(r);
  add_arg_reduction<true>(r, "ArgMax");
  add_arg_reduction<false>(r, "ArgMin");
  auto same = [](InferContext& c) { ops::infer_same_as_input(c); };
  add_with_grad(r, {.name = "Softmax", .infer = same, .compute = softmax_kernel<false>}, grad_softmax);
  add_with_grad(r, {.name = "LogSoftmax", .infer = same, .compute = softmax_kernel<true>}, grad_log_softmax);
  const AttrMap scan_defaults = {{"exclusive", false}, {"reverse", false}, {"Tidx", DType::kInt32}};
  add_with_grad(r, {.name = "Cumsum", .attr_defaults = scan_defaults, .infer = same, .compute = scan_kernel<false>},
                grad_cumsum);
  r.add({.name = "Cumprod", .attr_defaults = scan_defaults, .infer = same, .compute = scan_kernel<true>});
  r.add({.name = "TopKV2",
         .attr_defaults = {{"sorted", true}, {"Tk", DType::kInt32}, {"index_type", DType::kInt32}},
         .output_args = {{"values"}, {"indices"}},
         .infer = infer_top_k,
         .compute = top_k_kernel});
}

}  // namespace tessera
