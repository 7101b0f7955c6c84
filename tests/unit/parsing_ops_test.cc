// ParseExample/ParseExampleV2/ParseSingleExample on Examples built with the protobuf classes.
#include <gtest/gtest.h>

#include "ir/interpreter.h"
#include "tensorflow/core/example/example.pb.h"

namespace tessera {
namespace {

// An Example from (key, values) pairs; values as floats, int64s or strings.
struct ExampleBuilder {
  tensorflow::Example ex;
  tensorflow::Feature& feature(const std::string& key) { return (*ex.mutable_features()->mutable_feature())[key]; }
  ExampleBuilder& floats(const std::string& key, std::vector<float> v) {
    auto* l = feature(key).mutable_float_list();
    for (float x : v) l->add_value(x);
    return *this;
  }
  ExampleBuilder& ints(const std::string& key, std::vector<int64_t> v) {
    auto* l = feature(key).mutable_int64_list();
    for (int64_t x : v) l->add_value(x);
    return *this;
  }
  ExampleBuilder& bytes(const std::string& key, std::vector<std::string> v) {
    auto* l = feature(key).mutable_bytes_list();
    for (auto& x : v) l->add_value(x);
    return *this;
  }
  ExampleBuilder& empty(const std::string& key) {
    feature(key);
    return *this;
  }
  std::string str() const { return ex.SerializeAsString(); }
};

Tensor strings(std::vector<std::string> v, Shape shape) {
  Tensor t(DType::kString, shape);
  t.strings() = std::move(v);
  return t;
}
Tensor strings(std::vector<std::string> v) {
  Shape s{static_cast<int64_t>(v.size())};
  return strings(std::move(v), s);
}

class ParseTest : public ::testing::Test {
 protected:
  Graph g;
  int counter = 0;
  Value c(Tensor t) {
    Node* n = g.add("c" + std::to_string(counter++), "Const", {}, {{"value", t}, {"dtype", t.dtype()}});
    infer_node(*n);
    return n->out();
  }
  Value ph(DType t, PartialShape s) {
    Node* n = g.add("p" + std::to_string(counter++), "Placeholder", {}, {{"dtype", t}, {"shape", s}});
    infer_node(*n);
    return n->out();
  }

  struct Dense {
    std::string key;
    Tensor def;
    PartialShape shape;
  };
  struct Sparse {
    std::string key;
    DType type;
  };
  struct Ragged {
    std::string key;
    DType type;
    DType split;
  };

  Node* v2(Value serialized, const std::vector<Dense>& dense, const std::vector<Sparse>& sparse = {},
           const std::vector<Ragged>& ragged = {}, Tensor names = strings({})) {
    std::vector<std::string> dk, sk, rk;
    std::vector<DType> tdense, stypes, rtypes, rsplits;
    std::vector<PartialShape> shapes;
    std::vector<Value> inputs{serialized, c(names)};
    for (auto& s : sparse) sk.push_back(s.key), stypes.push_back(s.type);
    for (auto& d : dense) dk.push_back(d.key), tdense.push_back(d.def.dtype()), shapes.push_back(d.shape);
    for (auto& r : ragged) rk.push_back(r.key), rtypes.push_back(r.type), rsplits.push_back(r.split);
    inputs.push_back(c(strings(sk)));
    inputs.push_back(c(strings(dk)));
    inputs.push_back(c(strings(rk)));
    for (auto& d : dense) inputs.push_back(c(d.def));
    Node* n = g.add("parse" + std::to_string(counter++), "ParseExampleV2", inputs,
                    {{"Tdense", tdense}, {"num_sparse", static_cast<int64_t>(sparse.size())},
                     {"sparse_types", stypes}, {"ragged_value_types", rtypes},
                     {"ragged_split_types", rsplits}, {"dense_shapes", shapes}});
    infer_node(*n);
    return n;
  }
  std::vector<Tensor> run(Node* n, std::vector<Feed> feeds = {}) {
    std::vector<Value> fetches;
    for (int i = 0; i < n->num_outputs(); ++i) fetches.push_back(n->out(i));
    ResourceStore store;
    return interpret(g, feeds, fetches, {}, &store);
  }
  std::string error_of(Node* n, std::vector<Feed> feeds = {}) {
    try {
      run(n, feeds);
    } catch (const Error& e) {
      return e.what();
    }
    return "<no error>";
  }
};

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

std::vector<float> fvec(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.num_elements()}; }

TEST_F(ParseTest, DenseFeaturesWithDefaults) {
  std::string e1 = ExampleBuilder().floats("a", {1, 2}).ints("b", {3}).bytes("s", {"x", "y"}).str();
  std::string e2 = ExampleBuilder().ints("b", {4}).empty("s").str();
  Value ser = ph(DType::kString, PartialShape({-1}));
  Node* n = v2(ser, {{"a", Tensor::from_vector<float>({7, 8}), PartialShape({2})},
                     {"b", Tensor(DType::kInt64, {0}), PartialShape({1})},
                     {"s", strings({"d", "e"}), PartialShape({2})}});
  ASSERT_EQ(n->num_outputs(), 3);
  EXPECT_EQ(n->outputs[0].shape, PartialShape({-1, 2}));
  EXPECT_EQ(n->outputs[2].dtype, DType::kString);
  EXPECT_EQ(n->def->flat_output_index(*n, "dense_values", 1), 1);
  auto out = run(n, {{ser, strings({e1, e2})}});
  EXPECT_EQ(out[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(fvec(out[0]), (std::vector<float>{1, 2, 7, 8}));
  EXPECT_EQ(out[1].to_int_vector(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(out[2].strings(), (std::vector<std::string>{"x", "y", "d", "e"}));  // empty Feature = missing
}

TEST_F(ParseTest, DenseErrorsNameTheFeatureAndExample) {
  std::string e1 = ExampleBuilder().floats("a", {1, 2}).ints("b", {3, 4}).str();
  std::string e2 = ExampleBuilder().ints("b", {4}).str();
  Value ser = c(strings({e1, e2}));
  EXPECT_HAS(error_of(v2(ser, {{"a", Tensor(DType::kFloat32, {0}), PartialShape({2})}})),
             "Feature: a (data type: float32) is required but could not be found (example 1)");
  EXPECT_HAS(error_of(v2(ser, {{"a", Tensor(DType::kFloat32, {0}), PartialShape({2})}}, {}, {},
                         strings({"n1", "n2"}))),
             "Name: n2");
  EXPECT_HAS(error_of(v2(ser, {{"b", Tensor(DType::kInt64, {0}), PartialShape({1})}})),
             "Key: b, Index: 0. Number of int64 values != expected. Values size: 2 but output shape: [1]");
  EXPECT_HAS(error_of(v2(ser, {{"b", Tensor(DType::kFloat32, {0}), PartialShape({2})}})),
             "Data type: int64 but expected type: float32");
  EXPECT_HAS(error_of(v2(ser, {{"a", Tensor::from_vector<float>({1, 2, 3}), PartialShape({2})}})),
             "default value for 'a' has shape [3]");
  EXPECT_HAS(error_of(v2(c(strings({std::string("\xff\xff\x01", 3)})),
                         {{"a", Tensor(DType::kFloat32, {0}), PartialShape({2})}})),
             "could not parse example input 0");
  EXPECT_HAS(error_of(v2(c(strings({e1.substr(0, e1.size() - 3)})),
                         {{"a", Tensor(DType::kFloat32, {0}), PartialShape({2})}})),
             "could not parse example input 0");
  EXPECT_HAS(error_of(v2(ser, {{"a", Tensor::from_vector<float>({7, 8}), PartialShape({2})}}, {}, {},
                         strings({"x"}))),
             "same shape as serialized");
}

TEST_F(ParseTest, VariableLengthDensePadsWithTheDefault) {
  std::string e1 = ExampleBuilder().ints("b", {1, 2, 3, 4}).str();
  std::string e2 = ExampleBuilder().ints("b", {5, 6}).str();
  std::string e3 = ExampleBuilder().str();
  Node* n = v2(c(strings({e1, e2, e3})), {{"b", Tensor::scalar<int64_t>(-1), PartialShape({-1, 2})}});
  EXPECT_EQ(n->outputs[0].shape, PartialShape({3, -1, 2}));
  Tensor out = run(n)[0];
  EXPECT_EQ(out.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(out.to_int_vector(), (std::vector<int64_t>{1, 2, 3, 4, 5, 6, -1, -1, -1, -1, -1, -1}));
  std::string odd = ExampleBuilder().ints("b", {1, 2, 3}).str();
  EXPECT_HAS(error_of(v2(c(strings({odd})), {{"b", Tensor::scalar<int64_t>(0), PartialShape({-1, 2})}})),
             "not a multiple of stride length");
}

TEST_F(ParseTest, SparseAndRaggedFeatures) {
  std::string e1 = ExampleBuilder().ints("b", {3}).bytes("s", {"x", "y"}).str();
  std::string e2 = ExampleBuilder().ints("b", {4, 5}).str();
  Node* n = v2(c(strings({e1, e2})), {}, {{"b", DType::kInt64}, {"s", DType::kString}},
               {{"b", DType::kInt64, DType::kInt32}});
  ASSERT_EQ(n->num_outputs(), 8);
  EXPECT_EQ(n->def->flat_output_index(*n, "sparse_values", 1), 3);
  EXPECT_EQ(n->def->flat_output_index(*n, "ragged_row_splits", 0), 7);
  EXPECT_EQ(n->outputs[0].shape, PartialShape({-1, 2}));
  EXPECT_EQ(n->outputs[7].shape, PartialShape({3}));
  auto out = run(n);
  EXPECT_EQ(out[0].to_int_vector(), (std::vector<int64_t>{0, 0, 1, 0, 1, 1}));
  EXPECT_EQ(out[1].to_int_vector(), (std::vector<int64_t>{0, 0, 0, 1}));
  EXPECT_EQ(out[2].to_int_vector(), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(out[3].strings(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(out[4].to_int_vector(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(out[5].to_int_vector(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(out[6].to_int_vector(), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(out[7].dtype(), DType::kInt32);
  EXPECT_EQ(out[7].to_int_vector(), (std::vector<int64_t>{0, 1, 3}));
  EXPECT_HAS(error_of(v2(c(strings({e1})), {}, {{"b", DType::kFloat32}})),
             "Key: b, Index: 0. Data types don't match. Expected type: float32, Actual type: int64");
}

TEST_F(ParseTest, ScalarSerializedHasNoBatchDim) {
  std::string e = ExampleBuilder().floats("a", {1, 2}).ints("b", {3, 4}).str();
  Node* n = v2(c(Tensor::string_scalar(e)), {{"a", Tensor(DType::kFloat32, {0}), PartialShape({2})}},
               {{"b", DType::kInt64}}, {{"b", DType::kInt64, DType::kInt64}});
  EXPECT_EQ(n->outputs[0].shape, PartialShape({-1, 1}));
  EXPECT_EQ(n->outputs[3].shape, PartialShape({2}));
  auto out = run(n);
  EXPECT_EQ(out[0].to_int_vector(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(out[2].to_int_vector(), (std::vector<int64_t>{2}));
  EXPECT_EQ(out[3].shape(), (Shape{2}));
  EXPECT_EQ(out[5].shape(), (Shape{0}));  // ragged row splits of a scalar input: empty
}

TEST_F(ParseTest, ParseExampleV1AndSingleExample) {
  std::string e1 = ExampleBuilder().floats("a", {1, 2}).bytes("s", {"x", "y"}).str();
  std::string e2 = ExampleBuilder().str();
  Node* v1 = g.add("v1", "ParseExample",
                   {c(strings({e1, e2})), c(strings({})), c(Tensor::string_scalar("s")),
                    c(Tensor::string_scalar("a")), c(Tensor::from_vector<float>({7, 8}))},
                   {{"Nsparse", int64_t{1}}, {"Ndense", int64_t{1}},
                    {"sparse_types", std::vector<DType>{DType::kString}},
                    {"Tdense", std::vector<DType>{DType::kFloat32}},
                    {"dense_shapes", std::vector<PartialShape>{PartialShape({2})}}});
  infer_node(*v1);
  ASSERT_EQ(v1->num_outputs(), 4);
  EXPECT_EQ(v1->outputs[3].shape, PartialShape({2, 2}));
  auto out = run(v1);
  EXPECT_EQ(out[0].to_int_vector(), (std::vector<int64_t>{0, 0, 0, 1}));
  EXPECT_EQ(out[2].to_int_vector(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(fvec(out[3]), (std::vector<float>{1, 2, 7, 8}));

  Node* single = g.add("single", "ParseSingleExample", {c(Tensor::string_scalar(e1)), c(Tensor::from_vector<float>({7, 8}))},
                       {{"num_sparse", int64_t{1}}, {"sparse_keys", std::vector<std::string>{"s"}},
                        {"dense_keys", std::vector<std::string>{"a"}},
                        {"sparse_types", std::vector<DType>{DType::kString}},
                        {"Tdense", std::vector<DType>{DType::kFloat32}},
                        {"dense_shapes", std::vector<PartialShape>{PartialShape({2})}}});
  infer_node(*single);
  out = run(single);
  EXPECT_EQ(out[0].shape(), (Shape{2, 1}));
  EXPECT_EQ(out[2].to_int_vector(), (std::vector<int64_t>{2}));
  EXPECT_EQ(fvec(out[3]), (std::vector<float>{1, 2}));
}

TEST_F(ParseTest, GarbageInputNeverCrashes) {
  // Truncations and byte flips of a valid example either parse or fail cleanly.
  std::string e = ExampleBuilder().floats("a", {1, 2}).ints("b", {3}).bytes("s", {"xyz"}).str();
  for (size_t cut = 0; cut < e.size(); ++cut) {
    for (int flip : {-1, 0x80, 0xff}) {
      std::string bad = e.substr(0, cut);
      if (flip >= 0 && !bad.empty()) bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ flip);
      Graph local;
      Node* s = local.add("s", "Const", {}, {{"value", strings({bad})}, {"dtype", DType::kString}});
      infer_node(*s);
      Node* k = local.add("k", "Const", {}, {{"value", strings({"a"})}, {"dtype", DType::kString}});
      infer_node(*k);
      Node* none = local.add("none", "Const", {}, {{"value", strings({})}, {"dtype", DType::kString}});
      infer_node(*none);
      Node* d = local.add("d", "Const", {}, {{"value", Tensor::from_vector<float>({0, 0})}, {"dtype", DType::kFloat32}});
      infer_node(*d);
      Node* p = local.add("p", "ParseExampleV2", {s->out(), none->out(), none->out(), k->out(), none->out(), d->out()},
                          {{"Tdense", std::vector<DType>{DType::kFloat32}}, {"num_sparse", int64_t{0}},
                           {"sparse_types", std::vector<DType>{}}, {"ragged_value_types", std::vector<DType>{}},
                           {"ragged_split_types", std::vector<DType>{}},
                           {"dense_shapes", std::vector<PartialShape>{PartialShape({2})}}});
      infer_node(*p);
      ResourceStore store;
      try {
        interpret(local, {}, {p->out()}, {}, &store);
      } catch (const Error&) {
      }
    }
  }
}

}  // namespace
}  // namespace tessera
