#include "io/tensor_bundle_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "io/crc32c.h"
#include "io/sstable.h"
#include "io/varint.h"
#include "support/error.h"
#include "support/file.h"
#include "tensorflow/core/protobuf/tensor_bundle.pb.h"

namespace tessera {
namespace {

constexpr size_t kBlockSize = 4096;     // target data block size (bytes of entries)
constexpr int kRestartInterval = 16;    // LevelDB's default

// One table block under construction: prefix-compressed entries plus the restart array.
class BlockBuilder {
 public:
  explicit BlockBuilder(int restart_interval) : interval_(restart_interval) {}
  void add(std::string_view key, std::string_view value) {
    size_t shared = 0;
    if (count_ % interval_ == 0) {
      restarts_.push_back(static_cast<uint32_t>(buf_.size()));
    } else {
      const size_t n = std::min(last_.size(), key.size());
      while (shared < n && last_[shared] == key[shared]) ++shared;
    }
    io::put_varint32(&buf_, static_cast<uint32_t>(shared));
    io::put_varint32(&buf_, static_cast<uint32_t>(key.size() - shared));
    io::put_varint32(&buf_, static_cast<uint32_t>(value.size()));
    buf_.append(key.substr(shared));
    buf_.append(value);
    last_.assign(key);
    ++count_;
  }
  bool empty() const { return count_ == 0; }
  size_t size() const { return buf_.size(); }
  const std::string& last_key() const { return last_; }
  // The finished block bytes; resets the builder.
  std::string finish() {
    if (restarts_.empty()) restarts_.push_back(0);
    std::string out = std::move(buf_);
    for (uint32_t r : restarts_) io::put_fixed32(&out, r);
    io::put_fixed32(&out, static_cast<uint32_t>(restarts_.size()));
    buf_.clear();
    restarts_.clear();
    last_.clear();
    count_ = 0;
    return out;
  }

 private:
  int interval_;
  std::string buf_;
  std::vector<uint32_t> restarts_;
  std::string last_;
  int count_ = 0;
};

// Appends a block and its trailer (type 0 = uncompressed, masked CRC of block + type).
io::BlockHandle append_block(std::string* file, const std::string& block) {
  io::BlockHandle h{file->size(), block.size()};
  file->append(block);
  const char type = 0;
  file->push_back(type);
  io::put_fixed32(file, crc32c::mask(crc32c::extend(crc32c::value(block.data(), block.size()), &type, 1)));
  return h;
}

void put_handle(std::string* dst, const io::BlockHandle& h) {
  io::put_varint64(dst, h.offset);
  io::put_varint64(dst, h.size);
}

[[noreturn]] void io_fail(const std::string& what, const std::string& path) {
  fail_code(ErrorCode::kFailedPrecondition, what, " '", path, "': ", std::strerror(errno));
}

// Writes `bytes` to `path` and fsyncs it.
void write_synced(const std::string& path, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_fail("cannot create", path);
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      errno = saved;
      io_fail("error writing", path);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    io_fail("cannot fsync", path);
  }
  if (::close(fd) != 0) io_fail("error closing", path);
}

// Makes a rename durable (best effort: some filesystems refuse to fsync directories).
void sync_dir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void rename_into_place(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    fail_code(ErrorCode::kFailedPrecondition, "cannot rename '", from, "' to '", to, "': ",
              std::strerror(errno));
  sync_dir(to);
}

std::string temp_name(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return str_cat(path, ".tempstate", ::getpid(), "_", counter++);
}

void reached(CheckpointStage stage, const CheckpointWriteOptions& options) {
  if (const char* env = std::getenv("TESSERA_CHECKPOINT_FAULT_STAGE")) {
    if (std::atoi(env) == static_cast<int>(stage)) ::_exit(86);  // a crash: no cleanup at all
  }
  if (options.after_stage) options.after_stage(stage);
}

// Bytes of a DT_STRING tensor as TensorBundle stores them, and their running checksum.
std::string encode_strings(const Tensor& t, uint32_t* crc_out) {
  std::string out;
  uint32_t crc = 0;
  for (const auto& s : t.strings()) {
    io::put_varint64(&out, s.size());
    const uint64_t len = s.size();
    uint8_t le[8];
    for (int b = 0; b < 8; ++b) le[b] = static_cast<uint8_t>(len >> (8 * b));
    crc = crc32c::extend(crc, le, len <= UINT32_MAX ? 4 : 8);
  }
  std::string lengths_crc;
  io::put_fixed32(&lengths_crc, crc32c::mask(crc));
  out.append(lengths_crc);
  crc = crc32c::extend(crc, lengths_crc.data(), 4);
  for (const auto& s : t.strings()) {
    out.append(s);
    crc = crc32c::extend(crc, s.data(), s.size());
  }
  *crc_out = crc;
  return out;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

}  // namespace

const char* checkpoint_stage_name(CheckpointStage s) {
  switch (s) {
    case CheckpointStage::kDataWritten: return "data written";
    case CheckpointStage::kDataRenamed: return "data renamed";
    case CheckpointStage::kIndexWritten: return "index written";
    case CheckpointStage::kIndexRenamed: return "index renamed";
    case CheckpointStage::kStateWritten: return "checkpoint file written";
    case CheckpointStage::kStateRenamed: return "checkpoint file renamed";
  }
  return "?";
}

std::string build_sstable(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string file;
  BlockBuilder data(kRestartInterval), index(1);
  auto flush_data = [&] {
    if (data.empty()) return;
    const std::string last = data.last_key();  // a valid separator for this block
    io::BlockHandle h = append_block(&file, data.finish());
    std::string handle;
    put_handle(&handle, h);
    index.add(last, handle);
  };
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0)
      TS_CHECK(entries[i - 1].first < entries[i].first, "build_sstable: keys not strictly increasing at '",
               entries[i].first, "'");
    data.add(entries[i].first, entries[i].second);
    if (data.size() >= kBlockSize) flush_data();
  }
  flush_data();
  io::BlockHandle meta = append_block(&file, BlockBuilder(kRestartInterval).finish());
  io::BlockHandle idx = append_block(&file, index.finish());
  std::string footer;
  put_handle(&footer, meta);
  put_handle(&footer, idx);
  footer.resize(io::kTableFooterSize - 8, '\0');
  io::put_fixed64(&footer, io::kTableMagic);
  file.append(footer);
  return file;
}

TensorBundleWriter::TensorBundleWriter(std::string prefix, CheckpointWriteOptions options)
    : prefix_(std::move(prefix)), options_(std::move(options)) {
  TS_CHECK(!prefix_.empty(), "checkpoint prefix is empty");
}

void TensorBundleWriter::add(const std::string& key, const Tensor& tensor) {
  TS_CHECK(!finished_, "checkpoint '", prefix_, "' is already written");
  TS_CHECK(!key.empty() && key[0] != '\0', "checkpoint '", prefix_, "': invalid tensor key '", key, "'");
  TS_CHECK(tensor.valid() && (is_pod(tensor.dtype()) || tensor.dtype() == DType::kString),
           "checkpoint '", prefix_, "': tensor '", key, "' has unsupported dtype ",
           tensor.valid() ? dtype_name(tensor.dtype()) : "invalid");
  TS_CHECK(tensors_.emplace(key, tensor).second, "checkpoint '", prefix_, "': duplicate key '", key, "'");
}

void TensorBundleWriter::finish() {
  TS_CHECK(!finished_, "checkpoint '", prefix_, "' is already written");
  finished_ = true;
  std::string data;
  std::vector<std::pair<std::string, std::string>> entries;
  tensorflow::BundleHeaderProto header;
  header.set_num_shards(1);
  header.set_endianness(tensorflow::BundleHeaderProto::LITTLE);
  header.mutable_version()->set_producer(1);
  entries.emplace_back("", header.SerializeAsString());
  for (const auto& [key, t] : tensors_) {
    tensorflow::BundleEntryProto e;
    e.set_dtype(static_cast<tensorflow::DataType>(static_cast<int>(t.dtype())));
    for (int64_t d : t.shape()) e.mutable_shape()->add_dim()->set_size(d);
    e.set_shard_id(0);
    e.set_offset(static_cast<int64_t>(data.size()));
    uint32_t crc;
    if (t.dtype() == DType::kString) {
      data.append(encode_strings(t, &crc));
    } else {
      crc = crc32c::value(t.raw(), t.nbytes());
      data.append(static_cast<const char*>(t.raw()), t.nbytes());
    }
    e.set_size(static_cast<int64_t>(data.size()) - e.offset());
    e.set_crc32c(crc32c::mask(crc));
    entries.emplace_back(key, e.SerializeAsString());
  }
  const std::string data_path = prefix_ + ".data-00000-of-00001";
  const std::string index_path = prefix_ + ".index";
  std::error_code ec;
  const auto parent = std::filesystem::path(prefix_).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);

  const std::string data_tmp = temp_name(data_path);
  write_synced(data_tmp, data);
  reached(CheckpointStage::kDataWritten, options_);
  rename_into_place(data_tmp, data_path);
  reached(CheckpointStage::kDataRenamed, options_);
  const std::string index_tmp = temp_name(index_path);
  write_synced(index_tmp, build_sstable(entries));
  reached(CheckpointStage::kIndexWritten, options_);
  rename_into_place(index_tmp, index_path);
  reached(CheckpointStage::kIndexRenamed, options_);
}

void write_tensor_bundle(const std::string& prefix, const std::map<std::string, Tensor>& tensors,
                         const CheckpointWriteOptions& options) {
  TensorBundleWriter w(prefix, options);
  for (const auto& [k, t] : tensors) w.add(k, t);
  w.finish();
}

void write_checkpoint_state(const std::string& dir, const std::string& latest,
                            const std::vector<std::string>& all,
                            const CheckpointWriteOptions& options) {
  std::string text = "model_checkpoint_path: " + quote(latest) + "\n";
  for (const auto& p : all) text += "all_model_checkpoint_paths: " + quote(p) + "\n";
  const std::string path = join_path(dir, "checkpoint");
  const std::string tmp = temp_name(path);
  write_synced(tmp, text);
  reached(CheckpointStage::kStateWritten, options);
  rename_into_place(tmp, path);
  reached(CheckpointStage::kStateRenamed, options);
}

std::string latest_checkpoint(const std::string& dir) {
  const std::string path = join_path(dir, "checkpoint");
  if (!file_exists(path)) return "";
  const std::string text = read_file(path);
  const std::string field = "model_checkpoint_path:";
  size_t pos = 0;
  while ((pos = text.find(field, pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') break;  // not all_model_checkpoint_paths
    pos += field.size();
  }
  if (pos == std::string::npos) fail_code(ErrorCode::kDataLoss, "'", path, "' has no model_checkpoint_path");
  size_t q = text.find('"', pos);
  std::string value;
  bool closed = false;
  for (size_t i = q == std::string::npos ? text.size() : q + 1; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      value.push_back(text[++i]);
    } else if (text[i] == '"') {
      closed = true;
      break;
    } else {
      value.push_back(text[i]);
    }
  }
  if (!closed) fail_code(ErrorCode::kDataLoss, "'", path, "': malformed model_checkpoint_path");
  if (value.empty() || value[0] == '/') return value;
  return join_path(dir, value);
}

}  // namespace tessera
