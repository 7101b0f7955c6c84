// Small helpers the passes share: constant access, node creation with inference, use counts,
// and which nodes have side effects (so rewrites never drop or reorder them).
#pragma once
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"
#include "ir/op_registry.h"

namespace tessera::passes {

// The value of a Const node's output (nullptr for anything else).
const Tensor* const_value(const Value& v);
inline bool is_const(const Value& v) { return const_value(v) != nullptr; }

// A new inferred node named after `base` (made unique).
Node* add_node(Graph& g, const std::string& base, const std::string& op, std::vector<Value> inputs,
               AttrMap attrs = {});
Node* add_const(Graph& g, const std::string& base, const Tensor& value);
// Turns `node` into a Const holding `value` in place (keeps its name; inputs dropped).
void make_const(Node& node, const Tensor& value);

// Data uses of every value by live nodes (those the results, control results and args
// need), results included (a result counts as one use).
class Uses {
 public:
  explicit Uses(const Graph& g);
  int count(const Value& v) const;
  // Consumers of any output of `n` (node, input index); results not included.
  const std::vector<std::pair<Node*, int>>& users(const Node* n) const;
  bool is_result(const Value& v) const { return results_.count(key(v)) > 0; }
  // Exactly one data use, by a node (not a result), and no control edge from the node.
  bool single_consumer(const Value& v) const;

 private:
  static std::pair<const Node*, int> key(const Value& v) { return {v.node, v.index}; }
  struct Hash {
    size_t operator()(const std::pair<const Node*, int>& k) const {
      return std::hash<const void*>()(k.first) * 31 + static_cast<size_t>(k.second);
    }
  };
  std::unordered_map<std::pair<const Node*, int>, int, Hash> counts_;
  std::unordered_set<std::pair<const Node*, int>, Hash> results_;
  std::unordered_map<const Node*, std::vector<std::pair<Node*, int>>> users_;
  std::unordered_set<const Node*> control_sources_;
};

// Ops whose running changes state (variable writes, random streams, I/O, unknown ops).
// Variable reads count only when the graph also writes variables.
bool has_side_effects(const Node& n, bool graph_writes_variables);
bool writes_variables(const Graph& g);
// Nodes with a side-effecting node among themselves or their ancestors (data + control).
std::unordered_set<const Node*> effectful_closure(const Graph& g);

// Replaces every data use of `from` (results included) by `to`; when `from`'s node carries
// control inputs, each consumer (and, for results, the graph's control results) keeps them.
void forward_value(Graph& g, Value from, Value to);

// Float32 tensors only: is this value a float32 output?
inline bool is_f32(const Value& v) { return v.node->outputs[v.index].dtype == DType::kFloat32; }
inline const PartialShape& shape_of(const Value& v) { return v.node->outputs[v.index].shape; }

// Removes nodes unreachable from the results, control results and args.
int remove_unreachable(Graph& g);

}  // namespace tessera::passes
