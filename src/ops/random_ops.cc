// Seeded random ops with TensorFlow's generator (Philox4x32-10, counter-based) so that a graph
// with explicit seeds produces TF's numbers. With both seeds 0, TF draws fresh seeds per op;
// so does Tessera. Stateful: never folded or deduplicated.
#include <array>
#include <cmath>
#include <cstring>
#include <random>

#include "ops/op_helpers.h"

namespace tessera {
namespace {

class Philox {
 public:
  using Block = std::array<uint32_t, 4>;
  Philox(uint64_t seed_lo, uint64_t seed_hi) {
    key_ = {static_cast<uint32_t>(seed_lo), static_cast<uint32_t>(seed_lo >> 32)};
    counter_ = {0, 0, static_cast<uint32_t>(seed_hi), static_cast<uint32_t>(seed_hi >> 32)};
  }
  Block next() {
    Block c = counter_;
    std::array<uint32_t, 2> k = key_;
    for (int round = 0; round < 10; ++round) {
      c = single_round(c, k);
      k[0] += 0x9E3779B9u;
      k[1] += 0xBB67AE85u;
    }
    if (++counter_[0] == 0 && ++counter_[1] == 0 && ++counter_[2] == 0) ++counter_[3];
    return c;
  }

 private:
  static Block single_round(const Block& c, const std::array<uint32_t, 2>& k) {
    uint64_t p0 = uint64_t{0xD2511F53u} * c[0];
    uint64_t p1 = uint64_t{0xCD9E8D57u} * c[2];
    return {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
            static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
  }
  Block counter_;
  std::array<uint32_t, 2> key_;
};

Philox generator(const Node& node) {
  int64_t seed = node.attr_or<int64_t>("seed", 0), seed2 = node.attr_or<int64_t>("seed2", 0);
  if (seed == 0 && seed2 == 0) {
    std::random_device rd;
    seed = (static_cast<int64_t>(rd()) << 32) | rd();
    seed2 = (static_cast<int64_t>(rd()) << 32) | rd();
  }
  return Philox(static_cast<uint64_t>(seed), static_cast<uint64_t>(seed2));
}

// [0, 1) from the low 23 bits, as TF builds floats from random words.
float unit_float(uint32_t x) {
  uint32_t bits = (x & 0x7fffffu) | 0x3f800000u;
  float f;
  std::memcpy(&f, &bits, 4);
  return f - 1.0f;
}
// Doubles take 52 mantissa bits from two words, the first word supplying the high bits.
double unit_double(uint32_t first, uint32_t second) {
  uint64_t bits = (static_cast<uint64_t>(first & 0xfffffu) << 32 | second) | 0x3ff0000000000000ull;
  double d;
  std::memcpy(&d, &bits, 8);
  return d - 1.0;
}

Shape shape_operand(const KernelContext& c) {
  Shape s = c.input(0).to_int_vector();
  for (int64_t d : s) TS_CHECK(d >= 0, "negative dimension in shape ", shape_str(s));
  return s;
}

// Fills `out` with values from one uniform [0,1) stream: 4 per block for 32-bit types, 2 per
// block for doubles (each from two words), like TF's distributions.
// 16-bit floats take their mantissa from the low bits of one word.
float16 unit_half(uint32_t x) {
  float16 h;
  h.bits = static_cast<uint16_t>((x & 0x3ffu) | 0x3c00u);
  return float16(static_cast<float>(h) - 1.0f);
}
bfloat16 unit_bfloat16(uint32_t x) {
  bfloat16 h;
  h.bits = static_cast<uint16_t>((x & 0x7fu) | 0x3f80u);
  return bfloat16(static_cast<float>(h) - 1.0f);
}

template <typename T, typename F>
void fill_uniform(Tensor& out, Philox& gen, F transform) {
  T* d = out.data<T>();
  const int64_t n = out.num_elements();
  if constexpr (std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>) {
    for (int64_t i = 0; i < n; i += 4) {
      auto b = gen.next();
      for (int j = 0; j < 4 && i + j < n; ++j)
        d[i + j] = std::is_same_v<T, float16> ? T(static_cast<float>(unit_half(b[j])))
                                               : T(static_cast<float>(unit_bfloat16(b[j])));
    }
  } else if constexpr (std::is_same_v<T, double>) {
    for (int64_t i = 0; i < n; i += 2) {
      auto b = gen.next();
      d[i] = transform(unit_double(b[0], b[1]));
      if (i + 1 < n) d[i + 1] = transform(unit_double(b[2], b[3]));
    }
  } else {
    for (int64_t i = 0; i < n; i += 4) {
      auto b = gen.next();
      for (int j = 0; j < 4 && i + j < n; ++j) d[i + j] = static_cast<T>(transform(unit_float(b[j])));
    }
  }
}

void random_uniform(KernelContext& c) {
  Tensor out(c.attr<DType>("dtype"), shape_operand(c));
  Philox gen = generator(c.node);
  dispatch(FloatTypes{}, out.dtype(), "RandomUniform", [&]<typename T>() {
    fill_uniform<T>(out, gen, [](auto u) { return u; });
  });
  c.set_output(0, out);
}

// Box-Muller on pairs of uniforms, as TF's normal distribution does.
void random_normal(KernelContext& c) {
  Tensor out(c.attr<DType>("dtype"), shape_operand(c));
  Philox gen = generator(c.node);
  dispatch(FloatTypes{}, out.dtype(), "RandomStandardNormal", [&]<typename T>() {
    T* d = out.data<T>();
    const int64_t n = out.num_elements();
    if constexpr (std::is_same_v<T, double>) {  // one pair per block, from word pairs
      for (int64_t i = 0; i < n; i += 2) {
        auto b = gen.next();
        double u1 = std::max(unit_double(b[0], b[1]), 1.0e-7);
        double v1 = 2.0 * M_PI * unit_double(b[2], b[3]);
        double r = std::sqrt(-2.0 * std::log(u1));
        d[i] = std::sin(v1) * r;
        if (i + 1 < n) d[i + 1] = std::cos(v1) * r;
      }
      return;
    }
    for (int64_t i = 0; i < n; i += 4) {
      auto b = gen.next();
      for (int pair = 0; pair < 2; ++pair) {
        float u1 = std::max(unit_float(b[2 * pair]), 1.0e-7f);
        float v1 = 2.0f * static_cast<float>(M_PI) * unit_float(b[2 * pair + 1]);
        float r = std::sqrt(-2.0f * std::log(u1));
        if (i + 2 * pair < n) d[i + 2 * pair] = static_cast<T>(std::sin(v1) * r);
        if (i + 2 * pair + 1 < n) d[i + 2 * pair + 1] = static_cast<T>(std::cos(v1) * r);
      }
    }
  });
  c.set_output(0, out);
}

// Normal samples redrawn until within two standard deviations.
void truncated_normal(KernelContext& c) {
  Tensor out(c.attr<DType>("dtype"), shape_operand(c));
  Philox gen = generator(c.node);
  dispatch(FloatTypes{}, out.dtype(), "TruncatedNormal", [&]<typename T>() {
    T* d = out.data<T>();
    int64_t i = 0;
    const int64_t n = out.num_elements();
    while (i < n) {
      auto b = gen.next();
      for (int pair = 0; pair < 2 && i < n; ++pair) {
        float u1 = std::max(unit_float(b[2 * pair]), 1.0e-7f);
        float v1 = 2.0f * static_cast<float>(M_PI) * unit_float(b[2 * pair + 1]);
        float r = std::sqrt(-2.0f * std::log(u1));
        for (float z : {std::sin(v1) * r, std::cos(v1) * r})
          if (std::abs(z) < 2.0f && i < n) d[i++] = static_cast<T>(z);
      }
    }
  });
  c.set_output(0, out);
}

void random_uniform_int(KernelContext& c) {
  Tensor out(c.input(1).dtype(), shape_operand(c));
  int64_t lo = c.input(1).scalar_int(), hi = c.input(2).scalar_int();
  TS_CHECK(lo < hi, "need minval < maxval, got ", lo, " >= ", hi);
  const uint64_t range = static_cast<uint64_t>(hi - lo);
  Philox gen = generator(c.node);
  dispatch(Types<int32_t, int64_t>{}, out.dtype(), "RandomUniformInt", [&]<typename T>() {
    T* d = out.data<T>();
    const int64_t n = out.num_elements();
    if constexpr (std::is_same_v<T, int32_t>) {
      for (int64_t i = 0; i < n; i += 4) {
        auto b = gen.next();
        for (int j = 0; j < 4 && i + j < n; ++j) d[i + j] = static_cast<T>(lo + static_cast<int64_t>(b[j] % range));
      }
    } else {
      for (int64_t i = 0; i < n; i += 2) {
        auto b = gen.next();
        for (int j = 0; j < 2 && i + j < n; ++j) {
          uint64_t word = static_cast<uint64_t>(b[2 * j + 1]) << 32 | b[2 * j];
          d[i + j] = static_cast<T>(lo + static_cast<int64_t>(word % range));
        }
      }
    }
  });
  c.set_output(0, out);
}

}  // namespace

void register_random_ops(OpRegistry& r) {
  AttrMap seeds = {{"seed", int64_t{0}}, {"seed2", int64_t{0}}};
  for (auto [name, kernel] : {std::pair{"RandomUniform", &random_uniform},
                              std::pair{"RandomStandardNormal", &random_normal},
                              std::pair{"TruncatedNormal", &truncated_normal}}) {
    r.add({.name = name, .attr_defaults = seeds, .stateful = true,
           .infer = [](InferContext& c) {
             auto dims = ops::known_ints(c, 0);
             c.set_output(0, c.attr<DType>("dtype"), dims ? PartialShape(*dims) : PartialShape::unknown());
           },
           .compute = kernel});
  }
  r.add({.name = "RandomUniformInt", .attr_defaults = seeds, .stateful = true,
         .infer = [](InferContext& c) {
           auto dims = ops::known_ints(c, 0);
           c.set_output(0, c.input(1).dtype, dims ? PartialShape(*dims) : PartialShape::unknown());
         },
         .compute = random_uniform_int});
}

}  // namespace tessera
