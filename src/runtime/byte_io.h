// Little-endian byte encoding for the .tsr artifact. The reader treats its bytes as untrusted:
// every read is bounds-checked and every count is capped by the bytes left, so a hostile file
// can neither read out of bounds nor make the loader allocate more than the file's size.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "support/error.h"

namespace tessera::artifact_io {

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { put(&v, 4); }
  void u64(uint64_t v) { put(&v, 8); }
  void i64(int64_t v) { put(&v, 8); }
  void f32(float v) { put(&v, 4); }
  void str(std::string_view s) {
    u64(s.size());
    out_.append(s.data(), s.size());
  }
  void put(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void align(size_t a) { out_.append((a - out_.size() % a) % a, '\0'); }
  size_t size() const { return out_.size(); }
  std::string& bytes() { return out_; }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  // `what` names the file and section for messages ("'m.tsr' section graphs").
  Reader(const char* data, size_t size, std::string what) : p_(data), end_(data + size), begin_(data), what_(std::move(what)) {}

  uint8_t u8() { return get<uint8_t>(); }
  uint32_t u32() { return get<uint32_t>(); }
  uint64_t u64() { return get<uint64_t>(); }
  int64_t i64() { return get<int64_t>(); }
  float f32() { return get<float>(); }
  std::string str(const char* field) {
    uint64_t n = u64();
    need(n, field);
    std::string s(p_, n);
    p_ += n;
    return s;
  }
  // `n` raw bytes, in place.
  const char* take(uint64_t n, const char* field) {
    need(n, field);
    const char* at = p_;
    p_ += n;
    return at;
  }
  // A count of items each at least `min_item_bytes` long: rejected if the rest cannot hold them.
  uint64_t count(const char* field, size_t min_item_bytes = 1, uint64_t cap = UINT32_MAX) {
    uint64_t n = u64();
    if (n > cap || n > remaining() / (min_item_bytes ? min_item_bytes : 1))
      fail_code(ErrorCode::kDataLoss, what_, ": field '", field, "' at offset ", offset() - 8, ": count ", n,
                " is impossible (", remaining(), " bytes left)");
    return n;
  }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  size_t offset() const { return static_cast<size_t>(p_ - begin_); }
  [[noreturn]] void bad(const std::string& field, const std::string& why) const {
    fail_code(ErrorCode::kDataLoss, what_, ": field '", field, "' at offset ", offset(), ": ", why);
  }
  const std::string& what() const { return what_; }

 private:
  template <typename T>
  T get() {
    need(sizeof(T), "value");
    T v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  void need(uint64_t n, const char* field) {
    if (n > remaining())
      fail_code(ErrorCode::kDataLoss, what_, ": field '", field, "' at offset ", offset(), " needs ", n,
                " bytes, only ", remaining(), " left (truncated or corrupt)");
  }

  const char* p_;
  const char* end_;
  const char* begin_;
  std::string what_;
};

}  // namespace tessera::artifact_io
