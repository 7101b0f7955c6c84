// The body of the vectorised loops, included once per ISA build with TS_VEC_NS (a namespace
// unique to that build, so no inline function is shared between builds with different
// instruction sets) and TS_VEC_WIDTH (floats per vector: 16, 8 or 1). Written with GCC
// vector extensions; width 1 is plain scalar code. Only <cstring>/<cmath> builtins are used
// here: a std:: template instantiated with AVX flags could be merged by the linker into
// callers meant to run anywhere.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cpu/vec.h"

namespace tessera::cpu::TS_VEC_NS {

#if TS_VEC_WIDTH == 1
using V = float;
using VI = int32_t;
inline VI to_int(V v) { return static_cast<VI>(v); }
inline V to_float(VI v) { return static_cast<V>(v); }
inline V vsqrt(V v) { return __builtin_sqrtf(v); }
#else
typedef float V __attribute__((vector_size(TS_VEC_WIDTH * 4)));
typedef int32_t VI __attribute__((vector_size(TS_VEC_WIDTH * 4)));
inline VI to_int(V v) { return __builtin_convertvector(v, VI); }
inline V to_float(VI v) { return __builtin_convertvector(v, V); }
#if TS_VEC_WIDTH == 16
inline V vsqrt(V v) { return (V)_mm512_sqrt_ps((__m512)v); }
#else
inline V vsqrt(V v) { return (V)_mm256_sqrt_ps((__m256)v); }
#endif
#endif
constexpr int W = TS_VEC_WIDTH;

inline V splat(float s) { return V{} + s; }
inline V load(const float* p) { V v; std::memcpy(&v, p, sizeof(V)); return v; }
inline void store(float* p, V v) { std::memcpy(p, &v, sizeof(V)); }
inline V vmax(V a, V b) { return a > b ? a : b; }
inline V vmin(V a, V b) { return a < b ? a : b; }
inline V vabs(V a) { return std::bit_cast<V>(std::bit_cast<VI>(a) & 0x7fffffff); }
inline float lane(V v, int i) {
#if TS_VEC_WIDTH == 1
  return v;
#else
  return v[i];
#endif
}

// floor for |v| < 2^23; larger values are already integers.
inline V vfloor(V v) {
  V t = to_float(to_int(v));
  t = t > v ? t - 1.f : t;
  return vabs(v) < 8388608.f ? t : v;
}
inline V vceil(V v) { return -vfloor(-v); }

// exp: 2^n · e^r with n = round(x / ln 2), |r| <= ln2/2, a degree-7 Taylor polynomial.
inline V vexp(V x) {
  V xc = vmin(vmax(x, splat(-87.3f)), splat(88.7f));
  V n = vfloor(xc * 1.44269504f + 0.5f);
  V r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  V p = splat(1.f / 5040);
  p = p * r + 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  V scale = std::bit_cast<V>((to_int(n) + 127) << 23);
  V y = p * scale;
  y = x > 88.7f ? splat(INFINITY) : y;
  return x != x ? x : y;
}

// log: x = m · 2^e with m in [√½, √2); log m = 2·atanh(s), s = (m-1)/(m+1), odd series.
inline V vlog(V x) {
  VI bits = std::bit_cast<VI>(x);
  VI e = ((bits >> 23) & 0xff) - 127;
  V m = std::bit_cast<V>((bits & 0x7fffff) | 0x3f800000);
  auto big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  V ef = to_float(e) + (big ? splat(1.f) : splat(0.f));
  V s = (m - 1.f) / (m + 1.f);
  V s2 = s * s;
  V p = splat(2.f / 11);
  p = p * s2 + 2.f / 9;
  p = p * s2 + 2.f / 7;
  p = p * s2 + 2.f / 5;
  p = p * s2 + 2.f / 3;
  p = p * s2 + 2.f;
  V y = ef * 0.693147181f + p * s;
  y = x == 0.f ? splat(-INFINITY) : y;
  y = x < 0.f ? splat(NAN) : y;
  y = x == INFINITY ? x : y;
  return x != x ? x : y;
}

inline V vsigmoid(V x) { return 1.f / (1.f + vexp(-x)); }
// tanh(x) = 1 - 2 / (e^{2x} + 1), odd-symmetric so large |x| saturates cleanly.
inline V vtanh(V x) {
  V a = vabs(x);
  V t = 1.f - 2.f / (vexp(a * 2.f) + 1.f);
  return x < 0.f ? -t : t;
}
// erf: Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
inline V verf(V x) {
  V a = vabs(x);
  V t = 1.f / (1.f + 0.3275911f * a);
  V p = splat(1.061405429f);
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  V y = 1.f - p * t * vexp(-a * a);
  return x < 0.f ? -y : y;
}

// erfc(|x|) = exp(-x²) · t · Q(t) with t = 1 / (1 + 0.4|x|): Q is our own degree-9 fit of
// erfc(x)·e^{x²}·(1 + 0.4x) over x in [0, 9.4] (relative error 6.5e-9; 3.5e-7 evaluated in
// float32). 1 - erf(x) would lose all relative accuracy in the tail, which the gelu
// gradient reads. x² is split into an exact head (x with 12 mantissa bits, squared) and a
// small tail so that e^{-x²} keeps float32 precision near x = 9. Beyond 9.34 the result is
// below 1.2e-39 (subnormal) and returned as 0; negative x: 2 - erfc(-x).
inline V verfc(V x) {
  V a = vabs(x);
  V t = 1.f / (1.f + 0.4f * a);
  V q = splat(-0.0308016296f);
  q = q * t + 0.204605147f;
  q = q * t - 0.514405906f;
  q = q * t + 0.568373203f;
  q = q * t - 0.301914394f;
  q = q * t + 0.281566918f;
  q = q * t + 0.126363024f;
  q = q * t + 0.215637669f;
  q = q * t + 0.224864468f;
  q = q * t + 0.22571148f;
  V ah = std::bit_cast<V>(std::bit_cast<VI>(a) & static_cast<int32_t>(0xfffff000u));
  V al = a - ah;
  // e^{-s} of the tail s = al·(a + ah) < a²/1024 <= 0.086: a degree-5 Taylor polynomial
  // (truncation below 6e-10), where a second vexp cost a fifth of this function.
  V s = al * (a + ah);
  V es = splat(-1.f / 120);
  es = es * s + 1.f / 24;
  es = es * s - 1.f / 6;
  es = es * s + 0.5f;
  es = es * s - 1.f;
  es = es * s + 1.f;
  V y = vexp(-(ah * ah)) * es * (t * q);
  y = a > 9.34f ? splat(0.f) : y;
  return x < 0.f ? 2.f - y : y;
}

inline V apply_unary(UnaryOp op, V x, float alpha) {
  switch (op) {
    case UnaryOp::kIdentity: return x;
    case UnaryOp::kNeg: return -x;
    case UnaryOp::kAbs: return vabs(x);
    case UnaryOp::kExp: return vexp(x);
    case UnaryOp::kLog: return vlog(x);
    case UnaryOp::kSqrt: return vsqrt(x);
    case UnaryOp::kRsqrt: return 1.f / vsqrt(x);
    case UnaryOp::kSquare: return x * x;
    case UnaryOp::kReciprocal: return 1.f / x;
    case UnaryOp::kTanh: return vtanh(x);
    case UnaryOp::kSigmoid: return vsigmoid(x);
    case UnaryOp::kRelu: return x > 0.f ? x : splat(0.f);
    case UnaryOp::kRelu6: return vmin(x > 0.f ? x : splat(0.f), splat(6.f));
    case UnaryOp::kElu: return x > 0.f ? x : vexp(x) - 1.f;
    case UnaryOp::kSelu: return x > 0.f ? x * 1.05070098735548f : (vexp(x) - 1.f) * (1.05070098735548f * 1.67326324235438f);
    case UnaryOp::kErf: return verf(x);
    case UnaryOp::kSoftplus: return vmax(x, splat(0.f)) + vlog(1.f + vexp(-vabs(x)));
    case UnaryOp::kFloor: return vfloor(x);
    case UnaryOp::kCeil: return vceil(x);
    case UnaryOp::kLeakyRelu: return x > 0.f ? x : x * alpha;
    case UnaryOp::kGeluExact: return 0.5f * x * (1.f + verf(x * 0.707106781f));
    case UnaryOp::kGeluTanh: return 0.5f * x * (1.f + vtanh(0.797884561f * (x + 0.044715f * x * x * x)));
    case UnaryOp::kSwish: return x * vsigmoid(x);
    case UnaryOp::kErfc: return verfc(x);
    case UnaryOp::kLogicalNot: return 1.f - x;
  }
  return x;
}

inline V vpow(V a, V b) {
  V y;
#if TS_VEC_WIDTH == 1
  y = __builtin_powf(a, b);
#else
  for (int i = 0; i < W; ++i) y[i] = __builtin_powf(a[i], b[i]);
#endif
  return y;
}

inline V apply_binary(BinaryOp op, V a, V b) {
  switch (op) {
    case BinaryOp::kAdd: return a + b;
    case BinaryOp::kSub: return a - b;
    case BinaryOp::kMul: return a * b;
    case BinaryOp::kDiv: return a / b;
    case BinaryOp::kMax: return a > b || a != a ? a : b;  // NaN propagates, as in TF
    case BinaryOp::kMin: return a < b || a != a ? a : b;
    case BinaryOp::kPow: return vpow(a, b);
    case BinaryOp::kSquaredDifference: return (a - b) * (a - b);
    case BinaryOp::kGreater: return a > b ? splat(1.f) : splat(0.f);
    case BinaryOp::kGreaterEqual: return a >= b ? splat(1.f) : splat(0.f);
    case BinaryOp::kLess: return a < b ? splat(1.f) : splat(0.f);
    case BinaryOp::kLessEqual: return a <= b ? splat(1.f) : splat(0.f);
    case BinaryOp::kEqual: return a == b ? splat(1.f) : splat(0.f);
    case BinaryOp::kNotEqual: return a != b ? splat(1.f) : splat(0.f);
    case BinaryOp::kLogicalAnd: return a * b;  // operands are 0/1
    case BinaryOp::kLogicalOr: return vmax(a, b);
  }
  return a;
}

// The op switch sits outside the loop: one loop per op, each fully vectorised.
template <UnaryOp kOp>
void unary_loop(const float* x, float* y, int64_t n, float alpha) {
  int64_t i = 0;
  for (; i + W <= n; i += W) store(y + i, apply_unary(kOp, load(x + i), alpha));
  if (i < n) {  // tail through a padded vector, so it takes the same code path
    float buf[W] = {};
    std::memcpy(buf, x + i, sizeof(float) * (n - i));
    store(buf, apply_unary(kOp, load(buf), alpha));
    std::memcpy(y + i, buf, sizeof(float) * (n - i));
  }
}

void unary(UnaryOp op, const float* x, float* y, int64_t n, float alpha) {
  switch (op) {
#define TS_CASE(k) case UnaryOp::k: return unary_loop<UnaryOp::k>(x, y, n, alpha);
    TS_CASE(kIdentity) TS_CASE(kNeg) TS_CASE(kAbs) TS_CASE(kExp) TS_CASE(kLog) TS_CASE(kSqrt)
    TS_CASE(kRsqrt) TS_CASE(kSquare) TS_CASE(kReciprocal) TS_CASE(kTanh) TS_CASE(kSigmoid)
    TS_CASE(kRelu) TS_CASE(kRelu6) TS_CASE(kElu) TS_CASE(kSelu) TS_CASE(kErf) TS_CASE(kSoftplus)
    TS_CASE(kFloor) TS_CASE(kCeil) TS_CASE(kLeakyRelu) TS_CASE(kGeluExact) TS_CASE(kGeluTanh)
    TS_CASE(kSwish) TS_CASE(kErfc) TS_CASE(kLogicalNot)
#undef TS_CASE
  }
}

template <BinaryOp kOp>
void binary_loop(const float* a, bool as, const float* b, bool bs, float* y, int64_t n) {
  int64_t i = 0;
  const V va = splat(a[0]), vb = splat(b[0]);
  if (!as && !bs) {
    for (; i + W <= n; i += W) store(y + i, apply_binary(kOp, load(a + i), load(b + i)));
  } else if (as && !bs) {
    for (; i + W <= n; i += W) store(y + i, apply_binary(kOp, va, load(b + i)));
  } else if (!as && bs) {
    for (; i + W <= n; i += W) store(y + i, apply_binary(kOp, load(a + i), vb));
  } else {
    const float s = lane(apply_binary(kOp, va, vb), 0);
    for (; i < n; ++i) y[i] = s;
  }
  if (i < n) {
    float ba[W] = {}, bb[W] = {};
    std::memcpy(ba, as ? a : a + i, sizeof(float) * (as ? 1 : n - i));
    std::memcpy(bb, bs ? b : b + i, sizeof(float) * (bs ? 1 : n - i));
    V r = apply_binary(kOp, as ? va : load(ba), bs ? vb : load(bb));
    store(ba, r);
    std::memcpy(y + i, ba, sizeof(float) * (n - i));
  }
}

void binary(BinaryOp op, const float* a, bool as, const float* b, bool bs, float* y, int64_t n) {
  switch (op) {
#define TS_CASE(k) case BinaryOp::k: return binary_loop<BinaryOp::k>(a, as, b, bs, y, n);
    TS_CASE(kAdd) TS_CASE(kSub) TS_CASE(kMul) TS_CASE(kDiv) TS_CASE(kMax) TS_CASE(kMin) TS_CASE(kPow)
    TS_CASE(kSquaredDifference) TS_CASE(kGreater) TS_CASE(kGreaterEqual) TS_CASE(kLess) TS_CASE(kLessEqual)
    TS_CASE(kEqual) TS_CASE(kNotEqual) TS_CASE(kLogicalAnd) TS_CASE(kLogicalOr)
#undef TS_CASE
  }
}

// A blend, not a branch: dropout masks are random. The broadcast pattern is a template
// argument so each loop vectorises.
template <bool C, bool A, bool B>
void select_loop(const float* c, const float* a, const float* b, float* y, int64_t n) {
  const V vc = splat(c[0]), va = splat(a[0]), vb = splat(b[0]);
  int64_t i = 0;
  for (; i + W <= n; i += W)
    store(y + i, (C ? vc : load(c + i)) != 0.f ? (A ? va : load(a + i)) : (B ? vb : load(b + i)));
  for (; i < n; ++i) y[i] = c[C ? 0 : i] != 0.f ? a[A ? 0 : i] : b[B ? 0 : i];
}

void select(const float* c, bool cs, const float* a, bool as, const float* b, bool bs, float* y, int64_t n) {
  if (cs) {  // one condition: all of a or all of b
    const float* src = c[0] != 0.f ? a : b;
    const bool one = c[0] != 0.f ? as : bs;
    for (int64_t i = 0; i < n; ++i) y[i] = src[one ? 0 : i];
    return;
  }
  if (as && bs) return select_loop<false, true, true>(c, a, b, y, n);
  if (as) return select_loop<false, true, false>(c, a, b, y, n);
  if (bs) return select_loop<false, false, true>(c, a, b, y, n);
  select_loop<false, false, false>(c, a, b, y, n);
}

inline float hsum(V v) {
  float s = 0;
  for (int i = 0; i < W; ++i) s += lane(v, i);
  return s;
}
inline float hmax(V v) {
  float s = lane(v, 0);
  for (int i = 1; i < W; ++i) s = lane(v, i) > s ? lane(v, i) : s;
  return s;
}
inline float hmin(V v) {
  float s = lane(v, 0);
  for (int i = 1; i < W; ++i) s = lane(v, i) < s ? lane(v, i) : s;
  return s;
}

float reduce(ReduceOp op, const float* x, int64_t n) {
  int64_t i = 0;
  if (op == ReduceOp::kSum) {
    V acc0 = splat(0.f), acc1 = splat(0.f);
    for (; i + 2 * W <= n; i += 2 * W) {
      acc0 += load(x + i);
      acc1 += load(x + i + W);
    }
    for (; i + W <= n; i += W) acc0 += load(x + i);
    float s = hsum(acc0 + acc1);
    for (; i < n; ++i) s += x[i];
    return s;
  }
  const bool mx = op == ReduceOp::kMax;
  float s = mx ? -INFINITY : INFINITY;
  if (n >= W) {
    V acc = load(x);
    for (i = W; i + W <= n; i += W) acc = mx ? vmax(acc, load(x + i)) : vmin(acc, load(x + i));
    s = mx ? hmax(acc) : hmin(acc);
  }
  for (; i < n; ++i) s = mx ? (x[i] > s ? x[i] : s) : (x[i] < s ? x[i] : s);
  return s;
}

void softmax(const float* x, float* y, int64_t n, bool log) {
  if (n == 0) return;
  const float m = reduce(ReduceOp::kMax, x, n);
  const V vm = splat(m);
  int64_t i = 0;
  V acc = splat(0.f);
  float tail = 0;
  if (log) {
    for (; i + W <= n; i += W) acc += vexp(load(x + i) - vm);
  } else {
    for (; i + W <= n; i += W) {
      V e = vexp(load(x + i) - vm);
      store(y + i, e);
      acc += e;
    }
  }
  for (; i < n; ++i) {
    float e = lane(vexp(splat(x[i] - m)), 0);
    if (!log) y[i] = e;
    tail += e;
  }
  const float sum = hsum(acc) + tail;
  if (log) {
    const float shift = m + lane(vlog(splat(sum)), 0);
    binary(BinaryOp::kSub, x, false, &shift, true, y, n);
  } else {
    const float inv = 1.f / sum;
    binary(BinaryOp::kMul, y, false, &inv, true, y, n);
  }
}

void layer_norm(const float* x, const float* gamma, const float* beta, float* y, int64_t n, float eps) {
  if (n == 0) return;
  const float mean = reduce(ReduceOp::kSum, x, n) / static_cast<float>(n);
  const V vm = splat(mean);
  V acc = splat(0.f);
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    V d = load(x + i) - vm;
    acc += d * d;
  }
  float var = hsum(acc);
  for (; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<float>(n);
  const float inv = 1.f / __builtin_sqrtf(var + eps);
  const V vi = splat(inv);
  for (i = 0; i + W <= n; i += W) store(y + i, (load(x + i) - vm) * vi * load(gamma + i) + load(beta + i));
  for (; i < n; ++i) y[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
}

const VecTable kTable = {unary, binary, select, softmax, reduce, layer_norm};

}  // namespace tessera::cpu::TS_VEC_NS
