// Broadcasting binary ops (arithmetic, comparison, logical, bitwise) plus BiasAdd, AddN,
// Select/SelectV2 and ClipByValue. Functors see Calc values (float for 16-bit floats, rounded
// once on store); integer arithmetic wraps; dtype lists follow TF's CPU kernel registrations.
#include <algorithm>
#include <cstring>

#include "ir/grad.h"
#include "ops/elementwise_util.h"
#include "ops/op_helpers.h"
#include "ops/tensor_list.h"

namespace tessera {
namespace {

using namespace ew;

using AddTypes = Types<float, double, float16, bfloat16, uint8_t, int8_t, int16_t, int32_t, int64_t>;
using PowTypes = Types<float, double, float16, bfloat16, int8_t, int16_t, int32_t, int64_t>;
using ModTypes = Types<float, double, int32_t, int64_t>;
using SqDiffTypes = Types<float, double, float16, bfloat16, int32_t, int64_t>;
using EqTypes = Types<float, double, float16, bfloat16, int32_t, int64_t, uint8_t, int8_t,
                      int16_t, uint16_t, uint32_t, uint64_t, bool>;
using ClipTypes = Types<float, double, float16, bfloat16, int32_t, int64_t, uint8_t, int8_t,
                        int16_t, uint16_t>;

enum class Out { kSame, kBool };

void check_same_dtype(const Tensor& x, const Tensor& y) {
  if (x.dtype() != y.dtype())
    fail("operands have different dtypes ", dtype_name(x.dtype()), " and ", dtype_name(y.dtype()));
}

template <Out R>
void infer_broadcast(InferContext& c) {
  c.set_output(0, R == Out::kBool ? DType::kBool : c.input(0).dtype,
               ops::broadcast(c.input(0).shape, c.input(1).shape));
}

// The typed loop, separate from the dtype list so ops sharing a functor (Div/RealDiv,
// Mod/TruncateMod, Less/Greater) share instantiations.
template <Out R, typename T, typename F>
void binary_typed(const Broadcast& p, const Tensor& x, const Tensor& y, Tensor& out, F& f) {
  using O = std::conditional_t<R == Out::kBool, bool, T>;
  apply2(p, x.data<T>(), y.data<T>(), out.data<O>(),
         [&](T a, T b) { return static_cast<O>(f(up(a), up(b))); });
}

// out = f(x, y) over the broadcast shape (f(y, x) with `swap`). `f` takes Calc values; `fs`
// handles string operands for the few ops that accept them (nullptr_t otherwise).
template <Out R, typename... Ts, typename F, typename FS = std::nullptr_t>
void binary_compute(KernelContext& c, const char* name, F& f, FS fs = nullptr, bool swap = false) {
  const Tensor& x = c.input(swap ? 1 : 0);
  const Tensor& y = c.input(swap ? 0 : 1);
  check_same_dtype(x, y);
  Broadcast p = make_broadcast({&x.shape(), &y.shape()});
  Tensor out(R == Out::kBool ? DType::kBool : x.dtype(), p.out_shape);
  if constexpr (!std::is_same_v<FS, std::nullptr_t>) {
    if (x.dtype() == DType::kString) {
      using O = std::conditional_t<R == Out::kBool, bool, std::string>;
      apply2(p, elems<std::string>(x), elems<std::string>(y), elems<O>(out),
             [&](const std::string& a, const std::string& b) { return fs(a, b); });
      c.set_output(0, std::move(out));
      return;
    }
  }
  dispatch(Types<Ts...>{}, x.dtype(), name,
           [&]<typename T>() -> void { binary_typed<R, T>(p, x, y, out, f); });
  c.set_output(0, std::move(out));
}

template <Out R, typename... Ts, typename F>
void add_binary(OpRegistry& r, const char* name, Types<Ts...>, F f, bool swap = false, GradFn grad = {}) {
  add_with_grad(r, {.name = name, .infer = infer_broadcast<R>,
         .compute = [name, f, swap](KernelContext& c) mutable {
           binary_compute<R, Ts...>(c, name, f, nullptr, swap);
         }, .rowwise = ops::rows_elementwise}, std::move(grad));
}

// ---- scalar functions ------------------------------------------------------------------------

[[noreturn]] void division_by_zero() { fail("Integer division by zero"); }

// Integer quotient/remainder truncating toward zero; MIN / -1 wraps instead of trapping.
template <typename C> C trunc_div(C a, C b) {
  if (b == 0) division_by_zero();
  if constexpr (std::is_signed_v<C>) {
    if (b == C(-1)) return wneg(a);
  }
  return static_cast<C>(a / b);
}
template <typename C> C trunc_mod(C a, C b) {
  if (b == 0) division_by_zero();
  if constexpr (std::is_signed_v<C>) {
    if (b == C(-1)) return C(0);
  }
  return static_cast<C>(a % b);
}

template <typename C> C floor_div(C a, C b) {
  if constexpr (is_int<C>) {
    C q = trunc_div(a, b);
    if constexpr (std::is_signed_v<C>) {
      if (b != C(-1) && static_cast<C>(a % b) != 0 && ((a < 0) != (b < 0))) q = static_cast<C>(q - 1);
    }
    return q;
  } else {
    return std::floor(a / b);
  }
}

template <typename C> C floor_mod(C a, C b) {
  if constexpr (is_int<C>) {
    C m = trunc_mod(a, b);
    if constexpr (std::is_signed_v<C>) {
      if (m != 0 && ((m < 0) != (b < 0))) m = static_cast<C>(m + b);
    }
    return m;
  } else {
    C m = std::fmod(a, b);
    if (m != 0 && ((m < 0) != (b < 0))) m += b;
    return m;
  }
}

template <typename C> C int_pow(C base, C exp) {
  if (exp < 0) fail("Integers to negative integer powers are not allowed");
  C result = 1;
  while (exp) {
    if (exp & 1) result = wmul(result, base);
    exp = static_cast<C>(exp >> 1);
    base = wmul(base, base);
  }
  return result;
}

// max/min that propagate NaN from either side (TF's Maximum/Minimum).
template <typename C> C nan_max(C a, C b) {
  if constexpr (is_floating<C>) {
    if (std::isnan(a)) return a;
    if (std::isnan(b)) return b;
  }
  return a < b ? b : a;
}
template <typename C> C nan_min(C a, C b) {
  if constexpr (is_floating<C>) {
    if (std::isnan(a)) return a;
    if (std::isnan(b)) return b;
  }
  return b < a ? b : a;
}

// Shift amounts are clamped to [0, bits-1] as TF does.
template <typename C> C clamp_shift(C y) {
  constexpr int bits = static_cast<int>(sizeof(C) * 8);
  if constexpr (std::is_signed_v<C>) {
    if (y < 0) return 0;
  }
  return y > C(bits - 1) ? C(bits - 1) : y;
}

// ---- Equal / NotEqual --------------------------------------------------------------------

bool broadcastable(const Shape& a, const Shape& b) {
  for (size_t i = 1; i <= std::min(a.size(), b.size()); ++i) {
    int64_t da = a[a.size() - i], db = b[b.size() - i];
    if (da != db && da != 1 && db != 1) return false;
  }
  return true;
}

// With incompatible_shape_error=false, shapes that cannot broadcast give a scalar; we only
// claim a shape when compatibility is certain.
void infer_equality(InferContext& c) {
  const PartialShape& a = c.input(0).shape;
  const PartialShape& b = c.input(1).shape;
  if (c.attr_or<bool>("incompatible_shape_error", true)) {
    c.set_output(0, DType::kBool, ops::broadcast(a, b));
    return;
  }
  if (!a.known_rank || !b.known_rank) {
    c.set_output(0, DType::kBool, PartialShape::unknown());
    return;
  }
  bool certain = true, incompatible = false;
  for (size_t i = 1; i <= std::min(a.dims.size(), b.dims.size()); ++i) {
    int64_t da = a.dims[a.dims.size() - i], db = b.dims[b.dims.size() - i];
    if (da == 1 || db == 1 || (da >= 0 && da == db)) continue;
    if (da >= 0 && db >= 0) incompatible = true;
    else certain = false;
  }
  if (incompatible) c.set_output(0, DType::kBool, PartialShape(std::vector<int64_t>{}));
  else if (certain) c.set_output(0, DType::kBool, ops::broadcast(a, b));
  else c.set_output(0, DType::kBool, PartialShape::unknown());
}

template <bool kEqual>
void add_equality(OpRegistry& r, const char* name) {
  r.add({.name = name,
         .attr_defaults = {{"incompatible_shape_error", true}},
         .infer = infer_equality,
         .compute = [name](KernelContext& c) {
           if (!c.attr_or<bool>("incompatible_shape_error", true) &&
               !broadcastable(c.input(0).shape(), c.input(1).shape())) {
             c.set_output(0, Tensor::scalar<bool>(!kEqual));
             return;
           }
           auto f = [](auto a, auto b) { return (a == b) == kEqual; };
           auto fs = [](const std::string& a, const std::string& b) { return (a == b) == kEqual; };
           binary_compute<Out::kBool, float, double, float16, bfloat16, int32_t, int64_t, uint8_t,
                          int8_t, int16_t, uint16_t, uint32_t, uint64_t, bool>(c, name, f, fs);
         }});
}

// ---- BiasAdd -------------------------------------------------------------------------------

void infer_bias_add(InferContext& c) {
  const PartialShape& v = c.input(0).shape;
  const PartialShape& b = c.input(1).shape;
  if (v.known_rank && v.rank() < 2) fail("Input tensor must be at least 2D: ", v.str());
  if (b.known_rank && b.rank() != 1) fail("Biases must be 1D: ", b.str());
  PartialShape out = v;
  if (v.known_rank && b.known_rank) {
    const bool nchw = c.attr_or<std::string>("data_format", "NHWC") == "NCHW";
    int64_t& ch = out.dims[nchw ? 1 : out.dims.size() - 1];
    if (ch >= 0 && b.dims[0] >= 0 && ch != b.dims[0])
      fail("Must provide as many biases as the channel dimension of the input tensor: ", b.str(),
           " vs. ", v.str());
    if (ch < 0) ch = b.dims[0];
  }
  c.set_output(0, c.input(0).dtype, out);
}

void bias_add_kernel(KernelContext& c) {
  const Tensor& value = c.input(0);
  const Tensor& bias = c.input(1);
  check_same_dtype(value, bias);
  if (value.rank() < 2) fail("Input tensor must be at least 2D: ", shape_str(value.shape()));
  if (bias.rank() != 1) fail("Biases must be 1D: ", shape_str(bias.shape()));
  const std::string format = c.attr_or<std::string>("data_format", "NHWC");
  if (format != "NHWC" && format != "NCHW") fail("unknown data_format '", format, "'");
  const int64_t channel = format == "NCHW" ? 1 : value.rank() - 1;
  if (bias.dim(0) != value.dim(channel))
    fail("Must provide as many biases as the ", format == "NCHW" ? "channel" : "last",
         " dimension of the input tensor: ", shape_str(bias.shape()), " vs. ",
         shape_str(value.shape()));
  Shape view(value.rank(), 1);  // bias laid out along the channel dim
  view[channel] = bias.dim(0);
  Broadcast p = make_broadcast({&value.shape(), &view});
  Tensor out(value.dtype(), value.shape());
  dispatch(RealTypes{}, value.dtype(), "BiasAdd", [&]<typename T>() -> void {
    apply2(p, value.data<T>(), bias.data<T>(), out.data<T>(),
           [](T a, T b) { return static_cast<T>(wadd(up(a), up(b))); });
  });
  c.set_output(0, std::move(out));
}

// ---- AddN ----------------------------------------------------------------------------------

void infer_add_n(InferContext& c) {
  PartialShape s = PartialShape::unknown();
  for (size_t i = 0; i < c.num_inputs(); ++i) s = merge_partial(s, c.input(i).shape);
  c.set_output(0, c.input(0).dtype, s);
}

void add_n_kernel(KernelContext& c) {
  TS_CHECK(c.num_inputs() >= 1, "AddN needs at least one input");
  const Tensor& first = c.input(0);
  if (first.dtype() == DType::kVariant) {  // gradients of TensorLists (tensor_list.h)
    c.set_output(0, add_tensor_lists(c.inputs));
    return;
  }
  for (size_t i = 1; i < c.num_inputs(); ++i) {
    check_same_dtype(first, c.input(i));
    if (c.input(i).shape() != first.shape())
      fail("Inputs to operation AddN must have the same size and shape.  Input 0: ",
           shape_str(first.shape()), " != input ", i, ": ", shape_str(c.input(i).shape()));
  }
  if (c.num_inputs() == 1) {
    c.set_output(0, first);
    return;
  }
  Tensor out(first.dtype(), first.shape());
  dispatch(RealTypes{}, first.dtype(), "AddN", [&]<typename T>() -> void {
    using C = Calc<T>;
    constexpr int64_t kBlock = 1024;  // accumulate a block across inputs, then store once
    C acc[kBlock];
    T* o = out.data<T>();
    const int64_t n = first.num_elements();
    for (int64_t start = 0; start < n; start += kBlock) {
      const int64_t len = std::min(kBlock, n - start);
      const T* a = first.data<T>() + start;
      for (int64_t i = 0; i < len; ++i) acc[i] = up(a[i]);
      for (size_t k = 1; k < c.num_inputs(); ++k) {
        const T* b = c.input(k).data<T>() + start;
        for (int64_t i = 0; i < len; ++i) acc[i] = wadd(acc[i], up(b[i]));
      }
      for (int64_t i = 0; i < len; ++i) o[start + i] = static_cast<T>(acc[i]);
    }
  });
  c.set_output(0, std::move(out));
}

// ---- Select / SelectV2 --------------------------------------------------------------------

// Selection only moves elements, so it runs on same-sized unsigned words (or strings).
struct Word128 { uint64_t lo, hi; };
template <typename F>
void dispatch_by_size(DType t, const char* what, F&& f) {
  if (t == DType::kString) return f.template operator()<std::string>();
  switch (is_pod(t) ? dtype_size(t) : 0) {
    case 1: return f.template operator()<uint8_t>();
    case 2: return f.template operator()<uint16_t>();
    case 4: return f.template operator()<uint32_t>();
    case 8: return f.template operator()<uint64_t>();
    case 16: return f.template operator()<Word128>();
    default: fail(what, ": unsupported dtype ", dtype_name(t));
  }
}
template <typename W> const W* words(const Tensor& t) {
  if constexpr (std::is_same_v<W, std::string>) return t.strings().data();
  else return static_cast<const W*>(t.raw());
}
template <typename W> W* words(Tensor& t) {
  if constexpr (std::is_same_v<W, std::string>) return t.strings().data();
  else return static_cast<W*>(t.mutable_raw());
}

void check_cond(const Tensor& cond) {
  if (cond.dtype() != DType::kBool) fail("condition must be bool, got ", dtype_name(cond.dtype()));
}

void infer_select(InferContext& c) {
  const PartialShape& cond = c.input(0).shape;
  PartialShape out = merge_partial(c.input(1).shape, c.input(2).shape);
  if (cond.known_rank && out.known_rank && cond.rank() > 1) out = merge_partial(out, cond);
  c.set_output(0, c.input(1).dtype, out);
}

// TF1 Select: cond is a scalar (picks a whole branch), the branches' shape, or a vector that
// picks rows (the branches' first dim).
void select_kernel(KernelContext& c) {
  const Tensor& cond = c.input(0);
  const Tensor& t = c.input(1);
  const Tensor& e = c.input(2);
  check_cond(cond);
  check_same_dtype(t, e);
  if (t.shape() != e.shape())
    fail("'then' and 'else' must have the same size.  but received: ", shape_str(t.shape()),
         " vs. ", shape_str(e.shape()));
  const bool* k = cond.data<bool>();
  if (cond.rank() == 0) {
    c.set_output(0, k[0] ? t : e);
    return;
  }
  int64_t row = 1;  // elements picked by one condition value
  if (cond.shape() != t.shape()) {
    if (cond.rank() != 1)
      fail("Inputs to operation Select must have the same size and shape.  Input 0: ",
           shape_str(cond.shape()), " != input 1: ", shape_str(t.shape()));
    if (t.rank() < 1) fail("'then' must be at least a vector, but saw shape: ", shape_str(t.shape()));
    if (t.dim(0) != cond.dim(0))
      fail("Number of batches of 'then' must match size of 'cond', but saw: ", t.dim(0), " vs. ",
           cond.dim(0));
    row = cond.dim(0) ? t.num_elements() / cond.dim(0) : 0;
  }
  Tensor out(t.dtype(), t.shape());
  dispatch_by_size(t.dtype(), "Select", [&]<typename W>() -> void {
    const W* pt = words<W>(t);
    const W* pe = words<W>(e);
    W* po = words<W>(out);
    for (int64_t i = 0; i < cond.num_elements(); ++i) {
      const W* src = (k[i] ? pt : pe) + i * row;
      std::copy(src, src + row, po + i * row);
    }
  });
  c.set_output(0, std::move(out));
}

void infer_select_v2(InferContext& c) {
  PartialShape s = ops::broadcast(c.input(0).shape, c.input(1).shape);
  c.set_output(0, c.input(1).dtype, ops::broadcast(s, c.input(2).shape));
}

void select_v2_kernel(KernelContext& c) {
  const Tensor& cond = c.input(0);
  const Tensor& t = c.input(1);
  const Tensor& e = c.input(2);
  check_cond(cond);
  check_same_dtype(t, e);
  Broadcast p = make_broadcast({&cond.shape(), &t.shape(), &e.shape()});
  Tensor out(t.dtype(), p.out_shape);
  dispatch_by_size(t.dtype(), "SelectV2", [&]<typename W>() -> void {
    apply3(p, cond.data<bool>(), words<W>(t), words<W>(e), words<W>(out),
           [](bool k, const W& a, const W& b) -> const W& { return k ? a : b; });
  });
  c.set_output(0, std::move(out));
}

// ---- ClipByValue ---------------------------------------------------------------------------

void clip_kernel(KernelContext& c) {
  const Tensor& t = c.input(0);
  const Tensor& lo = c.input(1);
  const Tensor& hi = c.input(2);
  check_same_dtype(t, lo);
  check_same_dtype(t, hi);
  auto ok = [&](const Tensor& b) { return b.rank() == 0 || b.shape() == t.shape(); };
  if (!ok(lo) || !ok(hi))
    fail("clip_value_min and clip_value_max must be either of the same shape as input, or a "
         "scalar. input shape: ", shape_str(t.shape()), " clip_value_min shape: ",
         shape_str(lo.shape()), " clip_value_max shape: ", shape_str(hi.shape()));
  Broadcast p = make_broadcast({&t.shape(), &lo.shape(), &hi.shape()});
  Tensor out(t.dtype(), t.shape());
  dispatch(ClipTypes{}, t.dtype(), "ClipByValue", [&]<typename T>() -> void {
    // min with the upper bound, then max with the lower one (std::min/max: a NaN bound is
    // ignored, a NaN value passes through, min > max gives min), as TF.
    apply3(p, t.data<T>(), lo.data<T>(), hi.data<T>(), out.data<T>(), [](T v, T l, T h) {
      auto x = up(v), a = up(l), b = up(h);
      x = b < x ? b : x;
      x = x < a ? a : x;
      return static_cast<T>(x);
    });
  });
  c.set_output(0, std::move(out));
}


// ---- gradients (ir/grad.h) -------------------------------------------------------------------
// A broadcasting operand's gradient is summed over the broadcast axes (reduce_to).

// {dx, dy} from per-operand gradients at the result's shape.
template <typename F>
constexpr auto grad2(F f) {
  return [f](GradContext& c) -> GradList {
    auto [gx, gy] = f(c, c.dy(), c.x(0), c.x(1));
    GradList out(2);
    if (c.needs(0)) out[0] = c.reduce_to(gx, c.x(0));
    if (c.needs(1)) out[1] = c.reduce_to(gy, c.x(1));
    return out;
  };
}
using P = std::pair<Value, Value>;

constexpr auto kGradAdd = grad2([](GradContext& c, Value g, Value, Value) { return P{g, g}; });
constexpr auto kGradSub = grad2([](GradContext& c, Value g, Value, Value) { return P{g, c.neg(g)}; });
constexpr auto kGradMul = grad2([](GradContext& c, Value g, Value x, Value y) {
  return P{c.mul(g, y), c.mul(x, g)};
});
// d(x/y) = g/y, -g x / y^2
constexpr auto kGradDiv = grad2([](GradContext& c, Value g, Value x, Value y) {
  return P{c.div(g, y), c.neg(c.mul(g, c.div(c.div(x, y), y)))};
});
// Ties send the gradient to x (as TF: x >= y for Maximum, x <= y for Minimum).
template <bool kMax>
constexpr auto grad_extremum() {
  return grad2([](GradContext& c, Value g, Value x, Value y) {
    Value pick_x = c.binary(kMax ? "GreaterEqual" : "LessEqual", x, y);
    Value zero = c.zeros_like(g);
    return P{c.select(pick_x, g, zero), c.select(pick_x, zero, g)};
  });
}
constexpr auto kGradSquaredDifference = grad2([](GradContext& c, Value g, Value x, Value y) {
  Value d = c.mul(c.mul(g, c.scalar(2, g)), c.sub(x, y));
  return P{d, c.neg(d)};
});
// d x^y = g y x^(y-1), g x^y log(x) (0 where x <= 0, as TF).
constexpr auto kGradPow = grad2([](GradContext& c, Value g, Value x, Value y) {
  Value dx = c.mul(g, c.mul(y, c.binary("Pow", x, c.sub(y, c.scalar(1, y)))));
  Value pos = c.binary("Greater", x, c.scalar(0, x));
  Value safe_x = c.select(pos, x, c.op("OnesLike", {x}, {{"T", c.dtype(x)}}));
  Value logx = c.select(pos, c.unary("Log", safe_x), c.zeros_like(x));
  return P{dx, c.mul(g, c.mul(c.y(), logx))};
});

GradList grad_add_n(GradContext& c) { return GradList(c.node.inputs.size(), c.dy()); }

// The bias gets the sum over every axis except the channel axis.
GradList grad_bias_add(GradContext& c) {
  Value g = c.dy();
  int64_t rank = c.shape_of(g).rank();
  TS_CHECK(rank >= 2, "gradient needs the input's rank");
  const bool nchw = c.node.attr_or<std::string>("data_format", "NHWC") == "NCHW";
  std::vector<int32_t> axes;
  for (int32_t i = 0; i < rank; ++i)
    if (i != (nchw ? 1 : rank - 1)) axes.push_back(i);
  GradList out(2);
  out[0] = g;
  if (c.needs(1)) out[1] = c.sum(g, c.ints(axes));
  return out;
}

// Select (V1) takes a vector condition for the first axis; SelectV2 broadcasts.
GradList grad_select(GradContext& c, bool v2) {
  Value g = c.dy(), cond = c.x(0);
  int64_t cr = c.shape_of(cond).rank(), gr = c.shape_of(g).rank();
  if (!v2 && cr == 1 && gr > 1) {
    std::vector<int32_t> s(static_cast<size_t>(gr), 1);
    s[0] = -1;
    cond = c.reshape(cond, c.ints(s));
  }
  Value zero = c.zeros_like(g);
  GradList out(3);
  if (c.needs(1)) out[1] = c.reduce_to(c.select(cond, g, zero), c.x(1));
  if (c.needs(2)) out[2] = c.reduce_to(c.select(cond, zero, g), c.x(2));
  return out;
}

// t passes the gradient where lo <= t <= hi; the bounds get it where they clipped.
GradList grad_clip(GradContext& c) {
  Value g = c.dy(), t = c.x(0), lo = c.x(1), hi = c.x(2);
  Value zero = c.zeros_like(g);
  Value below = c.binary("Less", t, lo), above = c.binary("Greater", t, hi);
  Value inside = c.op("LogicalNot", {c.binary("LogicalOr", below, above)});
  GradList out(3);
  out[0] = c.select(inside, g, zero);
  if (c.needs(1)) out[1] = c.reduce_to(c.select(below, g, zero), lo);
  if (c.needs(2)) out[2] = c.reduce_to(c.select(above, g, zero), hi);
  return out;
}

}  // namespace

void register_binary_ops(OpRegistry& r) {
  constexpr Out S = Out::kSame;
  constexpr Out B = Out::kBool;

  // Add also concatenates strings.
  auto add = [](auto a, auto b) { return wadd(a, b); };
  add_with_grad(r, {.name = "Add", .infer = infer_broadcast<S>, .compute = [add](KernelContext& c) mutable {
           auto fs = [](const std::string& a, const std::string& b) { return a + b; };
           binary_compute<S, float, double, float16, bfloat16, uint8_t, int8_t, int16_t, int32_t,
                          int64_t>(c, "Add", add, fs);
         }, .rowwise = ops::rows_elementwise}, kGradAdd);
  add_binary<S>(r, "AddV2", RealTypes{}, add, false, kGradAdd);
  add_binary<S>(r, "Sub", RealTypes{}, [](auto a, auto b) { return wsub(a, b); }, false, kGradSub);
  add_binary<S>(r, "Mul", RealTypes{}, [](auto a, auto b) { return wmul(a, b); }, false, kGradMul);
  auto div = [](auto a, auto b) {
    if constexpr (is_int<decltype(a)>) return trunc_div(a, b);
    else return a / b;
  };
  add_binary<S>(r, "Div", RealTypes{}, div, false, kGradDiv);
  add_binary<S>(r, "RealDiv", FloatTypes{}, div, false, kGradDiv);
  add_binary<S>(r, "TruncateDiv", RealTypes{}, [](auto a, auto b) {
    if constexpr (is_int<decltype(a)>) return trunc_div(a, b);
    else return std::trunc(a / b);
  });
  add_binary<S>(r, "FloorDiv", RealTypes{}, [](auto a, auto b) { return floor_div(a, b); });
  add_binary<S>(r, "FloorMod", RealTypes{}, [](auto a, auto b) { return floor_mod(a, b); });
  auto mod = [](auto a, auto b) {
    if constexpr (is_int<decltype(a)>) return trunc_mod(a, b);
    else return std::fmod(a, b);
  };
  add_binary<S>(r, "TruncateMod", ModTypes{}, mod);
  add_binary<S>(r, "Mod", ModTypes{}, mod);
  add_binary<S>(r, "DivNoNan", FloatTypes{}, [](auto a, auto b) { return b == 0 ? decltype(a)(0) : a / b; });
  add_binary<S>(r, "MulNoNan", FloatTypes{}, [](auto a, auto b) { return b == 0 ? decltype(a)(0) : a * b; });
  add_binary<S>(r, "Pow", PowTypes{}, [](auto a, auto b) {
    if constexpr (is_int<decltype(a)>) return int_pow(a, b);
    else return std::pow(a, b);
  }, false, kGradPow);
  add_binary<S>(r, "Maximum", RealTypes{}, [](auto a, auto b) { return nan_max(a, b); }, false,
                grad_extremum<true>());
  add_binary<S>(r, "Minimum", RealTypes{}, [](auto a, auto b) { return nan_min(a, b); }, false,
                grad_extremum<false>());
  add_binary<S>(r, "SquaredDifference", SqDiffTypes{}, [](auto a, auto b) {
    auto d = wsub(a, b);
    return wmul(d, d);
  }, false, kGradSquaredDifference);
  add_binary<S>(r, "Atan2", FloatTypes{}, [](auto y, auto x) { return std::atan2(y, x); });
  add_binary<S>(r, "Xdivy", FloatTypes{}, [](auto a, auto b) { return a == 0 ? decltype(a)(0) : a / b; });
  add_binary<S>(r, "Xlogy", FloatTypes{}, [](auto a, auto b) { return a == 0 ? decltype(a)(0) : a * std::log(b); });
  add_binary<S>(r, "Xlog1py", FloatTypes{}, [](auto a, auto b) { return a == 0 ? decltype(a)(0) : a * std::log1p(b); });

  // x > y is y < x (also for NaN), so Greater/GreaterEqual reuse Less/LessEqual's loops.
  auto less = [](auto a, auto b) { return a < b; };
  auto less_equal = [](auto a, auto b) { return a <= b; };
  add_binary<B>(r, "Less", RealTypes{}, less);
  add_binary<B>(r, "LessEqual", RealTypes{}, less_equal);
  add_binary<B>(r, "Greater", RealTypes{}, less, /*swap=*/true);
  add_binary<B>(r, "GreaterEqual", RealTypes{}, less_equal, /*swap=*/true);
  add_equality<true>(r, "Equal");
  add_equality<false>(r, "NotEqual");
  add_binary<S>(r, "LogicalAnd", Types<bool>{}, [](bool a, bool b) { return a && b; });
  add_binary<S>(r, "LogicalOr", Types<bool>{}, [](bool a, bool b) { return a || b; });

  add_binary<S>(r, "BitwiseAnd", IntTypes{}, [](auto a, auto b) { return static_cast<decltype(a)>(a & b); });
  add_binary<S>(r, "BitwiseOr", IntTypes{}, [](auto a, auto b) { return static_cast<decltype(a)>(a | b); });
  add_binary<S>(r, "BitwiseXor", IntTypes{}, [](auto a, auto b) { return static_cast<decltype(a)>(a ^ b); });
  add_binary<S>(r, "LeftShift", IntTypes{}, [](auto a, auto b) {
    using C = decltype(a);
    return static_cast<C>(static_cast<Wide<C>>(a) << clamp_shift(b));
  });
  add_binary<S>(r, "RightShift", IntTypes{}, [](auto a, auto b) {
    return static_cast<decltype(a)>(a >> clamp_shift(b));
  });

  add_with_grad(r, {.name = "BiasAdd", .attr_defaults = {{"data_format", std::string("NHWC")}},
         .infer = infer_bias_add, .compute = bias_add_kernel, .rowwise = ops::rows_elementwise}, grad_bias_add);
  add_with_grad(r, {.name = "BiasAddV1", .infer = infer_bias_add, .compute = bias_add_kernel,
                    .rowwise = ops::rows_elementwise}, grad_bias_add);
  add_with_grad(r, {.name = "AddN", .infer = infer_add_n, .compute = add_n_kernel}, grad_add_n);
  add_with_grad(r, {.name = "Select", .infer = infer_select, .compute = select_kernel}, [](GradContext& c) { return grad_select(c, false); });
  add_with_grad(r, {.name = "SelectV2", .infer = infer_select_v2, .compute = select_v2_kernel}, [](GradContext& c) { return grad_select(c, true); });
  add_with_grad(r, {.name = "ClipByValue",
         .infer = [](InferContext& c) { ops::infer_same_as_input(c); },
         .compute = clip_kernel}, grad_clip);
}

}  // namespace tessera
