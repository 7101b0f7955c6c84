// rewrite_dropout: the uniform draws of dropout masks become TsRandomUniformIndexed, a
// counter-based draw keyed on (seed, stream, global sample index, element), so a sample's
// mask depends only on the seed, the layer and the sample's index in the dataset — not on the
// batch it lands in, its row, or the replica that runs it.
//
// A dropout draw is a uniform draw (Keras 3: StatelessRandomUniformV2 from
// StatelessRandomGetKeyCounter of a seed-generator variable; tf_keras: RandomUniform;
// StatelessRandomUniform) whose value reaches a comparison (mask = u >= rate) through at most
// a few affine elementwise ops. Each is replaced by TsRandomUniformIndexed(shape, seed,
// sample_offset) with attr `stream` = a hash of the draw's node name (FNV-1a, folded to 32
// bits), reading two new int64 scalar args, `tessera/dropout_seed` and `tessera/sample_offset`
// (the global index of the batch's first sample). The seed-generator variables the old draws
// were seeded from lose their updates (Keras 3 adds to them every call) and their reads.
#include <algorithm>
#include <set>

#include "ops/op_helpers.h"
#include "passes/pass_util.h"
#include "passes/passes.h"

namespace tessera::passes {
namespace {

constexpr const char* kSeedArg = "tessera/dropout_seed";
constexpr const char* kOffsetArg = "tessera/sample_offset";

bool is_uniform_draw(const Node& n) {
  return n.op == "RandomUniform" || n.op == "StatelessRandomUniformV2" || n.op == "StatelessRandomUniform";
}

// Does the draw's value reach a comparison through affine elementwise ops (u * (max - min) +
// min, casts)? That is how every dropout builds its keep mask.
bool feeds_mask(const Node* n, const Uses& uses, int depth = 0) {
  static const std::set<std::string> kCompare = {"GreaterEqual", "Greater", "Less", "LessEqual"};
  static const std::set<std::string> kAffine = {"Mul", "AddV2", "Add", "Sub", "Identity", "Cast", "RealDiv"};
  if (depth > 4) return false;
  for (const auto& [user, idx] : uses.users(n)) {
    if (kCompare.count(user->op)) return true;
    if (kAffine.count(user->op) && feeds_mask(user, uses, depth + 1)) return true;
  }
  return false;
}

uint32_t stream_of(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return static_cast<uint32_t>(h ^ (h >> 32));
}

// The arg named `name` (int64 scalar), added after the existing args when missing.
Node* scalar_arg(Graph& g, const std::string& name) {
  for (Node* a : g.args)
    if (a->name == name) return a;
  TS_CHECK(!g.find(name), "a node named '", name, "' exists but is not an argument");
  Node* a = g.add(name, "_Arg", {},
                  {{"T", DType::kInt64}, {"index", static_cast<int64_t>(g.args.size())}, {"_shape", PartialShape(std::vector<int64_t>{})}});
  infer_node(*a);
  g.args.push_back(a);
  return a;
}

// Identity of the variable behind a resource value: the store key of a VarHandleOp, else the
// producing node (a resource _Arg).
std::string resource_id(const Value& v) {
  return v.node->op == "VarHandleOp" ? ops::variable_handle_key(*v.node) : "node:" + v.node->name;
}

// Variables read (data edges, any depth) by what computes `roots`.
std::set<std::string> variables_read_by(const std::vector<Value>& roots) {
  std::set<std::string> out;
  std::set<const Node*> seen;
  std::vector<const Node*> work;
  for (const Value& v : roots) work.push_back(v.node);
  while (!work.empty()) {
    const Node* n = work.back();
    work.pop_back();
    if (!seen.insert(n).second) continue;
    if (n->op == "ReadVariableOp") out.insert(resource_id(n->inputs[0]));
    for (const Value& in : n->inputs) work.push_back(in.node);
  }
  return out;
}

bool writes_variable(const Node& n) {
  return n.op == "AssignVariableOp" || n.op == "AssignAddVariableOp" || n.op == "AssignSubVariableOp";
}

}  // namespace

void rewrite_dropout(Graph& g, const PassContext&) {
  Uses uses(g);
  std::vector<Node*> draws;
  for (const auto& n : g.nodes())
    if (is_uniform_draw(*n) && feeds_mask(n.get(), uses)) draws.push_back(n.get());
  if (draws.empty()) return;

  Node* seed = scalar_arg(g, kSeedArg);
  Node* offset = scalar_arg(g, kOffsetArg);
  std::vector<Value> seed_inputs;
  for (Node* d : draws) {
    for (size_t i = 1; i < d->inputs.size(); ++i) seed_inputs.push_back(d->inputs[i]);
    DType dtype = d->attr<DType>("dtype");
    Node* draw = add_node(g, d->name + "/indexed", "TsRandomUniformIndexed", {d->inputs[0], seed->out(), offset->out()},
                          {{"dtype", dtype}, {"stream", static_cast<int64_t>(stream_of(d->name))}});
    forward_value(g, d->out(), draw->out());
  }

  // Seed-generator state: variables the old draws' seeds were computed from. Their updates
  // and reads go, unless something else still live reads the variable (another random op on
  // the same generator): then it keeps its reads and its updates.
  std::set<std::string> state = variables_read_by(seed_inputs);
  std::set<const Node*> drop;
  for (const auto& n : g.nodes()) {
    if (writes_variable(*n) && state.count(resource_id(n->inputs[0]))) drop.insert(n.get());
    if (n->op == "ReadVariableOp" && state.count(resource_id(n->inputs[0]))) drop.insert(n.get());
  }
  // Is a state read still needed once the old draws and the updates are gone? Walk back from
  // what the graph produces, through data edges and the control edges that do not point at
  // a dropped node.
  std::set<const Node*> live;
  {
    std::vector<const Node*> work;
    for (const Value& r : g.results) work.push_back(r.node);
    for (const Node* c : g.control_results)
      if (!drop.count(c)) work.push_back(c);
    for (const Node* a : g.args) work.push_back(a);
    while (!work.empty()) {
      const Node* n = work.back();
      work.pop_back();
      if (!live.insert(n).second) continue;
      for (const Value& in : n->inputs) work.push_back(in.node);
      for (const Node* c : n->control_inputs)
        if (!drop.count(c)) work.push_back(c);
    }
  }
  std::set<std::string> still_read;
  for (const Node* r : drop)
    if (r->op == "ReadVariableOp" && live.count(r)) still_read.insert(resource_id(r->inputs[0]));
  std::erase_if(drop, [&](const Node* n) { return still_read.count(resource_id(n->inputs[0])) > 0; });
  for (const auto& n : g.nodes()) {
    auto& ci = n->control_inputs;
    ci.erase(std::remove_if(ci.begin(), ci.end(), [&](Node* c) { return drop.count(c) > 0; }), ci.end());
  }
  auto& cr = g.control_results;
  cr.erase(std::remove_if(cr.begin(), cr.end(), [&](Node* c) { return drop.count(c) > 0; }), cr.end());
  // Writes have no data users; dropped reads now only feed dead seed arithmetic.
  remove_unreachable(g);
}

}  // namespace tessera::passes
