// TF Serving's REST JSON <-> API messages (src/serve/json_codec.*), checked against the
// request/response pairs TF Serving documents and tests, and against its metadata fixture.
#include "serve/json_codec.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace tessera::serve {
namespace {

namespace tf = ::tensorflow;

tf::TensorInfo info(tf::DataType dtype) {
  tf::TensorInfo t;
  t.set_dtype(dtype);
  return t;
}

// half_plus_two's serving_default: x (float) -> y.
tf::SignatureDef one_input_sig(tf::DataType dtype = tf::DT_FLOAT) {
  tf::SignatureDef sig;
  (*sig.mutable_inputs())["x"] = info(dtype);
  (*sig.mutable_outputs())["y"] = info(tf::DT_FLOAT);
  return sig;
}

SignatureLookup lookup_of(tf::SignatureDef sig, std::string* asked = nullptr) {
  return [sig, asked](const std::string& name, tf::SignatureDef* out) {
    if (asked) *asked = name;
    *out = sig;
    return ServeStatus{};
  };
}

std::vector<float> floats(const tf::TensorProto& t) {
  std::vector<float> v(t.tensor_content().size() / 4);
  std::memcpy(v.data(), t.tensor_content().data(), v.size() * 4);
  return v;
}

std::vector<int64_t> dims(const tf::TensorProto& t) {
  std::vector<int64_t> d;
  for (const auto& x : t.tensor_shape().dim()) d.push_back(x.size());
  return d;
}

tf::TensorProto float_tensor(std::vector<int64_t> shape, std::vector<float> values) {
  tf::TensorProto t;
  t.set_dtype(tf::DT_FLOAT);
  for (int64_t d : shape) t.mutable_tensor_shape()->add_dim()->set_size(d);
  t.set_tensor_content(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
  return t;
}

ServeStatus parse(const std::string& body, tfs::PredictRequest* req, PredictFormat* fmt,
                  tf::SignatureDef sig = one_input_sig()) {
  return predict_request_from_json(body, lookup_of(sig), req, fmt);
}

TEST(JsonCodec, RowFormatDocumentedExample) {
  tfs::PredictRequest req;
  PredictFormat fmt;
  std::string asked = "unset";
  ASSERT_TRUE(predict_request_from_json(R"({"instances": [2.0, 3.0, 4.0]})", lookup_of(one_input_sig(), &asked),
                                        &req, &fmt)
                  .ok());
  EXPECT_EQ(asked, "");  // no signature_name: the default
  EXPECT_EQ(fmt, PredictFormat::kRow);
  const auto& x = req.inputs().at("x");
  EXPECT_EQ(x.dtype(), tf::DT_FLOAT);
  EXPECT_EQ(dims(x), (std::vector<int64_t>{3}));
  EXPECT_EQ(floats(x), (std::vector<float>{2, 3, 4}));

  tfs::PredictResponse resp;
  (*resp.mutable_outputs())["y"] = float_tensor({3}, {3.0f, 3.5f, 4.0f});
  std::string json;
  ASSERT_TRUE(predict_response_to_json(resp, fmt, &json).ok());
  EXPECT_EQ(json, R"({"predictions":[3.0,3.5,4.0]})");
}

TEST(JsonCodec, ColumnarFormatDocumentedExample) {
  tfs::PredictRequest req;
  PredictFormat fmt;
  ASSERT_TRUE(parse(R"({"signature_name": "serving_default", "inputs": [2.0, 3.0, 4.0]})", &req, &fmt).ok());
  EXPECT_EQ(fmt, PredictFormat::kColumnar);
  EXPECT_EQ(req.model_spec().signature_name(), "serving_default");
  tfs::PredictResponse resp;
  (*resp.mutable_outputs())["y"] = float_tensor({3}, {3.0f, 3.5f, 4.0f});
  std::string json;
  ASSERT_TRUE(predict_response_to_json(resp, fmt, &json).ok());
  EXPECT_EQ(json, R"({"outputs":[3.0,3.5,4.0]})");
}

TEST(JsonCodec, RowsKeepTheirInnerShape) {
  tfs::PredictRequest req;
  PredictFormat fmt;
  ASSERT_TRUE(parse(R"({"instances": [[1, 2], [3, 4], [5, 6]]})", &req, &fmt).ok());
  EXPECT_EQ(dims(req.inputs().at("x")), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(floats(req.inputs().at("x")), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  tfs::PredictResponse resp;
  (*resp.mutable_outputs())["y"] = float_tensor({3, 2}, {1, 2, 3, 4, 5, 6});
  std::string json;
  ASSERT_TRUE(predict_response_to_json(resp, fmt, &json).ok());
  EXPECT_EQ(json, R"({"predictions":[[1.0,2.0],[3.0,4.0],[5.0,6.0]]})");
}

TEST(JsonCodec, NamedInputsInBothForms) {
  tf::SignatureDef sig;
  (*sig.mutable_inputs())["a"] = info(tf::DT_INT32);
  (*sig.mutable_inputs())["b"] = info(tf::DT_STRING);
  tfs::PredictRequest req;
  PredictFormat fmt;
  ASSERT_TRUE(parse(R"({"instances": [{"a": 1, "b": "x"}, {"a": -2, "b": {"b64": "AAE="}}]})", &req, &fmt, sig).ok());
  const auto& a = req.inputs().at("a");
  ASSERT_EQ(a.tensor_content().size(), 8u);
  int32_t av[2];
  std::memcpy(av, a.tensor_content().data(), 8);
  EXPECT_EQ(av[0], 1);
  EXPECT_EQ(av[1], -2);
  const auto& b = req.inputs().at("b");
  ASSERT_EQ(b.string_val_size(), 2);
  EXPECT_EQ(b.string_val(0), "x");
  EXPECT_EQ(b.string_val(1), std::string("\0\1", 2));

  tfs::PredictRequest col;
  ASSERT_TRUE(parse(R"({"inputs": {"a": [[1, 2, 3]], "b": "s"}})", &col, &fmt, sig).ok());
  EXPECT_EQ(dims(col.inputs().at("a")), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(dims(col.inputs().at("b")), (std::vector<int64_t>{}));  // columnar: no batch dim added

  tfs::PredictRequest bad;
  auto st = parse(R"({"instances": [{"a": 1, "b": "x"}, {"a": 2}]})", &bad, &fmt, sig);
  EXPECT_EQ(st.code, tf::error::INVALID_ARGUMENT);
  st = parse(R"({"inputs": {"c": 1}})", &bad, &fmt, sig);
  EXPECT_EQ(st.code, tf::error::INVALID_ARGUMENT);
  EXPECT_NE(st.message.find("'c'"), std::string::npos) << st.message;
  st = parse(R"({"instances": [1, 2]})", &bad, &fmt, sig);  // two inputs need named objects
  EXPECT_EQ(st.code, tf::error::INVALID_ARGUMENT);
}

TEST(JsonCodec, RejectsBadBodies) {
  const char* bad[] = {
      R"({"instances": [1], "inputs": [1]})",  // both forms
      R"({"signature_name": "x"})",             // neither
      R"({"instances": [1, 2)",                 // malformed JSON
      R"([1, 2])",                              // not an object
      R"({"instances": ["a"]})",                // string into a float input
      R"({"instances": [[1, 2], [3]]})",        // ragged rows
      R"({"inputs": [[1, 2], [3]]})",           // ragged tensor
      R"({"inputs": [[1, [2]]]})",              // mixed depth
      R"({"instances": []})",                   // no rows
      R"({"instances": [1], "signature_name": 3})",
      R"({"instances": [null]})",
  };
  for (const char* body : bad) {
    tfs::PredictRequest req;
    PredictFormat fmt;
    ServeStatus st = parse(body, &req, &fmt);
    EXPECT_EQ(st.code, tf::error::INVALID_ARGUMENT) << body;
    EXPECT_FALSE(st.message.empty()) << body;
  }
  tfs::PredictRequest req;
  PredictFormat fmt;
  ServeStatus st = parse(R"({"instances": [1, 2)", &req, &fmt);
  EXPECT_NE(st.message.find("JSON Parse error"), std::string::npos) << st.message;
}

TEST(JsonCodec, IntegerRangesAndTypes) {
  tfs::PredictRequest req;
  PredictFormat fmt;
  EXPECT_TRUE(parse(R"({"inputs": [0, 255]})", &req, &fmt, one_input_sig(tf::DT_UINT8)).ok());
  EXPECT_EQ(req.inputs().at("x").tensor_content(), std::string("\x00\xff", 2));
  EXPECT_FALSE(parse(R"({"inputs": [256]})", &req, &fmt, one_input_sig(tf::DT_UINT8)).ok());
  EXPECT_FALSE(parse(R"({"inputs": [-1]})", &req, &fmt, one_input_sig(tf::DT_UINT8)).ok());
  EXPECT_FALSE(parse(R"({"inputs": [1.5]})", &req, &fmt, one_input_sig(tf::DT_INT32)).ok());
  EXPECT_FALSE(parse(R"({"inputs": [1]})", &req, &fmt, one_input_sig(tf::DT_BOOL)).ok());
  EXPECT_TRUE(parse(R"({"inputs": [true, false]})", &req, &fmt, one_input_sig(tf::DT_BOOL)).ok());
  EXPECT_EQ(req.inputs().at("x").tensor_content(), std::string("\x01\x00", 2));
  EXPECT_TRUE(parse(R"({"inputs": [9223372036854775807]})", &req, &fmt, one_input_sig(tf::DT_INT64)).ok());
  EXPECT_FALSE(parse(R"({"inputs": [1]})", &req, &fmt, one_input_sig(tf::DT_COMPLEX64)).ok());
}

TEST(JsonCodec, NanAndInfinityTokens) {
  tfs::PredictRequest req;
  PredictFormat fmt;
  ASSERT_TRUE(parse(R"({"inputs": [NaN, Infinity, -Infinity, 1e-3]})", &req, &fmt).ok());
  auto v = floats(req.inputs().at("x"));
  ASSERT_EQ(v.size(), 4u);
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], INFINITY);
  EXPECT_EQ(v[2], -INFINITY);
  EXPECT_EQ(v[3], 1e-3f);
  tfs::PredictResponse resp;
  (*resp.mutable_outputs())["y"] = float_tensor({4}, v);
  std::string json;
  ASSERT_TRUE(predict_response_to_json(resp, PredictFormat::kColumnar, &json).ok());
  EXPECT_EQ(json, R"({"outputs":[NaN,Infinity,-Infinity,0.001]})");
}

TEST(JsonCodec, BytesOutputsAreBase64AndOthersEscaped) {
  tfs::PredictResponse resp;
  tf::TensorProto s;
  s.set_dtype(tf::DT_STRING);
  s.mutable_tensor_shape()->add_dim()->set_size(1);
  s.add_string_val(std::string("\xff\x00q", 3));
  (*resp.mutable_outputs())["img_bytes"] = s;
  tf::TensorProto t = s;
  t.set_string_val(0, "a\"b\n");
  (*resp.mutable_outputs())["text"] = t;
  std::string json;
  ASSERT_TRUE(predict_response_to_json(resp, PredictFormat::kRow, &json).ok());
  EXPECT_EQ(json, R"({"predictions":[{"img_bytes":{"b64":"/wBx"},"text":"a\"b\n"}]})");
}

TEST(JsonCodec, TypedFieldsAndSplatOutputs) {
  tfs::PredictResponse resp;
  tf::TensorProto t;
  t.set_dtype(tf::DT_INT64);
  t.mutable_tensor_shape()->add_dim()->set_size(2);
  t.mutable_tensor_shape()->add_dim()->set_size(2);
  t.add_int64_val(7);  // one value fills the shape (TF's splat rule)
  (*resp.mutable_outputs())["k"] = t;
  tf::TensorProto b;
  b.set_dtype(tf::DT_BOOL);
  b.mutable_tensor_shape()->add_dim()->set_size(2);
  b.add_bool_val(true);
  b.add_bool_val(false);
  (*resp.mutable_outputs())["b"] = b;
  std::string json;
  ASSERT_TRUE(predict_response_to_json(resp, PredictFormat::kColumnar, &json).ok());
  EXPECT_EQ(json, R"({"outputs":{"b":[true,false],"k":[[7,7],[7,7]]}})");
  ASSERT_TRUE(predict_response_to_json(resp, PredictFormat::kRow, &json).ok());
  EXPECT_EQ(json, R"({"predictions":[{"b":true,"k":[7,7]},{"b":false,"k":[7,7]}]})");
}

TEST(JsonCodec, RowFormatNeedsOneBatchSize) {
  tfs::PredictResponse resp;
  (*resp.mutable_outputs())["a"] = float_tensor({2}, {1, 2});
  (*resp.mutable_outputs())["b"] = float_tensor({3}, {1, 2, 3});
  std::string json;
  ServeStatus st = predict_response_to_json(resp, PredictFormat::kRow, &json);
  EXPECT_EQ(st.code, tf::error::INVALID_ARGUMENT);
  EXPECT_NE(st.message.find("inconsistent batch size"), std::string::npos) << st.message;
  tfs::PredictResponse scalar;
  (*scalar.mutable_outputs())["s"] = float_tensor({}, {1});
  EXPECT_FALSE(predict_response_to_json(scalar, PredictFormat::kRow, &json).ok());
  ASSERT_TRUE(predict_response_to_json(scalar, PredictFormat::kColumnar, &json).ok());
  EXPECT_EQ(json, R"({"outputs":1.0})");
  // A tensor_content of the wrong size is an error, not a read past the end.
  tf::TensorProto broken = float_tensor({4}, {1, 2});
  (*scalar.mutable_outputs())["s"] = broken;
  EXPECT_FALSE(predict_response_to_json(scalar, PredictFormat::kColumnar, &json).ok());
}

TEST(JsonCodec, ClassifyAndRegressBodies) {
  tfs::ClassificationRequest req;
  ASSERT_TRUE(classification_request_from_json(R"({"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]})",
                                               &req)
                  .ok());
  EXPECT_EQ(req.model_spec().signature_name(), "classify_x_to_y");
  ASSERT_EQ(req.input().example_list().examples_size(), 1);
  const auto& f = req.input().example_list().examples(0).features().feature().at("x");
  ASSERT_EQ(f.float_list().value_size(), 1);
  EXPECT_EQ(f.float_list().value(0), 2.0f);

  tfs::RegressionRequest reg;
  ASSERT_TRUE(regression_request_from_json(
                  R"({"context": {"c": "s"}, "examples": [{"n": 3, "v": [1.5, 2], "b": {"b64": "AA=="}}]})", &reg)
                  .ok());
  const auto& l = reg.input().example_list_with_context();
  EXPECT_EQ(l.context().features().feature().at("c").bytes_list().value(0), "s");
  const auto& ex = l.examples(0).features().feature();
  EXPECT_EQ(ex.at("n").int64_list().value(0), 3);
  EXPECT_EQ(ex.at("v").float_list().value_size(), 2);  // one float makes the list float
  EXPECT_EQ(ex.at("b").bytes_list().value(0), std::string("\0", 1));

  EXPECT_FALSE(regression_request_from_json(R"({"examples": {"x": 1}})", &reg).ok());
  EXPECT_FALSE(regression_request_from_json(R"({"instances": [1]})", &reg).ok());
  EXPECT_FALSE(regression_request_from_json(R"({"examples": [{"x": [1, "a"]}]})", &reg).ok());
  EXPECT_FALSE(regression_request_from_json(R"({"context": {"x": 1}, "examples": [{"x": 2}]})", &reg).ok());

  tfs::ClassificationResponse cr;
  auto* c = cr.mutable_result()->add_classifications()->add_classes();
  c->set_score(3.0f);
  EXPECT_EQ(classification_response_to_json(cr), R"({"results":[[["",3.0]]]})");
  tfs::RegressionResponse rr;
  rr.mutable_result()->add_regressions()->set_value(3.0f);
  EXPECT_EQ(regression_response_to_json(rr), R"({"results":[3.0]})");
}

TEST(JsonCodec, ModelStatusAsTfServingPrintsIt) {
  tfs::GetModelStatusResponse resp;
  auto* v = resp.add_model_version_status();
  v->set_version(123);
  v->set_state(tfs::ModelVersionStatus::AVAILABLE);
  v->mutable_status();
  rapidjson::Document got, want;
  got.Parse(model_status_to_json(resp).c_str());
  want.Parse(R"({"model_version_status":[{"version":"123","state":"AVAILABLE",
                 "status":{"error_code":"OK","error_message":""}}]})");
  EXPECT_TRUE(got == want) << model_status_to_json(resp);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string to_string(const rapidjson::Value& v) {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  v.Accept(w);
  return b.GetString();
}

TEST(JsonCodec, MetadataEqualsTfServingFixture) {
  std::string text = read_file(std::string(TESSERA_SOURCE_DIR) +
                               "/../shared/testdata/tf/serving/tensorflow_serving/servables/tensorflow/testdata/"
                               "half_plus_two_model_metadata.json");
  if (text.empty()) GTEST_SKIP() << "fixture not found";
  rapidjson::Document want;
  want.Parse(text.c_str());
  ASSERT_FALSE(want.HasParseError());
  // Rebuild the response from the fixture's parts, then print it the way the server does.
  tfs::GetModelMetadataResponse resp;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(to_string(want["model_spec"]), resp.mutable_model_spec())
                  .ok());
  tfs::SignatureDefMap sigs;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(to_string(want["metadata"]["signature_def"]), &sigs).ok());
  ASSERT_EQ(sigs.signature_def_size(), 5);
  (*resp.mutable_metadata())["signature_def"].PackFrom(sigs);
  rapidjson::Document got;
  got.Parse(model_metadata_to_json(resp).c_str());
  ASSERT_FALSE(got.HasParseError());
  EXPECT_TRUE(got == want) << model_metadata_to_json(resp).substr(0, 400);
}

TEST(JsonCodec, Base64RoundTrip) {
  for (std::string s : {std::string(""), std::string("a"), std::string("ab"), std::string("abc"),
                        std::string("\0\xff\x10\x80", 4)}) {
    std::string back;
    ASSERT_TRUE(base64_decode(base64_encode(s), &back));
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(base64_encode("abcd"), "YWJjZA==");
  std::string out;
  EXPECT_TRUE(base64_decode("YWJjZA", &out));  // padding optional
  EXPECT_EQ(out, "abcd");
  EXPECT_FALSE(base64_decode("YW!j", &out));
  EXPECT_FALSE(base64_decode("Y", &out));
  EXPECT_FALSE(base64_decode("YQ==YQ==", &out));
}

// ---- the predict fast path (one unnamed list of numbers, no DOM) against the general path ----

struct Outcome {
  ServeStatus status;
  std::string request;  // serialized (deterministic), when ok
  PredictFormat format = PredictFormat::kRow;
  int lookups = 0;
};

Outcome run_path(bool fast, const std::string& body, const tf::SignatureDef& sig, ServeStatus lookup_status = {}) {
  Outcome o;
  SignatureLookup lookup = [&](const std::string& name, tf::SignatureDef* out) {
    ++o.lookups;
    *out = sig;
    return lookup_status;
  };
  tfs::PredictRequest req;
  o.status = fast ? predict_request_from_json(body, lookup, &req, &o.format)
                  : predict_request_from_json_general(body, lookup, &req, &o.format);
  if (o.status.ok()) {
    google::protobuf::io::StringOutputStream stream(&o.request);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    req.SerializeToCodedStream(&coded);
  }
  return o;
}

// Both paths give the same answer: status, message, request bytes, format, one lookup each.
void expect_same(const std::string& body, const tf::SignatureDef& sig, ServeStatus lookup_status = {}) {
  Outcome f = run_path(true, body, sig, lookup_status), g = run_path(false, body, sig, lookup_status);
  EXPECT_EQ(f.status.code, g.status.code) << body;
  EXPECT_EQ(f.status.message, g.status.message) << body;
  EXPECT_TRUE(f.request == g.request) << body;
  if (g.status.ok()) EXPECT_EQ(f.format, g.format) << body;
  EXPECT_EQ(f.lookups, g.lookups) << body;
}

bool fast(const std::string& body, const tf::SignatureDef& sig = one_input_sig()) {
  return predict_json_takes_fast_path(body, lookup_of(sig));
}

TEST(JsonCodecFastPath, TakesTheCommonBodies) {
  EXPECT_TRUE(fast(R"({"instances": [2.0, 3.0, 4.0]})"));
  EXPECT_TRUE(fast(R"({"signature_name": "serving_default", "instances": [[[0.6607986688613892, -0.11574298143386841]]]})"));
  EXPECT_TRUE(fast(R"({"inputs": [[1, 2], [3, 4]]})"));
  EXPECT_TRUE(fast(R"({"inputs": 5})"));
  EXPECT_TRUE(fast(" {\n\t\"instances\" : [ [ ] , [ ] ] \r\n} "));
  EXPECT_TRUE(fast(R"({"inputs": [1, -2, 3]})", one_input_sig(tf::DT_INT32)));
  // Outside its subset: the general path answers.
  EXPECT_FALSE(fast(R"({"instances": [NaN]})"));
  EXPECT_FALSE(fast(R"({"instances": [1], "extra": true})"));
  EXPECT_FALSE(fast(R"({"instances": [{"x": 1}]})"));
  EXPECT_FALSE(fast(R"({"signature_name": "s\u0065rving_default", "instances": [1]})"));
  EXPECT_FALSE(fast(R"({"instances": [12345678901]})"));
  EXPECT_FALSE(fast(R"({"instances": [1.5]})", one_input_sig(tf::DT_INT32)));
  EXPECT_FALSE(fast(R"({"instances": [1]})", one_input_sig(tf::DT_STRING)));
}

TEST(JsonCodecFastPath, SameAnswersAsTheGeneralPath) {
  tf::SignatureDef two;
  (*two.mutable_inputs())["a"] = info(tf::DT_FLOAT);
  (*two.mutable_inputs())["b"] = info(tf::DT_FLOAT);
  const tf::SignatureDef sigs[] = {one_input_sig(tf::DT_FLOAT), one_input_sig(tf::DT_DOUBLE), one_input_sig(tf::DT_INT32),
                                   one_input_sig(tf::DT_INT8),  one_input_sig(tf::DT_UINT8),  one_input_sig(tf::DT_INT64),
                                   one_input_sig(tf::DT_UINT64), one_input_sig(tf::DT_BOOL),  one_input_sig(tf::DT_STRING),
                                   one_input_sig(tf::DT_HALF),  two};
  const char* bodies[] = {
      R"({"instances": [2.0, 3.0, 4.0]})",
      R"({"signature_name": "serving_default", "instances": [[1, 2], [3, 4], [5, 6]]})",
      R"({"instances": [[1, 2], [3, 4]], "signature_name": "other"})",
      R"({"inputs": [[1.5, -2.25], [3e2, 4E-2]]})",
      R"({"inputs": 5})",
      R"({"inputs": -0.0})",
      R"({"inputs": -0})",
      R"({"inputs": []})",
      R"({"inputs": [[], []]})",
      R"({"instances": [[], []]})",
      R"({"instances": [[[]], [[]]]})",
      R"({"instances": [[], [1]]})",
      R"({"instances": [[1], []]})",
      R"({"instances": [[[]], []]})",
      R"({"instances": [[1, [2]]]})",
      R"({"instances": [[[2], 1]]})",
      R"({"instances": [[[], 1]]})",
      R"({"instances": [[1, []]]})",
      R"({"instances": [[1, 2], [3]]})",
      R"({"instances": [1, [2]]})",
      R"({"instances": []})",
      R"({"instances": 5})",
      R"({"instances": "x"})",
      R"({"instances": [1], "inputs": [1]})",
      R"({"instances": [1], "instances": [[2, 3]]})",
      R"({"signature_name": "a", "signature_name": "b", "instances": [1]})",
      R"({"signature_name": 3, "instances": [1]})",
      R"({"signature_name": ["x"], "instances": [1]})",
      R"({"signature_name": {"x": 1}, "instances": [1]})",
      R"({"signature_name": "x"})",
      R"({})",
      R"([1, 2])",
      R"(5)",
      R"()",
      R"(   )",
      R"({"instances": [1, 2)",
      R"({"instances": [1, 2]} x)",
      R"({"instances": [1, 2]},)",
      R"({"instances": [1,]})",
      R"({"instances": [1 2]})",
      R"({"instances": [1],})",
      R"({"instances" [1]})",
      R"({instances: [1]})",
      R"({"instances": [01]})",
      R"({"instances": [1.]})",
      R"({"instances": [.5]})",
      R"({"instances": [1.e5]})",
      R"({"instances": [1e]})",
      R"({"instances": [1e+]})",
      R"({"instances": [-]})",
      R"({"instances": [--1]})",
      R"({"instances": [+1]})",
      R"({"instances": [1.5.3]})",
      R"({"instances": [1x]})",
      R"({"instances": [0x10]})",
      R"({"instances": [NaN, Infinity, -Infinity]})",
      R"({"instances": [Nan]})",
      R"({"instances": [-Infinit]})",
      R"({"instances": [null]})",
      R"({"instances": [true, false]})",
      R"({"instances": ["a", "b"]})",
      R"({"instances": [{"b64": "AAE="}]})",
      R"({"instances": [{"a": 1, "b": 2}]})",
      R"({"inputs": {"a": [1], "b": [2]}})",
      R"({"instances": [1], "extra": {"k": [1, "x", null, true]}})",
      R"({"extra": [1, 2], "instances": [1]})",
      R"({"instances": [1e308, 1e309, -1e309]})",
      R"({"instances": [1e400]})",
      R"({"instances": [1e-400, 1.5e-320, 4.9e-324]})",
      R"({"instances": [1e999]})",
      R"({"instances": [1e0999]})",
      R"({"instances": [1.0e-0999]})",
      R"({"instances": [123456789, -123456789, 999999999, -999999999]})",
      R"({"instances": [1234567890, -2147483648, 2147483647, 4294967295, 4294967296]})",
      R"({"instances": [9223372036854775807, -9223372036854775808, 18446744073709551615, 18446744073709551616]})",
      R"({"instances": [256, -1, 128, -129, 65536]})",
      R"({"instances": [0.1, 0.2, 0.30000000000000004, 1.7976931348623157e308, 2.2250738585072014e-308]})",
      R"({"instances": [0.000000000000000000000000000000000000000000001234567890123456789012345]})",
      R"({"instances": [123456789.12345678901234567890123, 99.99999999999999999999, 98.765432109876543210]})",
      R"({"instances": [0.6607986688613892, 0.18035154044628143, -0.11574298143386841, -2.164604425430298]})",
      "{\"instances\": [1]}\0trailing",
      "{\"instances\": [\"a\tb\"]}",
      "{\"signature_name\": \"caf\xc3\xa9\", \"instances\": [1]}",
      "{\"instances\":\n[1,\r2,\t3 ]\n}\n",
      "{\"instances\": [1]}\f",
  };
  for (const auto& sig : sigs) {
    for (const char* b : bodies) expect_same(b, sig);
  }
  // A body with an embedded NUL (RapidJSON stops reading there).
  expect_same(std::string("{\"instances\": [1]}\0junk", 22), one_input_sig());
  // The lookup's answer passes through, once.
  expect_same(R"({"instances": [1, 2]})", one_input_sig(), {tf::error::NOT_FOUND, "no such model"});
  expect_same(R"({"instances": [1, 2], "inputs": [1]})", one_input_sig(), {tf::error::NOT_FOUND, "no such model"});
  // Deep nesting.
  std::string deep = "{\"instances\": " + std::string(100, '[') + "1" + std::string(100, ']') + "}";
  expect_same(deep, one_input_sig());
}

// Numbers in every form json.dumps, numpy and hand-written clients produce, and random digit
// strings: the fast path's values are RapidJSON's, bit for bit (doubles, and floats from them).
TEST(JsonCodecFastPath, NumbersBitForBit) {
  std::mt19937_64 rng(7);
  std::vector<std::string> numbers;
  char buf[64];
  auto random_double = [&] {
    std::uniform_real_distribution<double> mant(-10, 10);
    std::uniform_int_distribution<int> e(-40, 40);
    return mant(rng) * std::pow(10.0, e(rng));
  };
  for (int i = 0; i < 4000; ++i) {
    double d = random_double();
    float f = static_cast<float>(d);
    const char* fmts[] = {"%.17g", "%.16g", "%.15g", "%.9g", "%.6g", "%.3f", "%.20f", "%.1e", "%.12E"};
    for (const char* fmt : fmts) {
      std::snprintf(buf, sizeof buf, fmt, fmt[2] == '9' ? static_cast<double>(f) : d);
      numbers.push_back(buf);
    }
    // repr of a float32 widened to double, as json.dumps writes numpy float32 data
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<double>(f));
    numbers.emplace_back(buf, r.ptr);
  }
  // Random digit strings: integer part, fraction with leading zeros, exponents.
  std::uniform_int_distribution<int> len(0, 30), dig(0, 9), coin(0, 3), ex(-340, 330);
  for (int i = 0; i < 20000; ++i) {
    std::string s = coin(rng) == 0 ? "-" : "";
    int n_int = len(rng) % 10;
    if (n_int == 0 || coin(rng) == 0) {
      s += '0';
    } else {
      s += static_cast<char>('1' + dig(rng) % 9);
      for (int k = 1; k < n_int; ++k) s += static_cast<char>('0' + dig(rng));
    }
    if (coin(rng) != 0) {
      s += '.';
      int zeros = coin(rng) == 0 ? len(rng) : 0;
      s += std::string(zeros, '0');
      int n = 1 + len(rng);
      for (int k = 0; k < n; ++k) s += static_cast<char>('0' + dig(rng));
    }
    if (coin(rng) == 0) s += (coin(rng) ? "e" : "E") + std::string(coin(rng) == 0 ? "+" : coin(rng) == 0 ? "-" : "") +
                              std::to_string(std::abs(ex(rng)) % (coin(rng) ? 40 : 1000));
    numbers.push_back(s);
  }
  // The digit-run boundaries of the 16-digit block and of RapidJSON's 2^53 bound.
  for (const char* s : {"0.9007199254740991", "0.9007199254740992", "0.90071992547409915", "9.007199254740991",
                        "9.0071992547409919", "0.99999999999999999", "99.99999999999999999", "0.0000000000000001",
                        "0.00000000000000001", "0.1234567890123456", "0.12345678901234567", "0.123456789012345678",
                        "1.0000000000000000", "0.0000000000000000", "0.00000000000000000000001", "8.9999999999999999"})
    numbers.push_back(s);

  for (tf::DataType dtype : {tf::DT_DOUBLE, tf::DT_FLOAT}) {
    for (size_t start = 0; start < numbers.size(); start += 500) {
      std::string body = "{\"inputs\": [";
      for (size_t i = start; i < std::min(numbers.size(), start + 500); ++i) body += (i > start ? ", " : "") + numbers[i];
      body += "]}";
      expect_same(body, one_input_sig(dtype));
    }
  }
  // Each number alone as well, so that no chunk's fallback hides a mismatch; most forms are the
  // fast path's (not: integer parts of 10+ digits, 4-digit exponents, values past 1e308).
  size_t taken = 0;
  for (const std::string& n : numbers) {
    std::string body = "{\"inputs\": [" + n + "]}";
    expect_same(body, one_input_sig(tf::DT_DOUBLE));
    taken += fast(body, one_input_sig(tf::DT_DOUBLE));
  }
  EXPECT_GT(taken, numbers.size() * 3 / 4);
  // Image-like float32 data as json.dumps writes it: all on the fast path.
  std::normal_distribution<float> normal(0, 3);
  std::string body = "{\"instances\": [";
  for (int i = 0; i < 3000; ++i) {
    auto r = std::to_chars(buf, buf + sizeof buf, static_cast<double>(normal(rng)));
    body += (i ? ", " : "") + std::string(buf, r.ptr);
  }
  body += "]}";
  EXPECT_TRUE(fast(body));
  expect_same(body, one_input_sig(tf::DT_FLOAT));
}

// Random edits of valid bodies (a character inserted, removed or replaced, from JSON's own
// alphabet): whatever the fast path accepts, RapidJSON accepts with the same values; whatever
// it rejects, the general path's answer (and message) comes back.
TEST(JsonCodecFastPath, MutatedBodiesSameAnswers) {
  const std::string seeds[] = {
      R"({"signature_name": "serving_default", "instances": [[[0.6607986688613892, -0.11574298143386841], [1e-3, 2]]]})",
      R"({"inputs": [[1, -2, 3], [4, 5, 60]], "x": {"y": ["z", 1.5]}})",
      R"({"instances": [-0.0, 12345.678901234567, 9.99e-5]})",
  };
  const std::string alphabet = "0123456789-+.eE[]{},:\" \tnulrtsaIfNy\\";
  std::mt19937 rng(11);
  int taken = 0;
  for (int i = 0; i < 6000; ++i) {
    std::string body = seeds[i % 3];
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % (body.size() + 1);
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0: body.insert(body.begin() + at, c); break;
        case 1: if (at < body.size()) body.erase(at, 1); break;
        default: if (at < body.size()) body[at] = c;
      }
    }
    for (tf::DataType dtype : {tf::DT_FLOAT, tf::DT_INT32}) expect_same(body, one_input_sig(dtype));
    taken += fast(body);
  }
  EXPECT_GT(taken, 600);  // ~1 in 6 edits leaves a body the fast path reads (a digit changed, ...)
}

TEST(JsonCodecFastPath, ProtoMatchesTheDocumentedShapeAndValues) {
  tfs::PredictRequest req;
  PredictFormat fmt;
  std::string body = R"({"signature_name": "s", "instances": [[[0.5, -1.25, 3]], [[4, 5e-1, -0.0]]]})";
  ASSERT_TRUE(fast(body));
  ASSERT_TRUE(parse(body, &req, &fmt).ok());
  EXPECT_EQ(fmt, PredictFormat::kRow);
  EXPECT_EQ(req.model_spec().signature_name(), "s");
  const auto& x = req.inputs().at("x");
  EXPECT_EQ(x.dtype(), tf::DT_FLOAT);
  EXPECT_EQ(dims(x), (std::vector<int64_t>{2, 1, 3}));
  auto v = floats(x);
  EXPECT_EQ(v, (std::vector<float>{0.5f, -1.25f, 3, 4, 0.5f, -0.0f}));
  EXPECT_TRUE(std::signbit(v[5]));
}

TEST(JsonCodec, HttpStatusMapping) {
  EXPECT_EQ(http_status_for(tf::error::OK), 200);
  EXPECT_EQ(http_status_for(tf::error::CANCELLED), 499);
  EXPECT_EQ(http_status_for(tf::error::INVALID_ARGUMENT), 400);
  EXPECT_EQ(http_status_for(tf::error::FAILED_PRECONDITION), 400);
  EXPECT_EQ(http_status_for(tf::error::NOT_FOUND), 404);
  EXPECT_EQ(http_status_for(tf::error::DEADLINE_EXCEEDED), 504);
  EXPECT_EQ(http_status_for(tf::error::RESOURCE_EXHAUSTED), 429);
  EXPECT_EQ(http_status_for(tf::error::UNAVAILABLE), 503);
  EXPECT_EQ(http_status_for(tf::error::UNIMPLEMENTED), 501);
  EXPECT_EQ(http_status_for(tf::error::INTERNAL), 500);
  EXPECT_EQ(error_json("a \"b\""), R"({"error":"a \"b\""})");
}

}  // namespace
}  // namespace tessera::serve

namespace tessera::serve {
namespace {

// Found by rest_request_fuzzer (which now compares the two paths): named inputs with an
// unknown name after a uint64 that does not fit.
TEST(JsonCodecFastPath, FuzzerFoundBodyAnswersAlike) {
  tensorflow::SignatureDef sig;
  (*sig.mutable_inputs())["u"].set_dtype(tensorflow::DT_UINT64);
  (*sig.mutable_inputs())["d"].set_dtype(tensorflow::DT_DOUBLE);
  (*sig.mutable_inputs())["i"].set_dtype(tensorflow::DT_INT32);
  SignatureLookup lookup = [&](const std::string&, tensorflow::SignatureDef* out) {
    *out = sig;
    return ServeStatus{};
  };
  const std::string body =
      R"({"inputs": {"u": [1854674407370551615], "dlllllllllll": 1e308, "i": [[1],[1]]}})";
  tfs::PredictRequest a, b;
  PredictFormat fa, fb;
  ServeStatus sa = predict_request_from_json(body, lookup, &a, &fa);
  ServeStatus sb = predict_request_from_json_general(body, lookup, &b, &fb);
  EXPECT_EQ(sa.code, sb.code);
  EXPECT_EQ(sa.message, sb.message);
  EXPECT_EQ(a.DebugString(), b.DebugString());
}

}  // namespace
}  // namespace tessera::serve
