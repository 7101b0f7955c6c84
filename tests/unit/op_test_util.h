// Test-only helpers for the op unit tests: build a tiny graph of placeholders, constants and
// ops (each inferred as it is added) and interpret it.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "error_test_util.h"
#include "ir/interpreter.h"
#include "ir/op_registry.h"

namespace tessera::testing {

struct TestGraph {
  Graph g;
  std::vector<Feed> feeds;
  int counter = 0;

  // A placeholder of static shape `declared`, fed `t` at run time.
  Value input(const Tensor& t, PartialShape declared) {
    Node* n = g.add("in" + std::to_string(counter++), "Placeholder", {},
                    {{"dtype", t.dtype()}, {"shape", std::move(declared)}});
    infer_node(*n);
    feeds.push_back({n->out(), t});
    return n->out();
  }
  Value input(const Tensor& t) { return input(t, PartialShape(t.shape())); }
  // A placeholder that is never fed (inference-only tests).
  Value symbolic(DType dtype, PartialShape shape) {
    Node* n = g.add("sym" + std::to_string(counter++), "Placeholder", {},
                    {{"dtype", dtype}, {"shape", std::move(shape)}});
    infer_node(*n);
    return n->out();
  }
  Value constant(const Tensor& t) {
    Node* n = g.add("c" + std::to_string(counter++), "Const", {}, {{"value", t}, {"dtype", t.dtype()}});
    infer_node(*n);
    return n->out();
  }
  // An int32 vector constant (a vector even with one element).
  Value ints(const std::vector<int32_t>& v) {
    return constant(Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())}));
  }
  Value scalar(int32_t v) { return constant(Tensor::scalar<int32_t>(v)); }
  // An op node named "n<counter>".
  Node* op(const std::string& op, std::vector<Value> in, AttrMap attrs = {}) {
    return op_named("n" + std::to_string(counter++), op, std::move(in), std::move(attrs));
  }
  Node* op(const std::string& name, const std::string& op, std::vector<Value> in, AttrMap attrs = {}) {
    return op_named(name, op, std::move(in), std::move(attrs));
  }
  std::vector<Tensor> run(const std::vector<Value>& fetches) {
    return interpret(g, feeds, fetches, {}, nullptr);
  }
  Tensor run1(Value v) { return run({v}).at(0); }

 private:
  Node* op_named(const std::string& name, const std::string& op, std::vector<Value> in, AttrMap attrs) {
    Node* n = g.add(name, op, std::move(in), std::move(attrs));
    infer_node(*n);
    return n;
  }
};

// The elements of `t` as a vector of T.
template <typename T>
std::vector<T> vals(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.num_elements());
}

template <typename T>
Tensor tensor(std::vector<T> v, Shape s) { return Tensor::from_vector(v, s); }

inline Tensor strings(std::vector<std::string> v, Shape s) {
  Tensor t(DType::kString, std::move(s));
  t.strings() = std::move(v);
  return t;
}

}  // namespace tessera::testing
