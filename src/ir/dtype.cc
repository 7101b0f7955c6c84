#include "ir/dtype.h"

namespace tessera {

float16::float16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or nan
    bits = static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0));
    return;
  }
  if (abs >= 0x477ff000u) {  // rounds to >= 65520: overflow to inf
    bits = static_cast<uint16_t>(sign | 0x7c00u);
    return;
  }
  if (abs < 0x38800000u) {  // subnormal half (or zero): scale by 2^24 and round to nearest even
    float af;
    std::memcpy(&af, &abs, 4);
    float scaled = af * 16777216.0f;
    uint32_t m = static_cast<uint32_t>(scaled);
    float rem = scaled - static_cast<float>(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    bits = static_cast<uint16_t>(sign | m);
    return;
  }
  // Normal: rebias exponent, round mantissa from 23 to 10 bits (nearest even).
  uint32_t v = abs - 0x38000000u;
  uint32_t round = 0xfffu + ((v >> 13) & 1u);
  v = (v + round) >> 13;
  bits = static_cast<uint16_t>(sign | v);
}

float16::operator float() const {
  const uint32_t sign = (bits & 0x8000u) << 16;
  const uint32_t exp = (bits >> 10) & 0x1fu;
  const uint32_t man = bits & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    float f = static_cast<float>(man) * (1.0f / 16777216.0f);
    return sign ? -f : f;
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (man << 13);
  } else {
    x = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

bfloat16::bfloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) {  // keep NaN a quiet NaN
    bits = static_cast<uint16_t>((x >> 16) | 0x40u);
    return;
  }
  x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest even
  bits = static_cast<uint16_t>(x >> 16);
}

bfloat16::operator float() const {
  uint32_t x = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

namespace {
struct DTypeInfo {
  DType type;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kInfo[] = {
    {DType::kFloat32, "float32", 4},   {DType::kFloat64, "float64", 8},
    {DType::kInt32, "int32", 4},       {DType::kUInt8, "uint8", 1},
    {DType::kInt16, "int16", 2},       {DType::kInt8, "int8", 1},
    {DType::kString, "string", 0},     {DType::kComplex64, "complex64", 8},
    {DType::kInt64, "int64", 8},       {DType::kBool, "bool", 1},
    {DType::kBFloat16, "bfloat16", 2}, {DType::kUInt16, "uint16", 2},
    {DType::kComplex128, "complex128", 16}, {DType::kFloat16, "float16", 2},
    {DType::kResource, "resource", 0}, {DType::kVariant, "variant", 0},
    {DType::kUInt32, "uint32", 4},     {DType::kUInt64, "uint64", 8},
};
const DTypeInfo* info(DType t) {
  for (const auto& i : kInfo)
    if (i.type == t) return &i;
  return nullptr;
}
}  // namespace

const char* dtype_name(DType t) {
  const DTypeInfo* i = info(t);
  return i ? i->name : "invalid";
}

DType dtype_from_name(const std::string& s) {
  for (const auto& i : kInfo)
    if (s == i.name) return i.type;
  if (s == "float") return DType::kFloat32;
  if (s == "double") return DType::kFloat64;
  if (s == "half") return DType::kFloat16;
  fail("unknown dtype name '", s, "'");
}

DType dtype_from_tf(int tf_enum) {
  if (tf_enum > 100) tf_enum -= 100;  // reference types (DT_FLOAT_REF = 101, ...)
  DType t = static_cast<DType>(tf_enum);
  if (!info(t)) fail("unsupported TensorFlow DataType ", tf_enum);
  return t;
}

size_t dtype_size(DType t) {
  const DTypeInfo* i = info(t);
  return i ? i->size : 0;
}

bool is_float(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16 ||
         t == DType::kBFloat16;
}

bool is_integer(DType t) {
  switch (t) {
    case DType::kInt8: case DType::kInt16: case DType::kInt32: case DType::kInt64:
    case DType::kUInt8: case DType::kUInt16: case DType::kUInt32: case DType::kUInt64:
      return true;
    default:
      return false;
  }
}

bool is_pod(DType t) { return dtype_size(t) > 0; }

}  // namespace tessera
