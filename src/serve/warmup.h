// TF Serving's warm-up file: assets.extra/tf_serving_warmup_requests, a TFRecord stream of
// PredictionLog records replayed against a new version before it takes traffic (read with
// src/train/tfrecord.h).
#pragma once
#include <string>
#include <vector>

#include "tensorflow_serving/apis/prediction_log.pb.h"

namespace tessera::serve {

constexpr const char* kWarmupFile = "assets.extra/tf_serving_warmup_requests";
constexpr size_t kMaxWarmupRecords = 1000;  // TF Serving's limit

// The warm-up records of a version folder (empty if it has none).
std::vector<::tensorflow::serving::PredictionLog> read_warmup_records(const std::string& version_dir);

}  // namespace tessera::serve
