// GraphDef -> IR import: reference parsing, function inlining (nested, "node:arg:k"
// references, control results), TF1 variable rewriting, and the errors for broken graphs.
#include <gtest/gtest.h>
#include <google/protobuf/text_format.h>

#include "frontend/tf/graph_import.h"
#include "frontend/tf/proto_convert.h"
#include "ir/interpreter.h"
#include "ir/printer.h"
#include "tensorflow/core/framework/function.pb.h"

namespace tessera::tf {
namespace {

tensorflow::GraphDef parse(const std::string& text) {
  tensorflow::GraphDef gd;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &gd)) << text;
  return gd;
}

std::string error_of(const tensorflow::GraphDef& gd, std::vector<std::string> roots = {}) {
  try {
    import_graph(gd, roots.empty() ? all_node_names(gd) : roots);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const char* kConst = R"(
  node { name: "c" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
         attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 2 } }
                                              float_val: 1.5 float_val: -2 } } } }
)";

TEST(TensorRef, Forms) {
  EXPECT_EQ(parse_tensor_ref("a").node, "a");
  EXPECT_EQ(parse_tensor_ref("a:2").index, 2);
  EXPECT_TRUE(parse_tensor_ref("^a").control);
  TensorRef r = parse_tensor_ref("split:output:1");
  EXPECT_EQ(r.node, "split");
  EXPECT_EQ(r.arg, "output");
  EXPECT_EQ(r.index, 1);
  EXPECT_THROW(parse_tensor_ref("a:x:y"), Error);
  EXPECT_THROW(parse_tensor_ref(":1"), Error);
  EXPECT_THROW(parse_tensor_ref("a:99999999999"), Error);
}

TEST(GraphImport, InlinesNestedCallsAndResolvesArgReferences) {
  // outer(x) = inner(x) + x, inner(y) = IdentityN(y, y):output:1 * 2
  auto gd = parse(std::string(kConst) + R"(
    node { name: "call" op: "StatefulPartitionedCall" input: "c"
           attr { key: "f" value { func { name: "outer" } } }
           attr { key: "Tin" value { list { type: DT_FLOAT } } }
           attr { key: "Tout" value { list { type: DT_FLOAT } } } }
    node { name: "y" op: "Identity" input: "call:0" attr { key: "T" value { type: DT_FLOAT } } }
    library {
      function {
        signature { name: "inner" input_arg { name: "y" type: DT_FLOAT } output_arg { name: "out" type: DT_FLOAT } }
        node_def { name: "pair" op: "IdentityN" input: "y" input: "y"
                   attr { key: "T" value { list { type: DT_FLOAT type: DT_FLOAT } } } }
        node_def { name: "two" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
                   attr { key: "value" value { tensor { dtype: DT_FLOAT float_val: 2 } } } }
        node_def { name: "m" op: "Mul" input: "pair:output:1" input: "two:output:0"
                   attr { key: "T" value { type: DT_FLOAT } } }
        ret { key: "out" value: "m:z:0" }
      }
      function {
        signature { name: "outer" input_arg { name: "x" type: DT_FLOAT } output_arg { name: "r" type: DT_FLOAT } }
        node_def { name: "inner_call" op: "PartitionedCall" input: "x"
                   attr { key: "f" value { func { name: "inner" } } }
                   attr { key: "Tin" value { list { type: DT_FLOAT } } }
                   attr { key: "Tout" value { list { type: DT_FLOAT } } } }
        node_def { name: "sum" op: "AddV2" input: "inner_call:output:0" input: "x"
                   attr { key: "T" value { type: DT_FLOAT } } }
        ret { key: "r" value: "sum:z:0" }
      }
    })");
  auto result = import_graph(gd, {"y"});
  const Graph& g = *result.graph;
  ASSERT_NE(g.find("call/inner_call/m"), nullptr) << print_graph(g);
  EXPECT_EQ(g.find("call")->op, "IdentityN");
  ResourceStore store;
  auto out = interpret(g, {}, {g.find("y")->out(0)}, {}, &store);
  ASSERT_EQ(out[0].num_elements(), 2);
  EXPECT_FLOAT_EQ(out[0].data<float>()[0], 1.5f * 2 + 1.5f);
  EXPECT_FLOAT_EQ(out[0].data<float>()[1], -2.0f * 2 - 2.0f);
  // Shapes flow through the inlined body.
  EXPECT_EQ(g.find("y")->outputs[0].shape, PartialShape({2}));
}

TEST(GraphImport, LibraryIsFreedWithItsGraph) {
  // Regression (found by graphdef_fuzzer): function graphs used to own their library, a cycle.
  auto gd = parse(std::string(kConst) + R"(
    node { name: "if" op: "StatelessIf" input: "c" input: "c"
           attr { key: "Tcond" value { type: DT_FLOAT } } attr { key: "Tin" value { list { type: DT_FLOAT } } }
           attr { key: "Tout" value { list { type: DT_FLOAT } } }
           attr { key: "then_branch" value { func { name: "id" } } }
           attr { key: "else_branch" value { func { name: "id" } } } }
    library { function {
      signature { name: "id" input_arg { name: "x" type: DT_FLOAT } output_arg { name: "r" type: DT_FLOAT } }
      ret { key: "r" value: "x" }
    } })");
  std::weak_ptr<FunctionLibrary> library;
  {
    auto result = import_graph(gd, {"if"});
    library = result.graph->library;
    ASSERT_NE(result.graph->library->find("id"), nullptr);
  }
  EXPECT_TRUE(library.expired());
}

TEST(GraphImport, RecursiveFunctionIsAnError) {
  auto gd = parse(std::string(kConst) + R"(
    node { name: "call" op: "PartitionedCall" input: "c" attr { key: "f" value { func { name: "loop" } } } }
    library { function {
      signature { name: "loop" input_arg { name: "x" type: DT_FLOAT } output_arg { name: "r" type: DT_FLOAT } }
      node_def { name: "again" op: "PartitionedCall" input: "x" attr { key: "f" value { func { name: "loop" } } } }
      ret { key: "r" value: "again:output:0" }
    } })");
  EXPECT_NE(error_of(gd).find("nested deeper"), std::string::npos) << error_of(gd);
}

TEST(GraphImport, Tf1VariablesBecomeResourceVariables) {
  auto gd = parse(R"(
    node { name: "v" op: "VariableV2" attr { key: "dtype" value { type: DT_FLOAT } }
           attr { key: "shape" value { shape { } } } }
    node { name: "one" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
           attr { key: "value" value { tensor { dtype: DT_FLOAT float_val: 1 } } } }
    node { name: "init" op: "Assign" input: "v" input: "one" attr { key: "T" value { type: DT_FLOAT } } }
    node { name: "incr" op: "AssignAdd" input: "v" input: "one" attr { key: "T" value { type: DT_FLOAT } } }
    node { name: "read" op: "Identity" input: "v" attr { key: "T" value { type: DT_FLOAT } } })");
  auto result = import_graph(gd, all_node_names(gd));
  const Graph& g = *result.graph;
  EXPECT_EQ(g.find("v")->op, "ReadVariableOp");
  EXPECT_EQ(g.find("v/_handle")->op, "VarHandleOp");
  EXPECT_EQ(g.find("incr/_update")->op, "AssignAddVariableOp");
  ResourceStore store;
  interpret(g, {}, {}, {g.find("init")}, &store);
  auto a = interpret(g, {}, {g.find("incr")->out(0)}, {}, &store);
  auto b = interpret(g, {}, {g.find("incr")->out(0)}, {}, &store);
  EXPECT_EQ(a[0].data<float>()[0], 2.0f);
  EXPECT_EQ(b[0].data<float>()[0], 3.0f);
  EXPECT_EQ(interpret(g, {}, {g.find("read")->out(0)}, {}, &store)[0].data<float>()[0], 3.0f);
}

TEST(GraphImport, Tf1VariableWithMissingAttributesIsAnError) {
  // Found by the graphdef fuzzer: a VariableV2 without "shape" or an Assign without "T" or a
  // value input used to escape as std::out_of_range.
  auto no_shape = parse(R"(node { name: "v" op: "VariableV2" attr { key: "dtype" value { type: DT_FLOAT } } })");
  EXPECT_NE(error_of(no_shape).find("node 'v' (VariableV2) has no attribute 'shape'"), std::string::npos)
      << error_of(no_shape);
  auto wrong_kind = parse(R"(node { name: "v" op: "VariableV2" attr { key: "dtype" value { i: 3 } }
                                    attr { key: "shape" value { shape { } } } })");
  EXPECT_NE(error_of(wrong_kind).find("'dtype' of the wrong kind"), std::string::npos) << error_of(wrong_kind);
  auto lonely_assign = parse(R"(
    node { name: "v" op: "VariableV2" attr { key: "dtype" value { type: DT_FLOAT } }
           attr { key: "shape" value { shape { } } } }
    node { name: "a" op: "Assign" input: "v" attr { key: "T" value { type: DT_FLOAT } } })");
  EXPECT_NE(error_of(lonely_assign).find("node 'a' (Assign) needs a value input"), std::string::npos)
      << error_of(lonely_assign);
}

TEST(GraphImport, BrokenGraphsGiveErrorsNamingTheNode) {
  EXPECT_NE(error_of(parse(R"(node { name: "a" op: "Identity" input: "missing" })")).find("'missing'"),
            std::string::npos);
  auto dup = parse(std::string(kConst) + kConst);
  EXPECT_NE(error_of(dup).find("duplicate node name 'c'"), std::string::npos) << error_of(dup);
  auto cycle = parse(R"(
    node { name: "a" op: "Identity" input: "b" attr { key: "T" value { type: DT_FLOAT } } }
    node { name: "b" op: "Identity" input: "a" attr { key: "T" value { type: DT_FLOAT } } })");
  EXPECT_NE(error_of(cycle).find("cycle"), std::string::npos) << error_of(cycle);
  auto bad_index = parse(std::string(kConst) + R"(
    node { name: "a" op: "Identity" input: "c:3" attr { key: "T" value { type: DT_FLOAT } } })");
  EXPECT_NE(error_of(bad_index).find("node 'a'"), std::string::npos) << error_of(bad_index);
  auto bad_attr = parse(R"(node { name: "p" op: "Placeholder" attr { key: "dtype" value { type: DT_INVALID } } })");
  EXPECT_NE(error_of(bad_attr).find("node 'p'"), std::string::npos) << error_of(bad_attr);
}

TEST(GraphImport, UnsupportedOpsAreListedTogether) {
  auto gd = parse(std::string(kConst) + R"(
    node { name: "a" op: "Frobnicate" input: "c" }
    node { name: "b" op: "Frobnicate" input: "a" }
    node { name: "d" op: "Zap" input: "b" })");
  std::string err = error_of(gd);
  EXPECT_NE(err.find("Frobnicate (2 nodes: a, b)"), std::string::npos) << err;
  EXPECT_NE(err.find("Zap (1 node: d)"), std::string::npos) << err;
  auto allowed = import_graph(gd, all_node_names(gd), {/*allow_unsupported=*/true});
  EXPECT_EQ(allowed.unsupported.size(), 2u);
}

TEST(GraphImport, OnlyWhatRootsNeedIsImported) {
  auto gd = parse(std::string(kConst) + R"(
    node { name: "save" op: "SaveV2" input: "c" }
    node { name: "y" op: "Neg" input: "c" attr { key: "T" value { type: DT_FLOAT } } })");
  auto result = import_graph(gd, {"y:0"});
  EXPECT_EQ(result.graph->find("save"), nullptr);
  EXPECT_NE(error_of(gd, {"nope:0"}).find("'nope:0'"), std::string::npos);
}

}  // namespace
}  // namespace tessera::tf
