#include "serve/model_config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/error.h"

namespace tessera::serve {

namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_code(ErrorCode::kNotFound, "cannot read ", what, " '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Collects the parser's messages so the error names the line.
class Collector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    text += str_cat(line + 1, ":", column + 1, ": ", message, "; ");
  }
  std::string text;
};

template <typename Msg>
Msg parse_text(const std::string& text, const std::string& where, const char* type_name) {
  Msg msg;
  Collector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &msg))
    fail("Error parsing text-format ", type_name, ": ", where, ": ", errors.text);
  return msg;
}

}  // namespace

void validate_model_name(const std::string& name) {
  if (name.empty()) fail("model name is empty");
  if (name.find('/') != std::string::npos || name.find('\\') != std::string::npos ||
      name.find("..") != std::string::npos)
    fail("model name '", name, "' must not contain '/', '\\\\' or '..'");
}

void validate_config(const tfs::ModelServerConfig& config) {
  if (config.config_case() == tfs::ModelServerConfig::kCustomModelConfig)
    fail_code(ErrorCode::kUnimplemented, "custom_model_config is not supported; use model_config_list");
  std::set<std::string> names;
  for (const auto& m : config.model_config_list().config()) {
    validate_model_name(m.name());
    if (!names.insert(m.name()).second) fail("model '", m.name(), "' is configured twice");
    if (m.base_path().empty()) fail("model '", m.name(), "' has no base_path");
    if (!m.model_platform().empty() && m.model_platform() != "tensorflow")
      fail_code(ErrorCode::kUnimplemented, "model '", m.name(), "': platform '", m.model_platform(),
                "' is not supported (only \"tensorflow\")");
  }
}

tfs::ModelServerConfig parse_model_server_config(const std::string& text, const std::string& where) {
  auto config = parse_text<tfs::ModelServerConfig>(text, where, "tensorflow.serving.ModelServerConfig");
  with_context(where, [&] { validate_config(config); });
  return config;
}

tfs::ModelServerConfig read_model_server_config(const std::string& path) {
  return parse_model_server_config(read_text(path, "model config file"), path);
}

tfs::ModelServerConfig single_model_config(const std::string& name, const std::string& base_path) {
  tfs::ModelServerConfig config;
  auto* m = config.mutable_model_config_list()->add_config();
  m->set_name(name);
  m->set_base_path(base_path);
  m->set_model_platform("tensorflow");
  validate_config(config);
  return config;
}

tfs::BatchingParameters read_batching_parameters(const std::string& path) {
  return parse_text<tfs::BatchingParameters>(read_text(path, "batching parameters file"), path,
                                             "tensorflow.serving.BatchingParameters");
}

std::map<int64_t, std::string> scan_versions(const std::string& base_path) {
  std::map<int64_t, std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(base_path, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.empty() || name.size() > 18 || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (!it->is_directory(ec)) continue;
    out[std::stoll(name)] = it->path().string();
  }
  return out;
}

std::set<int64_t> select_versions(const tfs::ModelConfig& config, const std::map<int64_t, std::string>& on_disk) {
  using Policy = tfs::FileSystemStoragePathSourceConfig::ServableVersionPolicy;
  const Policy& policy = config.model_version_policy();
  std::set<int64_t> out;
  switch (policy.policy_choice_case()) {
    case Policy::kAll:
      for (const auto& [v, p] : on_disk) out.insert(v);
      break;
    case Policy::kSpecific:
      for (int64_t v : policy.specific().versions())
        if (on_disk.count(v)) out.insert(v);
      break;
    default: {
      uint32_t n = policy.has_latest() && policy.latest().num_versions() > 0 ? policy.latest().num_versions() : 1;
      for (auto it = on_disk.rbegin(); it != on_disk.rend() && out.size() < n; ++it) out.insert(it->first);
    }
  }
  return out;
}

std::string servable_path(const std::string& version_dir) {
  std::error_code ec;
  std::string tsr;
  for (fs::directory_iterator it(version_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() == ".tsr") {
      if (!tsr.empty()) fail("version folder '", version_dir, "' holds more than one .tsr artifact");
      tsr = it->path().string();
    }
  }
  return tsr.empty() ? version_dir : tsr;
}

}  // namespace tessera::serve
