#include "io/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "io/varint.h"

namespace tessera {
namespace {

TEST(Crc32c, KnownVectors) {
  // Standard check value and the iSCSI test vectors (RFC 3720 B.4).
  EXPECT_EQ(crc32c::value("123456789", 9), 0xe3069283u);
  std::string buf(32, '\0');
  EXPECT_EQ(crc32c::value(buf.data(), 32), 0x8a9136aau);
  buf.assign(32, '\xff');
  EXPECT_EQ(crc32c::value(buf.data(), 32), 0x62a8ab43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<char>(i);
  EXPECT_EQ(crc32c::value(buf.data(), 32), 0x46dd794eu);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<char>(31 - i);
  EXPECT_EQ(crc32c::value(buf.data(), 32), 0x113fdb5cu);
  EXPECT_EQ(crc32c::value("", 0), 0u);
}

TEST(Crc32c, ExtendEqualsWhole) {
  const std::string s = "hello world, this is a crc test";
  for (size_t split = 0; split <= s.size(); ++split)
    EXPECT_EQ(crc32c::extend(crc32c::value(s.data(), split), s.data() + split, s.size() - split),
              crc32c::value(s.data(), s.size()));
}

TEST(Crc32c, MaskRoundTripAndDiffers) {
  for (uint32_t c : {0u, 1u, 0xe3069283u, 0xffffffffu, 0x80000000u}) {
    EXPECT_EQ(crc32c::unmask(crc32c::mask(c)), c);
    EXPECT_NE(crc32c::mask(c), c);
    EXPECT_NE(crc32c::mask(crc32c::mask(c)), crc32c::mask(c));
  }
  // TF's mask: rotate right by 15 then add 0xa282ead8.
  EXPECT_EQ(crc32c::mask(0), 0xa282ead8u);
  EXPECT_EQ(crc32c::mask(1), (1u << 17) + 0xa282ead8u);
}

TEST(Crc32c, AcceleratedMatchesPortableAtAllSizesAndAlignments) {
  std::mt19937 rng(7);
  std::string buf(3 * 4096 * 3 + 77, '\0');
  for (auto& c : buf) c = static_cast<char>(rng());
  // Sizes around the 3x4096 interleaving threshold, odd alignments, and a nonzero seed CRC.
  for (size_t n : {0, 1, 7, 8, 9, 63, 4095, 12287, 12288, 12289, 24576 + 5, 36864 + 70}) {
    for (size_t align = 0; align < 8; ++align) {
      if (align + n > buf.size()) continue;
      EXPECT_EQ(crc32c::extend(0x12345678u, buf.data() + align, n),
                crc32c::extend_portable(0x12345678u, buf.data() + align, n))
          << "n=" << n << " align=" << align;
    }
  }
}

TEST(Varint, RoundTripAndBounds) {
  for (uint64_t v : {0ull, 1ull, 127ull, 128ull, 300ull, 0xffffffffull, 0xffffffffffffffffull}) {
    std::string s;
    io::put_varint64(&s, v);
    uint64_t out = 0;
    EXPECT_EQ(io::get_varint64(s.data(), s.data() + s.size(), &out), s.data() + s.size());
    EXPECT_EQ(out, v);
    // Every strict prefix is truncated.
    for (size_t k = 0; k < s.size(); ++k) EXPECT_EQ(io::get_varint64(s.data(), s.data() + k, &out), nullptr);
  }
  // 11 bytes, or a 10th byte with more than one bit: overflow.
  std::string over(10, '\xff');
  over += '\x01';
  uint64_t v;
  EXPECT_EQ(io::get_varint64(over.data(), over.data() + over.size(), &v), nullptr);
  std::string ten(9, '\xff');
  ten += '\x02';
  EXPECT_EQ(io::get_varint64(ten.data(), ten.data() + ten.size(), &v), nullptr);
  // varint32: 2^32 does not fit.
  std::string big;
  io::put_varint64(&big, 1ull << 32);
  uint32_t v32;
  EXPECT_EQ(io::get_varint32(big.data(), big.data() + big.size(), &v32), nullptr);
  std::string max32;
  io::put_varint32(&max32, 0xffffffffu);
  EXPECT_NE(io::get_varint32(max32.data(), max32.data() + max32.size(), &v32), nullptr);
  EXPECT_EQ(v32, 0xffffffffu);
  std::string_view sv = max32;
  EXPECT_TRUE(io::get_varint32(&sv, &v32));
  EXPECT_TRUE(sv.empty());
}

}  // namespace
}  // namespace tessera
