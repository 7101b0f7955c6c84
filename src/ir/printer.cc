#include "ir/printer.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <complex>
#include <sstream>
#include <unordered_set>

namespace tessera {
namespace {

std::string value_ref(const Value& v) {
  return v.index == 0 ? v.node->name : v.node->name + ":" + std::to_string(v.index);
}

// Shortest text that reads back to the same value.
template <typename F>
std::string float_text(F v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// A float attribute must not read back as an int: "1" -> "1.0".
std::string float_attr_text(float v) {
  std::string s = float_text(v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

void put_string(std::ostream& os, const std::string& s) {
  static const char* kHex = "0123456789abcdef";
  os << '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') os << '\\' << c;
    else if (c == '\n') os << "\\n";
    else if (c == '\t') os << "\\t";
    else if (c >= 32 && c < 127) os << c;
    else os << "\\x" << kHex[c >> 4] << kHex[c & 15];
  }
  os << '"';
}

void put_element(std::ostream& os, const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kFloat32: os << float_text(t.data<float>()[i]); break;
    case DType::kFloat64: os << float_text(t.data<double>()[i]); break;
    case DType::kFloat16: os << float_text(static_cast<float>(t.data<float16>()[i])); break;
    case DType::kBFloat16: os << float_text(static_cast<float>(t.data<bfloat16>()[i])); break;
    case DType::kBool: os << (t.data<bool>()[i] ? "true" : "false"); break;
    case DType::kString: put_string(os, t.strings()[static_cast<size_t>(i)]); break;
    case DType::kUInt64: os << t.data<uint64_t>()[i]; break;
    default:
      if (is_integer(t.dtype())) os << t.scalar_int(static_cast<size_t>(i));
      else os << "?";
  }
}

template <typename T>
void put_attr(std::ostream& os, const T& v, int64_t max_inline) {
  if constexpr (std::is_same_v<T, std::monostate>) {
    os << "none";
  } else if constexpr (std::is_same_v<T, bool>) {
    os << (v ? "true" : "false");
  } else if constexpr (std::is_same_v<T, int64_t>) {
    os << v;
  } else if constexpr (std::is_same_v<T, float>) {
    os << float_attr_text(v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    put_string(os, v);
  } else if constexpr (std::is_same_v<T, DType>) {
    os << dtype_name(v);
  } else if constexpr (std::is_same_v<T, PartialShape>) {
    os << "shape" << v.str();
  } else if constexpr (std::is_same_v<T, Tensor>) {
    os << tensor_text(v, max_inline);
  } else if constexpr (std::is_same_v<T, FuncRef>) {
    os << "@" << v.name;
  } else {
    os << "[";
    bool first = true;
    for (const auto& e : v) {
      if (!first) os << ", ";
      first = false;
      put_attr(os, static_cast<typename T::value_type>(e), max_inline);
    }
    os << "]";
  }
}

void print_header(std::ostream& os, const Graph& g) {
  if (g.args.empty() && g.results.empty() && g.control_results.empty()) return;
  os << " (";
  for (size_t i = 0; i < g.args.size(); ++i) {
    const Node* a = g.args[i];
    os << (i ? ", " : "") << a->name << ": "
       << dtype_name(a->outputs.empty() ? DType::kInvalid : a->outputs[0].dtype)
       << (a->outputs.empty() ? PartialShape() : a->outputs[0].shape).str();
  }
  os << ") -> (";
  bool first = true;
  for (size_t i = 0; i < g.results.size(); ++i) {
    os << (first ? "" : ", ");
    first = false;
    if (i < g.result_names.size() && !g.result_names[i].empty()) {
      const std::string& label = g.result_names[i];
      bool plain = label[0] != '-';
      for (char c : label)
        plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '/' || c == '-');
      if (plain) os << label;
      else put_string(os, label);  // e.g. a tensor name "logits:0"
      os << ": ";
    }
    os << value_ref(g.results[i]);
  }
  for (const Node* c : g.control_results) {
    os << (first ? "" : ", ") << "^" << c->name;
    first = false;
  }
  os << ")";
}

void print_body(std::ostream& os, const Graph& g, const std::string& indent, int64_t max_inline) {
  std::unordered_set<const Node*> args(g.args.begin(), g.args.end());
  for (const Node* n : g.topo_order()) {
    if (args.count(n)) continue;  // declared in the header
    os << indent << n->name << " = " << n->op << "(";
    bool first = true;
    for (const Value& in : n->inputs) {
      os << (first ? "" : ", ") << value_ref(in);
      first = false;
    }
    for (const Node* c : n->control_inputs) {
      os << (first ? "" : ", ") << "^" << c->name;
      first = false;
    }
    os << ")";
    if (!n->attrs.empty()) {
      os << " {";
      bool a_first = true;
      for (const auto& [key, value] : n->attrs) {
        os << (a_first ? "" : ", ") << key << "=" << attr_text(value, max_inline);
        a_first = false;
      }
      os << "}";
    }
    os << " :";
    for (size_t i = 0; i < n->outputs.size(); ++i)
      os << (i ? ", " : " ") << dtype_name(n->outputs[i].dtype) << n->outputs[i].shape.str();
    os << "\n";
  }
}

}  // namespace

std::string tensor_text(const Tensor& t, int64_t max_inline) {
  if (!t.valid()) return "<invalid tensor>";
  std::ostringstream os;
  os << dtype_name(t.dtype()) << shape_str(t.shape()) << "{";
  bool printable = is_pod(t.dtype()) || t.dtype() == DType::kString;
  if (t.dtype() == DType::kComplex64 || t.dtype() == DType::kComplex128) printable = false;
  int64_t n = printable ? std::min(t.num_elements(), std::max<int64_t>(max_inline, 4)) : 0;
  if (t.num_elements() <= max_inline && printable) n = t.num_elements();
  else if (n == t.num_elements()) n = std::max<int64_t>(0, n - 1);  // a preview always elides
  for (int64_t i = 0; i < n; ++i) {
    if (i) os << ", ";
    put_element(os, t, i);
  }
  if (n < t.num_elements()) os << (n ? ", ..." : "...");
  os << "}";
  return os.str();
}

std::string attr_text(const AttrValue& value, int64_t max_inline) {
  std::ostringstream os;
  std::visit([&](const auto& x) { put_attr(os, x, max_inline); }, static_cast<const AttrVariant&>(value));
  return os.str();
}

std::string print_graph(const Graph& graph, const PrintOptions& options) {
  std::ostringstream os;
  os << "graph";
  print_header(os, graph);
  os << " {\n";
  print_body(os, graph, "  ", options.max_inline_elements);
  os << "}\n";
  if (options.with_library && graph.library) {
    for (const auto& [name, fn] : graph.library->functions) {
      os << "\nfunc " << name;
      print_header(os, *fn);
      if (fn->args.empty() && fn->results.empty() && fn->control_results.empty()) os << " () -> ()";
      os << " {\n";
      print_body(os, *fn, "  ", options.max_inline_elements);
      os << "}\n";
    }
  }
  return os.str();
}

}  // namespace tessera
