// Which nodes of a function graph compute the rows of a batch independently, and the split of
// a function into a head on some of those nodes and a tail on the rest. A backend can then run
// the head a few rows at a time (their activations stay in cache) and the tail on the whole
// batch (its weights are read once): backend/cpu/row_chunks.h.
#pragma once
#include <memory>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"

namespace tessera {

struct BatchRows {
  // Args whose dim 0 is the batch: known rank >= 1, dim 0 unknown at compile time, a numeric
  // dtype. Empty when there is none.
  std::vector<int> batched_args;
  // Nodes whose outputs keep the batch on dim 0, row r computed from row r of the batched
  // values they read alone (OpDef::rowwise), whose other inputs are constants, and whose
  // batched inputs are batched args or outputs of such nodes.
  std::unordered_set<const Node*> rowwise;
};

BatchRows find_batch_rows(const Graph& g);

struct SplitFunction {
  std::shared_ptr<Graph> head;  // g's args -> the cut values, in `cut` order
  std::shared_ptr<Graph> tail;  // one arg per cut value, then g's args -> g's results
  std::vector<Value> cut;       // values of head nodes that tail nodes or g's results read (in g)
};

// Splits `g` at `head_nodes`, which must only read args, constants and each other; fails
// (kInternal) otherwise, or when a head node has control edges. Both parts borrow g's library
// and share its constant tensors.
SplitFunction split_function(const Graph& g, const std::unordered_set<const Node*>& head_nodes);

}  // namespace tessera
