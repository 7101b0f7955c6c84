// Element types. The enum values are TensorFlow's DataType numbers, so conversion from
// TensorProto/AttrValue is a cast (after a range check).
#pragma once
#include <complex>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>

#include "support/error.h"

namespace tessera {

enum class DType : int {
  kInvalid = 0,
  kFloat32 = 1,
  kFloat64 = 2,
  kInt32 = 3,
  kUInt8 = 4,
  kInt16 = 5,
  kInt8 = 6,
  kString = 7,
  kComplex64 = 8,
  kInt64 = 9,
  kBool = 10,
  kBFloat16 = 14,
  kUInt16 = 17,
  kComplex128 = 18,
  kFloat16 = 19,
  kResource = 20,
  kVariant = 21,
  kUInt32 = 22,
  kUInt64 = 23,
};

// 16-bit floats stored as bits; arithmetic happens in float32 (as TF's reference kernels do).
struct float16 {
  uint16_t bits = 0;
  float16() = default;
  explicit float16(float f);
  operator float() const;
};
struct bfloat16 {
  uint16_t bits = 0;
  bfloat16() = default;
  explicit bfloat16(float f);
  operator float() const;
};

const char* dtype_name(DType t);            // "float32", "int64", ...
DType dtype_from_name(const std::string& s);  // inverse of dtype_name; throws on unknown
DType dtype_from_tf(int tf_enum);             // validates a TF DataType number (refs stripped)
size_t dtype_size(DType t);                   // bytes per element; 0 for string/resource/variant
bool is_float(DType t);
bool is_integer(DType t);
bool is_pod(DType t);  // fixed-size element stored in the byte buffer

template <typename T> struct DTypeOf;
#define TS_DTYPE_OF(T, D) \
  template <> struct DTypeOf<T> { static constexpr DType value = D; };
TS_DTYPE_OF(float, DType::kFloat32)
TS_DTYPE_OF(double, DType::kFloat64)
TS_DTYPE_OF(int32_t, DType::kInt32)
TS_DTYPE_OF(uint8_t, DType::kUInt8)
TS_DTYPE_OF(int16_t, DType::kInt16)
TS_DTYPE_OF(int8_t, DType::kInt8)
TS_DTYPE_OF(int64_t, DType::kInt64)
TS_DTYPE_OF(bool, DType::kBool)
TS_DTYPE_OF(bfloat16, DType::kBFloat16)
TS_DTYPE_OF(uint16_t, DType::kUInt16)
TS_DTYPE_OF(float16, DType::kFloat16)
TS_DTYPE_OF(uint32_t, DType::kUInt32)
TS_DTYPE_OF(uint64_t, DType::kUInt64)
TS_DTYPE_OF(std::complex<float>, DType::kComplex64)
TS_DTYPE_OF(std::complex<double>, DType::kComplex128)
#undef TS_DTYPE_OF
template <typename T> inline constexpr DType dtype_of = DTypeOf<T>::value;

// Calls f.template operator()<T>() with the C++ type of `t`. The `Types` tag lists the dtypes
// a kernel accepts; any other dtype is an error naming `what`.
template <typename... Ts> struct Types {};
using FloatTypes = Types<float, double, float16, bfloat16>;
using IntTypes = Types<int32_t, int64_t, uint8_t, int8_t, int16_t, uint16_t, uint32_t, uint64_t>;
using RealTypes = Types<float, double, float16, bfloat16, int32_t, int64_t, uint8_t, int8_t,
                        int16_t, uint16_t, uint32_t, uint64_t>;
using PodTypes = Types<float, double, float16, bfloat16, int32_t, int64_t, uint8_t, int8_t,
                       int16_t, uint16_t, uint32_t, uint64_t, bool, std::complex<float>,
                       std::complex<double>>;

template <typename... Ts, typename F>
decltype(auto) dispatch(Types<Ts...>, DType t, const char* what, F&& f) {
  using First = std::tuple_element_t<0, std::tuple<Ts...>>;
  using R = decltype(f.template operator()<First>());
  if constexpr (std::is_void_v<R>) {
    bool done = ((t == dtype_of<Ts> ? (f.template operator()<Ts>(), true) : false) || ...);
    if (!done) fail(what, ": unsupported dtype ", dtype_name(t));
  } else {
    R result{};
    bool done = ((t == dtype_of<Ts> ? (result = f.template operator()<Ts>(), true) : false) || ...);
    if (!done) fail(what, ": unsupported dtype ", dtype_name(t));
    return result;
  }
}

}  // namespace tessera
