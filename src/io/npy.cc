#include "io/npy.h"

#include <zlib.h>

#include <algorithm>
#include <complex>
#include <cstring>
#include <set>

#include "support/error.h"
#include "support/file.h"

namespace tessera::npy {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npy I/O assumes a little-endian host");

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

// ---------------------------------------------------------------------------------------------
// The .npy header is a Python dict literal; this parses the small subset NumPy writes (and a
// little more: either quote style, any key order, trailing commas, Python 2 'L' suffixes).

struct PyValue {
  enum Kind { kStr, kInt, kBool, kNone, kTuple, kList } kind = kNone;
  std::string str;
  int64_t num = 0;
  bool flag = false;
  std::vector<PyValue> items;
};

class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& name) : s_(text), name_(name) {}

  std::vector<std::pair<std::string, PyValue>> parse_dict() {
    std::vector<std::pair<std::string, PyValue>> out;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      PyValue key = value(0);
      if (key.kind != PyValue::kStr) error("dict keys must be strings");
      expect(':');
      out.emplace_back(key.str, value(0));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') error("expected ',' or '}'");
    }
    ++pos_;
    skip_space();
    if (pos_ != s_.size()) error("trailing characters after the header dict");
    return out;
  }

 private:
  [[noreturn]] void error(const char* what) const {
    fail_code(ErrorCode::kDataLoss, "'", name_, "': malformed .npy header (", what, " at column ",
              pos_, ")");
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' ||
                                s_[pos_] == '\r'))
      ++pos_;
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void expect(char c) {
    skip_space();
    if (peek() != c) error("unexpected character");
    ++pos_;
  }
  bool consume_word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }

  PyValue value(int depth) {
    if (depth > 16) error("nesting too deep");
    skip_space();
    PyValue v;
    char c = peek();
    if (c == '\'' || c == '"') {
      ++pos_;
      v.kind = PyValue::kStr;
      while (true) {
        if (pos_ >= s_.size()) error("unterminated string");
        char d = s_[pos_++];
        if (d == c) break;
        if (d == '\\') {
          if (pos_ >= s_.size()) error("unterminated string");
          d = s_[pos_++];
        }
        v.str.push_back(d);
      }
    } else if (c == '(' || c == '[') {
      const char close = c == '(' ? ')' : ']';
      v.kind = c == '(' ? PyValue::kTuple : PyValue::kList;
      ++pos_;
      while (true) {
        skip_space();
        if (peek() == close) break;
        v.items.push_back(value(depth + 1));
        skip_space();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        if (peek() != close) error("expected ',' or closing bracket");
      }
      ++pos_;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = PyValue::kInt;
      bool negative = c == '-';
      if (negative) ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) error("bad integer");
      uint64_t n = 0;
      while (peek() >= '0' && peek() <= '9') {
        n = n * 10 + static_cast<uint64_t>(s_[pos_++] - '0');
        if (n > static_cast<uint64_t>(INT64_MAX)) error("integer too large");
      }
      if (peek() == 'L' || peek() == 'l') ++pos_;
      v.num = negative ? -static_cast<int64_t>(n) : static_cast<int64_t>(n);
    } else if (consume_word("True")) {
      v.kind = PyValue::kBool;
      v.flag = true;
    } else if (consume_word("False")) {
      v.kind = PyValue::kBool;
    } else if (consume_word("None")) {
      v.kind = PyValue::kNone;
    } else {
      error("unexpected token");
    }
    return v;
  }

  std::string_view s_;
  const std::string& name_;
  size_t pos_ = 0;
};

// What a descr string like '<f4' or '|S10' maps to.
struct ElementType {
  DType dtype = DType::kInvalid;
  char kind = 0;        // NumPy kind: f i u b c S U
  size_t itemsize = 0;  // bytes per element in the file
};

ElementType parse_descr(const std::string& descr, const std::string& name) {
  auto bad = [&](const std::string& why) -> ElementType {
    fail_code(ErrorCode::kUnimplemented, "'", name, "': unsupported .npy dtype '", descr, "'",
              why.empty() ? "" : " (", why, why.empty() ? "" : ")");
  };
  if (descr.size() < 2) bad("");
  const char order = descr[0];
  if (order != '<' && order != '>' && order != '|' && order != '=') bad("");
  ElementType t;
  t.kind = descr[1];
  if (t.kind == 'a') t.kind = 'S';  // old alias for bytes
  std::string digits = descr.substr(2);
  if (t.kind == 'O') bad("object arrays need pickle, which Tessera does not load");
  if (digits.empty() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    bad("");
  const size_t n = std::stoul(digits);
  switch (t.kind) {
    case 'f':
      t.dtype = n == 2 ? DType::kFloat16 : n == 4 ? DType::kFloat32 : n == 8 ? DType::kFloat64
                                                                               : DType::kInvalid;
      t.itemsize = n;
      break;
    case 'i':
      t.dtype = n == 1 ? DType::kInt8 : n == 2 ? DType::kInt16 : n == 4 ? DType::kInt32
              : n == 8 ? DType::kInt64 : DType::kInvalid;
      t.itemsize = n;
      break;
    case 'u':
      t.dtype = n == 1 ? DType::kUInt8 : n == 2 ? DType::kUInt16 : n == 4 ? DType::kUInt32
              : n == 8 ? DType::kUInt64 : DType::kInvalid;
      t.itemsize = n;
      break;
    case 'b':
      t.dtype = n == 1 ? DType::kBool : DType::kInvalid;
      t.itemsize = n;
      break;
    case 'c':
      t.dtype = n == 8 ? DType::kComplex64 : n == 16 ? DType::kComplex128 : DType::kInvalid;
      t.itemsize = n;
      break;
    case 'S':
      t.dtype = DType::kString;
      t.itemsize = n;
      break;
    case 'U':
      t.dtype = DType::kString;
      if (n > SIZE_MAX / 4) bad("");
      t.itemsize = n * 4;
      break;
    default:
      bad("");
  }
  if (t.dtype == DType::kInvalid) bad("");
  if (t.itemsize == 0) bad("zero-width strings");
  if (order == '>' && (t.itemsize > 1 && t.kind != 'S'))
    fail_code(ErrorCode::kUnimplemented, "'", name, "': big-endian .npy data ('", descr,
              "') is not supported; save it little-endian (arr.astype(arr.dtype.newbyteorder('<')))");
  return t;
}

void append_utf8(std::string& out, uint32_t cp, const std::string& name) {
  if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    fail_code(ErrorCode::kDataLoss, "'", name, "': invalid unicode code point ", cp);
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// Fortran (column-major) element index for each row-major position, visited in row-major
// order via an odometer, so the transpose needs no index array.
template <typename F>
void for_each_fortran_index(const Shape& shape, F&& f) {
  const size_t rank = shape.size();
  const int64_t count = num_elements(shape);
  if (count == 0) return;
  std::vector<int64_t> stride(rank), idx(rank, 0);
  int64_t s = 1;
  for (size_t k = 0; k < rank; ++k) {
    stride[k] = s;
    s *= shape[k];
  }
  int64_t src = 0;
  for (int64_t i = 0; i < count; ++i) {
    f(i, src);
    for (size_t k = rank; k-- > 0;) {
      if (++idx[k] < shape[k]) {
        src += stride[k];
        break;
      }
      src -= stride[k] * (shape[k] - 1);
      idx[k] = 0;
    }
  }
}

uint16_t le16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | (static_cast<uint8_t>(p[1]) << 8));
}
uint32_t le32(const char* p) { return le16(p) | (static_cast<uint32_t>(le16(p + 2)) << 16); }
uint64_t le64(const char* p) { return le32(p) | (static_cast<uint64_t>(le32(p + 4)) << 32); }
void put16(std::string& s, uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}
void put32(std::string& s, uint32_t v) {
  put16(s, static_cast<uint16_t>(v));
  put16(s, static_cast<uint16_t>(v >> 16));
}
void put64(std::string& s, uint64_t v) {
  put32(s, static_cast<uint32_t>(v));
  put32(s, static_cast<uint32_t>(v >> 32));
}

std::string descr_of(const Tensor& t, size_t* itemsize) {
  switch (t.dtype()) {
    case DType::kFloat16: return "<f2";
    case DType::kFloat32: return "<f4";
    case DType::kFloat64: return "<f8";
    case DType::kInt8: return "|i1";
    case DType::kInt16: return "<i2";
    case DType::kInt32: return "<i4";
    case DType::kInt64: return "<i8";
    case DType::kUInt8: return "|u1";
    case DType::kUInt16: return "<u2";
    case DType::kUInt32: return "<u4";
    case DType::kUInt64: return "<u8";
    case DType::kBool: return "|b1";
    case DType::kComplex64: return "<c8";
    case DType::kComplex128: return "<c16";
    case DType::kString: {
      size_t longest = 1;  // NumPy has no zero-width 'S0' arrays on disk
      for (const auto& s : t.strings()) longest = std::max(longest, s.size());
      *itemsize = longest;
      return "|S" + std::to_string(longest);
    }
    case DType::kBFloat16:
      fail(".npy has no bfloat16 type; convert the tensor to float32 first");
    default:
      fail("cannot write a ", dtype_name(t.dtype()), " tensor to .npy");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Tensor parse_npy(std::string_view bytes, const std::string& name) {
  if (bytes.size() < kMagicLen + 2 || bytes.substr(0, kMagicLen) != std::string_view(kMagic, kMagicLen))
    fail_code(ErrorCode::kDataLoss, "'", name, "' is not a .npy file (bad magic or truncated)");
  const int major = static_cast<uint8_t>(bytes[6]);
  size_t header_start, header_len;
  if (major == 1) {
    if (bytes.size() < 10) fail_code(ErrorCode::kDataLoss, "'", name, "' is truncated");
    header_len = le16(bytes.data() + 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail_code(ErrorCode::kDataLoss, "'", name, "' is truncated");
    header_len = le32(bytes.data() + 8);
    header_start = 12;
  } else {
    fail_code(ErrorCode::kUnimplemented, "'", name, "': unsupported .npy format version ", major);
  }
  if (header_len > bytes.size() - header_start)
    fail_code(ErrorCode::kDataLoss, "'", name, "' is truncated (header of ", header_len,
              " bytes, file of ", bytes.size(), ")");
  auto dict = HeaderParser(bytes.substr(header_start, header_len), name).parse_dict();
  const PyValue* descr = nullptr;
  const PyValue* fortran = nullptr;
  const PyValue* shape_v = nullptr;
  for (const auto& [k, v] : dict) {
    if (k == "descr") descr = &v;
    else if (k == "fortran_order") fortran = &v;
    else if (k == "shape") shape_v = &v;
  }
  if (!descr || !fortran || !shape_v)
    fail_code(ErrorCode::kDataLoss, "'", name,
              "': .npy header lacks one of 'descr', 'fortran_order', 'shape'");
  if (descr->kind != PyValue::kStr)
    fail_code(ErrorCode::kUnimplemented, "'", name,
              "': structured (record) .npy dtypes are not supported");
  if (fortran->kind != PyValue::kBool || shape_v->kind != PyValue::kTuple)
    fail_code(ErrorCode::kDataLoss, "'", name, "': malformed .npy header");
  const ElementType et = parse_descr(descr->str, name);
  Shape shape;
  for (const auto& d : shape_v->items) {
    if (d.kind != PyValue::kInt || d.num < 0)
      fail_code(ErrorCode::kDataLoss, "'", name, "': malformed shape in .npy header");
    shape.push_back(d.num);
  }
  const uint64_t count = static_cast<uint64_t>(
      with_context(str_cat("'", name, "'"), [&] { return num_elements(shape); }));
  std::string_view data = bytes.substr(header_start + header_len);
  if (count > data.size() / et.itemsize || count * et.itemsize != data.size())
    fail_code(ErrorCode::kDataLoss, "'", name, "': data is ", data.size(), " bytes but shape ",
              shape_str(shape), " of '", descr->str, "' needs ", count, " x ", et.itemsize,
              " (truncated or corrupted)");
  const bool transpose = fortran->flag && shape.size() > 1;

  Tensor t = with_context(str_cat("'", name, "'"), [&] { return Tensor(et.dtype, shape); });
  if (et.dtype != DType::kString) {
    auto* dst = static_cast<char*>(t.mutable_raw());
    if (!transpose) {
      std::memcpy(dst, data.data(), data.size());
    } else {
      const size_t w = et.itemsize;
      for_each_fortran_index(shape, [&](int64_t i, int64_t src) {
        std::memcpy(dst + static_cast<size_t>(i) * w, data.data() + static_cast<size_t>(src) * w, w);
      });
    }
    if (et.dtype == DType::kBool) {  // only 0/1 are valid bool objects
      auto* b = reinterpret_cast<uint8_t*>(dst);
      for (uint64_t i = 0; i < count; ++i) b[i] = b[i] != 0;
    }
    return t;
  }
  auto& strings = t.strings();
  auto decode = [&](int64_t src) {
    const char* p = data.data() + static_cast<size_t>(src) * et.itemsize;
    std::string s;
    if (et.kind == 'S') {
      size_t len = et.itemsize;
      while (len > 0 && p[len - 1] == '\0') --len;  // NumPy drops trailing NULs
      s.assign(p, len);
    } else {
      size_t n = et.itemsize / 4;
      while (n > 0 && le32(p + 4 * (n - 1)) == 0) --n;
      for (size_t j = 0; j < n; ++j) append_utf8(s, le32(p + 4 * j), name);
    }
    return s;
  };
  if (!transpose) {
    for (uint64_t i = 0; i < count; ++i) strings[i] = decode(static_cast<int64_t>(i));
  } else {
    for_each_fortran_index(shape, [&](int64_t i, int64_t src) { strings[i] = decode(src); });
  }
  return t;
}

std::string serialize_npy(const Tensor& t) {
  TS_CHECK(t.valid(), "cannot write an invalid tensor to .npy");
  size_t itemsize = dtype_size(t.dtype());
  const std::string descr = descr_of(t, &itemsize);
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i) {
    if (i) shape += ", ";
    shape += std::to_string(t.shape()[i]);
  }
  if (t.shape().size() == 1) shape += ",";
  shape += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces and a final newline so the data starts 64-byte aligned, as NumPy does.
  size_t prefix = kMagicLen + 2 + 2;
  int major = 1;
  if (header.size() + 1 + prefix + 64 > 65535 + prefix) {
    major = 2;
    prefix += 2;
  }
  const size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header.push_back('\n');

  const size_t count = static_cast<size_t>(t.num_elements());
  std::string out;
  out.reserve(total + count * itemsize);
  out.append(kMagic, kMagicLen);
  out.push_back(static_cast<char>(major));
  out.push_back(0);
  if (major == 1)
    put16(out, static_cast<uint16_t>(header.size()));
  else
    put32(out, static_cast<uint32_t>(header.size()));
  out += header;
  if (t.dtype() == DType::kString) {
    for (const auto& s : t.strings()) {
      out += s;
      out.append(itemsize - s.size(), '\0');
    }
  } else {
    out.append(static_cast<const char*>(t.raw()), t.nbytes());
  }
  return out;
}

Tensor load_npy(const std::string& path) { return parse_npy(read_file(path), path); }

void save_npy(const std::string& path, const Tensor& t) {
  write_file(path, with_context(str_cat("writing '", path, "'"), [&] { return serialize_npy(t); }));
}

// ---------------------------------------------------------------------------------------------
// .npz: a zip archive. Read through the central directory (sizes there are authoritative;
// NumPy writes ZIP64 local headers), verify each member's CRC-32.

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50,
                   kZip64EndSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;

std::string inflate_raw(std::string_view in, uint64_t out_size, const std::string& where) {
  std::string out(static_cast<size_t>(out_size), '\0');
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) fail("zlib inflateInit failed");
  size_t in_pos = 0, out_pos = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    const size_t in_chunk = std::min<size_t>(in.size() - in_pos, 1u << 30);
    const size_t out_chunk = std::min<size_t>(out.size() - out_pos, 1u << 30);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + in_pos));
    zs.avail_in = static_cast<uInt>(in_chunk);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_pos);
    zs.avail_out = static_cast<uInt>(out_chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    in_pos += in_chunk - zs.avail_in;
    out_pos += out_chunk - zs.avail_out;
    if (rc == Z_BUF_ERROR || (rc == Z_OK && in_chunk == zs.avail_in && out_chunk == zs.avail_out))
      break;  // no progress: input ended early or output is full
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || out_pos != out.size())
    fail_code(ErrorCode::kDataLoss, where, ": compressed data is corrupted or does not match its ",
              "declared size");
  return out;
}

std::string deflate_raw(std::string_view in) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    fail("zlib deflateInit failed");
  std::string out;
  size_t in_pos = 0;
  int rc = Z_OK;
  do {
    const size_t in_chunk = std::min<size_t>(in.size() - in_pos, 1u << 30);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + in_pos));
    zs.avail_in = static_cast<uInt>(in_chunk);
    in_pos += in_chunk;
    const int flush = in_pos == in.size() ? Z_FINISH : Z_NO_FLUSH;
    do {
      char buf[1 << 16];
      zs.next_out = reinterpret_cast<Bytef*>(buf);
      zs.avail_out = sizeof(buf);
      rc = deflate(&zs, flush);
      out.append(buf, sizeof(buf) - zs.avail_out);
    } while (zs.avail_out == 0);
  } while (rc != Z_STREAM_END && in_pos <= in.size() && rc != Z_STREAM_ERROR);
  deflateEnd(&zs);
  TS_CHECK(rc == Z_STREAM_END, "zlib deflate failed");
  return out;
}

uint32_t zip_crc(std::string_view data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t chunk = std::min<size_t>(data.size() - pos, 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data() + pos), static_cast<uInt>(chunk));
    pos += chunk;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

NamedTensors parse_npz(std::string_view z, const std::string& name) {
  auto corrupt = [&](const std::string& what) {
    fail_code(ErrorCode::kDataLoss, "'", name, "': ", what);
  };
  // End of central directory: 22 bytes plus a comment of up to 65535 bytes.
  if (z.size() < 22) corrupt("not a zip archive (too short)");
  size_t eocd = std::string_view::npos;
  const size_t lowest = z.size() >= 22 + 65535 ? z.size() - 22 - 65535 : 0;
  for (size_t p = z.size() - 22 + 1; p-- > lowest;) {
    if (le32(z.data() + p) == kEndSig && p + 22 + le16(z.data() + p + 20) == z.size()) {
      eocd = p;
      break;
    }
  }
  if (eocd == std::string_view::npos) corrupt("not a zip archive (no end of central directory)");
  const char* e = z.data() + eocd;
  uint64_t num_entries = le16(e + 10), cd_size = le32(e + 12), cd_offset = le32(e + 16);
  if (le16(e + 4) != 0 && le16(e + 4) != 0xffff) corrupt("multi-disk zip archives are not supported");
  if (num_entries == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff) {
    if (eocd < 20 || le32(z.data() + eocd - 20) != kZip64LocatorSig)
      corrupt("ZIP64 end of central directory locator is missing");
    const uint64_t rec = le64(z.data() + eocd - 20 + 8);
    if (rec > z.size() || z.size() - rec < 56 || le32(z.data() + rec) != kZip64EndSig)
      corrupt("ZIP64 end of central directory record is missing");
    const char* r = z.data() + rec;
    num_entries = le64(r + 32);
    cd_size = le64(r + 40);
    cd_offset = le64(r + 48);
  }
  if (cd_offset > z.size() || cd_size > z.size() - cd_offset)
    corrupt("central directory lies outside the file (truncated?)");
  if (num_entries > cd_size / 46) corrupt("central directory entry count is inconsistent");

  NamedTensors out;
  std::set<std::string> seen;
  const char* p = z.data() + cd_offset;
  const char* cd_end = p + cd_size;
  for (uint64_t i = 0; i < num_entries; ++i) {
    if (cd_end - p < 46 || le32(p) != kCentralSig) corrupt("corrupted central directory");
    const uint16_t flags = le16(p + 8), method = le16(p + 10);
    const uint32_t crc = le32(p + 16);
    uint64_t comp = le32(p + 20), uncomp = le32(p + 24);
    const size_t name_len = le16(p + 28), extra_len = le16(p + 30), comment_len = le16(p + 32);
    uint64_t local = le32(p + 42);
    if (static_cast<size_t>(cd_end - p) - 46 < name_len + extra_len + comment_len)
      corrupt("corrupted central directory");
    std::string member(p + 46, name_len);
    // ZIP64 extra field: 64-bit values for whichever 32-bit fields are saturated, in order.
    const char* x = p + 46 + name_len;
    const char* x_end = x + extra_len;
    while (x_end - x >= 4) {
      const uint16_t id = le16(x), len = le16(x + 2);
      if (static_cast<size_t>(x_end - x) - 4 < len) corrupt("corrupted zip extra field");
      if (id == 0x0001) {
        const char* q = x + 4;
        const char* q_end = q + len;
        for (uint64_t* field : {&uncomp, &comp, &local}) {
          if (*field != 0xffffffff) continue;
          if (q_end - q < 8) corrupt("corrupted ZIP64 extra field");
          *field = le64(q);
          q += 8;
        }
      }
      x += 4 + len;
    }
    p += 46 + name_len + extra_len + comment_len;

    const std::string where = str_cat("'", name, "' member '", member, "'");
    if (flags & 1) fail_code(ErrorCode::kUnimplemented, where, ": encrypted zip members are not supported");
    if (member.size() < 4 || member.compare(member.size() - 4, 4, ".npy") != 0) continue;
    if (local > z.size() || z.size() - local < 30 || le32(z.data() + local) != kLocalSig)
      fail_code(ErrorCode::kDataLoss, where, ": local header lies outside the file (truncated?)");
    const uint64_t data_start = local + 30 + le16(z.data() + local + 26) + le16(z.data() + local + 28);
    if (data_start > z.size() || comp > z.size() - data_start)
      fail_code(ErrorCode::kDataLoss, where, ": data extends past the end of the file (truncated?)");
    std::string_view stored = z.substr(data_start, comp);
    std::string inflated;
    std::string_view bytes;
    if (method == 0) {
      if (comp != uncomp) fail_code(ErrorCode::kDataLoss, where, ": stored member sizes disagree");
      bytes = stored;
    } else if (method == 8) {
      // DEFLATE cannot expand more than ~1032:1; larger claims are bombs or corruption.
      if (uncomp / 1032 > comp + 1 || uncomp > max_tensor_bytes() + (uint64_t{1} << 20))
        fail_code(ErrorCode::kDataLoss, where, ": implausible uncompressed size ", uncomp);
      inflated = inflate_raw(stored, uncomp, where);
      bytes = inflated;
    } else {
      fail_code(ErrorCode::kUnimplemented, where, ": unsupported zip compression method ", method,
                " (only stored and deflate)");
    }
    if (zip_crc(bytes) != crc) fail_code(ErrorCode::kDataLoss, where, ": CRC-32 mismatch (corrupted)");
    std::string key = member.substr(0, member.size() - 4);
    if (!seen.insert(key).second) fail_code(ErrorCode::kDataLoss, where, ": duplicate member");
    out.emplace_back(key, parse_npy(bytes, str_cat(name, ":", member)));
  }
  return out;
}

std::string serialize_npz(const NamedTensors& tensors, bool compress) {
  struct Member {
    std::string name;
    uint32_t crc;
    uint64_t comp, uncomp, offset;
    uint16_t method;
  };
  std::vector<Member> members;
  std::string out;
  std::set<std::string> names;
  for (const auto& item : tensors) {
    const std::string& key = item.first;
    const Tensor& tensor = item.second;
    TS_CHECK(names.insert(key).second, "duplicate array name '", key, "' for .npz");
    const std::string npy = with_context(str_cat("array '", key, "'"), [&] { return serialize_npy(tensor); });
    Member m{key + ".npy", zip_crc(npy), 0, npy.size(), out.size(), 0};
    TS_CHECK(m.name.size() <= 0xffff, "array name too long for .npz");
    std::string deflated;
    if (compress) {
      deflated = deflate_raw(npy);
      m.method = 8;
    }
    const std::string& payload = compress ? deflated : npy;
    m.comp = payload.size();
    const bool zip64 = m.comp >= 0xffffffff || m.uncomp >= 0xffffffff;
    put32(out, kLocalSig);
    put16(out, zip64 ? 45 : 20);  // version needed
    put16(out, 0);                // flags
    put16(out, m.method);
    put16(out, 0);       // time
    put16(out, 0x21);    // date: 1980-01-01
    put32(out, m.crc);
    put32(out, zip64 ? 0xffffffff : static_cast<uint32_t>(m.comp));
    put32(out, zip64 ? 0xffffffff : static_cast<uint32_t>(m.uncomp));
    put16(out, static_cast<uint16_t>(m.name.size()));
    put16(out, zip64 ? 20 : 0);
    out += m.name;
    if (zip64) {
      put16(out, 1);
      put16(out, 16);
      put64(out, m.uncomp);
      put64(out, m.comp);
    }
    out += payload;
    members.push_back(std::move(m));
  }
  const uint64_t cd_offset = out.size();
  for (const auto& m : members) {
    std::string extra;
    uint32_t comp32 = static_cast<uint32_t>(m.comp), uncomp32 = static_cast<uint32_t>(m.uncomp),
             off32 = static_cast<uint32_t>(m.offset);
    if (m.uncomp >= 0xffffffff) { put64(extra, m.uncomp); uncomp32 = 0xffffffff; }
    if (m.comp >= 0xffffffff) { put64(extra, m.comp); comp32 = 0xffffffff; }
    if (m.offset >= 0xffffffff) { put64(extra, m.offset); off32 = 0xffffffff; }
    put32(out, kCentralSig);
    put16(out, 45);  // version made by
    put16(out, extra.empty() ? 20 : 45);
    put16(out, 0);
    put16(out, m.method);
    put16(out, 0);
    put16(out, 0x21);
    put32(out, m.crc);
    put32(out, comp32);
    put32(out, uncomp32);
    put16(out, static_cast<uint16_t>(m.name.size()));
    put16(out, static_cast<uint16_t>(extra.empty() ? 0 : extra.size() + 4));
    put16(out, 0);  // comment
    put16(out, 0);  // disk
    put16(out, 0);  // internal attributes
    put32(out, 0);  // external attributes
    put32(out, off32);
    out += m.name;
    if (!extra.empty()) {
      put16(out, 1);
      put16(out, static_cast<uint16_t>(extra.size()));
      out += extra;
    }
  }
  const uint64_t cd_size = out.size() - cd_offset;
  const uint64_t n = members.size();
  if (n >= 0xffff || cd_size >= 0xffffffff || cd_offset >= 0xffffffff) {
    const uint64_t rec = out.size();
    put32(out, kZip64EndSig);
    put64(out, 44);  // size of the rest of this record
    put16(out, 45);
    put16(out, 45);
    put32(out, 0);
    put32(out, 0);
    put64(out, n);
    put64(out, n);
    put64(out, cd_size);
    put64(out, cd_offset);
    put32(out, kZip64LocatorSig);
    put32(out, 0);
    put64(out, rec);
    put32(out, 1);
  }
  put32(out, kEndSig);
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint16_t>(std::min<uint64_t>(n, 0xffff)));
  put16(out, static_cast<uint16_t>(std::min<uint64_t>(n, 0xffff)));
  put32(out, static_cast<uint32_t>(std::min<uint64_t>(cd_size, 0xffffffff)));
  put32(out, static_cast<uint32_t>(std::min<uint64_t>(cd_offset, 0xffffffff)));
  put16(out, 0);
  return out;
}

NamedTensors load_npz(const std::string& path) { return parse_npz(read_file(path), path); }

void save_npz(const std::string& path, const NamedTensors& tensors, bool compress) {
  write_file(path, with_context(str_cat("writing '", path, "'"),
                                [&] { return serialize_npz(tensors, compress); }));
}

}  // namespace tessera::npy
