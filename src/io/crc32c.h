// CRC-32C (Castagnoli polynomial), as used by LevelDB tables, TensorBundle checkpoints and
// TFRecord files, plus TensorFlow's "masking" of stored checksums (a CRC of data that itself
// contains CRCs is weak, so stored values are rotated and offset).
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera::crc32c {

// Continues a CRC: extend(extend(0, a), b) == value(a ++ b). Uses the SSE4.2 crc32
// instruction when the CPU has it (checked once at run time), else slicing-by-8 tables.
uint32_t extend(uint32_t crc, const void* data, size_t n);
inline uint32_t value(const void* data, size_t n) { return extend(0, data, n); }

constexpr uint32_t kMaskDelta = 0xa282ead8u;
constexpr uint32_t mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }
constexpr uint32_t unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

// For tests and benchmarks: which implementation extend() uses, and the portable one directly.
bool hardware_accelerated();
uint32_t extend_portable(uint32_t crc, const void* data, size_t n);

}  // namespace tessera::crc32c
