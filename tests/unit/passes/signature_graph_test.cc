// signature_graph: a Module signature as a function-form graph (args, results, control
// results), with only the nodes it needs; and the pass registry/pipeline plumbing.
#include <gtest/gtest.h>

#include "error_test_util.h"
#include "ir/module.h"
#include "passes/pass_test_util.h"
#include "passes/signature_graph.h"

namespace tessera {
namespace {

const char* kModuleGraph = R"(
graph {
  x = Placeholder() {dtype=float32, shape=shape[?,2]}
  other = Placeholder() {dtype=float32, shape=shape[2]}
  v = VarHandleOp() {dtype=float32, shape=shape[2,2], shared_name="v"}
  r = ReadVariableOp(v) {dtype=float32}
  m = MatMul(x, r) {T=float32}
  unrelated = Neg(other) {T=float32}
  c = VarHandleOp() {dtype=int64, shape=shape[], shared_name="count"}
  one = Const() {dtype=int64, value=int64[]{1}}
  bump = AssignAddVariableOp(c, one) {dtype=int64}
}
)";

Module module_of(std::shared_ptr<Graph> g) {
  Module m;
  m.graph = std::move(g);
  Signature sig;
  sig.key = "serving_default";
  Node* x = m.graph->find("x");
  sig.inputs.push_back({"x:0", "x:0", x->out(), DType::kFloat32, x->outputs[0].shape});
  Node* mm = m.graph->find("m");
  sig.outputs.push_back({"logits", "m:0", mm->out(), DType::kFloat32, mm->outputs[0].shape});
  sig.outputs.push_back({"echo", "x:0", x->out(), DType::kFloat32, x->outputs[0].shape});
  sig.targets.push_back(m.graph->find("bump"));
  m.signatures["serving_default"] = sig;
  return m;
}

TEST(SignatureGraph, CopiesWhatTheSignatureNeeds) {
  Module m = module_of(parse_graph(kModuleGraph));
  auto g = signature_graph(m, m.signature("serving_default"));
  EXPECT_IR(*g, R"(
graph (x_0: float32[?,2]) -> (logits: m, echo: x_0, ^bump) {
  v = VarHandleOp() {dtype=float32, shape=shape[2,2], shared_name="v"}
  r = ReadVariableOp(v) {dtype=float32}
  m = MatMul(x_0, r) {T=float32}
  c = VarHandleOp() {dtype=int64, shape=shape[], shared_name="count"}
  one = Const() {dtype=int64, value=int64[]{1}}
  bump = AssignAddVariableOp(c, one) {dtype=int64}
})");
  ResourceStore vars;
  vars.assign("/v", Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2}));
  vars.assign("/count", Tensor::scalar<int64_t>(0));
  auto out = testing::call(*g, {Tensor::from_vector<float>({1, 1}, {1, 2})}, &vars);
  EXPECT_EQ(out[0].data<float>()[1], 6.0f);
  EXPECT_EQ(vars.read("/count").data<int64_t>()[0], 1);  // the target ran
}

TEST(Pipeline, RegistryAndCallbacks) {
  EXPECT_EQ(passes::find_pass("cse").name, "cse");
  testing::expect_error([] { passes::find_pass("nope"); }, ErrorCode::kInvalidArgument,
                        {"unknown pass 'nope'", "fold_constants", "fuse_elementwise"});
  for (const auto& name : passes::default_pipeline()) EXPECT_NO_THROW(passes::find_pass(name));
  auto g = parse_graph("graph (x: float32[2]) -> (y: y) {\n  i = Identity(x) {T=float32}\n  y = Neg(i) {T=float32}\n}");
  std::vector<std::string> seen;
  passes::PassContext ctx;
  ctx.after_pass = [&](const std::string& pass, const Graph& graph) {
    seen.push_back(pass + ":" + std::to_string(graph.nodes().size()));
  };
  passes::run_passes(*g, {"cse", "prune"}, ctx);
  EXPECT_EQ(seen, (std::vector<std::string>{"cse:3", "prune:2"}));
}

}  // namespace
}  // namespace tessera
