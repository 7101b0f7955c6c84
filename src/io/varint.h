// LEB128 varints as used by protobuf, LevelDB tables and TensorBundle string tensors.
// Decoders are bounds-checked: they never read at or past `limit` and reject overlong or
// overflowing encodings, because their input comes from untrusted files.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace tessera::io {

// Decodes a varint starting at p (p <= limit). Returns the position after it, or nullptr if
// the input ends early or the value does not fit.
inline const char* get_varint64(const char* p, const char* limit, uint64_t* value) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && p < limit; shift += 7) {
    uint64_t byte = static_cast<uint8_t>(*p++);
    if (shift == 63 && byte > 1) return nullptr;  // 10th byte may only hold the top bit
    result |= (byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      *value = result;
      return p;
    }
  }
  return nullptr;
}

inline const char* get_varint32(const char* p, const char* limit, uint32_t* value) {
  uint32_t result = 0;
  for (int shift = 0; shift <= 28 && p < limit; shift += 7) {
    uint32_t byte = static_cast<uint8_t>(*p++);
    if (shift == 28 && byte > 0x0f) return nullptr;  // 5th byte may hold only 4 bits
    result |= (byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      *value = result;
      return p;
    }
  }
  return nullptr;
}

// string_view forms: consume the varint from the front of *in; false on malformed input
// (and *in is left unchanged).
inline bool get_varint64(std::string_view* in, uint64_t* value) {
  const char* q = get_varint64(in->data(), in->data() + in->size(), value);
  if (!q) return false;
  in->remove_prefix(static_cast<size_t>(q - in->data()));
  return true;
}
inline bool get_varint32(std::string_view* in, uint32_t* value) {
  const char* q = get_varint32(in->data(), in->data() + in->size(), value);
  if (!q) return false;
  in->remove_prefix(static_cast<size_t>(q - in->data()));
  return true;
}

inline void put_varint64(std::string* dst, uint64_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}
inline void put_varint32(std::string* dst, uint32_t v) { put_varint64(dst, v); }

inline uint32_t decode_fixed32(const char* p) {
  uint8_t b[4];
  std::memcpy(b, p, 4);
  return uint32_t{b[0]} | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 24);
}
inline uint64_t decode_fixed64(const char* p) {
  return uint64_t{decode_fixed32(p)} | (uint64_t{decode_fixed32(p + 4)} << 32);
}
inline void put_fixed32(std::string* dst, uint32_t v) {
  for (int i = 0; i < 4; ++i) dst->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void put_fixed64(std::string* dst, uint64_t v) {
  put_fixed32(dst, static_cast<uint32_t>(v));
  put_fixed32(dst, static_cast<uint32_t>(v >> 32));
}

}  // namespace tessera::io
