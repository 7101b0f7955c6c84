#include "io/npy.h"

#include <gtest/gtest.h>

#include <complex>
#include <cstring>

#include "error_test_util.h"
#include "support/error.h"

namespace tessera {
namespace {

using npy::parse_npy;
using npy::parse_npz;
using npy::serialize_npy;
using npy::serialize_npz;
using testing::expect_error;

// A .npy file with the given header dict text (version `major`) followed by `data`.
std::string make_npy(const std::string& dict, const std::string& data, int major = 1) {
  std::string out("\x93NUMPY", 6);
  out.push_back(static_cast<char>(major));
  out.push_back(0);
  std::string header = dict + "\n";
  if (major == 1) {
    out.push_back(static_cast<char>(header.size() & 0xff));
    out.push_back(static_cast<char>(header.size() >> 8));
  } else {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  }
  return out + header + data;
}

template <typename T>
std::string raw(std::initializer_list<T> values) {
  std::string s;
  for (T v : values) s.append(reinterpret_cast<const char*>(&v), sizeof(T));
  return s;
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  if (a.dtype() == DType::kString) return a.strings() == b.strings();
  return std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(Npy, RoundTripsEveryDtype) {
  std::vector<Tensor> tensors = {
      Tensor::from_vector<float>({1.5f, -2.0f, 3.0f, 4.0f, 5.0f, 6.0f}, {2, 3}),
      Tensor::from_vector<double>({1e300, -0.0}),
      Tensor::from_vector<int8_t>({-128, 127}),
      Tensor::from_vector<int16_t>({-300, 300}),
      Tensor::from_vector<int32_t>({1 << 30, -7}),
      Tensor::from_vector<int64_t>({INT64_MIN, INT64_MAX}),
      Tensor::from_vector<uint8_t>({0, 255}),
      Tensor::from_vector<uint16_t>({65535, 1}),
      Tensor::from_vector<uint32_t>({0xffffffffu, 2}),
      Tensor::from_vector<uint64_t>({~0ull, 3}),
      Tensor::from_vector<bool>({true, false, true}),
      Tensor::from_vector<float16>({float16(1.0f), float16(-2.5f)}),
      Tensor::from_vector<std::complex<float>>({{1, 2}, {3, -4}}),
      Tensor::from_vector<std::complex<double>>({{1, 2}}),
      Tensor::scalar<float>(7.0f),
      Tensor(DType::kFloat32, {0, 3}),
      Tensor(DType::kInt64, {2, 0, 2}),
  };
  Tensor strs(DType::kString, {3});
  strs.strings() = {"", "abc", std::string("mid\0dle", 7)};
  tensors.push_back(strs);
  tensors.push_back(Tensor::string_scalar(""));
  for (const auto& t : tensors) {
    std::string bytes = serialize_npy(t);
    if (t.dtype() != DType::kString) {
      EXPECT_EQ((bytes.size() - t.nbytes()) % 64, 0u) << "data not 64-byte aligned";
    }
    Tensor back = parse_npy(bytes);
    EXPECT_TRUE(same_tensor(t, back)) << t.debug_string() << " vs " << back.debug_string();
  }
  expect_error([] { serialize_npy(Tensor::from_vector<bfloat16>({bfloat16(1.0f)})); },
               ErrorCode::kInvalidArgument, {"bfloat16"});
}

TEST(Npy, HeaderVariants) {
  const std::string data = raw<int32_t>({1, 2, 3, 4, 5, 6});
  // NumPy's own spelling, then variants a hand-written or Python 2 file may use.
  for (const std::string& dict :
       {std::string("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }"),
        std::string("{\"shape\": (2,3), \"descr\": \"<i4\", \"fortran_order\": False}"),
        std::string("{'descr':'<i4','fortran_order':False,'shape':(2L, 3L)}   ")}) {
    for (int major : {1, 2, 3}) {
      Tensor t = parse_npy(make_npy(dict, data, major));
      EXPECT_EQ(t.shape(), (Shape{2, 3}));
      EXPECT_EQ(t.data<int32_t>()[5], 6);
    }
  }
  Tensor scalar = parse_npy(make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': ()}",
                                     raw<double>({2.5})));
  EXPECT_EQ(scalar.rank(), 0);
  EXPECT_EQ(scalar.data<double>()[0], 2.5);
  // '=' is native order, '|' for single bytes, 'a' the old bytes alias, '>' fine for 1 byte.
  EXPECT_EQ(parse_npy(make_npy("{'descr': '=u2', 'fortran_order': False, 'shape': (1,)}",
                               raw<uint16_t>({513}))).data<uint16_t>()[0], 513);
  EXPECT_EQ(parse_npy(make_npy("{'descr': '>i1', 'fortran_order': False, 'shape': (1,)}",
                               raw<int8_t>({-5}))).data<int8_t>()[0], -5);
  EXPECT_EQ(parse_npy(make_npy("{'descr': '|a2', 'fortran_order': False, 'shape': (1,)}", "hi"))
                .strings()[0], "hi");
}

TEST(Npy, FortranOrderIsTransposed) {
  // Column-major 2x3: stored order is a00 a10 a01 a11 a02 a12.
  Tensor t = parse_npy(make_npy("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }",
                                raw<int32_t>({0, 3, 1, 4, 2, 5})));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<int32_t>()[i], i);
  // 2x3x2: element (i,j,k) stored at i + 2j + 6k; value = row-major index.
  std::string data;
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < 2; ++i) {
        int16_t v = static_cast<int16_t>(i * 6 + j * 2 + k);
        data.append(reinterpret_cast<const char*>(&v), 2);
      }
  Tensor u = parse_npy(make_npy("{'descr': '<i2', 'fortran_order': True, 'shape': (2, 3, 2), }", data));
  for (int i = 0; i < 12; ++i) EXPECT_EQ(u.data<int16_t>()[i], i);
  Tensor s = parse_npy(make_npy("{'descr': '|S1', 'fortran_order': True, 'shape': (2, 2), }", "acbd"));
  EXPECT_EQ(s.strings(), (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST(Npy, Strings) {
  // <U3: UTF-32LE code points, trailing NULs dropped, converted to UTF-8.
  std::string u = raw<uint32_t>({'h', 'i', 0, 0xe9, 0x1f600, 'x', 0, 0, 0});
  Tensor t = parse_npy(make_npy("{'descr': '<U3', 'fortran_order': False, 'shape': (3,), }", u));
  EXPECT_EQ(t.strings(), (std::vector<std::string>{"hi", "\xc3\xa9\xf0\x9f\x98\x80x", ""}));
  // |S4: trailing NULs dropped, embedded ones kept.
  Tensor b = parse_npy(make_npy("{'descr': '|S4', 'fortran_order': False, 'shape': (2,), }",
                                std::string("a\0b\0cd\0\0", 8)));
  EXPECT_EQ(b.strings(), (std::vector<std::string>{std::string("a\0b", 3), "cd"}));
  expect_error(
      [&] { parse_npy(make_npy("{'descr': '<U1', 'fortran_order': False, 'shape': (1,)}",
                               raw<uint32_t>({0xd800}))); },
      ErrorCode::kDataLoss, {"invalid unicode"});
}

TEST(Npy, Rejections) {
  auto npy = [](const std::string& descr, const std::string& shape, const std::string& data) {
    return make_npy("{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + "}", data);
  };
  expect_error([&] { parse_npy(npy(">f4", "(1,)", "abcd"), "be.npy"); }, ErrorCode::kUnimplemented,
               {"be.npy", "big-endian"});
  expect_error([&] { parse_npy(npy("|O", "(1,)", "abcdefgh")); }, ErrorCode::kUnimplemented, {"pickle"});
  expect_error([&] { parse_npy(npy("<M8[ns]", "(1,)", "abcdefgh")); }, ErrorCode::kUnimplemented,
               {"unsupported .npy dtype"});
  expect_error([&] { parse_npy(npy("<f16", "(1,)", std::string(16, 'a'))); }, ErrorCode::kUnimplemented, {});
  expect_error([&] { parse_npy(npy("|S0", "(100,)", "")); }, ErrorCode::kUnimplemented, {"zero-width"});
  expect_error([&] { parse_npy(make_npy("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,)}", "abcd")); },
               ErrorCode::kUnimplemented, {"structured"});
  expect_error([&] { parse_npy(npy("<f4", "(2,)", "abcd"), "t.npy"); }, ErrorCode::kDataLoss,
               {"t.npy", "truncated"});
  expect_error([&] { parse_npy(npy("<f4", "(1,)", "abcdabcd")); }, ErrorCode::kDataLoss, {});
  expect_error([&] { parse_npy(npy("<f4", "(4611686018427387904,)", "abcd")); }, ErrorCode::kDataLoss, {});
  expect_error([&] { parse_npy(npy("<f4", "(-1,)", "")); }, ErrorCode::kDataLoss, {"shape"});
  expect_error([&] { parse_npy(npy("<f4", "(99999999999999999999,)", "")); }, ErrorCode::kDataLoss, {});
  expect_error([&] { parse_npy("not npy at all", "x.npy"); }, ErrorCode::kDataLoss, {"x.npy", "not a .npy"});
  expect_error([&] { parse_npy(make_npy("{'descr': '<f4'", "")); }, ErrorCode::kDataLoss, {"malformed"});
  expect_error([&] { parse_npy(make_npy("{'descr': '<f4', 'shape': (1,)}", "abcd")); },
               ErrorCode::kDataLoss, {"fortran_order"});
  expect_error([&] { parse_npy(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", "abcd")); },
               ErrorCode::kDataLoss, {"trailing"});
  std::string deep = "{'descr': '<f4', 'fortran_order': False, 'shape': " + std::string(100, '(') + "}";
  expect_error([&] { parse_npy(make_npy(deep, "")); }, ErrorCode::kDataLoss, {"too deep"});
  std::string v9 = make_npy("{}", "");
  v9[6] = 9;
  expect_error([&] { parse_npy(v9); }, ErrorCode::kUnimplemented, {"version 9"});
  std::string long_header = make_npy("{}", "");
  long_header[8] = '\xff';
  expect_error([&] { parse_npy(long_header); }, ErrorCode::kDataLoss, {"truncated"});
}

TEST(Npz, RoundTripStoredAndDeflated) {
  npy::NamedTensors in = {
      {"a", Tensor::from_vector<float>({1, 2, 3})},
      {"dir/b", Tensor::from_vector<int64_t>(std::vector<int64_t>(10000, 42))},
      {"s", Tensor::string_scalar("hello")},
  };
  for (bool compress : {false, true}) {
    std::string z = serialize_npz(in, compress);
    if (compress) {
      EXPECT_LT(z.size(), 4000u);
    }
    npy::NamedTensors out = parse_npz(z);
    ASSERT_EQ(out.size(), in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      EXPECT_EQ(out[i].first, in[i].first);
      EXPECT_TRUE(same_tensor(out[i].second, in[i].second));
    }
  }
  EXPECT_TRUE(parse_npz(serialize_npz({})).empty());
  expect_error([&] { serialize_npz({{"a", Tensor::scalar(1)}, {"a", Tensor::scalar(2)}}); },
               ErrorCode::kInvalidArgument, {"duplicate"});
}

TEST(Npz, Corruption) {
  npy::NamedTensors in = {{"a", Tensor::from_vector<float>(std::vector<float>(100, 1.0f))}};
  for (bool compress : {false, true}) {
    const std::string z = serialize_npz(in, compress);
    // Flip a payload byte (just after the local header + name): CRC-32 or inflate catches it.
    std::string bad = z;
    bad[30 + 5 + 100] ^= 1;
    expect_error([&] { parse_npz(bad, "c.npz"); }, ErrorCode::kDataLoss, {"c.npz", "'a.npy'"});
    expect_error([&] { parse_npz(z.substr(0, z.size() - 30), "t.npz"); }, ErrorCode::kDataLoss, {"t.npz"});
    // Every truncation and every single-byte corruption is either rejected or harmless.
    for (size_t n = 0; n < z.size(); ++n) {
      try {
        parse_npz(z.substr(0, n));
      } catch (const Error&) {
      }
      std::string c = z;
      c[n] ^= 0x41;
      try {
        parse_npz(c);
      } catch (const Error&) {
      }
    }
  }
  expect_error([&] { parse_npz("PK\x05\x06", "x.npz"); }, ErrorCode::kDataLoss, {"x.npz", "not a zip"});
}

TEST(Npz, DecompressionBombIsRejected) {
  std::string z = serialize_npz({{"a", Tensor::from_vector<float>({1, 2})}}, true);
  // Patch the central directory's uncompressed size (offset 24 in the entry) to 4 GiB - 2.
  size_t cd = z.rfind(std::string("PK\x01\x02", 4));
  ASSERT_NE(cd, std::string::npos);
  for (int i = 0; i < 4; ++i) z[cd + 24 + i] = i == 0 ? '\xfe' : '\xff';
  expect_error([&] { parse_npz(z, "bomb.npz"); }, ErrorCode::kDataLoss, {"implausible uncompressed size"});
}

}  // namespace
}  // namespace tessera
