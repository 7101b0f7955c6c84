// Reads the IR text that print_graph writes (ir/printer.h) back into a Graph, so pass tests can
// be written as "IR text in, IR text out":
//
//   graph (x: float32[?,4]) -> (y: r) {     # args are _Arg nodes; results name values
//     w = Const() {dtype=float32, value=float32[4,2]{1, 2, 3, 4, 5, 6, 7, 8}}
//     m = MatMul(x, w) {T=float32}
//     r = Relu(m) {T=float32} : float32[?,2]
//   }
//   func body (a: int32[]) -> (a) { }       # library functions, referenced as @body
//
// Nodes must follow their inputs. Each node is inferred as it is read (op defaults fill
// missing attributes); a trailing ": type, ..." is optional and, when given, must match what
// inference computes. "#" starts a comment. Errors name the line and column.
#pragma once
#include <memory>
#include <string>

#include "ir/graph.h"

namespace tessera {

std::shared_ptr<Graph> parse_graph(const std::string& text);

}  // namespace tessera
