#include "train/sources.h"

#include <gtest/gtest.h>

#include "io/npy.h"
#include "support/error.h"
#include "support/file.h"
#include "train/train_test_util.h"

namespace tessera::train {
namespace {

using testing::TempDir;

std::string idx_header(uint8_t type, std::vector<uint32_t> dims) {
  std::string h = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int b = 3; b >= 0; --b) h.push_back(static_cast<char>((d >> (8 * b)) & 0xff));
  return h;
}

TEST(Sources, ParsesIdx) {
  std::string bytes = idx_header(0x08, {2, 2, 3});
  for (int i = 0; i < 12; ++i) bytes.push_back(static_cast<char>(i * 20));
  Tensor t = parse_idx(bytes, "x.idx");
  EXPECT_EQ(t.dtype(), DType::kUInt8);
  EXPECT_EQ(t.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(t.data<uint8_t>()[11], 220);
  std::string ints = idx_header(0x0C, {2}) + std::string("\x00\x00\x01\x02\xff\xff\xff\xfe", 8);
  Tensor i = parse_idx(ints, "i.idx");
  EXPECT_EQ(i.data<int32_t>()[0], 258);
  EXPECT_EQ(i.data<int32_t>()[1], -2);
  EXPECT_THROW(parse_idx(bytes.substr(0, bytes.size() - 1), "short"), Error);
  EXPECT_THROW(parse_idx("\x01\x02\x03\x04", "magic"), Error);
}

TEST(Sources, ReadsTheSharedMnistTestSet) {
  const std::string dir = std::string(TESSERA_SOURCE_DIR) + "/../shared/data/mnist";
  if (!file_exists(dir + "/t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "no MNIST at " << dir;
  auto m = load_mnist(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_EQ(m[0].shape(), (Shape{10000, 28, 28}));
  ASSERT_EQ(m[1].shape(), (Shape{10000}));
  // Facts from the data's README: image 0 has 116 non-zero pixels summing to 18454.
  int nonzero = 0, sum = 0;
  for (int i = 0; i < 784; ++i) {
    nonzero += m[0].data<uint8_t>()[i] != 0;
    sum += m[0].data<uint8_t>()[i];
  }
  EXPECT_EQ(nonzero, 116);
  EXPECT_EQ(sum, 18454);
  const int first[] = {7, 2, 1, 0, 4, 1, 4, 9, 5, 9};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(m[1].data<uint8_t>()[i], first[i]);
}

TEST(Sources, ParsesCsvWithLabelByName) {
  auto out = parse_csv("a,label,b\n1,0,2.5\r\n3, 1 ,4\n\n", "label", "t.csv");
  EXPECT_EQ(out[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(out[0].data<float>()[1], 2.5f);
  EXPECT_EQ(out[0].data<float>()[2], 3.0f);
  EXPECT_EQ(out[1].dtype(), DType::kInt64);
  EXPECT_EQ(out[1].data<int64_t>()[1], 1);
  auto reg = parse_csv("x,y\n1,0.5\n", "y", "r.csv");
  EXPECT_EQ(reg[1].dtype(), DType::kFloat32);
  try {
    parse_csv("a,label\n1,2\n3,x\n", "label", "t.csv");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'t.csv' line 3 column 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_csv("a,b\n1,2\n", "label", "t.csv"), Error);
  EXPECT_THROW(parse_csv("a,label\n1,2,3\n", "label", "t.csv"), Error);
}

TEST(Sources, LoadsNpzComponentsByName) {
  TempDir dir;
  const std::string path = dir.file("d.npz");
  npy::save_npz(path, {{"x", Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2})},
                       {"y", Tensor::from_vector<int64_t>({5, 6})}});
  auto both = load_numpy(path, {"y", "x"});
  EXPECT_EQ(both[0].dtype(), DType::kInt64);
  EXPECT_EQ(both[1].shape(), (Shape{2, 2}));
  EXPECT_EQ(load_numpy(path).size(), 2u);
  EXPECT_THROW(load_numpy(path, {"z"}), Error);
}

}  // namespace
}  // namespace tessera::train
