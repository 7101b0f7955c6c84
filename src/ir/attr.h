// Node attributes: the same kinds TensorFlow's AttrValue has.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "ir/tensor.h"

namespace tessera {

struct AttrValue;
using AttrMap = std::map<std::string, AttrValue>;

// A reference to a function in the graph's library (If/While branches, call targets).
struct FuncRef {
  std::string name;
  std::shared_ptr<AttrMap> attrs;  // instantiation attributes (usually empty)
  bool operator==(const FuncRef& o) const { return name == o.name; }
};

using AttrVariant =
    std::variant<std::monostate, int64_t, float, bool, std::string, DType, PartialShape, Tensor,
                 FuncRef, std::vector<int64_t>, std::vector<float>, std::vector<bool>,
                 std::vector<std::string>, std::vector<DType>, std::vector<PartialShape>,
                 std::vector<Tensor>, std::vector<FuncRef>>;

struct AttrValue : AttrVariant {
  using AttrVariant::AttrVariant;
  using AttrVariant::operator=;
};

const char* attr_kind_name(const AttrValue& v);
bool attr_is_empty_list(const AttrValue& v);
std::string attr_str(const AttrValue& v);  // compact text for IR dumps

}  // namespace tessera
