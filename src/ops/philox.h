// TensorFlow's Philox4x32-10 generator (counter-based: a block of four words is a pure function
// of a 128-bit counter and a 64-bit key), shared by the random ops' reference kernels and the
// cpu backend's TsRandomUniformIndexed kernel.
#pragma once
#include <array>
#include <cstdint>
#include <cstring>

namespace tessera::philox {

using Block = std::array<uint32_t, 4>;
using Key = std::array<uint32_t, 2>;

inline Block round(const Block& c, const Key& k) {
  uint64_t p0 = uint64_t{0xD2511F53u} * c[0];
  uint64_t p1 = uint64_t{0xCD9E8D57u} * c[2];
  return {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
          static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
}

// Ten rounds with the key bumped between them: the block for one counter value.
inline Block block(Block c, Key k) {
  for (int r = 0; r < 10; ++r) {
    c = round(c, k);
    k[0] += 0x9E3779B9u;
    k[1] += 0xBB67AE85u;
  }
  return c;
}

// A stream of blocks: counter, counter + 1, ... (TF's PhiloxRandom).
class Stream {
 public:
  // TF's PhiloxRandom(seed_lo, seed_hi): the key from the first seed, the counter's high half
  // from the second.
  Stream(uint64_t seed_lo, uint64_t seed_hi)
      : counter_{0, 0, static_cast<uint32_t>(seed_hi), static_cast<uint32_t>(seed_hi >> 32)},
        key_{static_cast<uint32_t>(seed_lo), static_cast<uint32_t>(seed_lo >> 32)} {}
  Stream(const Block& counter, const Key& key) : counter_(counter), key_(key) {}
  Block next() {
    Block out = block(counter_, key_);
    if (++counter_[0] == 0 && ++counter_[1] == 0 && ++counter_[2] == 0) ++counter_[3];
    return out;
  }

 private:
  Block counter_;
  Key key_;
};

// [0, 1) from the low 23 bits, as TF builds floats from random words.
inline float unit_float(uint32_t x) {
  uint32_t bits = (x & 0x7fffffu) | 0x3f800000u;
  float f;
  std::memcpy(&f, &bits, 4);
  return f - 1.0f;
}
// Doubles take 52 mantissa bits from two words, the first word supplying the high bits.
inline double unit_double(uint32_t first, uint32_t second) {
  uint64_t bits = (static_cast<uint64_t>(first & 0xfffffu) << 32 | second) | 0x3ff0000000000000ull;
  double d;
  std::memcpy(&d, &bits, 8);
  return d - 1.0;
}

// TsRandomUniformIndexed's words: the block holding words [4b, 4b + 4) of sample `sample` in
// stream `stream` under `seed`. Key = the seed; counter = (b, stream, sample). Every
// (seed, stream, sample, element) gets its own word with no state, so a sample's draws do
// not depend on which batch, row or replica it lands in.
inline Block indexed_block(uint64_t seed, uint32_t stream, uint64_t sample, uint32_t b) {
  return block({b, stream, static_cast<uint32_t>(sample), static_cast<uint32_t>(sample >> 32)},
               {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
}

// Uniform [0, 1) values of elements [0, n) of one sample (float: one word each; double: two).
template <typename T>
void indexed_uniform_row(uint64_t seed, uint32_t stream, uint64_t sample, T* out, int64_t n) {
  if constexpr (std::is_same_v<T, double>) {
    for (int64_t j = 0; j < n; j += 2) {
      Block w = indexed_block(seed, stream, sample, static_cast<uint32_t>(j / 2));
      out[j] = unit_double(w[0], w[1]);
      if (j + 1 < n) out[j + 1] = unit_double(w[2], w[3]);
    }
  } else {
    for (int64_t j = 0; j < n; j += 4) {
      Block w = indexed_block(seed, stream, sample, static_cast<uint32_t>(j / 4));
      for (int l = 0; l < 4 && j + l < n; ++l) out[j + l] = static_cast<T>(unit_float(w[l]));
    }
  }
}

}  // namespace tessera::philox
