#include "serve/json_predict_fast.h"

#include <rapidjson/reader.h>
#include <rapidjson/internal/strtod.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace tessera::serve {

namespace tf = ::tensorflow;

namespace {

// The numbers of one nested list, in order, with the size of its lists at each depth. Kinds as
// RapidJSON's Value reports them: the reader below only yields integers that fit 32 bits
// (IsInt64, and IsUint64 if >= 0) and doubles.
struct NumberList {
  enum Kind : uint8_t { kDouble, kInt64 };
  std::vector<uint64_t> bits;  // the double or int64, by kind
  std::vector<uint8_t> kinds;
  bool all_double = true;
  std::vector<int64_t> dims;   // per depth: the size every list there has (-1: none ended yet)
  int leaf_depth = -1;         // the depth all numbers are at (-1: no number yet)
};

// The events of the body (RapidJSON's SAX handler calls): keeps signature_name and the numbers
// of instances/inputs; false gives up.
class PredictBodyScanner {
 public:
  enum Member { kNone, kSignature, kInstances, kInputs, kOther };

  bool Int(int i) { return number(NumberList::kInt64, static_cast<uint64_t>(static_cast<int64_t>(i))); }
  bool Uint(unsigned u) { return number(NumberList::kInt64, u); }
  bool Double(double d) {
    uint64_t b;
    std::memcpy(&b, &d, 8);
    return number(NumberList::kDouble, b);
  }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    if (level_ == 1 && key_ == kSignature) {
      signature_.assign(s, n);
      return true;
    }
    return other_scalar();
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (level_ != 1) return true;  // inside another member's value (captured values hold no objects)
    std::string_view k(s, n);
    key_ = k == "signature_name" ? kSignature : k == "instances" ? kInstances : k == "inputs" ? kInputs : kOther;
    if (key_ == kOther) return true;
    if (seen_[key_]) return false;  // a repeated key: the general path takes the first
    seen_[key_] = true;
    return true;
  }
  bool StartObject() {
    // The body; or a value (or part of one) of a member other than the three read here. An
    // object in instances/inputs (named inputs, b64) or as signature_name is the general path's.
    if (level_ == 0 || (level_ == 1 && key_ == kOther) || (level_ > 1 && !capturing())) {
      ++level_;
      return true;
    }
    return false;
  }
  bool EndObject(rapidjson::SizeType) {
    --level_;
    return true;
  }
  bool StartArray() {
    if (level_ == 0 || (level_ == 1 && key_ == kSignature)) return false;
    ++level_;
    if (!capturing()) return true;
    int depth = level_ - 2;  // of this list inside the captured value
    return list_.leaf_depth < 0 || depth < list_.leaf_depth;
  }
  bool EndArray(rapidjson::SizeType n) {
    --level_;
    if (!capturing()) return true;
    size_t depth = static_cast<size_t>(level_ - 1);
    if (list_.dims.size() <= depth) list_.dims.resize(depth + 1, -1);
    if (list_.dims[depth] < 0) list_.dims[depth] = n;
    return list_.dims[depth] == static_cast<int64_t>(n);
  }

  bool seen(Member m) const { return seen_[m]; }
  const std::string& signature() const { return signature_; }
  NumberList& list() { return list_; }

 private:
  bool capturing() const { return key_ == kInstances || key_ == kInputs; }

  // A value that is no number, list or object.
  bool other_scalar() {
    if (level_ == 0) return false;
    if (level_ == 1) return key_ == kOther;
    return !capturing();
  }

  bool number(NumberList::Kind kind, uint64_t bits) {
    if (level_ == 0) return false;
    if (level_ == 1 && key_ == kSignature) return false;
    if (!capturing()) return true;
    int depth = level_ - 1;
    if (list_.leaf_depth < 0) list_.leaf_depth = depth;
    else if (depth != list_.leaf_depth) return false;
    list_.bits.push_back(bits);
    list_.kinds.push_back(kind);
    list_.all_double &= kind == NumberList::kDouble;
    return true;
  }

  int level_ = 0;  // open objects and lists, the body's own object included
  Member key_ = kNone;
  bool seen_[5] = {};
  std::string signature_;
  NumberList list_;
};


// Reads a body made only of objects, lists, strings of printable ASCII without escapes, and
// numbers of the form -?(0|[1-9][0-9]{0,8})(\.[0-9]+)?([eE][+-]?[0-9]{1,3})? (the integer part
// stays in RapidJSON's 32-bit accumulator), calling the handler as RapidJSON's GenericReader
// does. Returns false for anything else, where RapidJSON may still accept the body: the caller
// then parses it with RapidJSON. So it accepts a subset of what RapidJSON accepts, and where it
// accepts, it reports the same events and the same numbers, bit for bit.
template <typename Handler>
class SimpleJsonReader {
 public:
  SimpleJsonReader(std::string_view text, Handler& h) : p_(text.data()), end_(text.data() + text.size()), h_(h) {}

  bool parse() {
    skip_ws();
    if (!value(0)) return false;
    skip_ws();
    return p_ == end_;
  }

 private:
  static constexpr int kMaxDepth = 64;
  static constexpr uint64_t kMax53 = (uint64_t{1} << 53) - 1;  // RapidJSON's "fast path" bound

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  // Eight characters loaded little-endian (the first in the low byte): all ASCII digits?
  static bool eight_digits(uint64_t v) {
    return (v & 0xF0F0F0F0F0F0F0F0ull) == 0x3030303030303030ull &&
           ((v + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) == 0x3030303030303030ull;
  }
  // Their value as a decimal number (SWAR: pairs, then quads, then all eight).
  static uint64_t eight_digits_value(uint64_t v) {
    v -= 0x3030303030303030ull;
    v = v * 10 + (v >> 8);  // byte 2k: the value of digits 2k, 2k+1
    v = ((v & 0x000000FF000000FFull) * (100 + (1000000ull << 32)) +
         ((v >> 16) & 0x000000FF000000FFull) * (1 + (10000ull << 32))) >> 32;
    return static_cast<uint32_t>(v);
  }
  // How many of the 16 digits in a, b are leading '0's.
  static int leading_zero_digits(uint64_t a, uint64_t b) {
    const uint64_t zeros = 0x3030303030303030ull;
    if (a != zeros) return __builtin_ctzll(a ^ zeros) / 8;
    if (b != zeros) return 8 + __builtin_ctzll(b ^ zeros) / 8;
    return 16;
  }
  bool at(char c) const { return p_ < end_ && *p_ == c; }
  bool at_digit() const { return p_ < end_ && digit(*p_); }
  // RapidJSON's whitespace: space, \n, \r, \t.
  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool value(int depth) {
    if (p_ == end_) return false;
    char c = *p_;
    if (c == '[') return list(depth);
    if (c == '{') return object(depth);
    if (c == '"') {
      std::string_view s;
      return string(&s) && h_.String(s.data(), static_cast<rapidjson::SizeType>(s.size()), true);
    }
    if (c == '-' || digit(c)) return number();
    return false;  // true, false, null, NaN, Infinity, or an error
  }

  bool list(int depth) {
    if (depth >= kMaxDepth || !h_.StartArray()) return false;
    rapidjson::SizeType n = 0;
    return items(']', [&] { return value(depth + 1); }, &n) && h_.EndArray(n);
  }

  bool object(int depth) {
    if (depth >= kMaxDepth || !h_.StartObject()) return false;
    rapidjson::SizeType n = 0;
    auto member = [&] {
      std::string_view key;
      if (!at('"') || !string(&key) || !h_.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()), true))
        return false;
      skip_ws();
      if (!at(':')) return false;
      ++p_;
      skip_ws();
      return value(depth + 1);
    };
    return items('}', member, &n) && h_.EndObject(n);
  }

  // The items of a list or object from its opening bracket (at p_) through `close`, separated
  // by commas with whitespace around; `item` reads one. *n: how many.
  template <typename Item>
  bool items(char close, Item&& item, rapidjson::SizeType* n) {
    ++p_;
    skip_ws();
    if (at(close)) {
      ++p_;
      return true;
    }
    for (;;) {
      if (!item()) return false;
      ++*n;
      skip_ws();
      if (at(',')) {
        ++p_;
        skip_ws();
        continue;
      }
      if (!at(close)) return false;
      ++p_;
      return true;
    }
  }

  // "..." of printable ASCII, no escapes (what it reads is its own text).
  bool string(std::string_view* out) {
    const char* start = ++p_;
    while (p_ < end_ && *p_ != '"') {
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c < 0x20 || c > 0x7e || c == '\\') return false;
      ++p_;
    }
    if (p_ == end_) return false;
    *out = std::string_view(start, p_ - start);
    ++p_;
    return true;
  }

  // GenericReader::ParseNumber without kParseFullPrecisionFlag, for the forms above: the same
  // accumulators, the same order of operations, the same final call.
  bool number() {
    const char* p = p_;
    bool minus = false;
    if (*p == '-') {
      minus = true;
      ++p;
    }
    if (p == end_) return false;
    unsigned i = 0;
    int significand_digits = 0;
    if (*p == '0') {
      ++p;
    } else if (*p >= '1' && *p <= '9') {
      i = static_cast<unsigned>(*p++ - '0');
      for (int n = 1; p < end_ && digit(*p); ++n) {
        if (n == 9) return false;  // RapidJSON's 32-bit bound could be reached: the general path
        i = i * 10 + static_cast<unsigned>(*p++ - '0');
        significand_digits++;
      }
    } else {
      return false;  // NaN, Infinity, or an error
    }
    double d = 0.0;
    bool use_double = false;
    int exp_frac = 0;
    if (p < end_ && *p == '.') {
      ++p;
      if (!(p < end_ && digit(*p))) return false;
      uint64_t i64 = i;
      // 16 digits at once where RapidJSON's loop below would take them all: its bound check
      // before each digit sees values that only grow, so it passes for all 16 if it passes
      // before the 16th.
      uint64_t a, b;
      if (i < 100 && end_ - p >= 16 && (std::memcpy(&a, p, 8), std::memcpy(&b, p + 8, 8), eight_digits(a)) &&
          eight_digits(b)) {
        uint64_t v = i * 10000000000000000ull + eight_digits_value(a) * 100000000ull + eight_digits_value(b);
        if (v / 10 <= kMax53) {
          i64 = v;
          exp_frac = -16;
          // One per digit after which the accumulator is non-zero.
          significand_digits += i != 0 ? 16 : 16 - leading_zero_digits(a, b);
          p += 16;
        }
      }
      while (p < end_ && digit(*p)) {
        if (i64 > kMax53) break;
        i64 = i64 * 10 + static_cast<unsigned>(*p++ - '0');
        --exp_frac;
        if (i64 != 0) significand_digits++;
      }
      d = static_cast<double>(i64);
      use_double = true;
      while (p < end_ && digit(*p)) {
        if (significand_digits < 17) {
          d = d * 10.0 + (*p++ - '0');
          --exp_frac;
          if (d > 0.0) significand_digits++;
        } else {
          ++p;
        }
      }
    }
    int exp = 0;
    if (p < end_ && (*p == 'e' || *p == 'E')) {
      ++p;
      if (!use_double) {
        d = static_cast<double>(i);
        use_double = true;
      }
      bool exp_minus = false;
      if (p < end_ && *p == '+') {
        ++p;
      } else if (p < end_ && *p == '-') {
        exp_minus = true;
        ++p;
      }
      if (!(p < end_ && digit(*p))) return false;
      exp = *p++ - '0';
      int max_exp = 308 - exp_frac;
      for (int n = 1; p < end_ && digit(*p); ++n) {
        if (n == 3) return false;  // long exponents: the general path
        exp = exp * 10 + (*p++ - '0');
        if (!exp_minus && exp > max_exp) return false;  // RapidJSON: "Number too big"
      }
      if (exp_minus) exp = -exp;
    }
    p_ = p;
    if (use_double) {
      d = rapidjson::internal::StrtodNormalPrecision(d, exp + exp_frac);
      return h_.Double(minus ? -d : d);
    }
    return minus ? h_.Int(static_cast<int32_t>(~i + 1)) : h_.Uint(i);
  }

  const char* p_;
  const char* end_;
  Handler& h_;
};

// GetDouble(): an integer converts.
double number_as_double(uint64_t bits, uint8_t kind) {
  if (kind == NumberList::kInt64) return static_cast<double>(static_cast<int64_t>(bits));
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

template <typename T>
bool put_reals(const NumberList& l, std::string* bytes) {
  size_t n = l.bits.size();
  bytes->resize(n * sizeof(T));
  char* out = bytes->data();
  for (size_t i = 0; i < n; ++i) {
    double d;
    if (l.all_double) std::memcpy(&d, &l.bits[i], 8);
    else d = number_as_double(l.bits[i], l.kinds[i]);
    T x = static_cast<T>(d);
    std::memcpy(out + i * sizeof(T), &x, sizeof(T));
  }
  return true;
}

// TensorBuilder::put_int's rules; false where it would fail.
template <typename T>
bool put_ints(const NumberList& l, std::string* bytes) {
  size_t n = l.bits.size();
  bytes->resize(n * sizeof(T));
  char* out = bytes->data();
  for (size_t i = 0; i < n; ++i) {
    if (l.kinds[i] != NumberList::kInt64) return false;  // a double into an integer input
    int64_t v = static_cast<int64_t>(l.bits[i]);
    if (!(v >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
          (v < 0 || static_cast<uint64_t>(v) <= static_cast<uint64_t>(std::numeric_limits<T>::max()))))
      return false;
    T x = static_cast<T>(v);
    std::memcpy(out + i * sizeof(T), &x, sizeof(T));
  }
  return true;
}

// The tensor bytes of `l` as `dtype`; false where the general path would fail or the dtype is
// not numeric.
bool numbers_to_bytes(const NumberList& l, tf::DataType dtype, std::string* bytes) {
  switch (dtype) {
    case tf::DT_FLOAT: return put_reals<float>(l, bytes);
    case tf::DT_DOUBLE: return put_reals<double>(l, bytes);
    case tf::DT_INT8: return put_ints<int8_t>(l, bytes);
    case tf::DT_UINT8: return put_ints<uint8_t>(l, bytes);
    case tf::DT_INT16: return put_ints<int16_t>(l, bytes);
    case tf::DT_UINT16: return put_ints<uint16_t>(l, bytes);
    case tf::DT_INT32: return put_ints<int32_t>(l, bytes);
    case tf::DT_UINT32: return put_ints<uint32_t>(l, bytes);
    case tf::DT_INT64: return put_ints<int64_t>(l, bytes);
    case tf::DT_UINT64: return put_ints<uint64_t>(l, bytes);
    default: return false;
  }
}

}  // namespace

FastResult predict_fast(std::string_view body, const SignatureLookup& lookup, tfs::PredictRequest* request,
                        PredictFormat* format, ServeStatus* status,
                        std::optional<std::pair<std::string, tf::SignatureDef>>* looked_up) {
  PredictBodyScanner scanner;
  if (!SimpleJsonReader<PredictBodyScanner>(body, scanner).parse()) return FastResult::kGiveUp;
  bool row = scanner.seen(PredictBodyScanner::kInstances);
  if (row == scanner.seen(PredictBodyScanner::kInputs)) return FastResult::kGiveUp;  // both or neither
  NumberList& l = scanner.list();
  // Every number at one depth, no list below it, and every list at a depth of one size (a body
  // of empty lists has no numbers: its dims are all there is).
  if (l.leaf_depth >= 0 && l.dims.size() != static_cast<size_t>(l.leaf_depth)) return FastResult::kGiveUp;
  if (row && (l.dims.empty() || l.dims[0] == 0)) return FastResult::kGiveUp;  // not a list, or empty
  tf::SignatureDef sig;
  ServeStatus st = lookup(scanner.signature(), &sig);
  if (!st.ok()) {
    *status = st;
    return FastResult::kLookupFailed;
  }
  looked_up->emplace(scanner.signature(), sig);
  if (sig.inputs_size() != 1) return FastResult::kGiveUp;
  const auto& [name, info] = *sig.inputs().begin();
  std::string bytes;
  if (!numbers_to_bytes(l, info.dtype(), &bytes)) return FastResult::kGiveUp;
  request->mutable_model_spec()->set_signature_name(scanner.signature());
  *format = row ? PredictFormat::kRow : PredictFormat::kColumnar;
  tf::TensorProto& t = (*request->mutable_inputs())[name];
  t.Clear();
  t.set_dtype(info.dtype());
  auto* shape = t.mutable_tensor_shape();  // present even for a scalar, as TensorBuilder::finish
  for (int64_t d : l.dims) shape->add_dim()->set_size(d);
  t.set_tensor_content(std::move(bytes));
  return FastResult::kDone;
}

}  // namespace tessera::serve
