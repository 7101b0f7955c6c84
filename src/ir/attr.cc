#include "ir/attr.h"

#include <sstream>

namespace tessera {

const char* attr_kind_name(const AttrValue& v) {
  static const char* kNames[] = {"none",        "int",         "float",      "bool",
                                 "string",      "type",        "shape",      "tensor",
                                 "func",        "list(int)",   "list(float)", "list(bool)",
                                 "list(string)", "list(type)", "list(shape)", "list(tensor)",
                                 "list(func)"};
  return kNames[v.index()];
}

bool attr_is_empty_list(const AttrValue& v) {
  return std::visit(
      [](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (requires { x.empty(); } && !std::is_same_v<T, std::string>) return x.empty();
        return false;
      },
      static_cast<const AttrVariant&>(v));
}

namespace {
template <typename T>
void put(std::ostream& os, const T& v) {
  if constexpr (std::is_same_v<T, std::monostate>) {
    os << "none";
  } else if constexpr (std::is_same_v<T, bool>) {
    os << (v ? "true" : "false");
  } else if constexpr (std::is_same_v<T, std::string>) {
    os << '"';
    for (char c : v.substr(0, 64)) os << (c >= 32 && c < 127 && c != '"' ? c : '.');
    if (v.size() > 64) os << "...";
    os << '"';
  } else if constexpr (std::is_same_v<T, DType>) {
    os << dtype_name(v);
  } else if constexpr (std::is_same_v<T, PartialShape>) {
    os << v.str();
  } else if constexpr (std::is_same_v<T, Tensor>) {
    os << v.debug_string(4);
  } else if constexpr (std::is_same_v<T, FuncRef>) {
    os << "@" << v.name;
  } else if constexpr (requires { v.begin(); }) {
    os << "[";
    bool first = true;
    for (const auto& e : v) {
      if (!first) os << ", ";
      first = false;
      put(os, static_cast<typename T::value_type>(e));
    }
    os << "]";
  } else {
    os << v;
  }
}
}  // namespace

std::string attr_str(const AttrValue& v) {
  std::ostringstream os;
  std::visit([&](const auto& x) { put(os, x); }, static_cast<const AttrVariant&>(v));
  return os.str();
}

}  // namespace tessera
