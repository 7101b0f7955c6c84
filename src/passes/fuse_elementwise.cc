// fuse_elementwise: a maximal group of float32 elementwise ops whose intermediate values are
// used only inside the group (chains, and DAGs such as x * sigmoid(x)) becomes one
// TsElementwise running a straight-line program (docs/fused_ops.md). Scalar constants become
// literals; other operands become inputs.
#include <algorithm>
#include <charconv>
#include <set>
#include <unordered_map>

#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

const std::set<std::string> kOps = {"Neg",   "Abs",     "Exp",   "Log",     "Sqrt",    "Rsqrt",
                                    "Square", "Reciprocal", "Tanh", "Sigmoid", "Relu",  "Relu6",
                                    "Elu",   "Selu",    "Erf",   "Softplus", "Floor",  "Ceil",
                                    "AddV2", "Sub",     "Mul",   "RealDiv", "Maximum", "Minimum",
                                    "Pow",   "SquaredDifference", "LeakyRelu"};

bool fusible(const Node& n) {
  if (!n.def || !kOps.count(n.op) || !n.control_inputs.empty() || n.outputs.size() != 1) return false;
  if (n.outputs[0].dtype != DType::kFloat32) return false;
  for (const Value& v : n.inputs)
    if (!is_f32(v)) return false;
  return true;
}

std::string literal(float v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

}  // namespace

void fuse_elementwise(Graph& g, const PassContext&) {
  std::vector<Node*> order = g.topo_order();
  std::unordered_map<const Node*, size_t> position;
  for (size_t i = 0; i < order.size(); ++i) position[order[i]] = i;
  Uses uses(g);
  std::set<const Node*> taken;
  bool any = false;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* root = *it;
    if (taken.count(root) || !fusible(*root) || uses.count(root->out()) == 0) continue;
    std::vector<Node*> group = {root};
    std::set<const Node*> in_group = {root};
    for (bool grew = true; grew;) {
      grew = false;
      for (size_t i = 0; i < group.size(); ++i) {
        for (const Value& v : group[i]->inputs) {
          Node* p = v.node;
          if (in_group.count(p) || taken.count(p) || !fusible(*p) || uses.is_result(p->out())) continue;
          bool inside = true;
          for (const auto& [user, idx] : uses.users(p)) inside = inside && in_group.count(user);
          if (!inside) continue;
          group.push_back(p);
          in_group.insert(p);
          grew = true;
        }
      }
    }
    if (group.size() < 2) continue;
    std::sort(group.begin(), group.end(), [&](Node* a, Node* b) { return position[a] < position[b]; });
    std::vector<Value> inputs;
    std::vector<std::string> program;
    std::unordered_map<const Node*, int> entry;
    for (Node* n : group) {
      std::string line = n->op;
      for (const Value& v : n->inputs) {
        if (in_group.count(v.node)) {
          line += " %" + std::to_string(entry.at(v.node));
          continue;
        }
        const Tensor* c = const_value(v);
        if (c && c->rank() == 0) {
          line += " " + literal(c->data<float>()[0]);
          continue;
        }
        auto found = std::find(inputs.begin(), inputs.end(), v);
        line += " $" + std::to_string(found - inputs.begin());
        if (found == inputs.end()) inputs.push_back(v);
      }
      if (n->op == "LeakyRelu") line += " " + literal(n->attr_or<float>("alpha", 0.2f));
      entry[n] = static_cast<int>(program.size());
      program.push_back(line);
    }
    if (inputs.empty()) continue;  // all constants: fold_constants' job
    std::string name = root->name;
    g.rename(root, g.unique_name(name + "/unfused"));
    Node* fused = add_node(g, name, "TsElementwise", inputs,
                           {{"program", program}, {"N", static_cast<int64_t>(inputs.size())}, {"T", DType::kFloat32}});
    if (fused->outputs[0].shape.rank() != root->outputs[0].shape.rank()) {
      g.rename(fused, g.unique_name(name + "/unused"));  // cannot prove the shapes agree; leave it
      g.rename(root, name);
      continue;
    }
    PartialShape& fs = fused->outputs[0].shape;
    const PartialShape& rs = root->outputs[0].shape;
    if (fs.known_rank)
      for (size_t i = 0; i < fs.dims.size(); ++i)
        if (fs.dims[i] < 0) fs.dims[i] = rs.dims[i];
    g.replace_all_uses(root->out(), fused->out());
    for (Node* n : group) taken.insert(n);
    any = true;
  }
  if (any) remove_unreachable(g);
}

}  // namespace tessera::passes
