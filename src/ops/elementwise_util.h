// Shared pieces of the elementwise families (unary_ops.cc, binary_ops.cc, reduction_ops.cc):
// the arithmetic type of each element type, wrapping integer arithmetic, TF's float->int
// conversion, and a broadcasting row iterator.
//
// The iterator collapses the operands' shapes into as few dims as possible and hands the
// kernel whole contiguous rows, so the common cases cost one call per tensor (same shape,
// scalar operand) or per row (bias-style trailing broadcast), with a tight inner loop.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "ir/op_registry.h"
#include "ops/op_helpers.h"

namespace tessera::ew {

// ---- element types -------------------------------------------------------------------------

// The type arithmetic happens in: float for the 16-bit floats (rounded once when stored, as
// TF's CPU kernels do), the type itself otherwise.
template <typename T> struct CalcOf { using type = T; };
template <> struct CalcOf<float16> { using type = float; };
template <> struct CalcOf<bfloat16> { using type = float; };
template <typename T> using Calc = typename CalcOf<T>::type;

template <typename T>
inline constexpr bool is_floating = std::is_floating_point_v<T> || std::is_same_v<T, float16> ||
                                    std::is_same_v<T, bfloat16>;
template <typename T>
inline constexpr bool is_int = std::is_integral_v<T> && !std::is_same_v<T, bool>;

template <typename T> inline Calc<T> up(T v) { return static_cast<Calc<T>>(v); }

// Integer arithmetic wraps like TF's (two's complement) without C++ signed-overflow UB: it is
// done in an unsigned type at least as wide as int (so uint16*uint16 does not promote to int).
template <typename T>
using Wide = std::conditional_t<(sizeof(T) < 4), uint32_t, std::make_unsigned_t<T>>;
template <typename T> inline T wadd(T a, T b) {
  if constexpr (is_int<T>) return static_cast<T>(static_cast<Wide<T>>(a) + static_cast<Wide<T>>(b));
  else return a + b;
}
template <typename T> inline T wsub(T a, T b) {
  if constexpr (is_int<T>) return static_cast<T>(static_cast<Wide<T>>(a) - static_cast<Wide<T>>(b));
  else return a - b;
}
template <typename T> inline T wmul(T a, T b) {
  if constexpr (is_int<T>) return static_cast<T>(static_cast<Wide<T>>(a) * static_cast<Wide<T>>(b));
  else return a * b;
}
template <typename T> inline T wneg(T a) { return wsub(T(0), a); }

// Element access that also covers string tensors (Tensor::data<T> is for fixed-size types).
template <typename T> inline const T* elems(const Tensor& t) {
  if constexpr (std::is_same_v<T, std::string>) return t.strings().data();
  else return t.data<T>();
}
template <typename T> inline T* elems(Tensor& t) {
  if constexpr (std::is_same_v<T, std::string>) return t.strings().data();
  else return t.data<T>();
}

// The value a float (or double) becomes as integer type D, the way TF's CPU Cast does it on
// x86 in its vectorised loop (what all but the last few elements of a tensor go through):
// truncation toward zero; NaN and out-of-range values become INT32_MIN / INT64_MIN for the
// 32/64-bit signed types, 8/16-bit types saturate (after that int32 step), uint32/uint64 are
// exact on their range, wrap small negatives, and give 2^31 / 2^63 otherwise. (TF's scalar
// tail loop wraps 8/16-bit results instead; out-of-range casts are unspecified in TF.)
// `saturate_narrow = false` gives that scalar rule (used where TF converts one value).
template <typename D>
D float_to_int(double v, bool saturate_narrow = true) {
  constexpr double k2_31 = 2147483648.0, k2_32 = 4294967296.0;
  constexpr double k2_63 = 9223372036854775808.0, k2_64 = 18446744073709551616.0;
  if constexpr (std::is_same_v<D, int64_t>) {
    if (!(v >= -k2_63 && v < k2_63)) return std::numeric_limits<int64_t>::min();
    return static_cast<int64_t>(v);
  } else if constexpr (std::is_same_v<D, uint64_t>) {
    if (v >= 0 && v < k2_64) return static_cast<uint64_t>(v);
    if (v > -k2_63 - 1 && v < 0) return static_cast<uint64_t>(static_cast<int64_t>(v));
    return uint64_t{1} << 63;
  } else if constexpr (std::is_same_v<D, uint32_t>) {
    if (v >= 0 && v < k2_32) return static_cast<uint32_t>(v);
    if (v > -k2_31 - 1 && v < 0) return static_cast<uint32_t>(static_cast<int32_t>(v));
    return uint32_t{1} << 31;
  } else {
    int32_t i = (v >= -k2_31 && v < k2_31) ? static_cast<int32_t>(v)
                                           : std::numeric_limits<int32_t>::min();
    if constexpr (sizeof(D) < 4) {
      constexpr int32_t lo = std::numeric_limits<D>::min(), hi = std::numeric_limits<D>::max();
      if (saturate_narrow) i = i < lo ? lo : (i > hi ? hi : i);
    }
    return static_cast<D>(i);
  }
}

// TF's Cast of one value (truncate=false). Bool is "!= 0"; 16-bit floats and double->16-bit go
// through float (TF rounds twice there too).
template <typename S, typename D>
inline D cast_value(S s) {
  if constexpr (std::is_same_v<D, bool>) {
    return up(s) != Calc<S>(0);
  } else if constexpr (std::is_same_v<S, bool>) {
    return static_cast<D>(s ? 1 : 0);
  } else if constexpr (is_floating<S> && is_int<D>) {
    return float_to_int<D>(static_cast<double>(up(s)));
  } else if constexpr (std::is_same_v<D, float16> || std::is_same_v<D, bfloat16>) {
    return D(static_cast<float>(up(s)));
  } else {
    return static_cast<D>(up(s));
  }
}

// ---- broadcasting --------------------------------------------------------------------------

// Up to three operands iterated together over an output shape. dims/strides are the collapsed
// iteration space (outermost first); strides are in elements, 0 where an operand broadcasts.
// The innermost stride of each operand is 0 or 1.
struct Broadcast {
  static constexpr int kMax = 3;
  Shape out_shape;
  int64_t out_count = 0;
  int num = 0;
  std::vector<int64_t> dims;
  std::vector<std::array<int64_t, kMax>> strides;
  std::array<int64_t, kMax> inner{};  // innermost strides (0 or 1)

  // Calls row(out_offset, offsets[kMax], length) for each contiguous output row, in order.
  template <typename F>
  void for_each_row(F&& row) const {
    if (out_count == 0) return;
    std::array<int64_t, kMax> off{};
    const size_t r = dims.size();
    if (r == 0) {
      row(int64_t{0}, off.data(), int64_t{1});
      return;
    }
    const int64_t n = dims[r - 1];
    const int64_t rows = out_count / n;
    std::vector<int64_t> idx(r, 0);
    int64_t o = 0;
    for (int64_t k = 0; k < rows; ++k, o += n) {
      row(o, off.data(), n);
      for (size_t d = r - 1; d-- > 0;) {  // odometer over the outer dims
        for (int j = 0; j < num; ++j) off[j] += strides[d][j];
        if (++idx[d] < dims[d]) break;
        for (int j = 0; j < num; ++j) off[j] -= strides[d][j] * dims[d];
        idx[d] = 0;
      }
    }
  }
};

// Broadcast plan for operands with `shapes` (1 to 3 of them).
Broadcast make_broadcast(const std::vector<const Shape*>& shapes);

// Merges two descriptions of the same shape (AddN inputs, Select branches).
PartialShape merge_partial(const PartialShape& a, const PartialShape& b);

// Applies out[i] = f(a[i], b[i]) over a two-operand plan, with tight loops for the row kinds.
template <typename A, typename B, typename O, typename F>
void apply2(const Broadcast& p, const A* a, const B* b, O* out, F&& f) {
  const bool sa = p.inner[0] != 0, sb = p.inner[1] != 0;
  p.for_each_row([&](int64_t o, const int64_t* off, int64_t n) {
    const A* pa = a + off[0];
    const B* pb = b + off[1];
    O* po = out + o;
    if (sa && sb) {
      for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
    } else if (sa) {
      const B vb = *pb;
      for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], vb);
    } else if (sb) {
      const A va = *pa;
      for (int64_t i = 0; i < n; ++i) po[i] = f(va, pb[i]);
    } else {
      const O v = f(*pa, *pb);
      for (int64_t i = 0; i < n; ++i) po[i] = v;
    }
  });
}

// Same for three operands (SelectV2, ClipByValue); rows of these are less common, one loop.
template <typename A, typename B, typename C, typename O, typename F>
void apply3(const Broadcast& p, const A* a, const B* b, const C* c, O* out, F&& f) {
  const int64_t sa = p.inner[0], sb = p.inner[1], sc = p.inner[2];
  p.for_each_row([&](int64_t o, const int64_t* off, int64_t n) {
    const A* pa = a + off[0];
    const B* pb = b + off[1];
    const C* pc = c + off[2];
    O* po = out + o;
    if (sa && sb && sc) {
      for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i], pc[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i * sa], pb[i * sb], pc[i * sc]);
    }
  });
}

// ---- axes ----------------------------------------------------------------------------------

// Reduction axes from a tensor of int32/int64 (any shape, flattened), normalised to [0, rank);
// errors on out-of-range or duplicate axes (as TF).
std::vector<int64_t> reduction_axes(const Tensor& axes, int64_t rank);
// A scalar axis operand (ArgMax, Cumsum) normalised to [0, rank); `what` prefixes errors.
int64_t scalar_axis(const Tensor& axis, int64_t rank, const char* what);

}  // namespace tessera::ew
