#include "train/example.h"

#include <gtest/gtest.h>

#include "support/error.h"

namespace tessera::train {
namespace {

std::string ex(float x0, float x1, int64_t label, std::vector<int64_t> tags, std::string name) {
  return make_example({{"x", Tensor::from_vector<float>({x0, x1})},
                       {"label", Tensor::from_vector<int64_t>({label})},
                       {"tags", Tensor::from_vector<int64_t>(tags, {static_cast<int64_t>(tags.size())})},
                       {"name", Tensor::string_scalar(name)}});
}

TEST(Example, ParsesFixedAndVarLenIntoBatches) {
  const std::string a = ex(1, 2, 3, {7}, "a"), b = ex(4, 5, 6, {8, 9, 10}, "bee");
  auto specs = {parse_feature_spec("x:float32:2"), parse_feature_spec("label:int64:"),
                parse_feature_spec("tags:int64:var"), parse_feature_spec("name:string:")};
  auto out = parse_examples({a, b}, specs);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(std::vector<float>(out[0].data<float>(), out[0].data<float>() + 4), (std::vector<float>{1, 2, 4, 5}));
  EXPECT_EQ(out[1].shape(), (Shape{2}));
  EXPECT_EQ(out[1].data<int64_t>()[1], 6);
  EXPECT_EQ(out[2].shape(), (Shape{2, 3}));  // padded to the longest
  EXPECT_EQ(std::vector<int64_t>(out[2].data<int64_t>(), out[2].data<int64_t>() + 6),
            (std::vector<int64_t>{7, 0, 0, 8, 9, 10}));
  EXPECT_EQ(out[3].strings(), (std::vector<std::string>{"a", "bee"}));
}

TEST(Example, DefaultsFillMissingFeatures) {
  const std::string e = make_example({{"other", Tensor::from_vector<float>({1.0f})}});
  auto out = parse_examples({e}, {parse_feature_spec("x:float32:2x2:0.5"), parse_feature_spec("s:string::none")});
  EXPECT_EQ(out[0].shape(), (Shape{1, 2, 2}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(out[0].data<float>()[i], 0.5f);
  EXPECT_EQ(out[1].strings()[0], "none");
}

TEST(Example, ErrorsNameTheExampleAndFeature) {
  const std::string good = ex(1, 2, 3, {1}, "a");
  const std::string wrong_len = make_example({{"x", Tensor::from_vector<float>({1, 2, 3})}});
  auto expect_msg = [](auto&& f, const std::string& needle) {
    try {
      f();
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_msg([&] { parse_examples({good, wrong_len}, {parse_feature_spec("x:float32:2")}); },
             "example 1: feature 'x' has 3 values");
  expect_msg([&] { parse_examples({good}, {parse_feature_spec("missing:float32:")}); },
             "required feature 'missing'");
  expect_msg([&] { parse_examples({good}, {parse_feature_spec("x:int64:2")}); }, "holds a float_list");
  expect_msg([&] { parse_examples({std::string("\xff\xff\xff", 3)}, {parse_feature_spec("x:float32:2")}); },
             "not a valid serialized tf.train.Example");
  FeatureSpec strict = parse_feature_spec("tags:int64:var");
  strict.pad_varlen = false;
  expect_msg([&] { parse_examples({good, ex(1, 2, 3, {1, 2}, "b")}, {strict}); }, "variable lengths");
  EXPECT_THROW(parse_feature_spec("x:float16:2"), Error);
  EXPECT_THROW(parse_feature_spec("x:float32:2y"), Error);
}

}  // namespace
}  // namespace tessera::train
