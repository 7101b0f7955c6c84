// ServerCore against TF Serving's own fixtures and expectations (shared/testdata/tf/README.md):
// predict, classify, regress, multi-inference, metadata, status, errors, configs, metrics.
#include <gtest/gtest.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <thread>

#include "serve/model_config.h"
#include "serve/serve_test_util.h"
#include "support/cpus.h"

namespace tessera::serve {
namespace {

using namespace serve_test;
namespace tfe = ::tensorflow::error;

std::unique_ptr<ServerCore> half_plus_two(ServerOptions o = reference_options()) {
  return serve_folder(kServables + "saved_model_half_plus_two_cpu", "default", o);
}

TEST(ServerCore, PredictHalfPlusTwo) {
  auto core = half_plus_two();
  tfs::PredictResponse resp;
  ServeStatus st = core->predict(predict_x("default", {2.0f}), &resp, {});
  ASSERT_TRUE(st.ok()) << st.message;
  const auto& y = resp.outputs().at("y");
  EXPECT_EQ(y.dtype(), tensorflow::DT_FLOAT);
  ASSERT_EQ(y.float_val_size(), 1);
  EXPECT_EQ(y.float_val(0), 3.0f);
  EXPECT_EQ(resp.model_spec().name(), "default");
  EXPECT_EQ(resp.model_spec().version().value(), 123);
  EXPECT_EQ(resp.model_spec().signature_name(), "serving_default");

  // Random x, with output_filter.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-100, 100);
  std::vector<float> x(17);
  for (float& v : x) v = dist(rng);
  auto req = predict_x("default", x);
  req.add_output_filter("y");
  tfs::PredictResponse r2;
  ASSERT_TRUE(core->predict(req, &r2, {}).ok());
  ASSERT_EQ(r2.outputs().at("y").float_val_size(), 17);
  EXPECT_EQ(r2.outputs().at("y").tensor_shape().dim(0).size(), 17);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(r2.outputs().at("y").float_val(i), 0.5f * x[i] + 2.0f);
}

TEST(ServerCore, PredictErrorsFollowTfServing) {
  auto core = half_plus_two();
  tfs::PredictResponse resp;
  ServeStatus st = core->predict(predict_x("half", {2.0f}), &resp, {});
  EXPECT_EQ(st.code, tfe::NOT_FOUND);
  EXPECT_EQ(st.message, "Servable not found for request: Latest(half)");
  st = core->predict(predict_x("default", {2.0f}, 999), &resp, {});
  EXPECT_EQ(st.code, tfe::NOT_FOUND);
  EXPECT_EQ(st.message, "Servable not found for request: Specific(default, 999)");
  st = core->predict(predict_x("default", {2.0f}, -1, "nope"), &resp, {});
  EXPECT_EQ(st.code, tfe::INVALID_ARGUMENT);
  EXPECT_EQ(st.message, "Unrecognized servable version label: nope");
  auto req = predict_x("default", {2.0f});
  req.mutable_model_spec()->set_signature_name("nope");
  st = core->predict(req, &resp, {});
  EXPECT_EQ(st.code, tfe::FAILED_PRECONDITION);
  EXPECT_EQ(st.message, "Serving signature key \"nope\" not found.");

  req = predict_x("default", {2.0f});
  (*req.mutable_inputs())["x"].set_dtype(tensorflow::DT_INT32);
  (*req.mutable_inputs())["x"].clear_float_val();
  (*req.mutable_inputs())["x"].add_int_val(2);
  st = core->predict(req, &resp, {});
  EXPECT_EQ(st.code, tfe::INVALID_ARGUMENT);
  EXPECT_NE(st.message.find("'x'"), std::string::npos) << st.message;
  req = predict_x("default", {2.0f});
  (*req.mutable_inputs())["z"] = req.inputs().at("x");
  EXPECT_EQ(core->predict(req, &resp, {}).code, tfe::INVALID_ARGUMENT);
  req = predict_x("default", {2.0f});
  req.add_output_filter("nope");
  EXPECT_EQ(core->predict(req, &resp, {}).code, tfe::INVALID_ARGUMENT);
  req = predict_x("default", {2.0f});
  req.mutable_inputs()->clear();
  st = core->predict(req, &resp, {});
  EXPECT_EQ(st.code, tfe::INVALID_ARGUMENT);
  EXPECT_NE(st.message.find("'x'"), std::string::npos) << st.message;
  // A bad tensor proto: 3 values for a [1,1] shape.
  req = predict_x("default", {2.0f});
  (*req.mutable_inputs())["x"].add_float_val(1);
  (*req.mutable_inputs())["x"].add_float_val(1);
  EXPECT_EQ(core->predict(req, &resp, {}).code, tfe::INVALID_ARGUMENT);
  // The server still serves.
  EXPECT_TRUE(core->predict(predict_x("default", {2.0f}), &resp, {}).ok());
}

TEST(ServerCore, ClassifyRegressMultiInference) {
  auto core = half_plus_two();
  auto creq = examples_x<tfs::ClassificationRequest>("default", "classify_x_to_y", {2.0f});
  tfs::ClassificationResponse cresp;
  ServeStatus st = core->classify(creq, &cresp, {});
  ASSERT_TRUE(st.ok()) << st.message;
  ASSERT_EQ(cresp.result().classifications_size(), 1);
  ASSERT_EQ(cresp.result().classifications(0).classes_size(), 1);
  EXPECT_EQ(cresp.result().classifications(0).classes(0).score(), 3.0f);
  EXPECT_EQ(cresp.result().classifications(0).classes(0).label(), "");
  EXPECT_EQ(cresp.model_spec().signature_name(), "classify_x_to_y");
  EXPECT_EQ(cresp.model_spec().version().value(), 123);

  auto rreq = examples_x<tfs::RegressionRequest>("default", "regress_x_to_y", {2.0f, 4.0f});
  tfs::RegressionResponse rresp;
  st = core->regress(rreq, &rresp, {});
  ASSERT_TRUE(st.ok()) << st.message;
  ASSERT_EQ(rresp.result().regressions_size(), 2);
  EXPECT_EQ(rresp.result().regressions(0).value(), 3.0f);
  EXPECT_EQ(rresp.result().regressions(1).value(), 4.0f);

  // Context features merge into each example: x2 from the context feeds y3 = 0.5*x2 + 3.
  rreq.mutable_model_spec()->set_signature_name("regress_x_to_y2");
  rreq.mutable_input()->Clear();
  auto* ctx = rreq.mutable_input()->mutable_example_list_with_context();
  *ctx->mutable_context() = example_x(2.0f);
  ctx->add_examples();
  tfs::RegressionResponse r2;
  st = core->regress(rreq, &r2, {});
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(r2.result().regressions(0).value(), 4.0f);

  tfs::MultiInferenceRequest mreq;
  auto* t1 = mreq.add_tasks();
  t1->mutable_model_spec()->set_name("default");
  t1->mutable_model_spec()->set_signature_name("regress_x_to_y");
  t1->set_method_name("tensorflow/serving/regress");
  auto* t2 = mreq.add_tasks();
  t2->mutable_model_spec()->set_name("default");
  t2->mutable_model_spec()->set_signature_name("classify_x_to_y");
  t2->set_method_name("tensorflow/serving/classify");
  *mreq.mutable_input()->mutable_example_list()->add_examples() = example_x(2.0f);
  tfs::MultiInferenceResponse mresp;
  st = core->multi_inference(mreq, &mresp, {});
  ASSERT_TRUE(st.ok()) << st.message;
  ASSERT_EQ(mresp.results_size(), 2);
  EXPECT_EQ(mresp.results(0).regression_result().regressions(0).value(), 3.0f);
  EXPECT_EQ(mresp.results(1).classification_result().classifications(0).classes(0).score(), 3.0f);
  EXPECT_EQ(mresp.results(1).model_spec().signature_name(), "classify_x_to_y");

  // Classify on a predict signature with a float input is refused with a reason.
  creq.mutable_model_spec()->set_signature_name("serving_default");
  st = core->classify(creq, &cresp, {});
  EXPECT_EQ(st.code, tfe::INVALID_ARGUMENT);
  creq.mutable_input()->Clear();
  creq.mutable_model_spec()->set_signature_name("classify_x_to_y");
  EXPECT_EQ(core->classify(creq, &cresp, {}).code, tfe::INVALID_ARGUMENT);  // empty input
}

TEST(ServerCore, Tf2ClassifyAndRegress) {
  auto core = serve_folder(kServables + "saved_model_half_plus_two_tf2_cpu");
  auto creq = examples_x<tfs::ClassificationRequest>("default", "classify_x_to_y", {2.0f});
  tfs::ClassificationResponse cresp;
  ServeStatus st = core->classify(creq, &cresp, {});
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(cresp.result().classifications(0).classes(0).score(), 3.0f);
  auto rreq = examples_x<tfs::RegressionRequest>("default", "regress_x_to_y", {2.0f});
  tfs::RegressionResponse rresp;
  st = core->regress(rreq, &rresp, {});
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(rresp.result().regressions(0).value(), 3.0f);
}

// The balanced {...} that follows `key` in `json` (the fixture has no braces inside strings).
std::string json_object_after(const std::string& json, const std::string& key) {
  size_t start = json.find('{', json.find(key));
  int depth = 0;
  for (size_t i = start; i < json.size(); ++i) {
    depth += json[i] == '{' ? 1 : json[i] == '}' ? -1 : 0;
    if (depth == 0) return json.substr(start, i - start + 1);
  }
  return "";
}

TEST(ServerCore, MetadataEqualsTfServingsExpectedJson) {
  auto core = half_plus_two();
  auto req = metadata_request("default");
  tfs::GetModelMetadataResponse resp;
  ServeStatus st = core->get_model_metadata(req, &resp);
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(resp.model_spec().version().value(), 123);

  // TF Serving's JSON renders the Any without "@type": take the objects apart by hand.
  const std::string json = read_file(kServables + "half_plus_two_model_metadata.json");
  tfs::ModelSpec want_spec;
  tfs::SignatureDefMap got, want;
  auto parsed = google::protobuf::util::JsonStringToMessage(json_object_after(json, "\"model_spec\""), &want_spec);
  ASSERT_TRUE(parsed.ok()) << parsed.ToString();
  const std::string metadata = json_object_after(json, "\"metadata\"");
  parsed = google::protobuf::util::JsonStringToMessage(json_object_after(metadata, "\"signature_def\""), &want);
  ASSERT_TRUE(parsed.ok()) << parsed.ToString();
  EXPECT_EQ(resp.model_spec().SerializeAsString(), want_spec.SerializeAsString());
  ASSERT_TRUE(resp.metadata().at("signature_def").UnpackTo(&got));
  google::protobuf::util::MessageDifferencer diff;
  std::string report;
  diff.ReportDifferencesToString(&report);
  EXPECT_TRUE(diff.Compare(got, want)) << report;

  req.clear_metadata_field();
  EXPECT_EQ(core->get_model_metadata(req, &resp).code, tfe::INVALID_ARGUMENT);
  req.add_metadata_field("nope");
  EXPECT_EQ(core->get_model_metadata(req, &resp).code, tfe::INVALID_ARGUMENT);
}

TEST(ServerCore, Tf2MetadataEqualsTfServingsExpectedJson) {
  auto core = serve_folder(kServables + "saved_model_half_plus_two_tf2_cpu");
  auto req = metadata_request("default");
  tfs::GetModelMetadataResponse resp;
  ServeStatus st = core->get_model_metadata(req, &resp);
  ASSERT_TRUE(st.ok()) << st.message;
  const std::string json = read_file(kServables + "saved_model_half_plus_two_tf2_2_versions_metadata.json");
  tfs::SignatureDefMap got, want;
  auto parsed = google::protobuf::util::JsonStringToMessage(
      json_object_after(json_object_after(json, "\"metadata\""), "\"signature_def\""), &want);
  ASSERT_TRUE(parsed.ok()) << parsed.ToString();
  ASSERT_TRUE(resp.metadata().at("signature_def").UnpackTo(&got));
  google::protobuf::util::MessageDifferencer diff;
  std::string report;
  diff.ReportDifferencesToString(&report);
  EXPECT_TRUE(diff.Compare(got, want)) << report;
}

TEST(ServerCore, ModelStatus) {
  auto core = half_plus_two();
  tfs::GetModelStatusRequest req;
  req.mutable_model_spec()->set_name("default");
  tfs::GetModelStatusResponse resp;
  ASSERT_TRUE(core->get_model_status(req, &resp).ok());
  ASSERT_EQ(resp.model_version_status_size(), 1);
  EXPECT_EQ(resp.model_version_status(0).version(), 123);
  EXPECT_EQ(resp.model_version_status(0).state(), tfs::ModelVersionStatus::AVAILABLE);
  EXPECT_EQ(resp.model_version_status(0).status().error_code(), tfe::OK);
  req.mutable_model_spec()->mutable_version()->set_value(5);
  EXPECT_EQ(core->get_model_status(req, &resp).code, tfe::NOT_FOUND);
  req.mutable_model_spec()->set_name("other");
  EXPECT_EQ(core->get_model_status(req, &resp).code, tfe::NOT_FOUND);
}

TEST(ServerCore, BadModelKeepsServerUpWithFailedPrecondition) {
  auto core = serve_folder(kServables + "bad_half_plus_two");
  tfs::PredictResponse resp;
  ServeStatus st = core->predict(predict_x("default", {2.0f}), &resp, {});
  EXPECT_EQ(st.code, tfe::FAILED_PRECONDITION) << st.message;
  tfs::GetModelStatusRequest sreq;
  sreq.mutable_model_spec()->set_name("default");
  tfs::GetModelStatusResponse sresp;
  ASSERT_TRUE(core->get_model_status(sreq, &sresp).ok());
  ASSERT_EQ(sresp.model_version_status_size(), 1);
  EXPECT_EQ(sresp.model_version_status(0).state(), tfs::ModelVersionStatus::END);
  EXPECT_NE(sresp.model_version_status(0).status().error_code(), tfe::OK);
  EXPECT_FALSE(sresp.model_version_status(0).status().error_message().empty());
}

std::string two_model_config() {
  std::string text = read_file(kServables + "good_model_config.txt");
  auto sub = [&](const std::string& var, const std::string& value) {
    text.replace(text.find(var), var.size(), value);
  };
  sub("${TEST_HALF_PLUS_TWO_DIR}", kServables + "saved_model_half_plus_two_cpu");
  sub("${TEST_HALF_PLUS_THREE_DIR}", kServables + "saved_model_half_plus_three");
  return text;
}

TEST(ServerCore, TwoModelConfigAndBadConfig) {
  TempDir dir;
  write_file(dir.path / "models.config", two_model_config());
  ServerOptions o = reference_options();
  o.model_config_file = (dir.path / "models.config").string();
  auto core = ServerCore::create(o);
  tfs::PredictResponse a, b;
  ASSERT_TRUE(core->predict(predict_x("half_plus_two", {2.0f}), &a, {}).ok());
  ASSERT_TRUE(core->predict(predict_x("half_plus_three", {2.0f}), &b, {}).ok());
  EXPECT_EQ(a.outputs().at("y").float_val(0), 3.0f);
  EXPECT_EQ(b.outputs().at("y").float_val(0), 4.0f);

  o.model_config_file = kServables + "bad_model_config.txt";
  try {
    ServerCore::create(o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Error parsing text-format tensorflow.serving.ModelServerConfig"),
              std::string::npos)
        << e.what();
  }
}

TEST(ServerCore, ModelNamesWithPathPartsAreRejected) {
  EXPECT_THROW(single_model_config("../etc", "/tmp"), Error);
  EXPECT_THROW(single_model_config("a/b", "/tmp"), Error);
  EXPECT_THROW(parse_model_server_config("model_config_list { config { name: \"..\" base_path: \"/x\" } }", "t"), Error);
  EXPECT_THROW(parse_model_server_config(
                   "model_config_list { config { name: \"a\" base_path: \"/x\" } config { name: \"a\" base_path: \"/y\" } }",
                   "t"),
               Error);
  auto core = half_plus_two();
  tfs::PredictResponse resp;
  EXPECT_EQ(core->predict(predict_x("../default", {2.0f}), &resp, {}).code, tfe::NOT_FOUND);
}

TEST(ServerCore, ReloadConfigReplacesTheModelSet) {
  auto core = half_plus_two();
  tfs::ReloadConfigRequest req;
  *req.mutable_config() = parse_model_server_config(two_model_config(), "test");
  tfs::ReloadConfigResponse resp;
  ServeStatus st = core->reload_config(req, &resp);
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(resp.status().error_code(), tfe::OK);
  tfs::PredictResponse p;
  EXPECT_EQ(core->predict(predict_x("default", {2.0f}), &p, {}).code, tfe::NOT_FOUND) << "no longer configured";
  ASSERT_TRUE(core->predict(predict_x("half_plus_three", {2.0f}), &p, {}).ok());
  EXPECT_EQ(p.outputs().at("y").float_val(0), 4.0f);
  // A config with a label on a version that is not loaded is refused.
  auto* m = req.mutable_config()->mutable_model_config_list()->mutable_config(0);
  (*m->mutable_version_labels())["stable"] = 7;
  st = core->reload_config(req, &resp);
  EXPECT_EQ(st.code, tfe::FAILED_PRECONDITION);
  EXPECT_EQ(resp.status().error_code(), tfe::FAILED_PRECONDITION);
}

TEST(ServerCore, CompiledTargetAndBatchingServeConcurrentClients) {
  TempDir dir;
  std::string batching = read_file(kServables + "batching_config.txt");
  batching.replace(batching.find("batch_timeout_micros { value: 0 }"), 33, "batch_timeout_micros { value: 2000 }");
  write_file(dir.path / "batching.config", batching);
  ServerOptions o = reference_options();
  o.target = "cpu";
  o.enable_batching = true;
  o.batching_parameters_file = (dir.path / "batching.config").string();
  auto core = half_plus_two(o);
  std::vector<std::thread> clients;
  std::atomic<int> good{0};
  for (int i = 0; i < 8; ++i)
    clients.emplace_back([&, i] {
      for (int k = 0; k < 10; ++k) {
        tfs::PredictResponse resp;
        float x = float(i * 10 + k);
        CallContext ctx;
        ctx.entrypoint = "GRPC";
        if (core->predict(predict_x("default", {x, x + 1}), &resp, ctx).ok() &&
            resp.outputs().at("y").float_val(0) == 0.5f * x + 2 && resp.outputs().at("y").float_val(1) == 0.5f * (x + 1) + 2 &&
            resp.outputs().at("y").tensor_shape().dim(0).size() == 2)
          ++good;
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(good.load(), 80);
  const std::string page = core->prometheus_text();
  EXPECT_NE(page.find("# TYPE :tensorflow:serving:request_count counter"), std::string::npos);
  EXPECT_NE(page.find(":tensorflow:serving:request_count{model_name=\"default\",status=\"OK\"} 80"), std::string::npos)
      << page.substr(0, 2000);
  EXPECT_NE(page.find(":tensorflow:serving:request_latency_bucket{model_name=\"default\",API=\"Predict\",entrypoint=\"GRPC\""),
            std::string::npos);
  EXPECT_NE(page.find(":tessera:serving:batch_size_count{model_name=\"default\"}"), std::string::npos);
  EXPECT_NE(page.find("# TYPE :tessera:serving:batch_queue_depth gauge"), std::string::npos);
}

TEST(ServerCore, StatefulSignaturesAreSerialisedAndKeepState) {
  ServerOptions o = reference_options();
  o.enable_batching = true;
  auto core = serve_folder(kServables + "saved_model_counter", "default", o);
  auto run = [&](const std::string& sig) {
    tfs::PredictRequest r;
    r.mutable_model_spec()->set_name("default");
    r.mutable_model_spec()->set_signature_name(sig);
    tfs::PredictResponse resp;
    ServeStatus st = core->predict(r, &resp, {});
    EXPECT_TRUE(st.ok()) << st.message;
    return st.ok() ? resp.outputs().at("output").float_val(0) : -1.0f;
  };
  EXPECT_EQ(run("get_counter"), 0.0f);
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      for (int k = 0; k < 5; ++k) run("incr_counter");
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(run("get_counter"), 20.0f) << "no increment lost";
}

TEST(ServerCore, ShutdownRefusesNewCalls) {
  auto core = half_plus_two();
  core->shutdown();
  tfs::PredictResponse resp;
  EXPECT_EQ(core->predict(predict_x("default", {2.0f}), &resp, {}).code, tfe::UNAVAILABLE);
}

TEST(ServerCore, RunsThatMayExecuteAtOnceShareTheIntraOpThreads) {
  EXPECT_EQ(intra_op_threads_per_run(8, 1), 8);
  EXPECT_EQ(intra_op_threads_per_run(8, 2), 4);
  EXPECT_EQ(intra_op_threads_per_run(8, 3), 2);  // rounds down: never more threads than cores
  EXPECT_EQ(intra_op_threads_per_run(2, 4), 1);  // at least one each
  EXPECT_EQ(intra_op_threads_per_run(0, 1), cpu_count());
  EXPECT_EQ(intra_op_threads_per_run(0, cpu_count()), 1);
}

}  // namespace
}  // namespace tessera::serve
