// TFRecord files: a stream of records, each framed as
//   uint64 length (LE) · uint32 masked CRC32C of those 8 bytes · data · uint32 masked CRC32C of data,
// optionally compressed as a whole with GZIP or ZLIB (TFRecordOptions' compression_type).
//
// The reader treats files as untrusted: every length and checksum is verified, and a corrupt
// record is reported with the file and the byte offset of its header (offsets count bytes of
// the uncompressed record stream). With OnCorrupt::kSkip it resynchronises instead: a record
// with a bad data CRC is dropped, a bad header is skipped by scanning forward for the next
// byte position whose header checksum verifies, and each skip is counted and described.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::train {

enum class Compression { kNone, kGzip, kZlib };
// "", "NONE", "GZIP", "ZLIB" (case-insensitive), as TF spells them.
Compression compression_from_name(const std::string& name);
const char* compression_name(Compression c);

enum class OnCorrupt { kStop, kSkip };

class TFRecordReader {
 public:
  explicit TFRecordReader(std::string path, Compression compression = Compression::kNone,
                          OnCorrupt on_corrupt = OnCorrupt::kStop);
  ~TFRecordReader();
  TFRecordReader(const TFRecordReader&) = delete;
  TFRecordReader& operator=(const TFRecordReader&) = delete;

  // Reads the next record into *out; false at the end of the file. With kStop a corrupt or
  // truncated record throws ErrorCode::kDataLoss naming the file and offset.
  bool next(std::string* out);
  // Skips n records without returning them (still verified); returns how many were skipped.
  uint64_t skip(uint64_t n);

  const std::string& path() const { return path_; }
  uint64_t offset() const;  // stream offset of the next record's header
  uint64_t records_read() const { return records_; }
  // What kSkip dropped: one line per corruption ("offset N: reason").
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  class Source;
  // Makes at least n bytes available after pos_; false if the stream ends first.
  bool fill(size_t n);
  [[noreturn]] void corrupt(uint64_t at, const std::string& why);
  void note_skip(uint64_t at, const std::string& why);

  std::string path_;
  OnCorrupt on_corrupt_;
  std::unique_ptr<Source> source_;
  std::string buf_;
  size_t pos_ = 0;         // next unread byte in buf_
  uint64_t buf_base_ = 0;  // stream offset of buf_[0]
  uint64_t records_ = 0;
  std::vector<std::string> skipped_;
};

class TFRecordWriter {
 public:
  explicit TFRecordWriter(std::string path, Compression compression = Compression::kNone);
  ~TFRecordWriter();  // closes (errors are swallowed there; call close() to see them)
  TFRecordWriter(const TFRecordWriter&) = delete;
  TFRecordWriter& operator=(const TFRecordWriter&) = delete;

  void write(std::string_view record);
  // Pushes everything written so far to the OS (for compressed files: a zlib sync flush, so a
  // reader sees whole records).
  void flush();
  void close();
  const std::string& path() const { return path_; }

 private:
  void put(const void* data, size_t n);
  void deflate_out(int flush_mode);

  std::string path_;
  Compression compression_;
  FILE* file_ = nullptr;
  struct ZState;
  std::unique_ptr<ZState> z_;
};

// One framed record (header + data + CRC), for tests and fuzzers.
std::string frame_record(std::string_view data);

}  // namespace tessera::train
