// Shared helpers for the model server tests: fixture paths, temp model folders, requests.
#pragma once
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "runtime/artifact.h"
#include "runtime/model.h"
#include "runtime/version.h"
#include "serve/model_config.h"
#include "serve/server_core.h"
#include "support/error.h"
#include "tensorflow/core/example/example.pb.h"

namespace tessera::serve::serve_test {

namespace fs = std::filesystem;

inline const std::string kServables = std::string(TESSERA_SOURCE_DIR) +
                                      "/../shared/testdata/tf/serving/tensorflow_serving/servables/tensorflow/testdata/";

// A fresh empty folder under the system temp dir, removed at destruction.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("tessera_serve_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

// Copies a fixture version folder to <base>/<version>.
inline void add_version(const fs::path& base, int64_t version, const std::string& fixture_version_dir) {
  fs::create_directories(base);
  fs::copy(kServables + fixture_version_dir, base / std::to_string(version), fs::copy_options::recursive);
}

inline void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline tfs::PredictRequest predict_x(const std::string& model, std::vector<float> x, int64_t version = -1,
                                     const std::string& label = "") {
  tfs::PredictRequest r;
  r.mutable_model_spec()->set_name(model);
  if (version >= 0) r.mutable_model_spec()->mutable_version()->set_value(version);
  if (!label.empty()) r.mutable_model_spec()->set_version_label(label);
  auto& t = (*r.mutable_inputs())["x"];
  t.set_dtype(tensorflow::DT_FLOAT);
  t.mutable_tensor_shape()->add_dim()->set_size(static_cast<int64_t>(x.size()));
  t.mutable_tensor_shape()->add_dim()->set_size(1);
  for (float v : x) t.add_float_val(v);
  return r;
}

inline tensorflow::Example example_x(float x) {
  tensorflow::Example e;
  (*e.mutable_features()->mutable_feature())["x"].mutable_float_list()->add_value(x);
  return e;
}

inline ServerOptions reference_options() {
  ServerOptions o;
  o.target = "reference";  // no compilation: fast tests
  o.file_system_poll_wait_seconds = 0;
  return o;
}

// A server on one model base path (reference target and no polling thread by default).
inline std::unique_ptr<ServerCore> serve_folder(const std::string& base, const std::string& name = "default",
                                               ServerOptions o = reference_options()) {
  o.model_name = name;
  o.model_base_path = base;
  return ServerCore::create(o);
}

// A one-model ModelServerConfig; `extra` is text inside its config { } (policy, labels).
inline tfs::ModelServerConfig config_for(const std::string& base, const std::string& extra = "",
                                         const std::string& name = "m") {
  return parse_model_server_config(
      "model_config_list { config { name: \"" + name + "\" base_path: \"" + base + "\" " + extra + " } }", "test");
}

// A ClassificationRequest or RegressionRequest on tf.Examples with feature x.
template <typename Request>
Request examples_x(const std::string& model, const std::string& signature, const std::vector<float>& xs,
                   int64_t version = -1) {
  Request r;
  r.mutable_model_spec()->set_name(model);
  r.mutable_model_spec()->set_signature_name(signature);
  if (version >= 0) r.mutable_model_spec()->mutable_version()->set_value(version);
  for (float x : xs) *r.mutable_input()->mutable_example_list()->add_examples() = example_x(x);
  return r;
}

// GetModelMetadata for the signature_def field (the one TF Serving supports).
inline tfs::GetModelMetadataRequest metadata_request(const std::string& model, int64_t version = -1) {
  tfs::GetModelMetadataRequest r;
  r.mutable_model_spec()->set_name(model);
  if (version >= 0) r.mutable_model_spec()->mutable_version()->set_value(version);
  r.add_metadata_field("signature_def");
  return r;
}

// Every signature of a fixture version, compiled for the reference target, as a .tsr.
inline void write_reference_tsr(const std::string& fixture_version_dir, const fs::path& file) {
  LoadOptions lo;
  lo.target = "reference";
  lo.passes = std::vector<std::string>{};
  lo.use_cache = false;
  auto source = Model::load(kServables + fixture_version_dir, lo);
  ArtifactInfo info;
  info.target = "reference";
  info.tessera_version = kTesseraVersion;
  info.onednn_version = onednn_version_string();
  info.source = kServables + fixture_version_dir;
  fs::create_directories(file.parent_path());
  write_artifact(file.string(), info, source->compile_all(), source->variables());
}

}  // namespace tessera::serve::serve_test
