// Version life cycle on copies of the fixtures in a temp folder: new versions found by polling,
// availability-preserving switch, unload after in-flight calls, failed versions, labels,
// warm-up records, config-file polling.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "serve/model_config.h"
#include "serve/model_manager.h"
#include "serve/serve_test_util.h"
#include "serve/warmup.h"
#include "train/tfrecord.h"
#include "tensorflow_serving/apis/prediction_log.pb.h"

namespace tessera::serve {
namespace {

using namespace serve_test;
namespace tfe = ::tensorflow::error;
using MVS = tfs::ModelVersionStatus;

constexpr const char* kTwo = "saved_model_half_plus_two_cpu/00000123";
constexpr const char* kThree = "saved_model_half_plus_three/00000123";
constexpr const char* kBad = "bad_half_plus_two/00000123";

std::unique_ptr<ModelManager> manager(Metrics* metrics = nullptr) {
  LoadOptions lo;
  lo.target = "reference";
  return std::make_unique<ModelManager>([lo](const std::string& p) { return Model::load(p, lo); }, nullptr, metrics,
                                        false);
}

tfs::ModelSpec spec(int64_t version = -1, const std::string& label = "") {
  tfs::ModelSpec s;
  s.set_name("m");
  if (version >= 0) s.mutable_version()->set_value(version);
  if (!label.empty()) s.set_version_label(label);
  return s;
}

float y_of(const ServableHandle& s, float x) {
  return s->run("serving_default", {{"x", Tensor::from_vector<float>({x}, {1, 1})}}).at("y").data<float>()[0];
}

std::map<int64_t, MVS::State> states(const ModelManager& m) {
  tfs::GetModelStatusResponse r;
  std::map<int64_t, MVS::State> out;
  if (!m.status(spec(), &r).ok()) return out;
  for (const auto& v : r.model_version_status()) out[v.version()] = v.state();
  return out;
}

std::map<int64_t, MVS::State> states_of(ServerCore& core) {
  tfs::GetModelStatusRequest req;
  *req.mutable_model_spec() = spec();
  tfs::GetModelStatusResponse r;
  std::map<int64_t, MVS::State> out;
  if (!core.get_model_status(req, &r).ok()) return out;
  for (const auto& v : r.model_version_status()) out[v.version()] = v.state();
  return out;
}

TEST(ModelVersions, NewVersionReplacesOldAfterInFlightCallsFinish) {
  TempDir dir;
  add_version(dir.path, 1, kTwo);
  auto m = manager();
  ASSERT_TRUE(m->apply_config(config_for(dir.str())).ok());
  ServableHandle in_flight;
  ASSERT_TRUE(m->find(spec(), &in_flight).ok());
  EXPECT_EQ(in_flight->version(), 1);

  add_version(dir.path, 2, kThree);
  m->poll();
  ServableHandle now;
  ASSERT_TRUE(m->find(spec(), &now).ok());
  EXPECT_EQ(now->version(), 2);
  EXPECT_EQ(y_of(now, 2.0f), 4.0f);
  // The old version still answers the call that holds it, and is UNLOADING until it ends.
  EXPECT_EQ(y_of(in_flight, 2.0f), 3.0f);
  EXPECT_EQ(states(*m)[1], MVS::UNLOADING);
  EXPECT_EQ(m->find(spec(1), &now).code, tfe::NOT_FOUND);
  std::weak_ptr<Servable> old = in_flight;
  in_flight.reset();
  EXPECT_TRUE(old.expired()) << "the old version's memory is released with its last handle";
  EXPECT_EQ(states(*m)[1], MVS::END);
  EXPECT_EQ(states(*m)[2], MVS::AVAILABLE);
}

TEST(ModelVersions, FailedVersionNeverReplacesAGoodOne) {
  TempDir dir;
  add_version(dir.path, 1, kTwo);
  Metrics metrics;
  auto m = manager(&metrics);
  ASSERT_TRUE(m->apply_config(config_for(dir.str())).ok());
  add_version(dir.path, 2, kBad);
  m->poll();
  ServableHandle s;
  ASSERT_TRUE(m->find(spec(), &s).ok());
  EXPECT_EQ(s->version(), 1);
  tfs::GetModelStatusResponse r;
  ASSERT_TRUE(m->status(spec(2), &r).ok());
  ASSERT_EQ(r.model_version_status_size(), 1);
  EXPECT_EQ(r.model_version_status(0).state(), MVS::END);
  EXPECT_NE(r.model_version_status(0).status().error_message().find("version 2"), std::string::npos)
      << r.model_version_status(0).status().error_message();
  EXPECT_EQ(m->find(spec(2), &s).code, tfe::FAILED_PRECONDITION);
  m->poll();  // not retried on every poll, still serving 1
  ASSERT_TRUE(m->find(spec(), &s).ok());
  EXPECT_EQ(s->version(), 1);
  EXPECT_EQ(metrics.counter_value(Metrics::kLoadAttemptCount,
                                  {{"model_path", (dir.path / "2").string()}, {"status", "error"}}),
            1);
  // A good version 3 takes over.
  add_version(dir.path, 3, kThree);
  m->poll();
  ASSERT_TRUE(m->find(spec(), &s).ok());
  EXPECT_EQ(s->version(), 3);
}

TEST(ModelVersions, PoliciesAndLabels) {
  TempDir dir;
  add_version(dir.path, 1, kTwo);
  add_version(dir.path, 2, kThree);
  add_version(dir.path, 3, kTwo);
  auto m = manager();
  ASSERT_TRUE(m->apply_config(config_for(dir.str(), "model_version_policy { latest { num_versions: 2 } }")).ok());
  EXPECT_EQ(states(*m), (std::map<int64_t, MVS::State>{{2, MVS::AVAILABLE}, {3, MVS::AVAILABLE}}));
  ASSERT_TRUE(m->apply_config(config_for(dir.str(), "model_version_policy { all {} }")).ok());
  EXPECT_EQ(states(*m).size(), 3u);
  ServeStatus st = m->apply_config(config_for(
      dir.str(),
      "model_version_policy { specific { versions: 1 versions: 2 } } "
      "version_labels { key: \"stable\" value: 1 } version_labels { key: \"canary\" value: 2 }"));
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(states(*m)[3], MVS::END) << "no longer wanted";
  ServableHandle s;
  ASSERT_TRUE(m->find(spec(-1, "stable"), &s).ok());
  EXPECT_EQ(y_of(s, 2.0f), 3.0f);
  ASSERT_TRUE(m->find(spec(-1, "canary"), &s).ok());
  EXPECT_EQ(y_of(s, 2.0f), 4.0f);
  EXPECT_EQ(m->find(spec(-1, "other"), &s).code, tfe::INVALID_ARGUMENT);
  // A label on a version that is not loaded: refused, the old labels stay.
  st = m->apply_config(config_for(dir.str(),
                                  "model_version_policy { specific { versions: 1 versions: 2 } } "
                                  "version_labels { key: \"stable\" value: 3 }"));
  EXPECT_EQ(st.code, tfe::FAILED_PRECONDITION);
  ASSERT_TRUE(m->find(spec(-1, "stable"), &s).ok());
  EXPECT_EQ(s->version(), 1);
  // Latest again, with "stable" still on 1: 1 keeps serving for its label alongside 3.
  st = m->apply_config(config_for(dir.str(), "version_labels { key: \"stable\" value: 1 }"));
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(states(*m)[1], MVS::AVAILABLE);
  EXPECT_EQ(states(*m)[3], MVS::AVAILABLE);
  ASSERT_TRUE(m->find(spec(), &s).ok());
  EXPECT_EQ(s->version(), 3);
  s.reset();
  // Dropping the label lets 1 go.
  ASSERT_TRUE(m->apply_config(config_for(dir.str())).ok());
  EXPECT_EQ(states(*m)[1], MVS::END);
}

TEST(ModelVersions, LabelsForUnavailableVersionsWhenAllowed) {
  TempDir dir;
  add_version(dir.path, 1, kTwo);
  LoadOptions lo;
  lo.target = "reference";
  ModelManager m([lo](const std::string& p) { return Model::load(p, lo); }, nullptr, nullptr, true);
  ServeStatus st = m.apply_config(config_for(dir.str(), "version_labels { key: \"canary\" value: 2 }"));
  ASSERT_TRUE(st.ok()) << st.message;
  ServableHandle s;
  EXPECT_EQ(m.find(spec(-1, "canary"), &s).code, tfe::NOT_FOUND);
  add_version(dir.path, 2, kThree);
  m.poll();
  ASSERT_TRUE(m.find(spec(-1, "canary"), &s).ok());
  EXPECT_EQ(s->version(), 2);
}

TEST(ModelVersions, VersionFoldersAndTsrArtifacts) {
  TempDir dir;
  fs::create_directories(dir.path / "00000007");
  fs::create_directories(dir.path / "tmp_upload");
  fs::create_directories(dir.path / "12");
  write_file(dir.path / "12" / "model.tsr", "x");
  auto v = scan_versions(dir.str());
  EXPECT_EQ(v.size(), 2u);
  EXPECT_TRUE(v.count(7) && v.count(12));
  EXPECT_EQ(servable_path(v.at(12)), (dir.path / "12" / "model.tsr").string());
  EXPECT_EQ(servable_path(v.at(7)), v.at(7));
  EXPECT_TRUE(scan_versions((dir.path / "missing").string()).empty());
}

TEST(ModelVersions, TsrArtifactVersionServesLikeASavedModel) {
  TempDir dir;
  add_version(dir.path, 1, kTwo);
  auto core = serve_folder(dir.str(), "m");
  // Version 2: half_plus_three compiled into a .tsr artifact, which appears whole, as a
  // deployment would do it.
  write_reference_tsr(kThree, dir.path / "tmp" / "model.tsr");
  fs::rename(dir.path / "tmp", dir.path / "2");
  tfs::ReloadConfigRequest req;
  *req.mutable_config() = config_for(dir.str());
  tfs::ReloadConfigResponse rr;
  ASSERT_TRUE(core->reload_config(req, &rr).ok());
  tfs::GetModelStatusRequest sreq;
  *sreq.mutable_model_spec() = spec(2);
  tfs::GetModelStatusResponse sresp;
  ASSERT_TRUE(core->get_model_status(sreq, &sresp).ok());
  EXPECT_EQ(sresp.model_version_status(0).state(), MVS::AVAILABLE) << sresp.model_version_status(0).status().error_message();
  tfs::PredictResponse resp;
  ServeStatus st = core->predict(predict_x("m", {2.0f, 4.0f}), &resp, {});
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(resp.model_spec().version().value(), 2);
  EXPECT_EQ(resp.outputs().at("y").float_val(0), 4.0f);
  EXPECT_EQ(resp.outputs().at("y").float_val(1), 5.0f);
  // Its regress signature too (declared DT_FLOAT over a DT_STRING placeholder, as TF1 wrote it).
  tfs::RegressionResponse rresp;
  st = core->regress(examples_x<tfs::RegressionRequest>("m", "tensorflow/serving/regress", {2.0f}), &rresp, {});
  ASSERT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(rresp.result().regressions(0).value(), 4.0f);
}

TEST(ModelVersions, VersionSwapsUnderLoadLoseNoRequest) {
  TempDir dir;
  add_version(dir.path, 1, kTwo);
  ServerOptions o = reference_options();
  o.enable_batching = true;
  auto core = serve_folder(dir.str(), "m", o);
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, wrong{0};
  std::atomic<int64_t> newest{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 6; ++c)
    clients.emplace_back([&] {
      while (!stop) {
        tfs::PredictResponse resp;
        ServeStatus st = core->predict(predict_x("m", {2.0f}), &resp, {});
        if (!st.ok()) {
          ++errors;
          continue;
        }
        const int64_t v = resp.model_spec().version().value();
        // Odd versions are half_plus_two, even ones half_plus_three.
        if (resp.outputs().at("y").float_val(0) != (v % 2 ? 3.0f : 4.0f)) ++wrong;
        int64_t seen = newest.load();
        while (v > seen && !newest.compare_exchange_weak(seen, v)) {
        }
      }
    });
  for (int v = 2; v <= 5; ++v) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    fs::create_directories(dir.path / "staging");
    fs::copy(kServables + (v % 2 ? kTwo : kThree), dir.path / "staging" / "x", fs::copy_options::recursive);
    fs::rename(dir.path / "staging" / "x", dir.path / std::to_string(v));
    tfs::ReloadConfigRequest req;  // same config: rescans the base path
    *req.mutable_config() = config_for(dir.str());
    tfs::ReloadConfigResponse rr;
    ASSERT_TRUE(core->reload_config(req, &rr).ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(newest.load(), 5);
  EXPECT_EQ(states_of(*core), (std::map<int64_t, MVS::State>{
                                  {1, MVS::END}, {2, MVS::END}, {3, MVS::END}, {4, MVS::END}, {5, MVS::AVAILABLE}}));
}

std::string warmup_predict_record(float x, tensorflow::DataType dtype = tensorflow::DT_FLOAT) {
  tfs::PredictionLog log;
  auto* req = log.mutable_predict_log()->mutable_request();
  req->mutable_model_spec()->set_name("m");
  auto& t = (*req->mutable_inputs())["x"];
  t.set_dtype(dtype);
  t.mutable_tensor_shape()->add_dim()->set_size(1);
  t.mutable_tensor_shape()->add_dim()->set_size(1);
  if (dtype == tensorflow::DT_FLOAT)
    t.add_float_val(x);
  else
    t.add_int_val(static_cast<int>(x));
  return train::frame_record(log.SerializeAsString());
}

TEST(ModelVersions, WarmupRecordsAreReplayedAndBadOnesFailTheVersion) {
  TempDir dir;
  add_version(dir.path, 1, kTwo);
  write_file(dir.path / "1" / kWarmupFile, warmup_predict_record(1.0f) + warmup_predict_record(2.0f));
  ServerOptions o = reference_options();
  o.num_request_iterations_for_warmup = 2;
  auto core = serve_folder(dir.str(), "m", o);
  EXPECT_NE(core->prometheus_text().find(":tensorflow:serving:model_warmup_latency_count{model_path=\"" +
                                         (dir.path / "1").string() + "\"} 1"),
            std::string::npos);
  tfs::PredictResponse resp;
  ASSERT_TRUE(core->predict(predict_x("m", {2.0f}), &resp, {}).ok());

  // Version 2's warm-up sends an int where a float is expected: 2 never serves.
  add_version(dir.path, 2, kThree);
  write_file(dir.path / "2" / kWarmupFile, warmup_predict_record(1.0f, tensorflow::DT_INT32));
  TempDir cfg;
  tfs::ReloadConfigRequest req;
  *req.mutable_config() = config_for(dir.str());
  tfs::ReloadConfigResponse rr;
  ASSERT_TRUE(core->reload_config(req, &rr).ok());
  ASSERT_TRUE(core->predict(predict_x("m", {2.0f}), &resp, {}).ok());
  EXPECT_EQ(resp.model_spec().version().value(), 1);
  tfs::GetModelStatusRequest sreq;
  *sreq.mutable_model_spec() = spec(2);
  tfs::GetModelStatusResponse sresp;
  ASSERT_TRUE(core->get_model_status(sreq, &sresp).ok());
  EXPECT_EQ(sresp.model_version_status(0).state(), MVS::END);
  EXPECT_NE(sresp.model_version_status(0).status().error_message().find("warm-up record 0"), std::string::npos)
      << sresp.model_version_status(0).status().error_message();

  // A corrupted warm-up file fails its version too.
  std::string rec = warmup_predict_record(1.0f);
  rec[rec.size() - 6] ^= 1;
  add_version(dir.path, 3, kTwo);
  write_file(dir.path / "3" / kWarmupFile, rec);
  ASSERT_TRUE(core->reload_config(req, &rr).ok());
  *sreq.mutable_model_spec() = spec(3);
  sresp.Clear();
  ASSERT_TRUE(core->get_model_status(sreq, &sresp).ok());
  EXPECT_EQ(sresp.model_version_status(0).state(), MVS::END);
  EXPECT_EQ(sresp.model_version_status(0).status().error_code(), tfe::DATA_LOSS)
      << sresp.model_version_status(0).status().error_message();
  ASSERT_TRUE(core->predict(predict_x("m", {2.0f}), &resp, {}).ok());
  EXPECT_EQ(resp.model_spec().version().value(), 1);
}

TEST(ModelVersions, PollingThreadsPickUpNewVersionsAndConfigChanges) {
  TempDir dir;
  add_version(dir.path / "a", 1, kTwo);
  add_version(dir.path / "b", 1, kThree);
  const fs::path config = dir.path / "models.config";
  write_file(config, "model_config_list { config { name: \"m\" base_path: \"" + (dir.path / "a").string() + "\" } }");
  ServerOptions o = reference_options();
  o.model_config_file = config.string();
  o.model_config_file_poll_wait_seconds = 1;
  o.file_system_poll_wait_seconds = 1;
  auto core = ServerCore::create(o);
  auto wait_for = [&](const std::string& model, float want, int64_t version) {
    for (int i = 0; i < 100; ++i) {
      tfs::PredictResponse resp;
      if (core->predict(predict_x(model, {2.0f}), &resp, {}).ok() && resp.outputs().at("y").float_val(0) == want &&
          resp.model_spec().version().value() == version)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };
  ASSERT_TRUE(wait_for("m", 3.0f, 1));
  add_version(dir.path / "a", 2, kThree);
  EXPECT_TRUE(wait_for("m", 4.0f, 2)) << "file-system polling found version 2";
  write_file(config, "model_config_list { config { name: \"n\" base_path: \"" + (dir.path / "b").string() + "\" } }");
  EXPECT_TRUE(wait_for("n", 4.0f, 1)) << "config polling applied the new config";
  tfs::PredictResponse resp;
  EXPECT_EQ(core->predict(predict_x("m", {2.0f}), &resp, {}).code, tfe::NOT_FOUND);
}

}  // namespace
}  // namespace tessera::serve
