// freeze_variables: reads of never-written variables become constants; written (or aliased)
// variables stay variables.
#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace tessera {
namespace {

using testing::run_on;

const char* kGraph = R"(
graph (x: float32[2]) -> (y: y, z: z) {
  v = VarHandleOp() {dtype=float32, shape=shape[2], shared_name="v"}
  w = VarHandleOp() {dtype=float32, shape=shape[2], shared_name="w"}
  w_alias = VarHandleOp() {dtype=float32, shape=shape[2], shared_name="w"}
  rv = ReadVariableOp(v) {dtype=float32}
  y = AddV2(x, rv) {T=float32}
  one = Const() {dtype=float32, value=float32[2]{1}}
  assign = AssignAddVariableOp(w_alias, one) {dtype=float32}
  rw = ReadVariableOp(w, ^assign) {dtype=float32}
  z = Mul(x, rw) {T=float32}
}
)";

std::map<std::string, Tensor> values() {
  return {{"/v", Tensor::from_vector<float>({1, 2})}, {"/w", Tensor::from_vector<float>({3, 4})}};
}

TEST(FreezeVariables, FreezesOnlyVariablesNothingWrites) {
  ResourceStore vars;
  vars.restore(values());
  passes::PassContext ctx;
  ctx.variables = &vars;
  auto g = run_on(kGraph, {"freeze_variables"}, ctx);
  // v is frozen; w is written through an alias with the same shared_name, so it is not.
  EXPECT_IR(*g, R"(
graph (x: float32[2]) -> (y: y, z: z) {
  v = VarHandleOp() {dtype=float32, shape=shape[2], shared_name="v"}
  w = VarHandleOp() {dtype=float32, shape=shape[2], shared_name="w"}
  w_alias = VarHandleOp() {dtype=float32, shape=shape[2], shared_name="w"}
  rv = Const() {dtype=float32, value=float32[2]{1, 2}}
  y = AddV2(x, rv) {T=float32}
  one = Const() {dtype=float32, value=float32[2]{1}}
  assign = AssignAddVariableOp(w_alias, one) {dtype=float32}
  rw = ReadVariableOp(w, ^assign) {dtype=float32}
  z = Mul(x, rw) {T=float32}
})");
  ResourceStore a, b;
  a.restore(values());
  b.restore(values());
  auto before = parse_graph(kGraph);
  Tensor x = Tensor::from_vector<float>({10, 20});
  auto ref = testing::call(*before, {x}, &a);
  auto got = testing::call(*g, {x}, &b);
  EXPECT_NUMERIC_MATCH(ref[0], got[0]);
  EXPECT_NUMERIC_MATCH(ref[1], got[1]);
  EXPECT_EQ(got[1].data<float>()[1], 100.0f);  // (4 + 1) * 20: the assignment happened
}

TEST(FreezeVariables, LeavesHandlesThatEscapeAndMissingValues) {
  const char* text = R"(
graph () -> (h: v, r: r, s: s) {
  v = VarHandleOp() {dtype=float32, shape=shape[2], shared_name="v"}
  r = ReadVariableOp(v) {dtype=float32}
  u = VarHandleOp() {dtype=float32, shape=shape[2], shared_name="unset"}
  s = ReadVariableOp(u) {dtype=float32}
})";
  ResourceStore vars;
  vars.restore(values());
  passes::PassContext ctx;
  ctx.variables = &vars;
  auto g = run_on(text, {"freeze_variables"}, ctx);
  EXPECT_IR(*g, text);  // v's handle is a result (could be written by the caller); unset has no value
  auto none = run_on(text, {"freeze_variables"});  // no variables given: nothing to do
  EXPECT_IR(*none, text);
}

}  // namespace
}  // namespace tessera

#include <filesystem>

#include "passes/signature_graph.h"
#include "runtime/model.h"

namespace tessera {
namespace {

// The TF1 counter: get_counter only reads the variable, but incr_counter writes it, so a
// session that increments and then reads must see the new value: nothing may be frozen.
TEST(FreezeVariables, VariablesAnotherSignatureWritesStayVariables) {
  const std::string dir = std::string(TESSERA_SOURCE_DIR) +
                          "/../shared/testdata/tf/serving/tensorflow_serving/servables/tensorflow/testdata/"
                          "saved_model_counter/00000123";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no counter fixture at " << dir;
  auto model = Model::load(dir);
  const Module& m = model->module();
  ResourceStore restored;
  restored.restore(model->variables());
  std::set<std::string> written = passes::written_variables(m);
  EXPECT_FALSE(written.empty());
  passes::PassContext ctx;
  ctx.variables = &restored;
  ctx.written_variables = &written;
  auto get = signature_graph(m, m.signature("get_counter"));
  auto incr = signature_graph(m, m.signature("incr_counter"));
  passes::run_passes(*get, passes::default_pipeline(), ctx);
  passes::run_passes(*incr, passes::default_pipeline(), ctx);
  ResourceStore session;
  session.restore(model->variables());
  testing::call(*incr, {}, &session);
  testing::call(*incr, {}, &session);
  EXPECT_EQ(testing::call(*get, {}, &session).at(0).data<float>()[0], 2.0f);
}

}  // namespace
}  // namespace tessera
