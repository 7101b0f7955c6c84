#include "train/tfrecord.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io/crc32c.h"
#include "io/varint.h"
#include "support/error.h"

namespace tessera::train {
namespace {

constexpr size_t kHeaderSize = 12;  // length + its CRC
constexpr size_t kFooterSize = 4;   // data CRC
constexpr size_t kChunk = 1 << 16;

int window_bits(Compression c) { return c == Compression::kGzip ? MAX_WBITS + 16 : MAX_WBITS; }

FILE* open_or_fail(const std::string& path, const char* mode) {
  FILE* f = std::fopen(path.c_str(), mode);
  if (!f)
    fail_code(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kFailedPrecondition, "'", path,
              "' cannot be opened: ", std::strerror(errno));
  return f;
}

}  // namespace

Compression compression_from_name(const std::string& name) {
  std::string up = name;
  for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (up.empty() || up == "NONE") return Compression::kNone;
  if (up == "GZIP") return Compression::kGzip;
  if (up == "ZLIB") return Compression::kZlib;
  fail("unknown TFRecord compression '", name, "' (expected NONE, GZIP or ZLIB)");
}

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::kGzip: return "GZIP";
    case Compression::kZlib: return "ZLIB";
    default: return "NONE";
  }
}

std::string frame_record(std::string_view data) {
  std::string out;
  out.reserve(data.size() + kHeaderSize + kFooterSize);
  io::put_fixed64(&out, data.size());
  io::put_fixed32(&out, crc32c::mask(crc32c::value(out.data(), 8)));
  out.append(data);
  io::put_fixed32(&out, crc32c::mask(crc32c::value(data.data(), data.size())));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reader

// The uncompressed byte stream of a file.
class TFRecordReader::Source {
 public:
  Source(const std::string& path, Compression c) : path_(path), compression_(c) {
    file_ = open_or_fail(path, "rb");
    if (c != Compression::kNone) {
      if (inflateInit2(&z_, window_bits(c)) != Z_OK)
        fail_code(ErrorCode::kInternal, "'", path, "': zlib initialisation failed");
      zinit_ = true;
      in_.resize(kChunk);
    }
  }
  ~Source() {
    if (zinit_) inflateEnd(&z_);
    if (file_) std::fclose(file_);
  }
  // Appends up to `want` bytes to *dst; returns how many (0 = end of stream).
  size_t read(std::string* dst, size_t want) {
    const size_t old = dst->size();
    dst->resize(old + want);
    char* out = dst->data() + old;
    size_t got = compression_ == Compression::kNone ? read_plain(out, want) : read_z(out, want);
    dst->resize(old + got);
    return got;
  }

 private:
  size_t read_plain(char* out, size_t want) {
    size_t got = std::fread(out, 1, want, file_);
    if (got < want && std::ferror(file_))
      fail_code(ErrorCode::kDataLoss, "error reading '", path_, "': ", std::strerror(errno));
    return got;
  }
  size_t read_z(char* out, size_t want) {
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = static_cast<uInt>(want);
    while (z_.avail_out > 0 && !done_) {
      if (z_.avail_in == 0) {
        size_t n = read_plain(in_.data(), in_.size());
        if (n == 0) {
          if (!ended_)  // the deflate stream stopped before its end marker
            fail_code(ErrorCode::kDataLoss, "'", path_, "': ", compression_name(compression_),
                      " stream is truncated");
          done_ = true;
          break;
        }
        z_.next_in = reinterpret_cast<Bytef*>(in_.data());
        z_.avail_in = static_cast<uInt>(n);
      }
      ended_ = false;
      int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        // GZIP files may hold several members back to back; anything after a ZLIB stream
        // is trailing garbage we ignore, as zlib readers do.
        ended_ = true;
        if (compression_ == Compression::kGzip) {
          inflateReset(&z_);
        } else {
          done_ = true;
        }
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        fail_code(ErrorCode::kDataLoss, "'", path_, "': corrupt ", compression_name(compression_),
                  " data (", z_.msg ? z_.msg : "inflate failed", ") after ", z_.total_out,
                  " bytes of records");
      }
    }
    return want - z_.avail_out;
  }

  std::string path_;
  Compression compression_;
  FILE* file_ = nullptr;
  z_stream z_{};
  bool zinit_ = false;
  bool ended_ = true;  // at a stream boundary (an empty file counts as one)
  bool done_ = false;
  std::string in_;
};

TFRecordReader::TFRecordReader(std::string path, Compression compression, OnCorrupt on_corrupt)
    : path_(std::move(path)), on_corrupt_(on_corrupt) {
  source_ = std::make_unique<Source>(path_, compression);
}

TFRecordReader::~TFRecordReader() = default;

uint64_t TFRecordReader::offset() const { return buf_base_ + pos_; }

bool TFRecordReader::fill(size_t n) {
  if (buf_.size() - pos_ >= n) return true;
  if (pos_ > 0) {  // drop consumed bytes before growing
    buf_.erase(0, pos_);
    buf_base_ += pos_;
    pos_ = 0;
  }
  while (buf_.size() < n) {
    if (source_->read(&buf_, std::max(kChunk, n - buf_.size())) == 0) return false;
  }
  return true;
}

void TFRecordReader::corrupt(uint64_t at, const std::string& why) {
  fail_code(ErrorCode::kDataLoss, "'", path_, "': corrupt record at offset ", at, ": ", why);
}

void TFRecordReader::note_skip(uint64_t at, const std::string& why) {
  skipped_.push_back(str_cat("offset ", at, ": ", why));
}

bool TFRecordReader::next(std::string* out) {
  for (;;) {
    const uint64_t at = offset();
    if (!fill(1)) return false;  // clean end of file
    if (!fill(kHeaderSize)) {
      const std::string why = str_cat("truncated header (", buf_.size() - pos_, " of ",
                                      kHeaderSize, " bytes)");
      if (on_corrupt_ == OnCorrupt::kStop) corrupt(at, why);
      note_skip(at, why);
      pos_ = buf_.size();
      return false;
    }
    const char* h = buf_.data() + pos_;
    const uint64_t length = io::decode_fixed64(h);
    if (crc32c::unmask(io::decode_fixed32(h + 8)) != crc32c::value(h, 8)) {
      if (on_corrupt_ == OnCorrupt::kStop) corrupt(at, "length checksum mismatch");
      // Resynchronise: the next header is somewhere after this byte.
      note_skip(at, "length checksum mismatch; scanning for the next record");
      ++pos_;
      continue;
    }
    const uint64_t avail_hint = length + kHeaderSize + kFooterSize;
    if (length > (uint64_t{1} << 40) || !fill(static_cast<size_t>(avail_hint))) {
      const std::string why = str_cat("truncated record (header says ", length, " bytes, ",
                                      buf_.size() - pos_ - kHeaderSize, " remain)");
      if (on_corrupt_ == OnCorrupt::kStop) corrupt(at, why);
      note_skip(at, why);
      pos_ = buf_.size();
      return false;
    }
    const char* data = buf_.data() + pos_ + kHeaderSize;
    const uint32_t stored = crc32c::unmask(io::decode_fixed32(data + length));
    if (stored != crc32c::value(data, length)) {
      if (on_corrupt_ == OnCorrupt::kStop) corrupt(at, "data checksum mismatch");
      note_skip(at, str_cat("data checksum mismatch; record of ", length, " bytes dropped"));
      pos_ += static_cast<size_t>(avail_hint);
      continue;
    }
    out->assign(data, length);
    pos_ += static_cast<size_t>(avail_hint);
    ++records_;
    return true;
  }
}

uint64_t TFRecordReader::skip(uint64_t n) {
  std::string scratch;
  uint64_t done = 0;
  while (done < n && next(&scratch)) ++done;
  return done;
}

// ---------------------------------------------------------------------------------------------
// Writer

struct TFRecordWriter::ZState {
  z_stream z{};
  std::string out = std::string(kChunk, '\0');
};

TFRecordWriter::TFRecordWriter(std::string path, Compression compression)
    : path_(std::move(path)), compression_(compression) {
  file_ = open_or_fail(path_, "wb");
  if (compression_ != Compression::kNone) {
    z_ = std::make_unique<ZState>();
    if (deflateInit2(&z_->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits(compression_), 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
      fail_code(ErrorCode::kInternal, "'", path_, "': zlib initialisation failed");
  }
}

TFRecordWriter::~TFRecordWriter() {
  try {
    close();
  } catch (const Error&) {
  }
}

void TFRecordWriter::deflate_out(int flush_mode) {
  auto& z = z_->z;
  int rc;
  do {
    z.next_out = reinterpret_cast<Bytef*>(z_->out.data());
    z.avail_out = static_cast<uInt>(z_->out.size());
    rc = deflate(&z, flush_mode);
    if (rc == Z_STREAM_ERROR) fail_code(ErrorCode::kInternal, "'", path_, "': deflate failed");
    const size_t n = z_->out.size() - z.avail_out;
    if (n && std::fwrite(z_->out.data(), 1, n, file_) != n)
      fail_code(ErrorCode::kDataLoss, "error writing '", path_, "': ", std::strerror(errno));
  } while (z.avail_out == 0 || (flush_mode == Z_FINISH && rc != Z_STREAM_END));
}

void TFRecordWriter::put(const void* data, size_t n) {
  TS_CHECK(file_, "'", path_, "' is closed");
  if (!z_) {
    if (std::fwrite(data, 1, n, file_) != n)
      fail_code(ErrorCode::kDataLoss, "error writing '", path_, "': ", std::strerror(errno));
    return;
  }
  z_->z.next_in = reinterpret_cast<Bytef*>(const_cast<void*>(data));
  z_->z.avail_in = static_cast<uInt>(n);
  deflate_out(Z_NO_FLUSH);
}

void TFRecordWriter::write(std::string_view record) {
  std::string header;
  io::put_fixed64(&header, record.size());
  io::put_fixed32(&header, crc32c::mask(crc32c::value(header.data(), 8)));
  std::string footer;
  io::put_fixed32(&footer, crc32c::mask(crc32c::value(record.data(), record.size())));
  put(header.data(), header.size());
  // zlib takes uInt lengths: feed huge records in pieces.
  constexpr size_t kPiece = size_t{1} << 30;
  for (size_t off = 0; off < record.size(); off += kPiece)
    put(record.data() + off, std::min(record.size() - off, kPiece));
  put(footer.data(), footer.size());
}

void TFRecordWriter::flush() {
  TS_CHECK(file_, "'", path_, "' is closed");
  if (z_) {
    z_->z.avail_in = 0;
    deflate_out(Z_SYNC_FLUSH);
  }
  if (std::fflush(file_) != 0)
    fail_code(ErrorCode::kDataLoss, "error writing '", path_, "': ", std::strerror(errno));
}

void TFRecordWriter::close() {
  if (!file_) return;
  FILE* f = file_;
  std::string err;
  try {
    if (z_) {
      z_->z.avail_in = 0;
      deflate_out(Z_FINISH);
    }
  } catch (const Error& e) {
    err = e.what();
  }
  if (z_) {
    deflateEnd(&z_->z);
    z_.reset();
  }
  file_ = nullptr;
  if (std::fclose(f) != 0 && err.empty()) err = str_cat("error closing '", path_, "': ", std::strerror(errno));
  if (!err.empty()) fail_code(ErrorCode::kDataLoss, err);
}

}  // namespace tessera::train
