// Shared helpers for the model server tests: fixture paths, temp model folders, requests.
#pragma once
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

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

}  // namespace tessera::serve::serve_test
