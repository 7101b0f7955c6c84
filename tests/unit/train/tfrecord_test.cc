#include "train/tfrecord.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/crc32c.h"
#include "support/error.h"
#include "support/file.h"
#include "train/train_test_util.h"

namespace tessera::train {
namespace {

using testing::TempDir;

std::vector<std::string> sample_records() {
  return {"", "a", std::string(100000, 'x'), std::string("\0\1\2\3", 4), "hello world"};
}

std::vector<std::string> read_all(const std::string& path, Compression c, OnCorrupt o = OnCorrupt::kStop,
                                  std::vector<std::string>* skipped = nullptr) {
  TFRecordReader r(path, c, o);
  std::vector<std::string> out;
  std::string rec;
  while (r.next(&rec)) out.push_back(rec);
  if (skipped) *skipped = r.skipped();
  return out;
}

TEST(TFRecord, FramingMatchesTheFormat) {
  std::string f = frame_record("abc");
  ASSERT_EQ(f.size(), 8u + 4 + 3 + 4);
  EXPECT_EQ(static_cast<uint8_t>(f[0]), 3);
  for (int i = 1; i < 8; ++i) EXPECT_EQ(f[i], 0);
  uint32_t len_crc = 0, data_crc = 0;
  std::memcpy(&len_crc, f.data() + 8, 4);
  std::memcpy(&data_crc, f.data() + 15, 4);
  EXPECT_EQ(crc32c::unmask(len_crc), crc32c::value(f.data(), 8));
  EXPECT_EQ(crc32c::unmask(data_crc), crc32c::value("abc", 3));
}

TEST(TFRecord, RoundTripsEveryCompression) {
  TempDir dir;
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZlib}) {
    const std::string path = dir.file(std::string("r_") + compression_name(c));
    {
      TFRecordWriter w(path, c);
      for (const auto& r : sample_records()) w.write(r);
    }
    EXPECT_EQ(read_all(path, c), sample_records()) << compression_name(c);
    if (c != Compression::kNone) {
      const std::string raw = read_file(path);
      EXPECT_LT(raw.size(), 10000u) << "compressed file should be small";
    }
  }
}

TEST(TFRecord, FlushMakesRecordsVisibleWhileWriting) {
  TempDir dir;
  for (Compression c : {Compression::kNone, Compression::kGzip}) {
    const std::string path = dir.file("live");
    TFRecordWriter w(path, c);
    w.write("first");
    w.flush();
    TFRecordReader r(path, c, OnCorrupt::kSkip);  // the gzip stream has no end yet
    std::string rec;
    if (c == Compression::kNone) {
      ASSERT_TRUE(r.next(&rec));
      EXPECT_EQ(rec, "first");
    }
    w.close();
  }
}

TEST(TFRecord, CorruptDataIsReportedWithFileAndOffset) {
  TempDir dir;
  const std::string path = dir.file("bad.tfrecord");
  std::string bytes = frame_record("one") + frame_record("two") + frame_record("three");
  const size_t second = frame_record("one").size();
  bytes[second + 12] ^= 1;  // flip a bit in "two"
  write_file(path, bytes);
  try {
    read_all(path, Compression::kNone);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("offset " + std::to_string(second)), std::string::npos) << msg;
    EXPECT_NE(msg.find("data checksum"), std::string::npos) << msg;
  }
  std::vector<std::string> skipped;
  EXPECT_EQ(read_all(path, Compression::kNone, OnCorrupt::kSkip, &skipped),
            (std::vector<std::string>{"one", "three"}));
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("offset " + std::to_string(second)), std::string::npos);
}

TEST(TFRecord, CorruptHeaderResynchronisesWhenSkipping) {
  TempDir dir;
  const std::string path = dir.file("badlen.tfrecord");
  std::string bytes = frame_record("one") + frame_record("two") + frame_record("three");
  const size_t second = frame_record("one").size();
  bytes[second + 1] ^= 0x40;  // the length of "two" becomes huge and its CRC fails
  write_file(path, bytes);
  EXPECT_THROW(read_all(path, Compression::kNone), Error);
  std::vector<std::string> skipped;
  EXPECT_EQ(read_all(path, Compression::kNone, OnCorrupt::kSkip, &skipped),
            (std::vector<std::string>{"one", "three"}));
  EXPECT_FALSE(skipped.empty());
}

TEST(TFRecord, TruncatedFileIsAnErrorOrAWarning) {
  TempDir dir;
  const std::string path = dir.file("trunc.tfrecord");
  std::string bytes = frame_record("one") + frame_record("two");
  bytes.resize(bytes.size() - 3);
  write_file(path, bytes);
  try {
    read_all(path, Compression::kNone);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated record"), std::string::npos) << e.what();
  }
  std::vector<std::string> skipped;
  EXPECT_EQ(read_all(path, Compression::kNone, OnCorrupt::kSkip, &skipped),
            (std::vector<std::string>{"one"}));
  EXPECT_EQ(skipped.size(), 1u);
}

TEST(TFRecord, CorruptCompressedStreamIsAnError) {
  TempDir dir;
  const std::string path = dir.file("bad.gz");
  {
    TFRecordWriter w(path, Compression::kGzip);
    for (int i = 0; i < 100; ++i) w.write("record number " + std::to_string(i));
  }
  std::string bytes = read_file(path);
  bytes.resize(bytes.size() / 2);
  write_file(path, bytes);
  EXPECT_THROW(read_all(path, Compression::kGzip), Error);
  EXPECT_THROW(read_all(path, Compression::kZlib), Error);  // wrong container format
}

TEST(TFRecord, CompressionNames) {
  EXPECT_EQ(compression_from_name(""), Compression::kNone);
  EXPECT_EQ(compression_from_name("gzip"), Compression::kGzip);
  EXPECT_EQ(compression_from_name("ZLIB"), Compression::kZlib);
  EXPECT_THROW(compression_from_name("snappy"), Error);
}

TEST(TFRecord, MissingFileNamesThePath) {
  try {
    TFRecordReader r("/nonexistent/x.tfrecord");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.tfrecord"), std::string::npos);
  }
}

}  // namespace
}  // namespace tessera::train
