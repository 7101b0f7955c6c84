// The IR: a typed dataflow graph of Nodes. Each node names an op from the OpRegistry (ops keep
// TensorFlow's names and semantics; Tessera's own ops are prefixed "Ts"), reads Values (an
// output of another node), may depend on other nodes through control edges, and carries
// attributes. Functions (If/While branches, loop bodies) are Graphs in a shared library.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/attr.h"

namespace tessera {

struct Node;
struct OpDef;
class Graph;

struct Value {
  Node* node = nullptr;
  int index = 0;
  bool operator==(const Value&) const = default;
  std::string str() const;  // "name:index"
};

struct ValueInfo {
  DType dtype = DType::kInvalid;
  PartialShape shape;
};

struct Node {
  int id = -1;
  std::string name;
  std::string op;
  const OpDef* def = nullptr;  // null for ops the registry does not know (reported by import)
  std::vector<Value> inputs;
  std::vector<Node*> control_inputs;
  AttrMap attrs;
  std::vector<ValueInfo> outputs;
  std::vector<Tensor> known;  // per output: value known at compile time (small), else invalid
  std::string device;

  Value out(int i = 0) { return {this, i}; }
  int num_outputs() const { return static_cast<int>(outputs.size()); }
  std::string label() const { return "node '" + name + "' (" + op + ")"; }

  bool has_attr(const std::string& key) const { return attrs.count(key) > 0; }
  template <typename T>
  const T& attr(const std::string& key) const {
    auto it = attrs.find(key);
    if (it == attrs.end()) fail(label(), ": missing attribute '", key, "'");
    const T* v = std::get_if<T>(&it->second);
    if (!v) {
      // An empty list carries no element kind in TF's AttrValue; accept it as any list kind.
      if constexpr (requires { typename T::value_type; } && !std::is_same_v<T, std::string>) {
        static const T empty{};
        if (attr_is_empty_list(it->second)) return empty;
      }
      fail(label(), ": attribute '", key, "' is ", attr_kind_name(it->second));
    }
    return *v;
  }
  template <typename T>
  T attr_or(const std::string& key, T fallback) const {
    auto it = attrs.find(key);
    if (it == attrs.end() || std::holds_alternative<std::monostate>(it->second)) return fallback;
    return attr<T>(key);
  }
};

struct FunctionLibrary {
  std::map<std::string, std::shared_ptr<Graph>> functions;
  const Graph* find(const std::string& name) const;
  // The pointer a function graph keeps to the library holding it: non-owning, so the library
  // and its functions do not keep each other alive (the main graph owns the library).
  static std::shared_ptr<FunctionLibrary> borrow(const std::shared_ptr<FunctionLibrary>& lib) {
    return std::shared_ptr<FunctionLibrary>(std::shared_ptr<FunctionLibrary>(), lib.get());
  }
};

class Graph {
 public:
  explicit Graph(std::shared_ptr<FunctionLibrary> lib = std::make_shared<FunctionLibrary>())
      : library(std::move(lib)) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Adds a node; its op definition is looked up (may be null), outputs are left to infer_node.
  Node* add(std::string name, std::string op, std::vector<Value> inputs, AttrMap attrs = {});
  Node* find(const std::string& name) const;
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  std::string unique_name(const std::string& base) const;
  void rename(Node* node, const std::string& new_name);
  // Removes nodes for which `dead` is true. Callers must have rewired their users first.
  void remove_if(const std::function<bool(const Node&)>& dead);

  // Nodes needed for `fetches` and `targets` (through data and control edges), in an order
  // where every node follows its inputs; nodes in `fed` are taken as given (not expanded).
  // Throws on a cycle.
  std::vector<Node*> schedule(const std::vector<Value>& fetches, const std::vector<Node*>& targets,
                              const std::vector<const Node*>& fed = {}) const;
  std::vector<Node*> topo_order() const;  // every node

  // Uses of each node's outputs (data edges only), for rewriting passes.
  std::unordered_map<const Node*, std::vector<std::pair<Node*, int>>> users() const;
  void replace_all_uses(Value from, Value to);

  std::string name;                    // function name, for library functions
  std::vector<Node*> args;             // function arguments (op "_Arg"), in order
  std::vector<Value> results;          // function results, in order
  std::vector<std::string> result_names;
  std::vector<Node*> control_results;  // side-effecting nodes a call must run
  std::shared_ptr<FunctionLibrary> library;

 private:
  std::vector<std::unique_ptr<Node>> nodes_;
  std::unordered_map<std::string, Node*> by_name_;
};

}  // namespace tessera
