// The stateful TF1 counter fixture through the C++ Session API: variables persist across
// calls within a session, and each session starts from the saved value.
#include <gtest/gtest.h>

#include "runtime/model.h"

namespace tessera {
namespace {

const std::string kServables = std::string(TESSERA_SOURCE_DIR) +
                               "/../shared/testdata/tf/serving/tensorflow_serving/servables/tensorflow/testdata/";

float scalar(const TensorMap& out) { return out.at("output").data<float>()[0]; }

TEST(SavedModelCounter, GetIncrResetIncrIncrBy) {
  auto model = Model::load(kServables + "saved_model_counter/00000123");
  Session session(model);
  EXPECT_EQ(scalar(session.run("get_counter", {})), 0.0f);
  EXPECT_EQ(scalar(session.run("incr_counter", {})), 1.0f);
  EXPECT_EQ(scalar(session.run("reset_counter", {})), 0.0f);
  EXPECT_EQ(scalar(session.run("incr_counter", {})), 1.0f);
  EXPECT_EQ(scalar(session.run("incr_counter_by", {{"delta", Tensor::scalar<float>(3.0f)}})), 4.0f);
  EXPECT_EQ(scalar(session.run("get_counter", {})), 4.0f);

  Session fresh(model);  // a new session starts from the saved value
  EXPECT_EQ(scalar(fresh.run("get_counter", {})), 0.0f);
}

TEST(SavedModelErrors, BadHalfPlusTwoNamesWhatIsMissing) {
  try {
    Model::load(kServables + "bad_half_plus_two/00000123");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing saved_model.pb"), std::string::npos) << e.what();
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

TEST(SavedModelErrors, SessionRejectsWrongInputs) {
  auto model = Model::load(kServables + "saved_model_half_plus_two_cpu/00000123");
  Session session(model);
  EXPECT_THROW(session.run("serving_default", {}), Error);
  EXPECT_THROW(session.run("serving_default", {{"x", Tensor::from_vector<int32_t>({1}, {1, 1})}}), Error);
  // Shapes the SignatureDef does not declare run when the graph takes them, as in TF (x:0 is an
  // Identity of the parsed examples, not a placeholder): [1,2] -> y of shape [1,2].
  auto other = session.run("serving_default", {{"x", Tensor::from_vector<float>({1, 2}, {1, 2})}});
  EXPECT_EQ(other.at("y").shape(), (Shape{1, 2}));
  EXPECT_EQ(other.at("y").data<float>()[1], 3.0f);
  auto out = session.run("serving_default", {{"x", Tensor::from_vector<float>({2, 4}, {2, 1})}});
  EXPECT_EQ(out.at("y").data<float>()[0], 3.0f);
  EXPECT_EQ(out.at("y").data<float>()[1], 4.0f);
}

}  // namespace
}  // namespace tessera
