// TensorList ops: values computed by hand, TF's edge cases (unset items, empty lists, partial
// element shapes) and copy-on-write.
#include <gtest/gtest.h>

#include "ir/interpreter.h"
#include "ops/tensor_list.h"

namespace tessera {
namespace {

class ListTest : public ::testing::Test {
 protected:
  Graph g;
  int counter = 0;

  Value node(const std::string& op, std::vector<Value> inputs, AttrMap attrs = {}, int index = 0) {
    Node* n = g.add(op + "_" + std::to_string(counter++), op, std::move(inputs), std::move(attrs));
    infer_node(*n);
    return n->out(index);
  }
  Value c(Tensor t) { return node("Const", {}, {{"value", t}, {"dtype", t.dtype()}}); }
  // Vectors stay vectors even with one element (from_vector would make a scalar).
  Value i32(std::vector<int32_t> v) { return c(Tensor::from_vector<int32_t>(v, {static_cast<int64_t>(v.size())})); }
  Value i32s(int32_t v) { return c(Tensor::scalar<int32_t>(v)); }
  Value i64(std::vector<int64_t> v) { return c(Tensor::from_vector<int64_t>(v, {static_cast<int64_t>(v.size())})); }
  Value f32(std::vector<float> v, Shape s = {}) {
    if (s.empty()) s = {static_cast<int64_t>(v.size())};
    return c(Tensor::from_vector<float>(v, s));
  }
  Value unknown_shape() { return i32s(-1); }

  AttrMap typed(DType t = DType::kFloat32) { return {{"element_dtype", t}, {"shape_type", DType::kInt32}}; }

  Value reserve(Value shape, int32_t n, DType t = DType::kFloat32) {
    return node("TensorListReserve", {shape, i32s(n)}, typed(t));
  }
  Value empty(Value shape, int32_t max = -1) { return node("EmptyTensorList", {shape, i32s(max)}, typed()); }
  Value set(Value list, int32_t i, Value item, bool resize = false) {
    return node("TensorListSetItem", {list, i32s(i), item},
                {{"element_dtype", DType::kFloat32}, {"resize_if_index_out_of_bounds", resize}});
  }
  Value get(Value list, int32_t i, Value shape) {
    return node("TensorListGetItem", {list, i32s(i), shape}, {{"element_dtype", DType::kFloat32}});
  }
  Value stack(Value list, Value shape, int64_t num = -1) {
    return node("TensorListStack", {list, shape}, {{"element_dtype", DType::kFloat32}, {"num_elements", num}});
  }
  Value push(Value list, Value item) { return node("TensorListPushBack", {list, item}, {{"element_dtype", DType::kFloat32}}); }
  Value length(Value list) { return node("TensorListLength", {list}); }

  // Runs the graph (constant folding may already have computed the values; run anyway).
  Tensor eval(Value v) {
    ResourceStore store;
    return interpret(g, {}, {v}, {}, &store)[0];
  }
  std::vector<float> floats(Value v) {
    Tensor t = eval(v);
    return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
  }
  // The error message of evaluating `make()` (graph building included: folding may throw
  // nothing, the run then throws).
  template <typename F>
  std::string error_of(F make) {
    try {
      eval(make());
    } catch (const Error& e) {
      return e.what();
    }
    return "<no error>";
  }
};

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

TEST_F(ListTest, ReserveSetGetStack) {
  Value l = reserve(i32({2}), 3);
  Value l1 = set(l, 1, f32({1, 2}));
  EXPECT_EQ(floats(get(l1, 1, unknown_shape())), (std::vector<float>{1, 2}));
  EXPECT_EQ(floats(get(l1, 0, unknown_shape())), (std::vector<float>{0, 0}));  // unset reads zeros
  Tensor s = eval(stack(l1, i32({2})));
  EXPECT_EQ(s.shape(), (Shape{3, 2}));
  EXPECT_EQ(std::vector<float>(s.data<float>(), s.data<float>() + 6), (std::vector<float>{0, 0, 1, 2, 0, 0}));
  EXPECT_EQ(eval(length(l1)).data<int32_t>()[0], 3);
  // Inference: Stack's shape from num_elements and element_shape.
  Value st = stack(l1, i32({2}), 3);
  EXPECT_EQ(st.node->outputs[0].shape, PartialShape({3, 2}));
  EXPECT_EQ(l1.node->outputs[0].dtype, DType::kVariant);
}

TEST_F(ListTest, SetItemIsCopyOnWrite) {
  Value l = reserve(i32({1}), 2);
  Value a = set(l, 0, f32({5}));
  Value b = set(a, 0, f32({7}));
  Value s_orig = stack(l, unknown_shape());
  Value s_a = stack(a, unknown_shape());
  Value s_b = stack(b, unknown_shape());
  ResourceStore store;
  auto out = interpret(g, {}, {s_orig, s_a, s_b}, {}, &store);
  EXPECT_EQ(out[0].data<float>()[0], 0);
  EXPECT_EQ(out[1].data<float>()[0], 5);
  EXPECT_EQ(out[2].data<float>()[0], 7);
  const TensorList& la = tensor_list_of(eval(a));
  EXPECT_EQ(la.tensors.size(), 2u);
  EXPECT_FALSE(la.tensors[1].valid());
}

TEST_F(ListTest, UnknownElementShapeComesFromSetItemsOrErrors) {
  Value l = reserve(unknown_shape(), 3);
  EXPECT_HAS(error_of([&] { return get(l, 1, unknown_shape()); }), "not fully defined");
  EXPECT_EQ(floats(get(l, 1, i32({2, 2}))), std::vector<float>(4, 0));
  EXPECT_HAS(error_of([&] { return stack(l, unknown_shape()); }), "not fully defined");
  Value l1 = set(l, 1, f32({1, 2}, {1, 2}));
  Tensor s = eval(stack(l1, unknown_shape()));
  EXPECT_EQ(s.shape(), (Shape{3, 1, 2}));
  Value l2 = set(l1, 2, f32({1, 2, 3}, {1, 3}));
  EXPECT_HAS(error_of([&] { return stack(l2, unknown_shape()); }), "incompatible shapes");
}

TEST_F(ListTest, IndexAndShapeErrors) {
  Value l = reserve(i32({2}), 3);
  EXPECT_HAS(error_of([&] { return get(l, 3, unknown_shape()); }), "element 3 in a list with 3 elements");
  EXPECT_HAS(error_of([&] { return get(l, -1, unknown_shape()); }), "element -1");
  EXPECT_HAS(error_of([&] { return set(l, 3, f32({1, 2})); }), "element 3 in a list with 3 elements");
  EXPECT_HAS(error_of([&] { return set(l, 0, f32({1, 2, 3})); }), "incompatible shape [3]");
  EXPECT_HAS(error_of([&] { return set(l, 0, c(Tensor::from_vector<int32_t>({1, 2}))); }),
             "op elements int32 but list elements float32");
  EXPECT_HAS(error_of([&] { return stack(l, i32({3})); }), "incompatible shapes");
  EXPECT_HAS(error_of([&] { return stack(l, i32({2}), 2); }), "expected a list with 2 elements");
  EXPECT_HAS(error_of([&] { return reserve(i32({2}), -1); }), "non negative");
  EXPECT_HAS(error_of([&] { return reserve(i32s(3), 1); }), "-1");
  // An index past the end grows the list when asked to; a negative one never does.
  EXPECT_EQ(eval(length(set(l, 5, f32({1, 2}), true))).data<int32_t>()[0], 6);
  EXPECT_HAS(error_of([&] { return set(l, -1, f32({1, 2}), true); }), "element -1");
}

TEST_F(ListTest, EmptyListStacksWithKnownShapeOnly) {
  Value e = empty(i32({2, -1}));
  EXPECT_HAS(error_of([&] { return stack(e, unknown_shape()); }), "empty list with non-fully-defined");
  Tensor s = eval(stack(e, i32({-1, 3})));
  EXPECT_EQ(s.shape(), (Shape{0, 2, 3}));
  Tensor es = eval(node("TensorListElementShape", {e}, {{"shape_type", DType::kInt64}}));
  EXPECT_EQ(es.to_int_vector(), (std::vector<int64_t>{2, -1}));
  Tensor unknown = eval(node("TensorListElementShape", {reserve(unknown_shape(), 1)}, {{"shape_type", DType::kInt32}}));
  EXPECT_EQ(unknown.shape(), Shape{});
  EXPECT_EQ(unknown.data<int32_t>()[0], -1);
}

TEST_F(ListTest, PushPopAndMaxElements) {
  Value e = empty(i32({2}), 2);
  Value l = push(push(e, f32({1, 2})), f32({3, 4}));
  EXPECT_EQ(floats(stack(l, i32({2}))), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_HAS(error_of([&] { return push(l, f32({5, 6})); }), "full list");
  EXPECT_HAS(error_of([&] { return push(e, f32({5})); }), "incompatible shape");
  Value popped = node("TensorListPopBack", {l, unknown_shape()}, {{"element_dtype", DType::kFloat32}}, 1);
  EXPECT_EQ(floats(popped), (std::vector<float>{3, 4}));
  Value rest = node("TensorListPopBack", {l, unknown_shape()}, {{"element_dtype", DType::kFloat32}}, 0);
  EXPECT_EQ(eval(length(rest)).data<int32_t>()[0], 1);
  EXPECT_HAS(error_of([&] { return node("TensorListPopBack", {e, unknown_shape()}, {{"element_dtype", DType::kFloat32}}, 1); }),
             "pop from an empty list");
  // Popping an unset item reads zeros.
  Value r = reserve(i32({3}), 1);
  EXPECT_EQ(floats(node("TensorListPopBack", {r, unknown_shape()}, {{"element_dtype", DType::kFloat32}}, 1)),
            std::vector<float>(3, 0));
}

TEST_F(ListTest, FromTensorGatherScatterResize) {
  Value t = f32({0, 1, 2, 3, 4, 5}, {3, 2});
  Value l = node("TensorListFromTensor", {t, i32({-1})}, typed());
  Value g1 = node("TensorListGather", {l, i32({2, 0, 2}), i32({-1})}, {{"element_dtype", DType::kFloat32}});
  EXPECT_EQ(floats(g1), (std::vector<float>{4, 5, 0, 1, 4, 5}));
  EXPECT_EQ(g1.node->outputs[0].shape, PartialShape({3, -1}));
  EXPECT_HAS(error_of([&] {
               return node("TensorListGather", {l, i32({0, 3}), unknown_shape()}, {{"element_dtype", DType::kFloat32}});
             }),
             "index 3 out of range");
  EXPECT_HAS(error_of([&] { return node("TensorListFromTensor", {t, i32({3})}, typed()); }), "from a tensor with shape [3,2]");
  EXPECT_HAS(error_of([&] { return node("TensorListFromTensor", {f32({1})}, typed()); }), "input");

  // Scatter: rows land at the indices, later duplicates win, gaps read as zeros.
  Value sc = node("TensorListScatter", {t, i32({4, 0, 4}), i32({2})}, typed());
  EXPECT_EQ(floats(stack(sc, unknown_shape())), (std::vector<float>{2, 3, 0, 0, 0, 0, 0, 0, 4, 5}));
  Value sc2 = node("TensorListScatterV2", {t, i32({1, 0, 2}), i32({2}), i32s(5)}, typed());
  EXPECT_EQ(eval(length(sc2)).data<int32_t>()[0], 5);
  EXPECT_HAS(error_of([&] { return node("TensorListScatterV2", {t, i32({1, 0, 2}), i32({2}), i32s(2)}, typed()); }),
             "index 2 in a list with size 2");
  EXPECT_HAS(error_of([&] { return node("TensorListScatter", {t, i32({-1, 0, 2}), i32({2})}, typed()); }),
             "non-negative");
  EXPECT_HAS(error_of([&] { return node("TensorListScatter", {t, i32({0, 2}), i32({2})}, typed()); }),
             "number of rows");
  Value into = node("TensorListScatterIntoExistingList", {l, f32({9, 9}, {1, 2}), i32({4})},
                    {{"element_dtype", DType::kFloat32}});
  EXPECT_EQ(floats(stack(into, unknown_shape())), (std::vector<float>{0, 1, 2, 3, 4, 5, 0, 0, 9, 9}));

  Value shrunk = node("TensorListResize", {l, i32s(1)});
  EXPECT_EQ(floats(stack(shrunk, unknown_shape())), (std::vector<float>{0, 1}));
  Value grown = node("TensorListResize", {l, i32s(4)});
  EXPECT_EQ(floats(stack(grown, unknown_shape())), (std::vector<float>{0, 1, 2, 3, 4, 5, 0, 0}));
  EXPECT_HAS(error_of([&] { return node("TensorListResize", {l, i32s(-1)}); }), "non-negative");
}

TEST_F(ListTest, SplitAndConcat) {
  Value t = f32({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {6, 2});
  Value l = node("TensorListSplit", {t, i32({-1, 2}), i64({1, 3, 2})}, typed());
  EXPECT_EQ(eval(get(l, 1, unknown_shape())).shape(), (Shape{3, 2}));
  Value cat = node("TensorListConcatV2", {l, unknown_shape(), i64({})},
                   {{"element_dtype", DType::kFloat32}, {"shape_type", DType::kInt32}});
  Value lengths{cat.node, 1};
  EXPECT_EQ(floats(cat), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(eval(lengths).to_int_vector(), (std::vector<int64_t>{1, 3, 2}));
  EXPECT_EQ(cat.node->def->flat_output_index(*cat.node, "lengths", 0), 1);
  EXPECT_HAS(error_of([&] { return node("TensorListSplit", {t, i32({-1, 2}), i64({1, 3})}, typed()); }),
             "unused values");
  EXPECT_HAS(error_of([&] { return node("TensorListSplit", {t, i32({-1, 2}), i64({7, -1})}, typed()); }),
             "slice [0, 7]");
  EXPECT_HAS(error_of([&] { return node("TensorListSplit", {t, i32({-1, 3}), i64({6})}, typed()); }),
             "not compatible");

  // Unset items: first dim from leading_dims, else from the first set item.
  Value r = set(reserve(i32({-1, 2}), 3), 1, f32({1, 1, 1, 1}, {2, 2}));
  auto concat = [&](Value list, Value lead) {
    return node("TensorListConcatV2", {list, unknown_shape(), lead},
                {{"element_dtype", DType::kFloat32}, {"shape_type", DType::kInt32}});
  };
  Value c1 = concat(r, i64({1, 5, 3}));
  EXPECT_EQ(eval(Value{c1.node, 1}).to_int_vector(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(floats(c1), (std::vector<float>{0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0}));
  Value c2 = concat(r, i64({}));
  EXPECT_EQ(eval(Value{c2.node, 1}).to_int_vector(), (std::vector<int64_t>{2, 2, 2}));
  // Empty lists need known inner dims.
  Tensor e = eval(concat(empty(i32({-1, 2})), i64({})));
  EXPECT_EQ(e.shape(), (Shape{0, 2}));
  EXPECT_HAS(error_of([&] { return concat(empty(i32({3, -1})), i64({})); }), "must be fully defined");
  EXPECT_HAS(error_of([&] { return concat(push(empty(unknown_shape()), c(Tensor::scalar<float>(1))), i64({})); }),
             "scalar");
}

TEST_F(ListTest, StringItemsAndDtypes) {
  Tensor words(DType::kString, {2});
  words.strings() = {"a", "bc"};
  Value l = node("TensorListFromTensor", {c(words), unknown_shape()}, typed(DType::kString));
  Value s = node("TensorListStack", {l, unknown_shape()}, {{"element_dtype", DType::kString}});
  EXPECT_EQ(eval(s).strings(), (std::vector<std::string>{"a", "bc"}));
  Value r = reserve(i32({2}), 1, DType::kString);
  Value rs = node("TensorListStack", {r, unknown_shape()}, {{"element_dtype", DType::kString}});
  EXPECT_EQ(eval(rs).strings(), (std::vector<std::string>{"", ""}));
  EXPECT_HAS(error_of([&] { return get(l, 0, unknown_shape()); }), "op elements float32 but list elements string");
}

}  // namespace
}  // namespace tessera
