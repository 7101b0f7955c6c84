#include "ir/printer.h"

#include <set>
#include <sstream>

namespace tessera {
namespace {

std::string value_ref(const Value& v) {
  return v.index == 0 ? v.node->name : v.node->name + ":" + std::to_string(v.index);
}

void print_body(std::ostream& os, const Graph& g, const std::string& indent) {
  for (const Node* n : g.topo_order()) {
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
        os << (a_first ? "" : ", ") << key << "=" << attr_str(value);
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

std::string print_graph(const Graph& graph, bool with_library) {
  std::ostringstream os;
  os << "graph {\n";
  print_body(os, graph, "  ");
  os << "}\n";
  if (with_library && graph.library) {
    for (const auto& [name, fn] : graph.library->functions) {
      os << "\nfunc " << name << "(";
      for (size_t i = 0; i < fn->args.size(); ++i) os << (i ? ", " : "") << fn->args[i]->name;
      os << ") -> (";
      for (size_t i = 0; i < fn->results.size(); ++i) os << (i ? ", " : "") << value_ref(fn->results[i]);
      os << ") {\n";
      print_body(os, *fn, "  ");
      os << "}\n";
    }
  }
  return os.str();
}

}  // namespace tessera
