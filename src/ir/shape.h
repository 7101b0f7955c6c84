// Shapes. A runtime Tensor has a concrete Shape; the IR carries PartialShapes, where a dim of
// -1 is unknown (e.g. the batch) and an unknown rank is `known_rank == false`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

using Shape = std::vector<int64_t>;

int64_t num_elements(const Shape& s);  // throws on overflow or negative dims
std::string shape_str(const Shape& s);  // "[2,3]"

struct PartialShape {
  bool known_rank = false;
  std::vector<int64_t> dims;  // -1 = unknown dim

  PartialShape() = default;
  PartialShape(std::vector<int64_t> d) : known_rank(true), dims(std::move(d)) {}
  static PartialShape unknown() { return {}; }

  int64_t rank() const { return known_rank ? static_cast<int64_t>(dims.size()) : -1; }
  bool fully_known() const;
  // True if a concrete shape could be this partial shape.
  bool matches(const Shape& s) const;
  std::string str() const;  // "[?,784]" or "<unknown>"
  bool operator==(const PartialShape&) const = default;
};

}  // namespace tessera
