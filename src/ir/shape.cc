#include "ir/shape.h"

#include "support/error.h"

namespace tessera {

int64_t num_elements(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    TS_CHECK(d >= 0, "negative dimension in shape ", shape_str(s));
    if (d != 0 && n > INT64_MAX / d) fail("shape ", shape_str(s), " has too many elements");
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

bool PartialShape::fully_known() const {
  if (!known_rank) return false;
  for (int64_t d : dims)
    if (d < 0) return false;
  return true;
}

bool PartialShape::matches(const Shape& s) const {
  if (!known_rank) return true;
  if (s.size() != dims.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (dims[i] >= 0 && dims[i] != s[i]) return false;
  return true;
}

std::string PartialShape::str() const {
  if (!known_rank) return "<unknown>";
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) out += ",";
    out += dims[i] < 0 ? "?" : std::to_string(dims[i]);
  }
  return out + "]";
}

}  // namespace tessera
