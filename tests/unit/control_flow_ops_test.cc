// If/While/Case with hand-built library functions.
#include <gtest/gtest.h>

#include "ir/interpreter.h"

namespace tessera {
namespace {

Node* add_node(Graph& g, const std::string& name, const std::string& op, std::vector<Value> inputs,
               AttrMap attrs = {}) {
  Node* n = g.add(name, op, std::move(inputs), std::move(attrs));
  infer_node(*n);
  return n;
}

Value constant(Graph& g, const std::string& name, Tensor t) {
  return add_node(g, name, "Const", {}, {{"value", t}, {"dtype", t.dtype()}})->out();
}

Value placeholder(Graph& g, const std::string& name, DType t, PartialShape shape = PartialShape::unknown()) {
  return add_node(g, name, "Placeholder", {}, {{"dtype", t}, {"shape", shape}})->out();
}

Value arg(Graph& fn, const std::string& name, DType t) {
  Node* n = add_node(fn, name, "_Arg", {}, {{"T", t}, {"index", static_cast<int64_t>(fn.args.size())}});
  fn.args.push_back(n);
  return n->out();
}

Value binary(Graph& g, const std::string& name, const std::string& op, Value a, Value b) {
  return add_node(g, name, op, {a, b}, {{"T", a.node->outputs[a.index].dtype}})->out();
}

std::shared_ptr<Graph> function(const std::shared_ptr<FunctionLibrary>& lib, const std::string& name) {
  auto fn = std::make_shared<Graph>(lib);
  fn->name = name;
  lib->functions[name] = fn;
  return fn;
}

FuncRef fref(const std::string& name) { return FuncRef{name, nullptr}; }

std::vector<Tensor> run(const Graph& g, const std::vector<Feed>& feeds, const std::vector<Value>& fetches) {
  ResourceStore store;
  return interpret(g, feeds, fetches, {}, &store);
}

template <typename T>
T scalar(const Tensor& t) {
  return t.data<T>()[0];
}

// Library with then(x, y) = x + y and else(x, y) = x * y over float32.
struct IfFixture : ::testing::Test {
  std::shared_ptr<FunctionLibrary> lib = std::make_shared<FunctionLibrary>();
  Graph g{lib};
  void SetUp() override {
    auto then_fn = function(lib, "then");
    then_fn->results = {binary(*then_fn, "add", "AddV2", arg(*then_fn, "x", DType::kFloat32),
                               arg(*then_fn, "y", DType::kFloat32))};
    auto else_fn = function(lib, "else");
    else_fn->results = {binary(*else_fn, "mul", "Mul", arg(*else_fn, "x", DType::kFloat32),
                               arg(*else_fn, "y", DType::kFloat32))};
  }
  Node* make_if(const std::string& op, Value cond, AttrMap extra = {}) {
    AttrMap attrs = {{"Tcond", cond.node->outputs[cond.index].dtype},
                     {"Tin", std::vector<DType>{DType::kFloat32, DType::kFloat32}},
                     {"Tout", std::vector<DType>{DType::kFloat32}},
                     {"then_branch", fref("then")},
                     {"else_branch", fref("else")}};
    for (auto& [k, v] : extra) attrs[k] = v;
    Value x = constant(g, g.unique_name("x"), Tensor::scalar<float>(3));
    Value y = constant(g, g.unique_name("y"), Tensor::scalar<float>(4));
    return add_node(g, g.unique_name("if"), op, {cond, x, y}, attrs);
  }
  float eval_if(Tensor cond, const std::string& op = "StatelessIf") {
    Value c = placeholder(g, g.unique_name("c"), cond.dtype());
    Node* n = make_if(op, c);
    return scalar<float>(run(g, {{c, cond}}, {n->out()})[0]);
  }
};

TEST_F(IfFixture, RunsTheBranchTheConditionPicks) {
  EXPECT_EQ(eval_if(Tensor::scalar<bool>(true)), 7.0f);
  EXPECT_EQ(eval_if(Tensor::scalar<bool>(false), "If"), 12.0f);
}

TEST_F(IfFixture, ConditionTruthinessFollowsTensorFlow) {
  EXPECT_EQ(eval_if(Tensor::scalar<int32_t>(-2)), 7.0f);
  EXPECT_EQ(eval_if(Tensor::scalar<int32_t>(0)), 12.0f);
  EXPECT_EQ(eval_if(Tensor::scalar<float>(0.5f)), 7.0f);
  EXPECT_EQ(eval_if(Tensor::scalar<float>(-0.0f)), 12.0f);
  EXPECT_EQ(eval_if(Tensor::string_scalar("a")), 7.0f);
  EXPECT_EQ(eval_if(Tensor::string_scalar("")), 12.0f);
  // Non-scalars: true when non-empty, whatever the values.
  EXPECT_EQ(eval_if(Tensor::from_vector<bool>({false, false})), 7.0f);
  EXPECT_EQ(eval_if(Tensor(DType::kBool, {0})), 12.0f);
  EXPECT_EQ(eval_if(Tensor(DType::kFloat32, {2, 0})), 12.0f);
}

TEST_F(IfFixture, InfersOutputsFromToutAndOutputShapes) {
  Value c = placeholder(g, "c", DType::kBool);
  Node* plain = make_if("If", c);
  ASSERT_EQ(plain->num_outputs(), 1);
  EXPECT_EQ(plain->outputs[0].dtype, DType::kFloat32);
  EXPECT_FALSE(plain->outputs[0].shape.known_rank);
  Node* shaped = make_if("If", c, {{"output_shapes", std::vector<PartialShape>{PartialShape(std::vector<int64_t>{})}}});
  EXPECT_EQ(shaped->outputs[0].shape, PartialShape(std::vector<int64_t>{}));
  EXPECT_EQ(shaped->def->flat_output_index(*shaped, "output", 0), 0);
  EXPECT_TRUE(OpRegistry::global().find("If")->stateful);
  EXPECT_FALSE(OpRegistry::global().find("StatelessIf")->stateful);
}

TEST_F(IfFixture, BranchResultNotMatchingOutputShapesIsAnError) {
  Value c = placeholder(g, "c", DType::kBool);
  Node* n = make_if("If", c, {{"output_shapes", std::vector<PartialShape>{PartialShape({2})}}});
  try {
    run(g, {{c, Tensor::scalar<bool>(true)}}, {n->out()});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'then'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2]"), std::string::npos) << msg;
  }
}

TEST_F(IfFixture, MissingFunctionAndWrongToutAreErrors) {
  Value c = placeholder(g, "c", DType::kBool);
  Node* missing = make_if("If", c, {{"then_branch", fref("nope")}});
  try {
    run(g, {{c, Tensor::scalar<bool>(true)}}, {missing->out()});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("function 'nope' not found"), std::string::npos) << e.what();
  }
  Node* wrong = make_if("If", c, {{"Tout", std::vector<DType>{DType::kInt32}}});
  EXPECT_THROW(run(g, {{c, Tensor::scalar<bool>(false)}}, {wrong->out()}), Error);
}

// while (i < n) { acc += i; i += 1 } over int32 loop vars (i, n, acc).
struct WhileFixture : ::testing::Test {
  std::shared_ptr<FunctionLibrary> lib = std::make_shared<FunctionLibrary>();
  Graph g{lib};
  void SetUp() override {
    auto cond = function(lib, "cond");
    Value i = arg(*cond, "i", DType::kInt32), n = arg(*cond, "n", DType::kInt32);
    arg(*cond, "acc", DType::kInt32);
    cond->results = {binary(*cond, "less", "Less", i, n)};
    auto body = function(lib, "body");
    Value bi = arg(*body, "i", DType::kInt32), bn = arg(*body, "n", DType::kInt32),
          bacc = arg(*body, "acc", DType::kInt32);
    Value one = constant(*body, "one", Tensor::scalar<int32_t>(1));
    body->results = {binary(*body, "next", "AddV2", bi, one), bn, binary(*body, "sum", "AddV2", bacc, bi)};
  }
  Node* make_while(const std::string& op, Value n, AttrMap extra = {}) {
    AttrMap attrs = {{"T", std::vector<DType>(3, DType::kInt32)}, {"cond", fref("cond")}, {"body", fref("body")}};
    for (auto& [k, v] : extra) attrs[k] = v;
    Value zero = constant(g, g.unique_name("zero"), Tensor::scalar<int32_t>(0));
    return add_node(g, g.unique_name("while"), op, {zero, n, zero}, attrs);
  }
};

TEST_F(WhileFixture, LoopsUntilTheConditionFails) {
  Value n = placeholder(g, "n", DType::kInt32);
  Node* w = make_while("While", n);
  EXPECT_EQ(w->attr<int64_t>("parallel_iterations"), 10);  // TF's default comes back
  ASSERT_EQ(w->num_outputs(), 3);
  for (int32_t limit : {0, 1, 10, -3}) {
    auto out = run(g, {{n, Tensor::scalar<int32_t>(limit)}}, {w->out(0), w->out(1), w->out(2)});
    int32_t iterations = std::max(limit, 0);
    EXPECT_EQ(scalar<int32_t>(out[0]), iterations);
    EXPECT_EQ(scalar<int32_t>(out[1]), limit);
    EXPECT_EQ(scalar<int32_t>(out[2]), iterations * (iterations - 1) / 2);
  }
}

TEST_F(WhileFixture, OutputShapesAreDeclaredAndChecked) {
  Value n = placeholder(g, "n", DType::kInt32);
  std::vector<PartialShape> scalars(3, PartialShape(std::vector<int64_t>{}));
  Node* w = make_while("StatelessWhile", n, {{"output_shapes", scalars}});
  EXPECT_EQ(w->outputs[2].shape, PartialShape(std::vector<int64_t>{}));
  EXPECT_EQ(scalar<int32_t>(run(g, {{n, Tensor::scalar<int32_t>(5)}}, {w->out(2)})[0]), 10);
  std::vector<PartialShape> wrong(3, PartialShape({1}));
  Node* bad = make_while("StatelessWhile", n, {{"output_shapes", wrong}});
  EXPECT_THROW(run(g, {{n, Tensor::scalar<int32_t>(5)}}, {bad->out(2)}), Error);
  EXPECT_THROW(make_while("While", n, {{"T", std::vector<DType>(2, DType::kInt32)}}), Error);
}

TEST_F(WhileFixture, BodyErrorsNameTheIterationAndFunction) {
  // body2 divides by (n - i - 1): integer division by zero on the last iteration.
  auto body = function(lib, "body2");
  Value i = arg(*body, "i", DType::kInt32), n = arg(*body, "n", DType::kInt32),
        acc = arg(*body, "acc", DType::kInt32);
  Value one = constant(*body, "one", Tensor::scalar<int32_t>(1));
  Value next = binary(*body, "next", "AddV2", i, one);
  Value d = binary(*body, "left", "Sub", n, next);
  body->results = {next, n, binary(*body, "div", "FloorDiv", acc, d)};
  Value limit = placeholder(g, "n", DType::kInt32);
  Node* w = make_while("While", limit, {{"body", fref("body2")}});
  try {
    run(g, {{limit, Tensor::scalar<int32_t>(3)}}, {w->out(2)});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("iteration 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("function 'body2'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("node 'div'"), std::string::npos) << msg;
  }
}

TEST_F(WhileFixture, BodyCanCallFunctionsItself) {
  // body3 runs the While loop of the fixture as an inner loop: acc += sum(0..n-1) per step.
  auto body = function(lib, "body3");
  Value i = arg(*body, "i", DType::kInt32), n = arg(*body, "n", DType::kInt32),
        acc = arg(*body, "acc", DType::kInt32);
  Value zero = constant(*body, "zero", Tensor::scalar<int32_t>(0));
  Node* inner = add_node(*body, "inner", "StatelessWhile", {zero, n, zero},
                         {{"T", std::vector<DType>(3, DType::kInt32)}, {"cond", fref("cond")},
                          {"body", fref("body")}});
  Value one = constant(*body, "one", Tensor::scalar<int32_t>(1));
  body->results = {binary(*body, "next", "AddV2", i, one), n, binary(*body, "sum", "AddV2", acc, inner->out(2))};
  Value limit = placeholder(g, "n", DType::kInt32);
  Node* w = make_while("While", limit, {{"body", fref("body3")}});
  EXPECT_EQ(scalar<int32_t>(run(g, {{limit, Tensor::scalar<int32_t>(4)}}, {w->out(2)})[0]), 4 * 6);
}

TEST(Case, RunsTheIndexedBranchAndTheLastOneWhenOutOfRange) {
  auto lib = std::make_shared<FunctionLibrary>();
  Graph g(lib);
  std::vector<FuncRef> branches;
  for (int k = 0; k < 3; ++k) {
    std::string name = "b" + std::to_string(k);
    auto fn = function(lib, name);
    Value x = arg(*fn, "x", DType::kFloat32);
    fn->results = {binary(*fn, "scale", "Mul", x, constant(*fn, "k", Tensor::scalar<float>(k + 1.0f)))};
    branches.push_back(fref(name));
  }
  Value index = placeholder(g, "index", DType::kInt32, PartialShape(std::vector<int64_t>{}));
  Value x = constant(g, "x", Tensor::from_vector<float>({1, 2}));
  Node* c = add_node(g, "case", "Case", {index, x},
                     {{"Tin", std::vector<DType>{DType::kFloat32}},
                      {"Tout", std::vector<DType>{DType::kFloat32}},
                      {"branches", branches},
                      {"output_shapes", std::vector<PartialShape>{PartialShape({2})}}});
  EXPECT_EQ(c->outputs[0].shape, PartialShape({2}));
  auto eval = [&](int32_t i) {
    Tensor t = run(g, {{index, Tensor::scalar<int32_t>(i)}}, {c->out()})[0];
    return t.data<float>()[1];
  };
  EXPECT_EQ(eval(0), 2.0f);
  EXPECT_EQ(eval(1), 4.0f);
  EXPECT_EQ(eval(2), 6.0f);
  EXPECT_EQ(eval(3), 6.0f);
  EXPECT_EQ(eval(-1), 6.0f);
}

TEST(ControlFlow, StatelessOpsAreNotFoldedWithoutALibrary) {
  // Inference folds stateless ops with known inputs; functional ops must not fail there.
  auto lib = std::make_shared<FunctionLibrary>();
  Graph g(lib);
  auto fn = function(lib, "id");
  fn->results = {arg(*fn, "x", DType::kFloat32)};
  Value c = constant(g, "c", Tensor::scalar<bool>(true));
  Value x = constant(g, "x", Tensor::scalar<float>(1.5f));
  Node* n = add_node(g, "if", "StatelessIf", {c, x},
                     {{"Tcond", DType::kBool}, {"Tin", std::vector<DType>{DType::kFloat32}},
                      {"Tout", std::vector<DType>{DType::kFloat32}}, {"then_branch", fref("id")},
                      {"else_branch", fref("id")}});
  EXPECT_EQ(scalar<float>(run(g, {}, {n->out()})[0]), 1.5f);
}

}  // namespace
}  // namespace tessera
