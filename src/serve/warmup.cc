#include "serve/warmup.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/crc32c.h"
#include "support/error.h"

namespace tessera::serve {

namespace {

uint64_t le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
uint32_t le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

std::string tfrecord_frame(const std::string& payload) {
  std::string out, len;
  put_le(len, payload.size(), 8);
  out += len;
  put_le(out, crc32c::mask(crc32c::value(len.data(), 8)), 4);
  out += payload;
  put_le(out, crc32c::mask(crc32c::value(payload.data(), payload.size())), 4);
  return out;
}

std::vector<std::string> read_tfrecords(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_code(ErrorCode::kNotFound, "cannot read TFRecord file '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t index = out.size();
    if (data.size() - pos < 12) fail_code(ErrorCode::kDataLoss, path, ": record ", index, ": truncated header");
    const uint64_t len = le64(data.data() + pos);
    if (crc32c::unmask(le32(data.data() + pos + 8)) != crc32c::value(data.data() + pos, 8))
      fail_code(ErrorCode::kDataLoss, path, ": record ", index, ": corrupted length");
    pos += 12;
    if (len > data.size() - pos || data.size() - pos - len < 4)
      fail_code(ErrorCode::kDataLoss, path, ": record ", index, ": truncated payload");
    if (crc32c::unmask(le32(data.data() + pos + len)) != crc32c::value(data.data() + pos, len))
      fail_code(ErrorCode::kDataLoss, path, ": record ", index, ": corrupted payload");
    out.emplace_back(data.data() + pos, len);
    pos += len + 4;
  }
  return out;
}

std::vector<::tensorflow::serving::PredictionLog> read_warmup_records(const std::string& version_dir) {
  const std::string path = (std::filesystem::path(version_dir) / kWarmupFile).string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return {};
  std::vector<::tensorflow::serving::PredictionLog> logs;
  for (const std::string& rec : read_tfrecords(path)) {
    if (logs.size() >= kMaxWarmupRecords)
      fail(path, ": more than ", kMaxWarmupRecords, " warm-up records");
    auto& log = logs.emplace_back();
    if (!log.ParseFromString(rec)) fail(path, ": record ", logs.size() - 1, " is not a PredictionLog");
  }
  return logs;
}

}  // namespace tessera::serve
