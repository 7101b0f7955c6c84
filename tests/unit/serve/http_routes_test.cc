// REST routing (src/serve/http_routes.*) over a fake ServerCore: paths, methods, model spec
// plumbing (latest / version / label), TF Serving's status -> HTTP mapping, and the JSON
// answers of a half_plus_two-like model.
#include "serve/http_routes.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstring>
#include <mutex>

namespace tessera::serve {
namespace {

namespace tf = ::tensorflow;

// One model "default" (version 123, label "stable") whose serving_default computes
// y = 0.5 x + 2; anything else is NOT_FOUND with TF Serving's message.
class FakeCore : public ServerCore {
 public:
  ServeStatus resolve(const tfs::ModelSpec& spec) {
    std::lock_guard<std::mutex> lock(mu);
    last_spec = spec;
    std::string what = spec.has_version() ? "Specific(" + spec.name() + ", " + std::to_string(spec.version().value()) + ")"
                                          : "Latest(" + spec.name() + ")";
    if (spec.name() != "default" || (spec.has_version() && spec.version().value() != 123) ||
        (!spec.version_label().empty() && spec.version_label() != "stable"))
      return {tf::error::NOT_FOUND, "Servable not found for request: " + what};
    return {};
  }

  ServeStatus predict(const tfs::PredictRequest& req, tfs::PredictResponse* resp, const CallContext& ctx) override {
    if (auto st = resolve(req.model_spec()); !st.ok()) return st;
    {
      std::lock_guard<std::mutex> lock(mu);
      last_ctx_entrypoint = ctx.entrypoint;
      last_predict = req;
    }
    if (fail_next.code != tf::error::OK) return fail_next;
    const auto& x = req.inputs().at("x");
    std::vector<float> v(x.tensor_content().size() / 4);
    std::memcpy(v.data(), x.tensor_content().data(), v.size() * 4);
    for (float& f : v) f = 0.5f * f + 2;
    tf::TensorProto& y = (*resp->mutable_outputs())["y"];
    y.set_dtype(tf::DT_FLOAT);
    *y.mutable_tensor_shape() = x.tensor_shape();
    y.set_tensor_content(std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
    return {};
  }
  ServeStatus classify(const tfs::ClassificationRequest& req, tfs::ClassificationResponse* resp,
                       const CallContext&) override {
    if (auto st = resolve(req.model_spec()); !st.ok()) return st;
    float x = req.input().example_list().examples(0).features().feature().at("x").float_list().value(0);
    resp->mutable_result()->add_classifications()->add_classes()->set_score(0.5f * x + 2);
    return {};
  }
  ServeStatus regress(const tfs::RegressionRequest& req, tfs::RegressionResponse* resp, const CallContext&) override {
    if (auto st = resolve(req.model_spec()); !st.ok()) return st;
    float x = req.input().example_list().examples(0).features().feature().at("x").float_list().value(0);
    resp->mutable_result()->add_regressions()->set_value(0.5f * x + 2);
    return {};
  }
  ServeStatus multi_inference(const tfs::MultiInferenceRequest&, tfs::MultiInferenceResponse*,
                              const CallContext&) override {
    return {tf::error::UNIMPLEMENTED, "not in the fake"};
  }
  ServeStatus get_model_metadata(const tfs::GetModelMetadataRequest& req,
                                 tfs::GetModelMetadataResponse* resp) override {
    if (auto st = resolve(req.model_spec()); !st.ok()) return st;
    resp->mutable_model_spec()->set_name("default");
    resp->mutable_model_spec()->mutable_version()->set_value(123);
    tfs::SignatureDefMap sigs;
    auto& sig = (*sigs.mutable_signature_def())["serving_default"];
    (*sig.mutable_inputs())["x"].set_dtype(tf::DT_FLOAT);
    (*sig.mutable_outputs())["y"].set_dtype(tf::DT_FLOAT);
    sig.set_method_name("tensorflow/serving/predict");
    (*resp->mutable_metadata())["signature_def"].PackFrom(sigs);
    return {};
  }
  ServeStatus get_model_status(const tfs::GetModelStatusRequest& req, tfs::GetModelStatusResponse* resp) override {
    if (auto st = resolve(req.model_spec()); !st.ok()) return st;
    auto* v = resp->add_model_version_status();
    v->set_version(123);
    v->set_state(tfs::ModelVersionStatus::AVAILABLE);
    v->mutable_status();
    return {};
  }
  ServeStatus reload_config(const tfs::ReloadConfigRequest&, tfs::ReloadConfigResponse*) override { return {}; }
  ServeStatus list_model_names(const tfs::ListModelNamesRequest&, tfs::ListModelNamesResponse* r) override {
    r->add_model_names("default");
    return {};
  }
  std::string prometheus_text() const override { return "# TYPE :tensorflow:serving:request_count counter\n"; }
  void shutdown() override {}

  std::mutex mu;
  tfs::ModelSpec last_spec;
  tfs::PredictRequest last_predict;
  std::string last_ctx_entrypoint;
  ServeStatus fail_next;
};

class Routes : public ::testing::Test {
 protected:
  HttpResponse call(const std::string& method, const std::string& target, const std::string& body = "") {
    CallContext ctx;
    ctx.entrypoint = "REST";
    return routes.handle({method, target, body}, ctx);
  }
  static std::string error_of(const HttpResponse& r) {
    rapidjson::Document d;
    d.Parse(r.body.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("error") || !d["error"].IsString()) return "<no error key>";
    return d["error"].GetString();
  }

  FakeCore core;
  HttpRoutes routes{core, RouteOptions{"/monitoring/prometheus/metrics"}};
};

TEST(ParseRoute, Grammar) {
  std::string err;
  auto r = parse_route("/v1/models/half", &err);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, Route::Kind::kStatus);
  EXPECT_EQ(r->model, "half");
  r = parse_route("/V1/Models/m/versions/42:predict", &err);  // the prefix is case-insensitive
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, Route::Kind::kPredict);
  EXPECT_EQ(r->version, 42);
  r = parse_route("/v1/models/m/labels/canary/metadata", &err);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, Route::Kind::kMetadata);
  EXPECT_EQ(r->label, "canary");
  r = parse_route("/v1/models/m:classify", &err);
  ASSERT_TRUE(r && r->kind == Route::Kind::kClassify);
  r = parse_route("/v1/models/m/labels/l:regress", &err);
  ASSERT_TRUE(r && r->kind == Route::Kind::kRegress && r->label == "l");

  for (const char* bad : {"/v1/models/", "/v2/models/m", "/v1/models/m:explode", "/v1/models/m/metadata:predict",
                          "/v1/models/m/versions", "/v1/models/m/other", "/v1/models/m/versions/1/extra"}) {
    EXPECT_FALSE(parse_route(bad, &err)) << bad;
    EXPECT_TRUE(err.empty()) << bad;
  }
  for (const char* invalid : {"/v1/models/..:predict", "/v1/models/..%2Fetc", "/v1/models/a%2Fb",
                              "/v1/models/m/versions/x1", "/v1/models/m/versions/-1",
                              "/v1/models/m/versions/99999999999999999999", "/v1/models/m/labels/..",
                              "/v1/models/bad%zz"}) {
    EXPECT_FALSE(parse_route(invalid, &err)) << invalid;
    EXPECT_FALSE(err.empty()) << invalid;
  }
}

TEST_F(Routes, PredictRowAndColumnar) {
  auto r = call("POST", "/v1/models/default:predict", R"({"instances": [2.0, 3.0, 4.0]})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"predictions":[3.0,3.5,4.0]})");
  EXPECT_EQ(core.last_ctx_entrypoint, "REST");
  EXPECT_FALSE(core.last_predict.model_spec().has_version());
  r = call("POST", "/v1/models/default/versions/123:predict?x=1", R"({"inputs": [2.0, 3.0, 4.0]})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"outputs":[3.0,3.5,4.0]})");
  EXPECT_EQ(core.last_predict.model_spec().version().value(), 123);
  r = call("POST", "/v1/models/default/labels/stable:predict", R"({"inputs": [2.0]})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(core.last_predict.model_spec().version_label(), "stable");
}

TEST_F(Routes, ErrorsMapToTfServingCodes) {
  auto r = call("POST", "/v1/models/half:predict", R"({"instances": [1.0]})");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(error_of(r), "Servable not found for request: Latest(half)");
  r = call("POST", "/v1/models/default/versions/7:predict", R"({"instances": [1.0]})");
  EXPECT_EQ(r.status, 404);
  r = call("POST", "/v1/models/default/labels/canary:predict", R"({"instances": [1.0]})");
  EXPECT_EQ(r.status, 404);
  r = call("POST", "/v1/models/default:predict", R"({"instances": [1.0], "inputs": [1.0]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("only one of"), std::string::npos) << r.body;
  r = call("POST", "/v1/models/default:predict", R"({"instances": [1.0)");
  EXPECT_EQ(r.status, 400);
  r = call("POST", "/v1/models/default:predict", R"({"instances": ["a"]})");
  EXPECT_EQ(r.status, 400);
  r = call("POST", "/v1/models/default:predict", R"({"signature_name": "nope", "instances": [1.0]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("nope"), std::string::npos) << r.body;
  r = call("POST", "/v1/models/..%2F..%2Fetc:predict", R"({"instances": [1.0]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(error_of(r).find("Invalid model name"), std::string::npos) << r.body;
  r = call("GET", "/v1/models/default:predict");
  EXPECT_EQ(r.status, 405);
  r = call("POST", "/v1/models/default");
  EXPECT_EQ(r.status, 405);
  r = call("GET", "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(error_of(r).find("Malformed request"), std::string::npos);

  for (auto [code, http] : {std::pair{tf::error::RESOURCE_EXHAUSTED, 429}, {tf::error::DEADLINE_EXCEEDED, 504},
                            {tf::error::FAILED_PRECONDITION, 400}, {tf::error::UNAVAILABLE, 503},
                            {tf::error::CANCELLED, 499}}) {
    core.fail_next = {code, "from the core"};
    r = call("POST", "/v1/models/default:predict", R"({"instances": [1.0]})");
    EXPECT_EQ(r.status, http) << code;
    EXPECT_EQ(error_of(r), "from the core");
  }
}

TEST_F(Routes, StatusMetadataClassifyRegressMetrics) {
  auto r = call("GET", "/v1/models/default");
  EXPECT_EQ(r.status, 200);
  rapidjson::Document d;
  d.Parse(r.body.c_str());
  ASSERT_TRUE(d.IsObject()) << r.body;
  EXPECT_STREQ(d["model_version_status"][0]["version"].GetString(), "123");
  EXPECT_STREQ(d["model_version_status"][0]["state"].GetString(), "AVAILABLE");
  r = call("GET", "/v1/models/default/versions/123");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(core.last_spec.version().value(), 123);

  r = call("GET", "/v1/models/default/metadata");
  EXPECT_EQ(r.status, 200);
  d.Parse(r.body.c_str());
  ASSERT_TRUE(d.IsObject()) << r.body;
  EXPECT_STREQ(d["model_spec"]["version"].GetString(), "123");
  EXPECT_TRUE(d["metadata"]["signature_def"]["signature_def"].HasMember("serving_default")) << r.body;
  EXPECT_FALSE(d["metadata"]["signature_def"].HasMember("@type")) << r.body;

  r = call("POST", "/v1/models/default:classify", R"({"signature_name":"classify_x_to_y","examples":[{"x":2.0}]})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"results":[[["",3.0]]]})");
  r = call("POST", "/v1/models/default:regress", R"({"signature_name":"regress_x_to_y","examples":[{"x":2.0}]})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"results":[3.0]})");
  r = call("POST", "/v1/models/default:regress", R"({"examples": 5})");
  EXPECT_EQ(r.status, 400);

  r = call("GET", "/monitoring/prometheus/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("# TYPE"), std::string::npos);
  EXPECT_NE(r.content_type.find("text/plain"), std::string::npos);
  HttpRoutes no_metrics(core, RouteOptions{});
  EXPECT_EQ(no_metrics.handle({"GET", "/monitoring/prometheus/metrics", ""}, CallContext{}).status, 404);
}

}  // namespace
}  // namespace tessera::serve
