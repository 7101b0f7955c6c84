// IR text parser (ir/parser.h): print -> parse -> print round trips, hand-written graphs that
// run, and errors that name the line.
#include <gtest/gtest.h>

#include "error_test_util.h"
#include "ir/interpreter.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"

namespace tessera {
namespace {

const char* kMlp = R"(
graph (x: float32[?,2]) -> (y: r, ^x) {
  w = Const() {dtype=float32, value=float32[2,3]{1, -2.5, 3, 0.125, 1e-05, -0}}
  b = Const() {dtype=float32, value=float32[3]{0.5}}   # one value fills the tensor
  m = MatMul(x, w) {T=float32}
  a = BiasAdd(m, b) {T=float32} : float32[?,3]
  r = Relu(a) {T=float32}
}
)";

TEST(IrParser, ParsesRunsAndRoundTrips) {
  auto g = parse_graph(kMlp);
  ASSERT_EQ(g->args.size(), 1u);
  ASSERT_EQ(g->results.size(), 1u);
  EXPECT_EQ(g->result_names, std::vector<std::string>{"y"});
  EXPECT_EQ(g->control_results.size(), 1u);
  EXPECT_EQ(g->find("r")->outputs[0].shape, PartialShape({-1, 3}));
  EXPECT_EQ(g->find("m")->attr<bool>("transpose_a"), false);  // op defaults filled in
  Tensor x = Tensor::from_vector<float>({1, 2, -1, 0}, {2, 2});
  Tensor y = interpret(*g, {{g->args[0]->out(), x}}, g->results, {}, nullptr)[0];
  // row 0: [1*1+2*0.125, 1*-2.5+2*1e-5, 3+0] + 0.5 -> relu
  EXPECT_FLOAT_EQ(y.data<float>()[0], 1.75f);
  EXPECT_FLOAT_EQ(y.data<float>()[1], 0.0f);
  EXPECT_FLOAT_EQ(y.data<float>()[2], 3.5f);
  EXPECT_FLOAT_EQ(y.data<float>()[4], 3.0f);

  std::string text = print_graph(*g);
  auto g2 = parse_graph(text);
  EXPECT_EQ(print_graph(*g2), text);
  EXPECT_NE(text.find("graph (x: float32[?,2]) -> (y: r, ^x) {"), std::string::npos) << text;
  EXPECT_NE(text.find("value=float32[2,3]{1, -2.5, 3, 0.125, 1e-05, -0}"), std::string::npos) << text;
}

TEST(IrParser, ResultLabelsThatAreNotNamesAreQuoted) {
  auto g = parse_graph("graph (x: float32[]) -> (\"out:0\": n, plain: x) {\n  n = Neg(x) {T=float32}\n}");
  EXPECT_EQ(g->result_names, (std::vector<std::string>{"out:0", "plain"}));
  std::string text = print_graph(*g);
  EXPECT_NE(text.find("-> (\"out:0\": n, plain: x)"), std::string::npos) << text;
  EXPECT_EQ(print_graph(*parse_graph(text)), text);
}

TEST(IrParser, EveryAttrKindRoundTrips) {
  AttrMap attrs = {
      {"none", std::monostate{}},
      {"i", int64_t{-7}},
      {"f", 1.0f},
      {"f2", 3.25e-7f},
      {"finf", -INFINITY},
      {"b", true},
      {"s", std::string("a \"q\" \\ \n\x01 end")},
      {"t", DType::kBFloat16},
      {"sh", PartialShape({-1, 3})},
      {"shu", PartialShape::unknown()},
      {"ts", Tensor::from_vector<int64_t>({1, -2, 3}, {3})},
      {"tb", Tensor::from_vector<bool>({true, false}, {2})},
      {"tstr", Tensor::string_scalar("hi\t")},
      {"th", Tensor(DType::kFloat16, {2})},
      {"li", std::vector<int64_t>{1, 2}},
      {"lf", std::vector<float>{1.0f, 0.5f}},
      {"lb", std::vector<bool>{true, false}},
      {"ls", std::vector<std::string>{"x", ""}},
      {"lt", std::vector<DType>{DType::kInt32, DType::kFloat32}},
      {"lsh", std::vector<PartialShape>{PartialShape(std::vector<int64_t>{}), PartialShape::unknown()}},
      {"empty", std::vector<int64_t>{}},
  };
  for (const auto& [key, value] : attrs) {
    SCOPED_TRACE(key);
    std::string text = "graph { n = NoOp() {" + key + "=" + attr_text(value) + "} }";
    auto g = parse_graph(text);
    const AttrValue& back = g->find("n")->attrs.at(key);
    EXPECT_EQ(back.index(), value.index()) << text;
    EXPECT_EQ(attr_text(back), attr_text(value)) << text;
  }
}

TEST(IrParser, LibraryFunctionsRoundTrip) {
  const char* text = R"(
graph (p: bool[], x: int32[]) -> (out: i) {
  i = If(p, x) {Tcond=bool, Tin=[int32], Tout=[int32], then_branch=@neg, else_branch=@same, output_shapes=[shape[]]}
}
func neg (a: int32[]) -> (n) {
  n = Neg(a) {T=int32}
}
func same (a: int32[]) -> (a) {
})";
  auto g = parse_graph(text);
  ASSERT_EQ(g->library->functions.size(), 2u);
  auto run = [&](bool p) {
    return interpret(*g, {{g->args[0]->out(), Tensor::scalar<bool>(p)}, {g->args[1]->out(), Tensor::scalar<int32_t>(5)}},
                     g->results, {}, nullptr)[0].data<int32_t>()[0];
  };
  EXPECT_EQ(run(true), -5);
  EXPECT_EQ(run(false), 5);
  std::string printed = print_graph(*g);
  EXPECT_EQ(print_graph(*parse_graph(printed)), printed);
}

TEST(IrParser, ElidedTensorsPrintAPreviewTheParserRejects) {
  auto g = parse_graph("graph { c = Const() {dtype=float32, value=float32[40]{2}} }");
  std::string small = print_graph(*g);
  EXPECT_NE(small.find("{2, 2, 2, 2"), std::string::npos);
  EXPECT_NE(small.find(", ...}"), std::string::npos);
  testing::expect_error([&] { parse_graph(small); }, ErrorCode::kInvalidArgument, {"line 2", "elided"});
  std::string full = print_graph(*g, PrintOptions{.max_inline_elements = 1000});
  EXPECT_EQ(print_graph(*parse_graph(full), PrintOptions{.max_inline_elements = 1000}), full);
}

TEST(IrParser, ErrorsNameTheLine) {
  using testing::expect_error;
  auto bad = [](const std::string& text, std::initializer_list<std::string> frags) {
    expect_error([&] { parse_graph(text); }, ErrorCode::kInvalidArgument, frags);
  };
  bad("graph {\n  a = Frob()\n}", {"line 2, column 7", "unknown op 'Frob'"});
  bad("graph {\n  a = Relu(zz) {T=float32}\n}", {"line 2", "undefined node 'zz'"});
  bad("graph (x: float32[2]) -> (y) {\n  y = Relu(x) {T=float32} : float32[3]\n}",
      {"line 2", "declared type 'float32[3]' but inference gives 'float32[2]'"});
  bad("graph (x: float32[2]) -> (y) {\n\n  y = MatMul(x, x) {T=float32}\n}", {"line 3", "MatMul", "matrix"});
  bad("graph {\n  c = Const() {dtype=float32, value=float32[3]{1, 2}}\n}", {"line 2", "needs 3 elements, got 2"});
  bad("graph {\n  c = Const() {dtype=float32, value=float32[2]{1, x}}\n}", {"line 2", "bad number 'x'"});
  bad("graph {\n  c = NoOp() {s=\"abc}\n}", {"unterminated string"});
  bad("graph {\n  c = NoOp()\n  c = NoOp()\n}", {"line 3", "defined twice"});
  bad("graph (x: float32[2]) -> (nope) {\n}", {"line 1", "undefined node 'nope'"});
  bad("graph {\n  a = NoOp()\n", {"expected '}'"});
  bad("graph { } junk", {"expected 'func'"});
  bad("graph { i = NoOp() {then_branch=@missing} }", {"missing function 'missing'"});
  bad("graph {\n  a = Identity(b:3)\n}", {"line 2", "undefined node 'b'"});
  bad("graph (x: float32[2]) -> () {\n  a = Identity(x:1) {T=float32}\n}", {"line 2", "no output 1"});
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

// Every single-character deletion or replacement of a valid text either parses or throws a
// tessera::Error: never a crash or another exception type.
TEST(IrParser, MutatedTextFailsCleanly) {
  const std::string base = kMlp;
  const std::string replacements = "x0:,{}[]()\"^@#?-.=<>";
  int parsed = 0, rejected = 0;
  auto attempt = [&](const std::string& text) {
    try {
      parse_graph(text);
      ++parsed;
    } catch (const Error&) {
      ++rejected;
    }
  };
  for (size_t i = 0; i < base.size(); ++i) {
    attempt(base.substr(0, i) + base.substr(i + 1));
    for (char c : replacements) {
      std::string t = base;
      t[i] = c;
      attempt(t);
    }
  }
  attempt("graph { c = Const() {dtype=float32, value=float32[4000000000,4000000000]{1}} }");
  attempt("graph (x: float32[2]) -> (x:99999999999) {}");
  EXPECT_GT(rejected, 1000);
  EXPECT_GT(parsed, 0);
}

}  // namespace
}  // namespace tessera
