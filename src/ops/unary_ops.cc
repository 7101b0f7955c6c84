// Elementwise unary ops: math functions, activations, predicates, Cast, ZerosLike/OnesLike.
// Each op maps one element at a time in its Calc type (float for 16-bit floats, rounded once
// on store); dtype lists follow TF's CPU kernel registrations.
#include "ir/grad.h"
#include "ops/elementwise_util.h"
#include "ops/op_helpers.h"
#include "ops/tensor_list.h"

namespace tessera {
namespace {

using namespace ew;

using SignedTypes = Types<float, double, float16, bfloat16, int8_t, int16_t, int32_t, int64_t>;
using RoundTypes = Types<float, double, float16, bfloat16, int32_t, int64_t>;
using CastTypes = Types<float, double, float16, bfloat16, int32_t, int64_t, uint8_t, int8_t,
                        int16_t, uint16_t, uint32_t, uint64_t, bool>;

void infer_same(InferContext& c) { ops::infer_same_as_input(c); }
void infer_bool(InferContext& c) { c.set_output(0, DType::kBool, c.input(0).shape); }

// out[i] = f(x[i]) with the input's dtype; `f` takes and returns the Calc type.
template <typename... Ts, typename F>
void add_map(OpRegistry& r, const char* name, Types<Ts...>, F f, GradFn grad = {}) {
  add_with_grad(r, {.name = name, .infer = infer_same, .compute = [name, f](KernelContext& c) {
           const Tensor& x = c.input(0);
           Tensor out(x.dtype(), x.shape());
           dispatch(Types<Ts...>{}, x.dtype(), name, [&]<typename T>() -> void {
             const T* a = x.data<T>();
             T* o = out.data<T>();
             const int64_t n = x.num_elements();
             for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(f(up(a[i])));
           });
           c.set_output(0, std::move(out));
         }, .rowwise = ops::rows_elementwise}, std::move(grad));
}

// out[i] = pred(x[i]) as bool (IsNan, IsInf, IsFinite).
template <typename F>
void add_predicate(OpRegistry& r, const char* name, F pred) {
  r.add({.name = name, .infer = infer_bool, .compute = [name, pred](KernelContext& c) {
           const Tensor& x = c.input(0);
           Tensor out(DType::kBool, x.shape());
           dispatch(FloatTypes{}, x.dtype(), name, [&]<typename T>() -> void {
             const T* a = x.data<T>();
             bool* o = out.data<bool>();
             for (int64_t i = 0; i < x.num_elements(); ++i) o[i] = pred(up(a[i]));
           });
           c.set_output(0, std::move(out));
         }});
}

// ---- Cast ----------------------------------------------------------------------------------

// Round-toward-zero conversion to a narrower float (Cast with Truncate=true): take the
// nearest value and step one ulp toward zero if that rounded away from zero. As TF, only
// values whose exponent does not fit (>= 2^16 for float16, 2^128 otherwise) become inf.
template <typename D>
D truncate_float(double v, D nearest) {
  const double r = static_cast<double>(static_cast<float>(nearest));
  const double overflow = std::is_same_v<D, float16> ? 65536.0 : 0x1p128;
  if (std::isnan(v) || std::abs(r) <= std::abs(v) || std::abs(v) >= overflow) return nearest;
  if constexpr (std::is_same_v<D, float>) {
    return std::nextafter(nearest, 0.0f);
  } else {
    D out = nearest;
    out.bits = static_cast<uint16_t>(out.bits - 1);  // magnitude - 1 ulp, sign kept
    return out;
  }
}

void cast_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  const DType dst = c.attr<DType>("DstT");
  const bool truncate = c.attr_or<bool>("Truncate", false);
  if (x.dtype() == dst) {
    c.set_output(0, x);
    return;
  }
  for (DType t : {x.dtype(), dst})
    if (!is_pod(t) || t == DType::kComplex64 || t == DType::kComplex128)
      fail_code(ErrorCode::kUnimplemented, "Cast ", dtype_name(x.dtype()), " to ", dtype_name(dst),
                " is not supported");
  Tensor out(dst, x.shape());
  dispatch(CastTypes{}, x.dtype(), "Cast", [&]<typename S>() -> void {
    dispatch(CastTypes{}, dst, "Cast", [&]<typename D>() -> void {
      const S* a = x.data<S>();
      D* o = out.data<D>();
      const int64_t n = x.num_elements();
      for (int64_t i = 0; i < n; ++i) o[i] = cast_value<S, D>(a[i]);
      if constexpr (std::is_same_v<D, float> || std::is_same_v<D, float16> ||
                    std::is_same_v<D, bfloat16>) {
        if (truncate && !std::is_same_v<S, bool>)
          for (int64_t i = 0; i < n; ++i)
            o[i] = truncate_float<D>(static_cast<double>(up(a[i])), o[i]);
      }
    });
  });
  c.set_output(0, std::move(out));
}

// ---- constant-like -------------------------------------------------------------------------

void ones_like_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  Tensor out(x.dtype(), x.shape());
  dispatch(CastTypes{}, x.dtype(), "OnesLike", [&]<typename T>() -> void {
    T* o = out.data<T>();
    const T one = cast_value<bool, T>(true);
    for (int64_t i = 0; i < out.num_elements(); ++i) o[i] = one;
  });
  c.set_output(0, std::move(out));
}

void zeros_like_kernel(KernelContext& c) {
  const Tensor& x = c.input(0);
  if (x.dtype() == DType::kVariant && x.rank() == 0) {  // a TensorList's zero gradient
    c.set_output(0, zeros_like_tensor_list(x));
    return;
  }
  if (x.dtype() == DType::kVariant || x.dtype() == DType::kResource)
    fail_code(ErrorCode::kUnimplemented, "ZerosLike of ", dtype_name(x.dtype()), " is not supported");
  c.set_output(0, Tensor(x.dtype(), x.shape()));  // zero-initialised ("" for strings)
}

// ---- scalar functions (Calc type in and out) -------------------------------------------------

template <typename C> C sign_of(C v) {
  if constexpr (is_floating<C>) {
    if (std::isnan(v)) return v;
  }
  return v > C(0) ? C(1) : (v < C(0) ? C(-1) : C(0));
}

template <typename C> C softplus(C x) {
  // As TF: beyond log(eps)+2 the result is x (large x) or exp(x) (very negative x).
  static const C threshold = std::log(std::numeric_limits<C>::epsilon()) + C(2);
  if (x > -threshold) return x;
  if (x < threshold) return std::exp(x);
  return std::log1p(std::exp(x));
}

constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;

// ---- gradients (ir/grad.h): d loss/d x from g = d loss/d y --------------------------------

// One differentiable input: its gradient is f(c, g).
template <typename F>
constexpr auto grad1(F f) {
  return [f](GradContext& c) -> GradList { return {f(c, c.dy())}; };
}

constexpr auto kGradNeg = grad1([](GradContext& c, Value g) { return c.neg(g); });
constexpr auto kGradAbs = grad1([](GradContext& c, Value g) { return c.mul(g, c.unary("Sign", c.x(0))); });
const GradFn kGradSquare =
    grad1([](GradContext& c, Value g) { return c.mul(g, c.mul(c.x(0), c.scalar(2, g))); });
constexpr auto kGradExp = grad1([](GradContext& c, Value g) { return c.mul(g, c.y()); });
constexpr auto kGradExpm1 = grad1([](GradContext& c, Value g) { return c.mul(g, c.unary("Exp", c.x(0))); });
constexpr auto kGradLog = grad1([](GradContext& c, Value g) { return c.div(g, c.x(0)); });
const GradFn kGradLog1p =
    grad1([](GradContext& c, Value g) { return c.div(g, c.add(c.x(0), c.scalar(1, g))); });
// d sqrt(x) = 0.5 / y
constexpr auto kGradSqrt = grad1([](GradContext& c, Value g) { return c.div(c.mul(g, c.scalar(0.5, g)), c.y()); });
// d rsqrt(x) = -0.5 y^3
constexpr auto kGradRsqrt = grad1([](GradContext& c, Value g) {
  Value y = c.y();
  return c.mul(g, c.mul(c.scalar(-0.5, g), c.mul(y, c.mul(y, y))));
});
// d (1/x) = -y^2
constexpr auto kGradReciprocal = grad1([](GradContext& c, Value g) { return c.neg(c.mul(g, c.mul(c.y(), c.y()))); });
constexpr auto kGradSin = grad1([](GradContext& c, Value g) { return c.mul(g, c.unary("Cos", c.x(0))); });
constexpr auto kGradCos = grad1([](GradContext& c, Value g) { return c.neg(c.mul(g, c.unary("Sin", c.x(0)))); });
constexpr auto kGradTanh = grad1([](GradContext& c, Value g) {
  return c.mul(g, c.sub(c.scalar(1, g), c.mul(c.y(), c.y())));
});
constexpr auto kGradSigmoid = grad1([](GradContext& c, Value g) {
  return c.mul(g, c.mul(c.y(), c.sub(c.scalar(1, g), c.y())));
});
// d erf(x) = 2/sqrt(pi) exp(-x^2); erfc is its negation.
Value erf_slope(GradContext& c, Value g) {
  Value x = c.x(0);
  return c.mul(c.scalar(1.1283791670955126, g), c.unary("Exp", c.neg(c.mul(x, x))));
}
constexpr auto kGradErf = grad1([](GradContext& c, Value g) { return c.mul(g, erf_slope(c, g)); });
constexpr auto kGradErfc = grad1([](GradContext& c, Value g) { return c.neg(c.mul(g, erf_slope(c, g))); });
// Piecewise activations pass g where the slope is 1. Relu's is TF's one op, ReluGrad(g, y):
// y > 0 exactly where x > 0, and y is usually kept anyway (the next layer's input).
constexpr auto kGradRelu = grad1([](GradContext& c, Value g) {
  return c.op("ReluGrad", {g, c.y()}, {{"T", c.dtype(g)}});
});
constexpr auto kGradRelu6 = grad1([](GradContext& c, Value g) {
  Value x = c.x(0);
  Value in = c.binary("LogicalAnd", c.binary("Greater", x, c.scalar(0, g)), c.binary("Less", x, c.scalar(6, g)));
  return c.mul(g, c.mask(in, g));
});
// elu'(x) = 1 for x > 0, else y + 1.
constexpr auto kGradElu = grad1([](GradContext& c, Value g) {
  Value pos = c.binary("Greater", c.x(0), c.scalar(0, g));
  return c.select(pos, g, c.mul(g, c.add(c.y(), c.scalar(1, g))));
});
// selu'(x) = scale for x > 0, else y + scale*alpha.
constexpr auto kGradSelu = grad1([](GradContext& c, Value g) {
  Value pos = c.binary("Greater", c.x(0), c.scalar(0, g));
  return c.select(pos, c.mul(g, c.scalar(kSeluScale, g)),
                  c.mul(g, c.add(c.y(), c.scalar(kSeluScale * kSeluAlpha, g))));
});
constexpr auto kGradSoftplus = grad1([](GradContext& c, Value g) { return c.mul(g, c.unary("Sigmoid", c.x(0))); });
// softsign'(x) = 1 / (1 + |x|)^2
constexpr auto kGradSoftsign = grad1([](GradContext& c, Value g) {
  Value d = c.add(c.scalar(1, g), c.unary("Abs", c.x(0)));
  return c.div(g, c.mul(d, d));
});
constexpr auto kGradLeakyRelu = grad1([](GradContext& c, Value g) {
  Value pos = c.binary("Greater", c.x(0), c.scalar(0, g));
  return c.select(pos, g, c.mul(g, c.scalar(c.node.attr_or<float>("alpha", 0.2f), g)));
});
constexpr auto kGradTan = grad1([](GradContext& c, Value g) {  // 1 + tan^2
  return c.mul(g, c.add(c.scalar(1, g), c.mul(c.y(), c.y())));
});
constexpr auto kGradSinh = grad1([](GradContext& c, Value g) { return c.mul(g, c.unary("Cosh", c.x(0))); });
constexpr auto kGradCosh = grad1([](GradContext& c, Value g) { return c.mul(g, c.unary("Sinh", c.x(0))); });
// 1 / sqrt(1 - x^2), its negation for acos.
Value asin_slope(GradContext& c, Value g) {
  return c.unary("Rsqrt", c.sub(c.scalar(1, g), c.mul(c.x(0), c.x(0))));
}
constexpr auto kGradAsin = grad1([](GradContext& c, Value g) { return c.mul(g, asin_slope(c, g)); });
constexpr auto kGradAcos = grad1([](GradContext& c, Value g) { return c.neg(c.mul(g, asin_slope(c, g))); });
constexpr auto kGradAtan = grad1([](GradContext& c, Value g) {
  return c.div(g, c.add(c.scalar(1, g), c.mul(c.x(0), c.x(0))));
});
constexpr auto kGradAsinh = grad1([](GradContext& c, Value g) { return c.div(g, c.unary("Cosh", c.y())); });
constexpr auto kGradAcosh = grad1([](GradContext& c, Value g) { return c.div(g, c.unary("Sinh", c.y())); });
constexpr auto kGradAtanh = grad1([](GradContext& c, Value g) {
  return c.div(g, c.sub(c.scalar(1, g), c.mul(c.x(0), c.x(0))));
});
// Cast: the gradient is cast back; none from or to a non-float type.
constexpr auto kGradCast = [](GradContext& c) -> GradList {
  if (!is_differentiable(c.dtype(c.x(0))) || !is_differentiable(c.dtype(c.y()))) return {std::nullopt};
  return {c.cast(c.dy(), c.dtype(c.x(0)))};
};
// Rounding and sign are piecewise constant: zero gradient (as TF).
constexpr auto kGradZero = [](GradContext& c) -> GradList { return {c.zeros_like(c.x(0))}; };

}  // namespace

void register_unary_ops(OpRegistry& r) {
  // Sign-aware arithmetic (integers wrap, like TF: Abs/Neg of INT_MIN is INT_MIN).
  add_map(r, "Abs", SignedTypes{}, [](auto v) {
    using C = decltype(v);
    if constexpr (is_int<C>) return v < 0 ? wneg(v) : v;
    else return std::abs(v);
  }, kGradAbs);
  add_map(r, "Neg", SignedTypes{}, [](auto v) { return wneg(v); }, kGradNeg);
  add_map(r, "Sign", SignedTypes{}, [](auto v) { return sign_of(v); }, kGradZero);
  add_map(r, "Square", RealTypes{}, [](auto v) { return wmul(v, v); }, kGradSquare);

  // Float math.
  add_map(r, "Exp", FloatTypes{}, [](auto v) { return std::exp(v); }, kGradExp);
  add_map(r, "Expm1", FloatTypes{}, [](auto v) { return std::expm1(v); }, kGradExpm1);
  add_map(r, "Log", FloatTypes{}, [](auto v) { return std::log(v); }, kGradLog);
  add_map(r, "Log1p", FloatTypes{}, [](auto v) { return std::log1p(v); }, kGradLog1p);
  add_map(r, "Sqrt", FloatTypes{}, [](auto v) { return std::sqrt(v); }, kGradSqrt);
  add_map(r, "Rsqrt", FloatTypes{}, [](auto v) { return decltype(v)(1) / std::sqrt(v); }, kGradRsqrt);
  add_map(r, "Reciprocal", FloatTypes{}, [](auto v) { return decltype(v)(1) / v; }, kGradReciprocal);
  add_map(r, "Inv", FloatTypes{}, [](auto v) { return decltype(v)(1) / v; }, kGradReciprocal);
  add_map(r, "Sin", FloatTypes{}, [](auto v) { return std::sin(v); }, kGradSin);
  add_map(r, "Cos", FloatTypes{}, [](auto v) { return std::cos(v); }, kGradCos);
  add_map(r, "Tan", FloatTypes{}, [](auto v) { return std::tan(v); }, kGradTan);
  add_map(r, "Asin", FloatTypes{}, [](auto v) { return std::asin(v); }, kGradAsin);
  add_map(r, "Acos", FloatTypes{}, [](auto v) { return std::acos(v); }, kGradAcos);
  add_map(r, "Atan", FloatTypes{}, [](auto v) { return std::atan(v); }, kGradAtan);
  add_map(r, "Sinh", FloatTypes{}, [](auto v) { return std::sinh(v); }, kGradSinh);
  add_map(r, "Cosh", FloatTypes{}, [](auto v) { return std::cosh(v); }, kGradCosh);
  add_map(r, "Asinh", FloatTypes{}, [](auto v) { return std::asinh(v); }, kGradAsinh);
  add_map(r, "Acosh", FloatTypes{}, [](auto v) { return std::acosh(v); }, kGradAcosh);
  add_map(r, "Atanh", FloatTypes{}, [](auto v) { return std::atanh(v); }, kGradAtanh);
  add_map(r, "Tanh", FloatTypes{}, [](auto v) { return std::tanh(v); }, kGradTanh);
  add_map(r, "Sigmoid", FloatTypes{}, [](auto v) { return decltype(v)(1) / (decltype(v)(1) + std::exp(-v)); }, kGradSigmoid);
  add_map(r, "Erf", FloatTypes{}, [](auto v) { return std::erf(v); }, kGradErf);
  add_map(r, "Erfc", FloatTypes{}, [](auto v) { return std::erfc(v); }, kGradErfc);
  add_map(r, "Floor", FloatTypes{}, [](auto v) { return std::floor(v); }, kGradZero);
  add_map(r, "Ceil", FloatTypes{}, [](auto v) { return std::ceil(v); }, kGradZero);
  // Half to even (the default rounding mode). Integers are returned unchanged (TF 2.21's
  // integer Round kernel returns zeros, which is a TF bug we do not reproduce).
  add_map(r, "Round", RoundTypes{}, [](auto v) {
    if constexpr (is_int<decltype(v)>) return v;
    else return std::nearbyint(v);
  }, kGradZero);
  add_map(r, "Rint", Types<float, double>{}, [](auto v) { return std::nearbyint(v); }, kGradZero);

  // Activations. Comparisons are written so NaN passes through and -0 stays -0, as in TF.
  add_map(r, "Relu", RealTypes{}, [](auto v) {
    using C = decltype(v);
    if constexpr (std::is_unsigned_v<C>) return v;
    else return v < C(0) ? C(0) : v;
  }, kGradRelu);
  // ReluGrad(gradients, features): gradients where features > 0, else 0 (NaN features: 0).
  r.add({.name = "ReluGrad",
         .infer = [](InferContext& c) {
           TS_CHECK(c.input(0).dtype == c.input(1).dtype, "gradients are ", dtype_name(c.input(0).dtype),
                    ", features ", dtype_name(c.input(1).dtype));
           c.set_output(0, c.input(0).dtype, ops::broadcast(c.input(0).shape, c.input(1).shape));
         },
         .compute = [](KernelContext& c) {
           const Tensor& g = c.input(0);
           const Tensor& f = c.input(1);
           TS_CHECK(g.shape() == f.shape(), "gradients and features must have the same shape, got ",
                    shape_str(g.shape()), " and ", shape_str(f.shape()));
           Tensor out(g.dtype(), g.shape());
           dispatch(FloatTypes{}, g.dtype(), "ReluGrad", [&]<typename T>() -> void {
             const T *pg = g.data<T>(), *pf = f.data<T>();
             T* o = out.data<T>();
             for (int64_t i = 0; i < g.num_elements(); ++i) o[i] = up(pf[i]) > Calc<T>(0) ? pg[i] : T(0);
           });
           c.set_output(0, std::move(out));
         }});
  add_map(r, "Relu6", RealTypes{}, [](auto v) {
    using C = decltype(v);
    if constexpr (std::is_unsigned_v<C>) return v > C(6) ? C(6) : v;
    else return v < C(0) ? C(0) : (v > C(6) ? C(6) : v);
  }, kGradRelu6);
  add_map(r, "Elu", FloatTypes{}, [](auto v) { return v < decltype(v)(0) ? std::expm1(v) : v; }, kGradElu);
  add_map(r, "Selu", FloatTypes{}, [](auto v) {
    using C = decltype(v);
    return v < C(0) ? C(kSeluScale * kSeluAlpha) * std::expm1(v) : C(kSeluScale) * v;
  }, kGradSelu);
  add_map(r, "Softplus", FloatTypes{}, [](auto v) { return softplus(v); }, kGradSoftplus);
  add_map(r, "Softsign", FloatTypes{}, [](auto v) { return v / (decltype(v)(1) + std::abs(v)); }, kGradSoftsign);
  add_with_grad(r, {.name = "LeakyRelu",
         .attr_defaults = {{"alpha", 0.2f}, {"T", DType::kFloat32}},
         .infer = infer_same,
         .compute = [](KernelContext& c) {
           const Tensor& x = c.input(0);
           const float alpha = c.attr_or<float>("alpha", 0.2f);
           Tensor out(x.dtype(), x.shape());
           dispatch(FloatTypes{}, x.dtype(), "LeakyRelu", [&]<typename T>() -> void {
             using C = Calc<T>;
             const T* a = x.data<T>();
             T* o = out.data<T>();
             const C al = static_cast<C>(alpha);
             for (int64_t i = 0; i < x.num_elements(); ++i) {
               const C v = up(a[i]);
               o[i] = static_cast<T>(v > C(0) ? v : v * al);
             }
           });
           c.set_output(0, std::move(out));
         }}, kGradLeakyRelu);

  // Bitwise / logical.
  add_map(r, "Invert", IntTypes{}, [](auto v) { return static_cast<decltype(v)>(~v); });
  add_map(r, "LogicalNot", Types<bool>{}, [](bool v) { return !v; });

  // Predicates.
  add_predicate(r, "IsNan", [](auto v) { return std::isnan(v); });
  add_predicate(r, "IsInf", [](auto v) { return std::isinf(v); });
  add_predicate(r, "IsFinite", [](auto v) { return std::isfinite(v); });

  add_with_grad(r, {.name = "Cast",
         .attr_defaults = {{"Truncate", false}},
         .infer = [](InferContext& c) { c.set_output(0, c.attr<DType>("DstT"), c.input(0).shape); },
         .compute = cast_kernel}, kGradCast);
  // Their values do not depend on x: zero gradient.
  add_with_grad(r, {.name = "ZerosLike", .infer = infer_same, .compute = zeros_like_kernel}, kGradZero);
  add_with_grad(r, {.name = "OnesLike", .infer = infer_same, .compute = ones_like_kernel}, kGradZero);
}

}  // namespace tessera
