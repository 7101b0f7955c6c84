#include "io/sstable.h"

#include <gtest/gtest.h>

#include <random>

#include "error_test_util.h"
#include "io_test_util.h"
#include "support/error.h"

namespace tessera {
namespace {

using io::SSTable;
using testing::expect_error;
using testing::TableWriter;
using KVs = std::vector<std::pair<std::string, std::string>>;

KVs sample_entries(int n) {
  KVs kvs;
  for (int i = 0; i < n; ++i) {
    char key[32];
    std::snprintf(key, sizeof(key), "layer_%04d/kernel", i);
    kvs.emplace_back(key, std::string(static_cast<size_t>(i % 37), static_cast<char>('a' + i % 26)));
  }
  return kvs;
}

std::vector<std::pair<std::string, std::string>> all(const SSTable& t) {
  KVs out;
  t.for_each([&](std::string_view k, std::string_view v) { out.emplace_back(k, v); });
  return out;
}

TEST(SSTable, RoundTripAcrossManyBlocks) {
  KVs kvs = sample_entries(500);
  kvs.insert(kvs.begin(), {"", "header"});  // the empty key sorts first
  TableWriter w;
  SSTable t(w.build(kvs), "x.index");
  EXPECT_GT(t.num_data_blocks(), 10u);
  EXPECT_EQ(all(t), kvs);
  for (const auto& [k, v] : kvs) {
    auto got = t.get(k);
    ASSERT_TRUE(got.has_value()) << k;
    EXPECT_EQ(*got, v);
  }
  EXPECT_FALSE(t.get("layer_0000").has_value());      // before a key, inside a block
  EXPECT_FALSE(t.get("layer_0100/kernek").has_value());
  EXPECT_FALSE(t.get("zzz").has_value());             // after the last key
}

TEST(SSTable, RestartIntervalsAndOneBigBlock) {
  KVs kvs = sample_entries(100);
  for (int interval : {1, 2, 16, 1000}) {
    TableWriter w;
    w.restart_interval = interval;
    w.block_size = 1 << 20;
    SSTable t(w.build(kvs), "x.index");
    EXPECT_EQ(t.num_data_blocks(), 1u);
    EXPECT_EQ(all(t), kvs);
    EXPECT_EQ(*t.get("layer_0099/kernel"), kvs.back().second);
  }
}

TEST(SSTable, EmptyTableAndBinaryKeys) {
  SSTable empty(TableWriter().build({}), "e.index");
  EXPECT_TRUE(all(empty).empty());
  EXPECT_FALSE(empty.get("").has_value());

  KVs kvs = {{std::string("\0a", 2), "1"}, {std::string("\0b", 2), std::string("\0\xff", 2)},
             {"\xff", "3"}};
  SSTable t(TableWriter().build(kvs), "b.index");
  EXPECT_EQ(all(t), kvs);
  EXPECT_EQ(*t.get("\xff"), "3");
}

TEST(SSTable, TruncatedFilesNameTheFile) {
  const std::string file = TableWriter().build(sample_entries(50));
  expect_error([&] { SSTable(file.substr(0, 10), "short.index"); }, ErrorCode::kDataLoss,
               {"short.index", "truncated"});
  // Every truncation is rejected (the footer moves, so the magic or a handle breaks).
  for (size_t n = 0; n < file.size(); ++n) {
    try {
      SSTable t(file.substr(0, n), "cut.index");
      all(t);
      ADD_FAILURE() << "truncation to " << n << " bytes accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cut.index"), std::string::npos) << e.what();
    }
  }
}

TEST(SSTable, BadMagic) {
  std::string file = TableWriter().build(sample_entries(3));
  file[file.size() - 1] ^= 1;
  expect_error([&] { SSTable(file, "m.index"); }, ErrorCode::kDataLoss, {"m.index", "magic"});
}

TEST(SSTable, ChecksumMismatchInDataBlock) {
  std::string file = TableWriter().build(sample_entries(50));
  file[5] ^= 0x40;  // inside the first data block
  SSTable t(file, "c.index");  // index block is intact
  expect_error([&] { all(t); }, ErrorCode::kDataLoss, {"c.index", "checksum mismatch", "data block"});
}

TEST(SSTable, SnappyBlocksAreDecompressed) {
  TableWriter w;
  w.compression = 1;  // as TensorFlow 1.x wrote checkpoint indexes
  auto entries = sample_entries(50);
  SSTable table(w.build(entries), "s.index");
  for (const auto& [k, v] : entries) EXPECT_EQ(table.get(k), v);
}

TEST(SSTable, UnknownCompressionIsRejected) {
  TableWriter w;
  w.compression = 7;
  expect_error([&] { SSTable(w.build(sample_entries(5)), "s.index"); }, ErrorCode::kDataLoss,
               {"unknown compression type 7"});
}

// Builds a table whose single data block has the given raw contents (valid trailer).
std::string table_with_raw_block(const std::string& block, const std::string& index_key = "zzz") {
  TableWriter w;
  std::string file;
  io::BlockHandle data = w.write_block(file, block);
  io::BlockHandle meta = w.write_block(file, w.encode_block({}));
  std::string handle;
  io::put_varint64(&handle, data.offset);
  io::put_varint64(&handle, data.size);
  io::BlockHandle idx = w.write_block(file, w.encode_block({{index_key, handle}}));
  std::string footer;
  for (uint64_t v : {meta.offset, meta.size, idx.offset, idx.size}) io::put_varint64(&footer, v);
  footer.resize(40, '\0');
  io::put_fixed64(&footer, io::kTableMagic);
  return file + footer;
}

std::string entry(uint32_t shared, uint32_t non_shared, uint32_t value_len, const std::string& rest) {
  std::string s;
  io::put_varint32(&s, shared);
  io::put_varint32(&s, non_shared);
  io::put_varint32(&s, value_len);
  return s + rest;
}

std::string with_restarts(std::string entries, std::vector<uint32_t> restarts) {
  for (uint32_t r : restarts) io::put_fixed32(&entries, r);
  io::put_fixed32(&entries, static_cast<uint32_t>(restarts.size()));
  return entries;
}

TEST(SSTable, MalformedBlocks) {
  auto check = [](const std::string& block, const char* fragment) {
    expect_error(
        [&] {
          SSTable t(table_with_raw_block(block), "bad.index");
          all(t);
        },
        ErrorCode::kDataLoss, {"bad.index", fragment});
  };
  check(std::string("\x01\x00", 2), "shorter than its restart count");
  std::string huge_count;
  io::put_fixed32(&huge_count, 1000);
  check(huge_count, "restart count exceeds block size");
  check(with_restarts(entry(0, 1, 1, "ab"), {99}), "restart offset out of range");
  check(with_restarts(entry(3, 1, 1, "ab"), {0}), "shares more bytes than the previous key");
  check(with_restarts(entry(0, 5, 1, "ab"), {0}), "past the end of the block");
  check(with_restarts(entry(0, 1, 100, "ab"), {0}), "past the end of the block");
  check(with_restarts(std::string("\x80", 1), {0}), "truncated entry header");
  check(with_restarts(entry(0, 1, 0, "b") + entry(0, 1, 0, "a"), {0}), "keys out of order");
  check(with_restarts(entry(0, 1, 0, "a") + entry(1, 0, 0, ""), {0}), "keys out of order");
  // A key beyond its index separator means the index lies about the block.
  expect_error(
      [&] {
        SSTable t(table_with_raw_block(with_restarts(entry(0, 1, 0, "q"), {0}), "b"), "sep.index");
        all(t);
      },
      ErrorCode::kDataLoss, {"sep.index", "beyond its index entry"});
}

TEST(SSTable, HandlesPastEndOfFile) {
  TableWriter w;
  std::string file;
  w.write_block(file, w.encode_block({}));
  std::string footer;
  for (uint64_t v : {0ull, 8ull, 0ull, 1ull << 60}) io::put_varint64(&footer, v);
  footer.resize(40, '\0');
  io::put_fixed64(&footer, io::kTableMagic);
  expect_error([&] { SSTable(file + footer, "h.index"); }, ErrorCode::kDataLoss,
               {"h.index", "index block", "extends past the end"});
}

TEST(SSTable, RandomCorruptionNeverCrashes) {
  const std::string file = TableWriter().build(sample_entries(40));
  std::mt19937 rng(1);
  int rejected = 0;
  for (size_t i = 0; i < file.size(); ++i) {
    std::string bad = file;
    bad[i] = static_cast<char>(bad[i] ^ (1 + rng() % 255));
    try {
      SSTable t(bad, "r.index");
      all(t);
    } catch (const Error&) {
      ++rejected;
    }
  }
  // Only bytes in the footer padding and the metaindex handle's unused room can change
  // without detection; checksums cover everything else.
  EXPECT_GT(rejected, static_cast<int>(file.size()) - 40);
}

}  // namespace
}  // namespace tessera
