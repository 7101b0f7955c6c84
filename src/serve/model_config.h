// Reading what the server should serve: a text ModelServerConfig (or TF Serving's single-model
// flags), a text BatchingParameters, and the numbered version folders under a base path.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "tensorflow_serving/config/model_server_config.pb.h"
#include "tensorflow_serving/servables/tensorflow/session_bundle_config.pb.h"

namespace tessera::serve {

namespace tfs = ::tensorflow::serving;

// Parses a text ModelServerConfig; the error says "Error parsing text-format
// tensorflow.serving.ModelServerConfig" as TF Serving's does. Checks it with validate_config.
tfs::ModelServerConfig read_model_server_config(const std::string& path);
tfs::ModelServerConfig parse_model_server_config(const std::string& text, const std::string& where);
// --model_name/--model_base_path as a one-model config (policy latest 1).
tfs::ModelServerConfig single_model_config(const std::string& name, const std::string& base_path);
// Names unique, non-empty and safe (no "/", "\\", ".."), base paths set, only model_config_list.
void validate_config(const tfs::ModelServerConfig& config);
void validate_model_name(const std::string& name);

tfs::BatchingParameters read_batching_parameters(const std::string& path);

// Numbered sub-folders of `base_path` ("00000123" is version 123) -> their paths. Folders that
// are not all digits are ignored, as TF Serving does. Missing base path: empty map.
std::map<int64_t, std::string> scan_versions(const std::string& base_path);
// What to load under a version policy (default latest{1}) from the versions on disk.
std::set<int64_t> select_versions(const tfs::ModelConfig& config, const std::map<int64_t, std::string>& on_disk);
// The servable inside a version folder: the folder itself (SavedModel) or its single `.tsr`.
std::string servable_path(const std::string& version_dir);

}  // namespace tessera::serve
