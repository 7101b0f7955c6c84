#include "serve/warmup.h"

#include <filesystem>

#include "support/error.h"
#include "train/tfrecord.h"

namespace tessera::serve {

std::vector<::tensorflow::serving::PredictionLog> read_warmup_records(const std::string& version_dir) {
  const std::string path = (std::filesystem::path(version_dir) / kWarmupFile).string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return {};
  std::vector<::tensorflow::serving::PredictionLog> logs;
  train::TFRecordReader reader(path);  // checks every length and CRC; errors name file and offset
  std::string rec;
  while (reader.next(&rec)) {
    if (logs.size() >= kMaxWarmupRecords)
      fail(path, ": more than ", kMaxWarmupRecords, " warm-up records");
    auto& log = logs.emplace_back();
    if (!log.ParseFromString(rec)) fail(path, ": record ", logs.size() - 1, " is not a PredictionLog");
  }
  return logs;
}

}  // namespace tessera::serve
