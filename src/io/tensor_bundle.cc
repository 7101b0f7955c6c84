#include "io/tensor_bundle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "io/crc32c.h"
#include "io/sstable.h"
#include "io/varint.h"
#include "support/error.h"
#include "tensorflow/core/protobuf/tensor_bundle.pb.h"

namespace tessera {
namespace {

constexpr int kBundleVersion = 1;  // the format version this reader implements (TF's too)

// An open data shard. Reads use pread, so one descriptor serves concurrent readers.
struct Shard {
  std::string path;
  int fd = -1;
  uint64_t size = 0;
  ~Shard() {
    if (fd >= 0) ::close(fd);
  }
  // Reads exactly n bytes at offset (already bounds-checked against `size`).
  void read_exact(uint64_t offset, void* dst, size_t n) const {
    char* out = static_cast<char*>(dst);
    while (n > 0) {
      ssize_t got = ::pread(fd, out, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0)
        fail_code(ErrorCode::kDataLoss, "error reading '", path, "': ", std::strerror(errno));
      if (got == 0)
        fail_code(ErrorCode::kDataLoss, "'", path, "' is truncated (shrank while being read)");
      out += got;
      offset += static_cast<uint64_t>(got);
      n -= static_cast<size_t>(got);
    }
  }
};

std::string shard_path(const std::string& prefix, int id, int num_shards) {
  char suffix[64];
  std::snprintf(suffix, sizeof(suffix), ".data-%05d-of-%05d", id, num_shards);
  return prefix + suffix;
}

bool is_slice_key(const std::string& key) {
  // Slices of partitioned variables are stored under OrderedCode-encoded keys, which start
  // with a 0 byte; tensor names never do.
  return !key.empty() && key[0] == '\0';
}

}  // namespace

struct TensorBundleReader::Impl {
  std::string prefix;
  std::string index_path;
  int num_shards = 0;
  std::map<std::string, tensorflow::BundleEntryProto> entries;  // excludes the header key
  mutable std::mutex mu;
  mutable std::vector<std::unique_ptr<Shard>> shards;  // opened on first use

  const tensorflow::BundleEntryProto& entry(const std::string& key) const {
    auto it = entries.find(key);
    if (it == entries.end() || is_slice_key(key))
      fail_code(ErrorCode::kNotFound, "tensor '", key, "' not found in checkpoint '", prefix, "'");
    return it->second;
  }

  const Shard& shard(int id) const {
    std::lock_guard<std::mutex> lock(mu);
    auto& s = shards.at(static_cast<size_t>(id));
    if (!s) {
      auto opened = std::make_unique<Shard>();
      opened->path = shard_path(prefix, id, num_shards);
      opened->fd = ::open(opened->path.c_str(), O_RDONLY | O_CLOEXEC);
      if (opened->fd < 0)
        fail_code(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kFailedPrecondition,
                  "checkpoint data shard '", opened->path, "' cannot be opened: ",
                  std::strerror(errno));
      struct stat st {};
      if (::fstat(opened->fd, &st) != 0 || !S_ISREG(st.st_mode))
        fail_code(ErrorCode::kFailedPrecondition, "checkpoint data shard '", opened->path,
                  "' is not a regular file");
      opened->size = static_cast<uint64_t>(st.st_size);
      s = std::move(opened);
    }
    return *s;
  }
};

namespace {

DType entry_dtype(const tensorflow::BundleEntryProto& e) { return dtype_from_tf(e.dtype()); }

Shape entry_shape(const tensorflow::BundleEntryProto& e) {
  TS_CHECK(!e.shape().unknown_rank(), "stored shape has unknown rank");
  Shape shape;
  shape.reserve(static_cast<size_t>(e.shape().dim_size()));
  for (const auto& d : e.shape().dim()) {
    TS_CHECK(d.size() >= 0, "stored shape has negative dimension ", d.size());
    shape.push_back(d.size());
  }
  num_elements(shape);  // throws on overflow
  return shape;
}

[[noreturn]] void data_loss(const std::string& what) { fail_code(ErrorCode::kDataLoss, what); }

// Decodes a DT_STRING tensor's stored bytes: varint64 lengths, masked CRC32C of the lengths,
// then the concatenated bytes. Returns the running checksum TF's writer computes (lengths as
// u32/u64 values, the stored length checksum, then the bytes) for the caller to compare with
// the entry's crc32c.
uint32_t decode_strings(std::string_view buf, Tensor& t, const std::string& where) {
  auto& strings = t.strings();
  const size_t n = strings.size();
  const char* p = buf.data();
  const char* limit = buf.data() + buf.size();
  std::vector<uint64_t> lengths(n);
  uint32_t crc = 0;
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    p = io::get_varint64(p, limit, &lengths[i]);
    if (!p) data_loss(str_cat(where, ": string lengths are truncated or malformed"));
    if (lengths[i] <= UINT32_MAX) {
      uint8_t le[4];
      for (int b = 0; b < 4; ++b) le[b] = static_cast<uint8_t>(lengths[i] >> (8 * b));
      crc = crc32c::extend(crc, le, 4);
    } else {
      uint8_t le[8];
      for (int b = 0; b < 8; ++b) le[b] = static_cast<uint8_t>(lengths[i] >> (8 * b));
      crc = crc32c::extend(crc, le, 8);
    }
    if (lengths[i] > buf.size()) data_loss(str_cat(where, ": string length exceeds the entry size"));
    total += lengths[i];  // cannot overflow: each term <= buf.size()
  }
  if (limit - p < 4) data_loss(str_cat(where, ": string length checksum is missing"));
  if (crc32c::unmask(io::decode_fixed32(p)) != crc)
    data_loss(str_cat(where, ": string length checksum mismatch (data corrupted)"));
  crc = crc32c::extend(crc, p, 4);
  p += 4;
  if (total != static_cast<uint64_t>(limit - p))
    data_loss(str_cat(where, ": string bytes (", limit - p, ") do not match the lengths (", total,
                      ")"));
  for (size_t i = 0; i < n; ++i) {
    strings[i].assign(p, lengths[i]);
    p += lengths[i];
  }
  return crc32c::extend(crc, p - total, total);
}

}  // namespace

TensorBundleReader::TensorBundleReader(const std::string& prefix) : impl_(std::make_unique<Impl>()) {
  impl_->prefix = prefix;
  impl_->index_path = prefix + ".index";
  const std::string& path = impl_->index_path;
  io::SSTable table = io::SSTable::open(path);
  bool have_header = false;
  table.for_each([&](std::string_view key, std::string_view value) {
    if (key.empty()) {
      tensorflow::BundleHeaderProto header;
      if (!header.ParseFromArray(value.data(), static_cast<int>(value.size())))
        data_loss(str_cat("'", path, "': corrupted checkpoint header"));
      if (header.endianness() != tensorflow::BundleHeaderProto::LITTLE)
        fail_code(ErrorCode::kUnimplemented, "'", path,
                  "': big-endian checkpoints are not supported");
      const auto& v = header.version();
      if (v.min_consumer() > kBundleVersion)
        fail_code(ErrorCode::kUnimplemented, "'", path, "': checkpoint needs reader version >= ",
                  v.min_consumer(), " (this reader implements version ", kBundleVersion, ")");
      for (int bad : v.bad_consumers())
        if (bad == kBundleVersion)
          fail_code(ErrorCode::kUnimplemented, "'", path, "': checkpoint disallows reader version ",
                    kBundleVersion);
      if (header.num_shards() < 1 || header.num_shards() > 1000000)
        data_loss(str_cat("'", path, "': invalid shard count ", header.num_shards()));
      impl_->num_shards = header.num_shards();
      have_header = true;
      return;
    }
    if (value.size() > INT32_MAX) data_loss(str_cat("'", path, "': oversized entry"));
    tensorflow::BundleEntryProto entry;
    if (!entry.ParseFromArray(value.data(), static_cast<int>(value.size())))
      data_loss(str_cat("'", path, "': corrupted entry for tensor '", key, "'"));
    impl_->entries.emplace(std::string(key), std::move(entry));
  });
  if (!have_header)
    data_loss(str_cat("'", path, "' has no checkpoint header (not a TensorBundle index?)"));
  impl_->shards.resize(static_cast<size_t>(impl_->num_shards));
}

TensorBundleReader::~TensorBundleReader() = default;

std::vector<std::string> TensorBundleReader::keys() const {
  std::vector<std::string> out;
  out.reserve(impl_->entries.size());
  for (const auto& [key, entry] : impl_->entries)
    if (!is_slice_key(key)) out.push_back(key);
  return out;
}

bool TensorBundleReader::contains(const std::string& key) const {
  return !is_slice_key(key) && impl_->entries.count(key) > 0;
}

DType TensorBundleReader::dtype(const std::string& key) const {
  const auto& e = impl_->entry(key);
  return with_context(str_cat("tensor '", key, "' in '", impl_->index_path, "'"),
                      [&] { return entry_dtype(e); });
}

Shape TensorBundleReader::shape(const std::string& key) const {
  const auto& e = impl_->entry(key);
  return with_context(str_cat("tensor '", key, "' in '", impl_->index_path, "'"),
                      [&] { return entry_shape(e); });
}

Tensor TensorBundleReader::read(const std::string& key) const {
  const auto& e = impl_->entry(key);
  const std::string where = str_cat("tensor '", key, "' in checkpoint '", impl_->prefix, "'");
  return with_context(where, [&]() -> Tensor {
    const DType dtype = entry_dtype(e);
    const Shape shape = entry_shape(e);
    if (e.slices_size() > 0)
      fail_code(ErrorCode::kUnimplemented,
                "partitioned (sliced) variables are not supported; re-save it unpartitioned");
    if (dtype == DType::kVariant || dtype == DType::kResource)
      fail_code(ErrorCode::kUnimplemented, dtype_name(dtype), " tensors are not supported");
    if (e.shard_id() < 0 || e.shard_id() >= impl_->num_shards)
      data_loss(str_cat("shard id ", e.shard_id(), " out of range (checkpoint has ",
                        impl_->num_shards, " shards)"));
    if (e.offset() < 0 || e.size() < 0)
      data_loss(str_cat("negative offset/size ", e.offset(), "/", e.size()));
    const uint64_t offset = static_cast<uint64_t>(e.offset());
    const uint64_t size = static_cast<uint64_t>(e.size());
    const uint64_t count = static_cast<uint64_t>(num_elements(shape));

    // Cheap consistency checks before touching the shard or allocating anything.
    if (is_pod(dtype)) {
      const uint64_t elem = dtype_size(dtype);
      if (count > size / elem || count * elem != size)
        data_loss(str_cat("entry size ", size, " bytes does not match shape ", shape_str(shape),
                          " of ", dtype_name(dtype), " (", count, " x ", elem, " bytes)"));
    } else if (count > 0 ? (size < 4 || count > size - 4) : size != 4) {
      // Strings need at least one length byte per element plus the 4-byte length checksum.
      data_loss(str_cat("entry size ", size, " bytes is too small for ", count, " strings"));
    }
    const Shard& shard = impl_->shard(e.shard_id());
    if (offset > shard.size || size > shard.size - offset)
      data_loss(str_cat("'", shard.path, "' is truncated: the tensor needs bytes [", offset, ", ",
                        offset + size, ") but the file has ", shard.size, " bytes"));
    if (size > max_tensor_bytes())
      fail_code(ErrorCode::kResourceExhausted, "entry of ", size, " bytes exceeds the ",
                max_tensor_bytes(), "-byte tensor limit");

    Tensor t(dtype, shape);
    uint32_t crc;
    if (is_pod(dtype)) {
      shard.read_exact(offset, t.mutable_raw(), size);
      crc = crc32c::value(t.raw(), size);
      if (dtype == DType::kBool) {  // only 0/1 are valid bool objects
        auto* b = static_cast<uint8_t*>(t.mutable_raw());
        for (uint64_t i = 0; i < size; ++i) b[i] = b[i] != 0;
      }
    } else {
      std::string buf(size, '\0');
      shard.read_exact(offset, buf.data(), size);
      crc = decode_strings(buf, t, str_cat("'", shard.path, "'"));
    }
    if (crc != crc32c::unmask(e.crc32c()))
      data_loss(str_cat("checksum mismatch in '", shard.path, "' (data corrupted)"));
    return t;
  });
}

}  // namespace tessera
