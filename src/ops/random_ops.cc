// Seeded random ops with TensorFlow's generator (Philox4x32-10, counter-based) so that a graph
// with explicit seeds produces TF's numbers. With both seeds 0, TF draws fresh seeds per op;
// so does Tessera. Stateful: never folded or deduplicated. The stateless forms (Keras 3's
// dropout draws StatelessRandomUniformV2 from StatelessRandomGetKeyCounter) are pure
// functions of their seed. TsRandomUniformIndexed is Tessera's dropout draw (rewrite_dropout):
// keyed on the global sample index so masks do not depend on the batch split.
#include <array>
#include <cmath>
#include <cstring>
#include <random>

#include "ops/op_helpers.h"
#include "ops/philox.h"

namespace tessera {
namespace {

using Philox = philox::Stream;
using philox::unit_double;
using philox::unit_float;

Philox generator(const Node& node) {
  int64_t seed = node.attr_or<int64_t>("seed", 0), seed2 = node.attr_or<int64_t>("seed2", 0);
  if (seed == 0 && seed2 == 0) {
    std::random_device rd;
    seed = (static_cast<int64_t>(rd()) << 32) | rd();
    seed2 = (static_cast<int64_t>(rd()) << 32) | rd();
  }
  return Philox(static_cast<uint64_t>(seed), static_cast<uint64_t>(seed2));
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

// --- stateless forms ------------------------------------------------------------------------

// TF's GenerateKey: the seed pair becomes a counter, scrambled by one Philox block under a
// fixed key into the (key, counter) the draws use, so neither seed half needs to be strong.
std::pair<philox::Key, philox::Block> key_counter_from_seed(const Tensor& seed) {
  TS_CHECK(seed.num_elements() == 2, "seed must have shape [2], got ", shape_str(seed.shape()));
  std::vector<int64_t> s = seed.to_int_vector();  // int32 seeds sign-extend, as TF's copy does
  uint64_t s0 = static_cast<uint64_t>(s[0]), s1 = static_cast<uint64_t>(s[1]);
  philox::Block counter = {static_cast<uint32_t>(s0), static_cast<uint32_t>(s0 >> 32),
                           static_cast<uint32_t>(s1), static_cast<uint32_t>(s1 >> 32)};
  philox::Block mix = philox::block(counter, {0x3ec8f720u, 0x02461e29u});
  return {{mix[0], mix[1]}, {0, 0, mix[2], mix[3]}};
}

void stateless_get_key_counter(KernelContext& c) {
  auto [key, counter] = key_counter_from_seed(c.input(0));
  c.set_output(0, Tensor::from_vector<uint64_t>({uint64_t{key[1]} << 32 | key[0]}, {1}));
  c.set_output(1, Tensor::from_vector<uint64_t>(
                      {uint64_t{counter[1]} << 32 | counter[0], uint64_t{counter[3]} << 32 | counter[2]}, {2}));
}

void fill_from(KernelContext& c, const philox::Key& key, const philox::Block& counter) {
  Tensor out(c.attr<DType>("dtype"), shape_operand(c));
  Philox gen(counter, key);
  dispatch(FloatTypes{}, out.dtype(), c.node.op.c_str(), [&]<typename T>() {
    fill_uniform<T>(out, gen, [](auto u) { return u; });
  });
  c.set_output(0, out);
}

// StatelessRandomUniformV2(shape, key, counter, alg): Philox (1) and auto-select (3, which is
// Philox on CPU) only.
void stateless_uniform_v2(KernelContext& c) {
  int64_t alg = c.input(3).scalar_int();
  if (alg != 1 && alg != 3)
    fail_code(ErrorCode::kUnimplemented, "random algorithm ", alg, " (only Philox, 1, and auto-select, 3)");
  std::vector<int64_t> k = c.input(1).to_int_vector(), ctr = c.input(2).to_int_vector();
  TS_CHECK(k.size() >= 1 && ctr.size() >= 2, "key must have 1 element and counter 2");
  uint64_t k0 = static_cast<uint64_t>(k[0]), c0 = static_cast<uint64_t>(ctr[0]), c1 = static_cast<uint64_t>(ctr[1]);
  fill_from(c, {static_cast<uint32_t>(k0), static_cast<uint32_t>(k0 >> 32)},
            {static_cast<uint32_t>(c0), static_cast<uint32_t>(c0 >> 32), static_cast<uint32_t>(c1),
             static_cast<uint32_t>(c1 >> 32)});
}

// StatelessRandomUniform(shape, seed[2]): the V1 form, key and counter from the seed.
void stateless_uniform(KernelContext& c) {
  auto [key, counter] = key_counter_from_seed(c.input(1));
  fill_from(c, key, counter);
}

// TsRandomUniformIndexed(shape, seed, sample_offset), attrs dtype, stream: U[0,1) where row r
// (dimension 0) is global sample sample_offset + r and element j counts within the row.
void random_uniform_indexed(KernelContext& c) {
  Tensor out(c.attr<DType>("dtype"), shape_operand(c));
  uint64_t seed = static_cast<uint64_t>(c.input(1).scalar_int());
  uint64_t offset = static_cast<uint64_t>(c.input(2).scalar_int());
  uint32_t stream = static_cast<uint32_t>(c.attr<int64_t>("stream"));
  int64_t rows = out.rank() == 0 ? 1 : out.dim(0);
  int64_t per_row = rows ? out.num_elements() / std::max<int64_t>(rows, 1) : 0;
  dispatch(FloatTypes{}, out.dtype(), "TsRandomUniformIndexed", [&]<typename T>() {
    T* d = out.data<T>();
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      for (int64_t r = 0; r < rows; ++r) philox::indexed_uniform_row(seed, stream, offset + r, d + r * per_row, per_row);
    } else {
      std::vector<float> row(static_cast<size_t>(per_row));
      for (int64_t r = 0; r < rows; ++r) {
        philox::indexed_uniform_row(seed, stream, offset + r, row.data(), per_row);
        for (int64_t j = 0; j < per_row; ++j) d[r * per_row + j] = T(row[static_cast<size_t>(j)]);
      }
    }
  });
  c.set_output(0, out);
}

void infer_uniform_of_shape(InferContext& c) {
  auto dims = ops::known_ints(c, 0);
  c.set_output(0, c.attr<DType>("dtype"), dims ? PartialShape(*dims) : PartialShape::unknown());
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
  r.add({.name = "StatelessRandomGetKeyCounter", .attr_defaults = {{"Tseed", DType::kInt64}},
         .output_args = {{"key", "", ""}, {"counter", "", ""}},
         .infer = [](InferContext& c) {
           c.set_output(0, DType::kUInt64, PartialShape({1}));
           c.set_output(1, DType::kUInt64, PartialShape({2}));
         },
         .compute = stateless_get_key_counter});
  r.add({.name = "StatelessRandomUniformV2", .attr_defaults = {{"dtype", DType::kFloat32}, {"Tshape", DType::kInt32}},
         .infer = infer_uniform_of_shape, .compute = stateless_uniform_v2});
  r.add({.name = "StatelessRandomUniform",
         .attr_defaults = {{"dtype", DType::kFloat32}, {"T", DType::kInt32}, {"Tseed", DType::kInt64}},
         .infer = infer_uniform_of_shape, .compute = stateless_uniform});
  // Stateful: it must not be folded even when its operands are constants (the seed and
  // offset are fed per step).
  r.add({.name = "TsRandomUniformIndexed", .attr_defaults = {{"dtype", DType::kFloat32}, {"stream", int64_t{0}}},
         .stateful = true, .infer = infer_uniform_of_shape, .compute = random_uniform_indexed});
}

}  // namespace tessera
