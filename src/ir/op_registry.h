// The op registry: one OpDef per op, holding everything Tessera knows about it (attribute
// defaults, output arguments, shape/dtype inference, reference semantics). Op families
// register themselves in src/ops/<family>.cc; src/ops/ops.cc lists the families.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace tessera {

// Variables by key. Values are immutable Tensors, so an assignment is a pointer swap and a
// reader never sees a half-written value.
class ResourceStore {
 public:
  bool contains(const std::string& key) const;
  Tensor read(const std::string& key) const;  // throws FAILED_PRECONDITION if uninitialised
  void assign(const std::string& key, Tensor value);
  std::map<std::string, Tensor> snapshot() const;
  void restore(std::map<std::string, Tensor> values);

 private:
  mutable std::mutex mu_;
  std::map<std::string, Tensor> vars_;
};

// What a kernel sees while it runs.
struct KernelContext {
  const Node& node;
  std::vector<Tensor>& inputs;
  std::vector<Tensor> outputs;
  ResourceStore* resources = nullptr;
  // Runs a library function (If/While bodies); set by the interpreter.
  std::function<std::vector<Tensor>(const std::string&, std::vector<Tensor>)> call;

  const Tensor& input(size_t i) const {
    if (i >= inputs.size()) fail(node.label(), ": missing input ", i);
    return inputs[i];
  }
  size_t num_inputs() const { return inputs.size(); }
  void set_output(size_t i, Tensor t) {
    if (outputs.size() <= i) outputs.resize(i + 1);
    outputs[i] = std::move(t);
  }
  template <typename T>
  const T& attr(const std::string& key) const { return node.attr<T>(key); }
  template <typename T>
  T attr_or(const std::string& key, T fallback) const { return node.attr_or<T>(key, fallback); }
};

// What shape inference sees: input types and, where known at compile time, input values.
struct InferContext {
  Node& node;
  const ValueInfo& input(size_t i) const;
  size_t num_inputs() const { return node.inputs.size(); }
  // The input's value if it is known at compile time (a Const, or folded from constants).
  const Tensor* input_value(size_t i) const;
  void set_output(size_t i, DType dtype, PartialShape shape);
  template <typename T>
  const T& attr(const std::string& key) const { return node.attr<T>(key); }
  template <typename T>
  T attr_or(const std::string& key, T fallback) const { return node.attr_or<T>(key, fallback); }
};

// A named output argument of an op; list-valued when `number_attr` (N tensors of one type) or
// `type_list_attr` (one tensor per listed type) is set. Maps TF's "node:arg:k" references.
struct OutputArg {
  std::string name;
  std::string number_attr;
  std::string type_list_attr;
};

using InferFn = std::function<void(InferContext&)>;
using KernelFn = std::function<void(KernelContext&)>;
// Reverse-mode gradient (ir/grad.h defines GradContext and the builders gradients share): emits
// nodes computing one gradient per input (nullopt where there is none) from the node's output
// gradients.
struct GradContext;
using GradList = std::vector<std::optional<Value>>;
using GradFn = std::function<GradList(GradContext&)>;
// Whether a node keeps the rows of a batch apart: given which inputs carry the batch along dim 0
// (`batched[i]`; the others are parameters such as filters), every output carries it too, and
// output row r depends only on row r of the batched inputs.
using RowwiseFn = std::function<bool(const Node& node, const std::vector<bool>& batched)>;

struct OpDef {
  std::string name;
  AttrMap attr_defaults;             // TF's defaults, so stripped attrs come back
  std::vector<OutputArg> output_args;  // empty: a single output argument
  bool stateful = false;             // never folded, deduplicated or reordered
  InferFn infer;
  KernelFn compute;                  // reference semantics
  GradFn grad;                       // empty: not differentiable
  RowwiseFn rowwise;                 // empty: never (ir/batch_rows.h)

  // Flat output index of "arg_name:k" for a node of this op.
  int flat_output_index(const Node& node, const std::string& arg_name, int k) const;
};

class OpRegistry {
 public:
  static OpRegistry& global();  // with every op family registered
  void add(OpDef def);
  const OpDef* find(const std::string& name) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, std::unique_ptr<OpDef>> ops_;
};

// Fills node.outputs (and node.known for small constant-foldable values) from its inputs.
void infer_node(Node& node);

}  // namespace tessera
