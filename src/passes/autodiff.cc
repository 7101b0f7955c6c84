// differentiate: classic reverse-mode sweep. Forward, mark the values that depend on a target
// through floating-point edges; backward, in reverse schedule order, sum each node's incoming
// output gradients and call its op's gradient for the inputs that need one.
#include "passes/autodiff.h"

#include <map>
#include <set>

#include "ir/grad.h"
#include "passes/pass_util.h"
#include "passes/signature_graph.h"

namespace tessera::passes {
namespace {

using Key = std::pair<const Node*, int>;
Key key(const Value& v) { return {v.node, v.index}; }

DType dtype_of(const Value& v) { return v.node->outputs.at(v.index).dtype; }

// Sum of the gradient contributions to one value (AddN when there are several).
Value sum_grads(Graph& g, const Value& of, const std::vector<Value>& parts) {
  if (parts.size() == 1) return parts[0];
  Node* n = add_node(g, "gradients/" + of.node->name + "/AddN", "AddN", parts,
                     {{"T", dtype_of(parts[0])}, {"N", static_cast<int64_t>(parts.size())}});
  return n->out(0);
}

}  // namespace

void differentiate(Graph& g, Value loss, const std::vector<GradTarget>& targets) {
  TS_CHECK(loss.node, "differentiate: no loss value");
  TS_CHECK(is_differentiable(dtype_of(loss)), "loss ", loss.str(), " is ", dtype_name(dtype_of(loss)),
           ", not a floating type");
  std::set<Key> seeds;
  for (const auto& t : targets)
    for (const Value& v : t.values) seeds.insert(key(v));

  std::vector<Node*> order = g.schedule({loss}, {});
  // on(v): v carries a gradient path from a target (float edges only).
  std::set<Key> on;
  for (Node* n : order) {
    bool dep = false;
    for (const Value& in : n->inputs) dep = dep || on.count(key(in));
    for (int i = 0; i < n->num_outputs(); ++i) {
      Value v = n->out(i);
      if (seeds.count(key(v)) || (dep && is_differentiable(dtype_of(v)))) on.insert(key(v));
    }
  }

  std::map<Key, std::vector<Value>> grads;
  if (on.count(key(loss))) {
    Node* ones = add_node(g, "gradients/" + loss.node->name + "/OnesLike", "OnesLike", {loss},
                          {{"T", dtype_of(loss)}});
    grads[key(loss)].push_back(ones->out(0));
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    GradContext ctx{g, *n, {}, {}};
    bool any_out = false;
    for (int i = 0; i < n->num_outputs(); ++i) {
      auto found = grads.find({n, i});
      if (found == grads.end()) {
        ctx.out_grads.push_back(std::nullopt);
        continue;
      }
      Value s = sum_grads(g, n->out(i), found->second);
      found->second = {s};
      ctx.out_grads.push_back(s);
      any_out = true;
    }
    if (!any_out) continue;
    bool any_in = false;
    for (const Value& in : n->inputs) {
      ctx.wanted.push_back(on.count(key(in)) > 0);
      any_in = any_in || ctx.wanted.back();
    }
    if (!any_in) continue;
    const GradFn* grad = find_grad(n->op);
    TS_CHECK(grad, n->label(), ": op '", n->op, "' has no gradient, but the loss depends on a target through it");
    GradList in_grads = with_context(n->label() + " (gradient)", [&] { return (*grad)(ctx); });
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      if (!ctx.wanted[i] || i >= in_grads.size() || !in_grads[i]) continue;
      const Value& gi = *in_grads[i];
      TS_CHECK(dtype_of(gi) == dtype_of(n->inputs[i]), n->label(), ": gradient for input ", i, " is ",
               dtype_name(dtype_of(gi)), ", input is ", dtype_name(dtype_of(n->inputs[i])));
      grads[key(n->inputs[i])].push_back(gi);
    }
  }

  g.result_names.resize(g.results.size());  // keep names aligned with results
  for (const auto& t : targets) {
    std::vector<Value> parts;
    for (const Value& v : t.values) {
      auto found = grads.find(key(v));
      if (found != grads.end()) parts.push_back(sum_grads(g, v, found->second));
    }
    Value result;
    if (parts.empty()) {
      TS_CHECK(!t.values.empty(), "gradient target '", t.name, "' has no values");
      const Value& v = t.values[0];
      result = add_node(g, "gradients/" + v.node->name + "/ZerosLike", "ZerosLike", {v},
                        {{"T", dtype_of(v)}})->out(0);
    } else {
      result = sum_grads(g, t.values[0], parts);
    }
    g.results.push_back(result);
    g.result_names.push_back("grad/" + t.name);
  }
}

std::vector<GradTarget> arg_targets(const Graph& g, const std::vector<int>& arg_indices) {
  std::vector<GradTarget> out;
  for (int i : arg_indices) {
    TS_CHECK(i >= 0 && i < static_cast<int>(g.args.size()), "arg index ", i, " out of range");
    out.push_back({g.args[i]->name, {g.args[i]->out(0)}});
  }
  return out;
}

std::vector<GradTarget> variable_targets(const Graph& g, Value loss) {
  std::map<std::string, GradTarget> by_key;
  std::vector<std::string> order;
  for (Node* n : g.schedule({loss}, {})) {
    if (n->op != "ReadVariableOp" || !is_differentiable(n->outputs.at(0).dtype)) continue;
    const Node& h = *n->inputs.at(0).node;
    std::string k = h.op == "VarHandleOp" ? variable_key(h) : "arg:" + h.name;
    auto [it, fresh] = by_key.emplace(k, GradTarget{k, {}});
    if (fresh) order.push_back(k);
    it->second.values.push_back(n->out(0));
  }
  std::vector<GradTarget> out;
  for (const auto& k : order) out.push_back(by_key[k]);
  return out;
}

}  // namespace tessera::passes
