#include "ir/interpreter.h"

#include <algorithm>
#include <unordered_map>

namespace tessera {

namespace {

void check_output(const Node& node, int i, const Tensor& t) {
  if (!t.valid()) fail_code(ErrorCode::kInternal, node.label(), ": kernel left output ", i, " unset");
  const ValueInfo& info = node.outputs[i];
  // The inferred type is a contract the optimiser relies on; a mismatch is a Tessera bug.
  if (info.dtype != t.dtype())
    fail_code(ErrorCode::kInternal, node.label(), ": output ", i, " is ", dtype_name(t.dtype()),
              ", inferred ", dtype_name(info.dtype));
  if (!info.shape.matches(t.shape()))
    fail_code(ErrorCode::kInternal, node.label(), ": output ", i, " has shape ",
              shape_str(t.shape()), ", inferred ", info.shape.str());
}

}  // namespace

std::vector<Tensor> interpret(const Graph& graph, const std::vector<Feed>& feeds,
                              const std::vector<Value>& fetches, const std::vector<Node*>& targets,
                              ResourceStore* resources) {
  std::unordered_map<const Node*, std::vector<Tensor>> values;
  std::vector<const Node*> fed_nodes;
  for (const Feed& f : feeds) {
    auto& slot = values[f.value.node];
    slot.resize(f.value.node->num_outputs());
    slot[f.value.index] = f.tensor;
    fed_nodes.push_back(f.value.node);
  }
  // A node is "fed" only if every output it is asked for was fed; Placeholders have one.
  std::vector<const Node*> fully_fed;
  for (const Node* n : fed_nodes) {
    bool all = true;
    for (const Tensor& t : values[n]) all = all && t.valid();
    if (all || n->op == "Placeholder" || n->op == "_Arg") fully_fed.push_back(n);
  }

  // Free each value after its last consumer, so big models run in bounded memory.
  std::vector<Node*> order = graph.schedule(fetches, targets, fully_fed);
  std::unordered_map<const Node*, int> remaining_uses;
  for (Node* n : order)
    for (const Value& in : n->inputs) ++remaining_uses[in.node];
  for (const Value& f : fetches) ++remaining_uses[f.node];

  auto call = [resources, &graph](const std::string& name, std::vector<Tensor> args) {
    const Graph* fn = graph.library ? graph.library->find(name) : nullptr;
    if (!fn) fail("function '", name, "' not found in the library");
    return call_function(*fn, std::move(args), resources);
  };

  for (Node* node : order) {
    if (std::find(fully_fed.begin(), fully_fed.end(), node) != fully_fed.end()) {
      if (node->op == "Placeholder" || node->op == "_Arg") {
        auto it = values.find(node);
        if (it == values.end() || it->second.empty() || !it->second[0].valid())
          fail(node->label(), ": no value fed for this input");
      }
      continue;
    }
    if (!node->def) fail_code(ErrorCode::kUnimplemented, node->label(), ": op is not supported");
    std::vector<Tensor> inputs;
    inputs.reserve(node->inputs.size());
    for (const Value& in : node->inputs) {
      auto it = values.find(in.node);
      if (it == values.end() || in.index >= static_cast<int>(it->second.size()) ||
          !it->second[in.index].valid())
        fail_code(ErrorCode::kInternal, node->label(), ": input ", in.str(), " was not computed");
      inputs.push_back(it->second[in.index]);
    }
    KernelContext ctx{*node, inputs, {}, resources, call};
    with_context(node->label(), [&] { node->def->compute(ctx); });
    if (static_cast<int>(ctx.outputs.size()) != node->num_outputs())
      fail_code(ErrorCode::kInternal, node->label(), ": kernel produced ", ctx.outputs.size(),
                " outputs, expected ", node->num_outputs());
    for (int i = 0; i < node->num_outputs(); ++i) check_output(*node, i, ctx.outputs[i]);
    values[node] = std::move(ctx.outputs);
    for (const Value& in : node->inputs)
      if (--remaining_uses[in.node] == 0) values.erase(in.node);
  }

  std::vector<Tensor> out;
  for (const Value& f : fetches) {
    auto it = values.find(f.node);
    if (it == values.end() || f.index >= static_cast<int>(it->second.size()))
      fail_code(ErrorCode::kInternal, "fetch ", f.str(), " was not computed");
    out.push_back(it->second[f.index]);
  }
  return out;
}

std::vector<Tensor> call_function(const Graph& fn, std::vector<Tensor> args,
                                  ResourceStore* resources) {
  if (args.size() != fn.args.size())
    fail("function '", fn.name, "' takes ", fn.args.size(), " arguments, got ", args.size());
  std::vector<Feed> feeds;
  for (size_t i = 0; i < args.size(); ++i) feeds.push_back({fn.args[i]->out(0), std::move(args[i])});
  return with_context("in function '" + fn.name + "'", [&] {
    return interpret(fn, feeds, fn.results, fn.control_results, resources);
  });
}

}  // namespace tessera
