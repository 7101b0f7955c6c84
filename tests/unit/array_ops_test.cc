// Unit tests for the array op family: hand-computed values, static shape inference (incl. the
// compile-time folding of shape arithmetic Keras graphs rely on) and error messages. The
// differential tests against TensorFlow are in tests/py/ops/test_array_ops.py.
#include <gtest/gtest.h>

#include "op_test_util.h"

namespace tessera {
namespace {

using testing::error_of;
using testing::TestGraph;

Tensor iota(Shape shape) {
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}

std::vector<float> floats(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
}

std::vector<int64_t> ints_of(const Tensor& t) { return t.to_int_vector(); }

const PartialShape& shape_of(Node* n, int i = 0) { return n->outputs.at(i).shape; }

// ---------------------------------------------------------------------------------------------
// Shape inference that Keras graphs rely on.

TEST(ArrayInfer, ReshapeWithMinusOneKeepsUnknownBatch) {
  TestGraph t;
  Value x = t.symbolic(DType::kFloat32, PartialShape({-1, 28, 28, 1}));
  Node* r = t.op("Reshape", {x, t.ints({-1, 784})}, {{"T", DType::kFloat32}});
  EXPECT_EQ(shape_of(r), PartialShape({-1, 784}));
}

TEST(ArrayInfer, ReshapeToPackedRuntimeBatch) {
  TestGraph t;
  Value x = t.symbolic(DType::kFloat32, PartialShape({-1, 784}));
  Node* shape = t.op("Shape", {x}, {{"T", DType::kFloat32}});
  Node* batch = t.op("StridedSlice", {shape->out(), t.ints({0}), t.ints({1}), t.ints({1})},
                     {{"T", DType::kInt32}, {"Index", DType::kInt32}, {"shrink_axis_mask", int64_t{1}}});
  EXPECT_EQ(shape_of(batch), PartialShape(std::vector<int64_t>{}));
  Node* target = t.op("Pack", {batch->out(), t.scalar(28), t.scalar(28), t.scalar(1)},
                      {{"T", DType::kInt32}, {"N", int64_t{4}}});
  Node* r = t.op("Reshape", {x, target->out()}, {{"T", DType::kFloat32}});
  EXPECT_EQ(shape_of(r), PartialShape({-1, 28, 28, 1}));
}

TEST(ArrayInfer, Keras2FlattenCancelsTheBatchDimension) {
  // reshape(y, [shape(y)[0], -1]): the -1 is 7*7*4 whatever the batch is.
  TestGraph t;
  Value y = t.symbolic(DType::kFloat32, PartialShape({-1, 7, 7, 4}));
  Node* shape = t.op("Shape", {y}, {{"T", DType::kFloat32}});
  Node* batch = t.op("StridedSlice", {shape->out(), t.ints({0}), t.ints({1}), t.ints({1})},
                     {{"T", DType::kInt32}, {"Index", DType::kInt32}, {"shrink_axis_mask", int64_t{1}}});
  Node* target = t.op("Pack", {batch->out(), t.scalar(-1)}, {{"T", DType::kInt32}, {"N", int64_t{2}}});
  Node* r = t.op("Reshape", {y, target->out()}, {{"T", DType::kFloat32}});
  EXPECT_EQ(shape_of(r), PartialShape({-1, 196}));
}

TEST(ArrayInfer, ShapeFoldsOnlyWhenFullyKnown) {
  TestGraph t;
  Node* full = t.op("Shape", {t.symbolic(DType::kFloat32, PartialShape({2, 3}))}, {{"T", DType::kFloat32}});
  ASSERT_TRUE(full->known.at(0).valid());
  EXPECT_EQ(ints_of(full->known[0]), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(full->outputs[0].dtype, DType::kInt32);
  Value partial_in = t.symbolic(DType::kFloat32, PartialShape({-1, 3, 4}));
  Node* partial = t.op("Shape", {partial_in}, {{"T", DType::kFloat32}, {"out_type", DType::kInt64}});
  EXPECT_FALSE(partial->known.at(0).valid());
  EXPECT_EQ(partial->outputs[0].dtype, DType::kInt64);
  EXPECT_EQ(shape_of(partial), PartialShape({3}));
  Node* size = t.op("Size", {partial_in}, {{"T", DType::kFloat32}});
  EXPECT_FALSE(size->known.at(0).valid());
  Node* rank = t.op("Rank", {partial_in}, {{"T", DType::kFloat32}});
  ASSERT_TRUE(rank->known.at(0).valid());
  EXPECT_EQ(rank->known[0].scalar_int(), 3);
  // The known part of a partially known shape folds: shape(x)[1:] is [3, 4].
  Node* tail = t.op("StridedSlice", {partial->out(), t.ints({1}), t.ints({0}), t.ints({1})},
                    {{"T", DType::kInt64}, {"Index", DType::kInt32}, {"end_mask", int64_t{1}}});
  ASSERT_TRUE(tail->known.at(0).valid());
  EXPECT_EQ(tail->known[0].dtype(), DType::kInt64);
  EXPECT_EQ(ints_of(tail->known[0]), (std::vector<int64_t>{3, 4}));
  Node* head = t.op("StridedSlice", {partial->out(), t.ints({0}), t.ints({1}), t.ints({1})},
                    {{"T", DType::kInt64}, {"Index", DType::kInt32}});
  EXPECT_FALSE(head->known.at(0).valid());
  EXPECT_EQ(shape_of(head), PartialShape({1}));
}

TEST(ArrayInfer, ConcatSplitGatherTileShapes) {
  TestGraph t;
  Value a = t.symbolic(DType::kFloat32, PartialShape({-1, 3}));
  Value b = t.symbolic(DType::kFloat32, PartialShape({-1, 4}));
  Node* cat = t.op("ConcatV2", {a, b, t.scalar(-1)}, {{"T", DType::kFloat32}, {"N", int64_t{2}}});
  EXPECT_EQ(shape_of(cat), PartialShape({-1, 7}));
  Node* split = t.op("SplitV", {cat->out(), t.ints({2, -1}), t.scalar(1)},
                     {{"T", DType::kFloat32}, {"num_split", int64_t{2}}, {"Tlen", DType::kInt32}});
  EXPECT_EQ(shape_of(split, 1), PartialShape({-1, 5}));
  Value params = t.symbolic(DType::kFloat32, PartialShape({100, 16}));
  Value ids = t.symbolic(DType::kInt32, PartialShape({-1, 10}));
  Node* g = t.op("GatherV2", {params, ids, t.scalar(0)}, {{"Tparams", DType::kFloat32}});
  EXPECT_EQ(shape_of(g), PartialShape({-1, 10, 16}));
  Node* tile = t.op("Tile", {a, t.ints({2, 3})}, {{"T", DType::kFloat32}});
  EXPECT_EQ(shape_of(tile), PartialShape({-1, 9}));
  Node* pad = t.op("Pad", {a, t.constant(Tensor::from_vector<int32_t>({1, 1, 0, 2}, {2, 2}))}, {{"T", DType::kFloat32}});
  EXPECT_EQ(shape_of(pad), PartialShape({-1, 5}));
  Node* sq = t.op("Squeeze", {t.symbolic(DType::kFloat32, PartialShape({-1, 1, 3}))},
                  {{"T", DType::kFloat32}, {"squeeze_dims", std::vector<int64_t>{1}}});
  EXPECT_EQ(shape_of(sq), PartialShape({-1, 3}));
  Node* ss = t.op("StridedSlice", {t.symbolic(DType::kFloat32, PartialShape({-1, 10, 8})), t.ints({0, 2}),
                                   t.ints({0, -1}), t.ints({1, 3})},
                  {{"T", DType::kFloat32}, {"Index", DType::kInt32}, {"begin_mask", int64_t{1}},
                   {"end_mask", int64_t{1}}, {"new_axis_mask", int64_t{0}}});
  EXPECT_EQ(shape_of(ss), PartialShape({-1, 3, 8}));
}

// ---------------------------------------------------------------------------------------------
// Values.

TEST(ArrayOps, StridedSliceMasks) {
  TestGraph t;
  Value x = t.input(iota({2, 3, 4}));
  auto slice = [&](std::vector<int32_t> b, std::vector<int32_t> e, std::vector<int32_t> s, AttrMap masks) {
    masks["T"] = DType::kFloat32;
    masks["Index"] = DType::kInt32;
    return t.run1(t.op("StridedSlice", {x, t.ints(b), t.ints(e), t.ints(s)}, masks)->out());
  };
  // x[..., 1]
  Tensor a = slice({0, 1}, {0, 2}, {1, 1}, {{"ellipsis_mask", int64_t{1}}, {"shrink_axis_mask", int64_t{2}}});
  EXPECT_EQ(a.shape(), (Shape{2, 3}));
  EXPECT_EQ(floats(a), (std::vector<float>{1, 5, 9, 13, 17, 21}));
  // x[-1, 1:, ::-3]
  Tensor b = slice({-1, 1, 0}, {0, 0, 0}, {1, 1, -3},
                   {{"shrink_axis_mask", int64_t{1}}, {"end_mask", int64_t{6}}, {"begin_mask", int64_t{4}}});
  EXPECT_EQ(b.shape(), (Shape{2, 2}));
  EXPECT_EQ(floats(b), (std::vector<float>{19, 16, 23, 20}));
  // x[:, None, 2:0:-1, 3]
  Tensor c = slice({0, 0, 2, 3}, {0, 0, 0, 4}, {1, 1, -1, 1},
                   {{"begin_mask", int64_t{1}}, {"end_mask", int64_t{1}}, {"new_axis_mask", int64_t{2}},
                    {"shrink_axis_mask", int64_t{8}}});
  EXPECT_EQ(c.shape(), (Shape{2, 1, 2}));
  EXPECT_EQ(floats(c), (std::vector<float>{11, 7, 23, 19}));
}

TEST(ArrayOps, ReshapeZeroElements) {
  TestGraph t;
  Value e = t.input(Tensor(DType::kFloat32, {0, 3}));
  Node* r = t.op("Reshape", {e, t.ints({-1, 0})}, {{"T", DType::kFloat32}});
  EXPECT_EQ(shape_of(r), PartialShape({3, 0}));
  EXPECT_EQ(t.run1(r->out()).shape(), (Shape{3, 0}));
}

TEST(ArrayOps, StringsMoveLikeNumbers) {
  TestGraph t;
  Tensor s(DType::kString, {2, 3});
  for (int i = 0; i < 6; ++i) s.strings()[i] = std::string(i, 'a' + i);
  Value x = t.input(s);
  Tensor tr = t.run1(t.op("Transpose", {x, t.ints({1, 0})}, {{"T", DType::kString}})->out());
  EXPECT_EQ(tr.strings(), (std::vector<std::string>{"", "ddd", "b", "eeee", "cc", "fffff"}));
  Tensor g = t.run1(t.op("GatherV2", {x, t.ints({1, 1}), t.scalar(0)}, {{"Tparams", DType::kString}})->out());
  EXPECT_EQ(g.strings()[3], "ddd");
  Tensor p = t.run1(t.op("Pad", {x, t.constant(Tensor::from_vector<int32_t>({0, 0, 1, 0}, {2, 2}))},
                         {{"T", DType::kString}})->out());
  EXPECT_EQ(p.shape(), (Shape{2, 4}));
  EXPECT_EQ(p.strings()[1], "");
  EXPECT_EQ(p.strings()[2], "b");
}

TEST(ArrayOps, GatherOutOfRangeNamesTheIndex) {
  TestGraph t;
  Value x = t.input(iota({3, 4}));
  Value i = t.input(Tensor::from_vector<int32_t>({0, 5}, {1, 2}));
  Node* g = t.op("GatherV2", {x, i, t.scalar(1)}, {{"Tparams", DType::kFloat32}});
  std::string msg = error_of([&] { t.run1(g->out()); });
  EXPECT_NE(msg.find(g->name), std::string::npos) << msg;
  EXPECT_NE(msg.find("indices[0,1] = 5 is not in [0, 4)"), std::string::npos) << msg;
}

TEST(ArrayOps, DefinitelyInvalidShapesFailAtInference) {
  TestGraph t;
  Value x = t.symbolic(DType::kFloat32, PartialShape({2, 3}));
  EXPECT_NE(error_of([&] { t.op("Reshape", {x, t.ints({4})}, {{"T", DType::kFloat32}}); }).find("requested shape has 4"),
            std::string::npos);
  EXPECT_NE(error_of([&] { t.op("Reshape", {x, t.ints({-1, -1})}, {{"T", DType::kFloat32}}); }).find("Only one"),
            std::string::npos);
  EXPECT_NE(error_of([&] { t.op("Transpose", {x, t.ints({0, 0})}, {{"T", DType::kFloat32}}); }).find("duplicated"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              t.op("StridedSlice", {x, t.ints({5}), t.ints({6}), t.ints({1})},
                   {{"T", DType::kFloat32}, {"Index", DType::kInt32}, {"shrink_axis_mask", int64_t{1}}});
            }).find("out of bounds"),
            std::string::npos);
}

TEST(ArrayOps, UnpackSplitAndWhere) {
  TestGraph t;
  Value x = t.input(iota({2, 3}));
  Node* u = t.op("Unpack", {x}, {{"T", DType::kFloat32}, {"num", int64_t{3}}, {"axis", int64_t{1}}});
  ASSERT_EQ(u->num_outputs(), 3);
  EXPECT_EQ(u->def->flat_output_index(*u, "output", 2), 2);
  std::vector<Tensor> outs = interpret(t.g, t.feeds, {u->out(0), u->out(2)}, {}, nullptr);
  EXPECT_EQ(floats(outs[0]), (std::vector<float>{0, 3}));
  EXPECT_EQ(floats(outs[1]), (std::vector<float>{2, 5}));
  Node* w = t.op("Where", {x}, {{"T", DType::kFloat32}});
  Tensor where = t.run1(w->out());
  EXPECT_EQ(where.shape(), (Shape{5, 2}));
  EXPECT_EQ(ints_of(where), (std::vector<int64_t>{0, 1, 0, 2, 1, 0, 1, 1, 1, 2}));
}

TEST(ArrayOps, SpaceToBatchRoundTrip) {
  TestGraph t;
  Value x = t.input(iota({1, 4, 6, 2}));
  Value block = t.ints({2, 3});
  Value pads = t.constant(Tensor::from_vector<int32_t>({1, 1, 0, 3}, {2, 2}));
  Node* s2b = t.op("SpaceToBatchND", {x, block, pads}, {{"T", DType::kFloat32}});
  EXPECT_EQ(shape_of(s2b), PartialShape({6, 3, 3, 2}));
  Node* b2s = t.op("BatchToSpaceND", {s2b->out(), block, pads}, {{"T", DType::kFloat32}});
  EXPECT_EQ(floats(t.run1(b2s->out())), floats(iota({1, 4, 6, 2})));
  Node* d = t.op("SpaceToDepth", {x}, {{"T", DType::kFloat32}, {"block_size", int64_t{2}}});
  Node* back = t.op("DepthToSpace", {d->out()}, {{"T", DType::kFloat32}, {"block_size", int64_t{2}}});
  EXPECT_EQ(shape_of(d), PartialShape({1, 2, 3, 8}));
  EXPECT_EQ(floats(t.run1(back->out())), floats(iota({1, 4, 6, 2})));
}

TEST(ArrayOps, RangeAndOneHot) {
  TestGraph t;
  Node* r = t.op("Range", {t.scalar(10), t.scalar(-5), t.scalar(-4)}, {{"Tidx", DType::kInt32}});
  EXPECT_EQ(shape_of(r), PartialShape({4}));
  ASSERT_TRUE(r->known.at(0).valid());
  EXPECT_EQ(ints_of(r->known[0]), (std::vector<int64_t>{10, 6, 2, -2}));
  Value idx = t.input(Tensor::from_vector<int64_t>({2, -1, 0}, {3}));
  Node* oh = t.op("OneHot", {idx, t.scalar(3), t.constant(Tensor::scalar<float>(5)), t.constant(Tensor::scalar<float>(-1))},
                  {{"T", DType::kFloat32}, {"axis", int64_t{0}}});
  EXPECT_EQ(shape_of(oh), PartialShape({3, 3}));
  EXPECT_EQ(floats(t.run1(oh->out())), (std::vector<float>{-1, -1, 5, -1, -1, -1, 5, -1, -1}));
}

}  // namespace
}  // namespace tessera
