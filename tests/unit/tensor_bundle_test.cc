#include "io/tensor_bundle.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "error_test_util.h"
#include "io_test_util.h"
#include "support/error.h"

namespace tessera {
namespace {

using testing::BundleWriter;
using testing::expect_error;
using testing::write_test_file;

class TensorBundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tessera_bundle_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    prefix_ = (dir_ / "variables").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string prefix_;
};

TEST_F(TensorBundleTest, ReadsNumericTensorsOfEveryWidth) {
  BundleWriter w;
  std::vector<float> f = {1.5f, -2.0f, 3.25f, 0.0f, 1e30f, -0.0f};
  std::vector<int64_t> i64 = {1, -2, INT64_MAX, INT64_MIN};
  std::vector<uint8_t> b = {1, 0, 2, 1};  // a stray 2 reads as true
  std::vector<uint16_t> half = {0x3c00, 0xc000};  // 1.0, -2.0
  std::vector<uint16_t> bf = {0x3f80, 0x4040};    // 1.0, 3.0
  std::vector<int8_t> i8 = {-128, 127, 0};
  double d = 2.718281828;
  w.add_numeric("dense/kernel", 1, {2, 3}, f.data(), f.size() * 4);
  w.add_numeric("step", 9, {4}, i64.data(), i64.size() * 8);
  w.add_numeric("mask", 10, {2, 2}, b.data(), b.size());
  w.add_numeric("half", 19, {2}, half.data(), 4);
  w.add_numeric("bf", 14, {2}, bf.data(), 4);
  w.add_numeric("i8", 6, {3}, i8.data(), 3);
  w.add_numeric("scalar", 2, {}, &d, 8);
  w.add_numeric("empty", 1, {0, 5}, nullptr, 0);
  w.write(prefix_);

  TensorBundleReader r(prefix_);
  EXPECT_EQ(r.keys(), (std::vector<std::string>{"bf", "dense/kernel", "empty", "half", "i8", "mask",
                                                 "scalar", "step"}));
  EXPECT_TRUE(r.contains("step"));
  EXPECT_FALSE(r.contains("nope"));
  EXPECT_FALSE(r.contains(""));
  EXPECT_EQ(r.dtype("dense/kernel"), DType::kFloat32);
  EXPECT_EQ(r.shape("dense/kernel"), (Shape{2, 3}));

  Tensor k = r.read("dense/kernel");
  ASSERT_EQ(k.shape(), (Shape{2, 3}));
  for (size_t i = 0; i < f.size(); ++i) EXPECT_EQ(k.data<float>()[i], f[i]);
  Tensor s = r.read("step");
  for (size_t i = 0; i < i64.size(); ++i) EXPECT_EQ(s.data<int64_t>()[i], i64[i]);
  Tensor m = r.read("mask");
  EXPECT_EQ(m.data<bool>()[2], true);
  EXPECT_EQ(m.data<bool>()[1], false);
  EXPECT_EQ(static_cast<float>(r.read("half").data<float16>()[1]), -2.0f);
  EXPECT_EQ(static_cast<float>(r.read("bf").data<bfloat16>()[1]), 3.0f);
  EXPECT_EQ(r.read("i8").data<int8_t>()[0], -128);
  Tensor sc = r.read("scalar");
  EXPECT_EQ(sc.rank(), 0);
  EXPECT_EQ(sc.data<double>()[0], d);
  Tensor e = r.read("empty");
  EXPECT_EQ(e.shape(), (Shape{0, 5}));
  EXPECT_EQ(e.num_elements(), 0);
}

TEST_F(TensorBundleTest, ReadsStringTensors) {
  BundleWriter w;
  std::vector<std::string> values = {"", "a", std::string(300, 'x'), std::string("n\0ul", 4)};
  w.add_strings("strs", {2, 2}, values);
  w.add_strings("one", {}, {"hello"});
  w.add_strings("none", {0}, {});
  w.write(prefix_);
  TensorBundleReader r(prefix_);
  EXPECT_EQ(r.read("strs").strings(), values);
  EXPECT_EQ(r.read("one").strings()[0], "hello");
  EXPECT_EQ(r.read("none").num_elements(), 0);
}

TEST_F(TensorBundleTest, ManyEntriesAcrossBlocksAndShards) {
  BundleWriter w;
  w.set_shards(3);
  for (int i = 0; i < 300; ++i) {
    std::vector<int32_t> v = {i, i * 2, i * 3};
    w.add_numeric("var_" + std::to_string(i), 3, {3}, v.data(), 12, i % 3);
  }
  w.write(prefix_);
  TensorBundleReader r(prefix_);
  EXPECT_EQ(r.keys().size(), 300u);
  for (int i = 0; i < 300; i += 7) {
    Tensor t = r.read("var_" + std::to_string(i));
    EXPECT_EQ(t.data<int32_t>()[2], i * 3);
  }
}

TEST_F(TensorBundleTest, ChecksumMismatchNamesFileAndKey) {
  BundleWriter w;
  std::vector<float> f = {1, 2, 3, 4};
  w.add_numeric("w", 1, {4}, f.data(), 16);
  w.shards[0][5] ^= 1;  // corrupt after the checksum was computed
  w.write(prefix_);
  TensorBundleReader r(prefix_);
  expect_error([&] { r.read("w"); }, ErrorCode::kDataLoss,
               {"'w'", prefix_ + ".data-00000-of-00001", "checksum mismatch"});
}

TEST_F(TensorBundleTest, StringCorruption) {
  BundleWriter w;
  w.add_strings("s", {2}, {"abc", "de"});
  std::string data = w.shards[0];
  w.write(prefix_);
  // Corrupt a length (the length checksum catches it first).
  std::string bad = data;
  bad[0] = 4;
  write_test_file(BundleWriter::shard_name(prefix_, 0, 1), bad);
  expect_error([&] { TensorBundleReader(prefix_).read("s"); }, ErrorCode::kDataLoss,
               {"'s'", "length checksum mismatch"});
  // Corrupt the string bytes: the entry checksum catches it.
  bad = data;
  bad[bad.size() - 1] ^= 1;
  write_test_file(BundleWriter::shard_name(prefix_, 0, 1), bad);
  expect_error([&] { TensorBundleReader(prefix_).read("s"); }, ErrorCode::kDataLoss,
               {"'s'", "checksum mismatch"});
}

TEST_F(TensorBundleTest, SizeMustMatchShapeAndDtype) {
  BundleWriter w;
  std::vector<float> f = {1, 2, 3};
  w.add_numeric("w", 1, {4}, f.data(), 12);  // 4 floats declared, 3 stored
  w.write(prefix_);
  expect_error([&] { TensorBundleReader(prefix_).read("w"); }, ErrorCode::kDataLoss,
               {"'w'", "does not match shape [4]"});
}

TEST_F(TensorBundleTest, HugeEntriesAreRejectedBeforeAllocating) {
  BundleWriter w;
  auto& e = w.add_raw("huge", 1, {1ll << 40}, "", 0);
  e.set_size(int64_t{4} << 40);
  auto& e2 = w.add_raw("far", 1, {1}, "", 0);
  e2.set_size(4);
  e2.set_offset(int64_t{1} << 62);
  auto& e3 = w.add_raw("manystrings", 7, {1ll << 40}, "", 0);
  e3.set_size(100);
  w.shards[0] = std::string(64, '\0');
  w.write(prefix_);
  TensorBundleReader r(prefix_);
  expect_error([&] { r.read("huge"); }, ErrorCode::kDataLoss, {"'huge'", "is truncated"});
  expect_error([&] { r.read("far"); }, ErrorCode::kDataLoss, {"'far'", "is truncated"});
  expect_error([&] { r.read("manystrings"); }, ErrorCode::kDataLoss, {"too small"});
}

TEST_F(TensorBundleTest, MissingAndTruncatedFiles) {
  expect_error([&] { TensorBundleReader r(prefix_); }, ErrorCode::kNotFound, {prefix_ + ".index"});

  BundleWriter w;
  std::vector<float> f(100, 1.0f);
  w.add_numeric("w", 1, {100}, f.data(), 400);
  write_test_file(prefix_ + ".index", w.index_bytes());
  TensorBundleReader r(prefix_);  // shards are opened lazily
  expect_error([&] { r.read("w"); }, ErrorCode::kNotFound, {prefix_ + ".data-00000-of-00001"});

  write_test_file(BundleWriter::shard_name(prefix_, 0, 1), w.shards[0].substr(0, 399));
  expect_error([&] { TensorBundleReader(prefix_).read("w"); }, ErrorCode::kDataLoss,
               {".data-00000-of-00001' is truncated"});

  std::string index = w.index_bytes();
  write_test_file(prefix_ + ".index", index.substr(0, index.size() - 3));
  expect_error([&] { TensorBundleReader r2(prefix_); }, ErrorCode::kDataLoss, {prefix_ + ".index"});
  write_test_file(prefix_ + ".index", "");
  expect_error([&] { TensorBundleReader r2(prefix_); }, ErrorCode::kDataLoss,
               {prefix_ + ".index", "truncated"});
}

TEST_F(TensorBundleTest, HeaderValidation) {
  {
    BundleWriter w;
    w.header.set_endianness(tensorflow::BundleHeaderProto::BIG);
    w.write(prefix_);
    expect_error([&] { TensorBundleReader r(prefix_); }, ErrorCode::kUnimplemented, {"big-endian"});
  }
  {
    BundleWriter w;
    w.header.mutable_version()->set_min_consumer(5);
    w.write(prefix_);
    expect_error([&] { TensorBundleReader r(prefix_); }, ErrorCode::kUnimplemented, {"version"});
  }
  {
    testing::TableWriter tw;
    write_test_file(prefix_ + ".index", tw.build({{"a", ""}}));
    expect_error([&] { TensorBundleReader r(prefix_); }, ErrorCode::kDataLoss, {"no checkpoint header"});
    write_test_file(prefix_ + ".index", tw.build({{"", "\xff\xff\xff"}}));
    expect_error([&] { TensorBundleReader r(prefix_); }, ErrorCode::kDataLoss, {"corrupted checkpoint header"});
    write_test_file(prefix_ + ".index", tw.build({{"", ""}}));
    expect_error([&] { TensorBundleReader r(prefix_); }, ErrorCode::kDataLoss, {"shard count"});
  }
}

TEST_F(TensorBundleTest, BadEntries) {
  BundleWriter w;
  std::vector<float> f = {1};
  w.add_numeric("shard", 1, {1}, f.data(), 4).set_shard_id(3);
  w.add_numeric("dtype", 1, {1}, f.data(), 4).set_dtype(static_cast<tensorflow::DataType>(999));
  w.add_numeric("neg", 1, {1}, f.data(), 4).mutable_shape()->mutable_dim(0)->set_size(-1);
  w.add_numeric("variant", 21, {1}, f.data(), 4);
  auto& sliced = w.add_numeric("part", 1, {1}, f.data(), 4);
  sliced.add_slices()->add_extent();
  w.add_numeric(std::string("\0part", 5), 1, {1}, f.data(), 4);  // a slice key
  w.write(prefix_);
  TensorBundleReader r(prefix_);
  EXPECT_EQ(r.keys(), (std::vector<std::string>{"dtype", "neg", "part", "shard", "variant"}));
  expect_error([&] { r.read("shard"); }, ErrorCode::kDataLoss, {"'shard'", "shard id 3 out of range"});
  expect_error([&] { r.dtype("dtype"); }, ErrorCode::kInvalidArgument, {"'dtype'"});
  expect_error([&] { r.read("neg"); }, ErrorCode::kInvalidArgument, {"'neg'", "negative"});
  expect_error([&] { r.read("variant"); }, ErrorCode::kUnimplemented, {"'variant'", "variant"});
  expect_error([&] { r.read("part"); }, ErrorCode::kUnimplemented, {"'part'", "partitioned"});
  expect_error([&] { r.read("missing"); }, ErrorCode::kNotFound, {"'missing'", prefix_});
}

TEST_F(TensorBundleTest, EveryIndexCorruptionIsHandled) {
  BundleWriter w;
  std::vector<float> f = {1, 2};
  w.add_numeric("a", 1, {2}, f.data(), 8);
  w.add_strings("b", {1}, {"xyz"});
  w.write(prefix_);
  const std::string index = w.index_bytes();
  for (size_t i = 0; i < index.size(); ++i) {
    std::string bad = index;
    bad[i] ^= 0x5a;
    write_test_file(prefix_ + ".index", bad);
    try {
      TensorBundleReader r(prefix_);
      for (const auto& k : r.keys()) r.read(k);
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace tessera
