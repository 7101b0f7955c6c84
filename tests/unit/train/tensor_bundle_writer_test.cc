#include "io/tensor_bundle_writer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "io/sstable.h"
#include "io/tensor_bundle.h"
#include "support/error.h"
#include "support/file.h"
#include "train/train_test_util.h"

namespace tessera {
namespace {

std::map<std::string, Tensor> sample(float scale) {
  std::map<std::string, Tensor> m;
  m["dense/kernel/.ATTRIBUTES/VARIABLE_VALUE"] = Tensor::from_vector<float>({1 * scale, 2, 3, 4, 5, 6}, {2, 3});
  m["dense/bias/.ATTRIBUTES/VARIABLE_VALUE"] = Tensor::from_vector<float>({0.5f * scale, -1});
  m["step"] = Tensor::scalar<int64_t>(static_cast<int64_t>(scale));
  m["half"] = Tensor::from_vector<double>({1.5, 2.5});
  m["bytes"] = Tensor::from_vector<uint8_t>({1, 2, 3});
  Tensor s(DType::kString, {3});
  s.strings() = {"", "abc", std::string(300, 'z')};
  m["_CHECKPOINTABLE_OBJECT_GRAPH"] = s;
  for (int i = 0; i < 200; ++i)  // enough keys for several data blocks
    m["many/var_" + std::to_string(i)] = Tensor::from_vector<int32_t>({i, -i});
  return m;
}

void expect_same(const TensorBundleReader& r, const std::map<std::string, Tensor>& want) {
  ASSERT_EQ(r.keys().size(), want.size());
  for (const auto& [k, t] : want) {
    Tensor got = r.read(k);
    ASSERT_EQ(got.dtype(), t.dtype()) << k;
    ASSERT_EQ(got.shape(), t.shape()) << k;
    if (t.dtype() == DType::kString) EXPECT_EQ(got.strings(), t.strings()) << k;
    else EXPECT_EQ(std::memcmp(got.raw(), t.raw(), t.nbytes()), 0) << k;
  }
}

TEST(TensorBundleWriter, RoundTripsThroughTheReader) {
  testing::TempDir dir;
  const auto want = sample(1);
  write_tensor_bundle(dir.file("ckpt-1"), want);
  TensorBundleReader r(dir.file("ckpt-1"));
  expect_same(r, want);
  EXPECT_GT(io::SSTable::open(dir.file("ckpt-1.index")).num_data_blocks(), 1u);
  // No temporary files are left behind.
  for (const auto& f : std::filesystem::directory_iterator(dir.path))
    EXPECT_EQ(f.path().string().find("tempstate"), std::string::npos) << f.path();
}

TEST(TensorBundleWriter, CorruptionIsDetectedByTheReader) {
  testing::TempDir dir;
  write_tensor_bundle(dir.file("c"), {{"x", Tensor::from_vector<float>({1, 2, 3})}});
  std::string data = read_file(dir.file("c.data-00000-of-00001"));
  data[4] ^= 1;
  write_file(dir.file("c.data-00000-of-00001"), data);
  EXPECT_THROW(TensorBundleReader(dir.file("c")).read("x"), Error);
}

TEST(TensorBundleWriter, CheckpointStateNamesTheLatest) {
  testing::TempDir dir;
  EXPECT_EQ(latest_checkpoint(dir.path), "");
  write_checkpoint_state(dir.path, "ckpt-2", {"ckpt-1", "ckpt-2"});
  EXPECT_EQ(latest_checkpoint(dir.path), dir.file("ckpt-2"));
  EXPECT_NE(read_file(dir.file("checkpoint")).find("all_model_checkpoint_paths: \"ckpt-1\""), std::string::npos);
}

// An abort after any stage of saving checkpoint 2 leaves checkpoint 1 loadable through the
// `checkpoint` file, and never a half-written bundle that the reader accepts.
TEST(TensorBundleWriter, AbortAtEveryStageKeepsThePreviousCheckpoint) {
  struct Abort {};
  for (int stage = 1; stage <= kNumCheckpointStages; ++stage) {
    testing::TempDir dir;
    write_tensor_bundle(dir.file("ckpt-1"), sample(1));
    write_checkpoint_state(dir.path, "ckpt-1", {"ckpt-1"});
    CheckpointWriteOptions opts;
    opts.after_stage = [stage](CheckpointStage s) {
      if (static_cast<int>(s) == stage) throw Abort{};
    };
    try {
      write_tensor_bundle(dir.file("ckpt-2"), sample(2), opts);
      write_checkpoint_state(dir.path, "ckpt-2", {"ckpt-1", "ckpt-2"}, opts);
      FAIL() << "stage " << stage << " did not abort";
    } catch (const Abort&) {
    }
    const std::string latest = latest_checkpoint(dir.path);
    const bool switched = stage >= static_cast<int>(CheckpointStage::kStateRenamed);
    EXPECT_EQ(latest, dir.file(switched ? "ckpt-2" : "ckpt-1")) << "stage " << stage;
    expect_same(TensorBundleReader(latest), sample(switched ? 2 : 1));
    // The new bundle is visible only once complete.
    const bool complete = stage >= static_cast<int>(CheckpointStage::kIndexRenamed);
    EXPECT_EQ(file_exists(dir.file("ckpt-2.index")), complete) << "stage " << stage;
    if (complete) expect_same(TensorBundleReader(dir.file("ckpt-2")), sample(2));
  }
}

TEST(TensorBundleWriter, RejectsBadInput) {
  TensorBundleWriter w("/tmp/unused_prefix");
  EXPECT_THROW(w.add("", Tensor::scalar<float>(1)), Error);
  w.add("a", Tensor::scalar<float>(1));
  EXPECT_THROW(w.add("a", Tensor::scalar<float>(2)), Error);
  EXPECT_THROW(build_sstable({{"b", ""}, {"a", ""}}), Error);
}

}  // namespace
}  // namespace tessera
