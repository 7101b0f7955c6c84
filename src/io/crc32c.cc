#include "io/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TESSERA_CRC_X86 1
#endif

namespace tessera::crc32c {
namespace {

constexpr uint32_t kPoly = 0x82f63b78u;  // reflected Castagnoli polynomial

// table[k][b] = CRC of byte b followed by k zero bytes: lets the loop consume 8 bytes per step.
constexpr std::array<std::array<uint32_t, 256>, 8> make_tables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1u) ? kPoly : 0u);
    t[0][b] = c;
  }
  for (int k = 1; k < 8; ++k)
    for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xffu];
  return t;
}
constexpr auto kTables = make_tables();

inline uint64_t load_le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

uint32_t extend_sliced(uint32_t crc, const uint8_t* p, size_t n) {
  uint32_t c = ~crc;
  while (n >= 8) {
    uint64_t v = load_le64(p) ^ c;
    c = kTables[7][v & 0xff] ^ kTables[6][(v >> 8) & 0xff] ^ kTables[5][(v >> 16) & 0xff] ^
        kTables[4][(v >> 24) & 0xff] ^ kTables[3][(v >> 32) & 0xff] ^
        kTables[2][(v >> 40) & 0xff] ^ kTables[1][(v >> 48) & 0xff] ^ kTables[0][v >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xff];
  return ~c;
}

#ifdef TESSERA_CRC_X86
// One crc32 instruction has 3-cycle latency but 1-cycle throughput, so large buffers are
// split into three interleaved streams whose CRCs are recombined with a "shift by N zero
// bytes" operator (a 32x32 GF(2) matrix, applied via precomputed byte tables).
constexpr size_t kStripe = 4096;  // bytes per stream per round

// Multiplies the CRC state by x^(8*len) mod P, i.e. the effect of appending `len` zero bytes.
struct ZeroShift {
  std::array<std::array<uint32_t, 256>, 4> t{};
  explicit ZeroShift(size_t len) {
    // Column j of the operator = state with only bit j set, advanced through len zero bytes.
    std::array<uint32_t, 32> col{};
    for (int j = 0; j < 32; ++j) {
      uint32_t c = 1u << j;
      for (size_t i = 0; i < len; ++i) c = (c >> 8) ^ kTables[0][c & 0xff];
      col[j] = c;
    }
    for (int k = 0; k < 4; ++k)
      for (uint32_t b = 0; b < 256; ++b) {
        uint32_t r = 0;
        for (int j = 0; j < 8; ++j)
          if (b & (1u << j)) r ^= col[8 * k + j];
        t[k][b] = r;
      }
  }
  uint32_t apply(uint32_t c) const {
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
  }
};

__attribute__((target("sse4.2"))) uint32_t extend_hw(uint32_t crc, const uint8_t* p, size_t n) {
  static const ZeroShift shift(kStripe);
  uint64_t c = ~crc;
  // Align to 8 bytes so the 64-bit loads are aligned.
  while (n && (reinterpret_cast<uintptr_t>(p) & 7)) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    --n;
  }
  while (n >= 3 * kStripe) {
    uint64_t c1 = 0, c2 = 0;  // streams 2 and 3 start from a zero register
    const uint8_t* p1 = p + kStripe;
    const uint8_t* p2 = p + 2 * kStripe;
    for (size_t i = 0; i < kStripe; i += 8) {
      uint64_t a, b, d;
      std::memcpy(&a, p + i, 8);
      std::memcpy(&b, p1 + i, 8);
      std::memcpy(&d, p2 + i, 8);
      c = _mm_crc32_u64(c, a);
      c1 = _mm_crc32_u64(c1, b);
      c2 = _mm_crc32_u64(c2, d);
    }
    // CRC state is linear: state(A ++ B) = shift_|B|(state(A)) ^ state_from_zero(B).
    c = shift.apply(static_cast<uint32_t>(c)) ^ c1;
    c = shift.apply(static_cast<uint32_t>(c)) ^ c2;
    p += 3 * kStripe;
    n -= 3 * kStripe;
  }
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  while (n--) c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
  return ~static_cast<uint32_t>(c);
}

bool cpu_has_sse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

uint32_t extend_portable(uint32_t crc, const void* data, size_t n) {
  return extend_sliced(crc, static_cast<const uint8_t*>(data), n);
}

bool hardware_accelerated() {
#ifdef TESSERA_CRC_X86
  return cpu_has_sse42();
#else
  return false;
#endif
}

uint32_t extend(uint32_t crc, const void* data, size_t n) {
#ifdef TESSERA_CRC_X86
  if (cpu_has_sse42()) return extend_hw(crc, static_cast<const uint8_t*>(data), n);
#endif
  return extend_sliced(crc, static_cast<const uint8_t*>(data), n);
}

}  // namespace tessera::crc32c
