// TF Serving's warm-up file: assets.extra/tf_serving_warmup_requests, a TFRecord stream of
// PredictionLog records replayed against a new version before it takes traffic. The TFRecord
// framing reader here is small and local (src/train/tfrecord.* on another branch does the same
// job; this one can switch to it once both are on main).
#pragma once
#include <string>
#include <vector>

#include "tensorflow_serving/apis/prediction_log.pb.h"

namespace tessera::serve {

// Every record's payload; checks both masked CRC32Cs and names the file and record on error.
std::vector<std::string> read_tfrecords(const std::string& path);
// Framing for tests and tools.
std::string tfrecord_frame(const std::string& payload);

constexpr const char* kWarmupFile = "assets.extra/tf_serving_warmup_requests";
constexpr size_t kMaxWarmupRecords = 1000;  // TF Serving's limit

// The warm-up records of a version folder (empty if it has none).
std::vector<::tensorflow::serving::PredictionLog> read_warmup_records(const std::string& version_dir);

}  // namespace tessera::serve
