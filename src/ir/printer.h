// A readable text form of the IR, one node per line in execution order:
//   dense/MatMul = MatMul(x, dense/kernel/read) {transpose_a=false, ...} : float32[?,512]
// Inputs print as "node" (output 0) or "node:k"; control inputs as "^node". A function-form
// graph (args/results set) declares them in its header:
//   graph (x: float32[?,4]) -> (y: dense/Relu, ^assign) { ... }
// Library functions follow the main graph as "func NAME (args) -> (results) { ... }".
// The text parses back (ir/parser.h) to the same graph when every constant is inlined; larger
// tensors print a preview ending in "..." that the parser rejects.
#pragma once
#include <cstdint>
#include <string>

#include "ir/graph.h"

namespace tessera {

struct PrintOptions {
  bool with_library = true;
  int64_t max_inline_elements = 16;  // tensors with more elements print a preview only
};

std::string print_graph(const Graph& graph, const PrintOptions& options);
inline std::string print_graph(const Graph& graph, bool with_library = true) {
  return print_graph(graph, PrintOptions{.with_library = with_library});
}

// Attribute and tensor values in the parseable syntax:
//   none  3  0.5  1.0  true  "str\n"  float32  shape[?,4]  shape<unknown>  @fn
//   float32[2]{1, 2.5}  [1, 2]  [float32, int32]  []
std::string attr_text(const AttrValue& value, int64_t max_inline_elements = 16);
std::string tensor_text(const Tensor& t, int64_t max_inline_elements = 16);

}  // namespace tessera
