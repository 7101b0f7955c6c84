#include "ir/parser.h"

#include <charconv>
#include <climits>
#include <cstring>
#include <optional>

#include "ir/op_registry.h"
#include "ir/verifier.h"

namespace tessera {
namespace {

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '/' ||
         c == '-' || c == '>';
}
bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '+' || c == '-';
}

std::optional<DType> dtype_named(const std::string& w) {
  try {
    return dtype_from_name(w);
  } catch (const Error&) {
    return std::nullopt;
  }
}

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  std::shared_ptr<Graph> parse() {
    auto main = std::make_shared<Graph>();
    ws();
    if (word() != "graph") error("expected 'graph'");
    parse_graph_block(*main);
    while (ws(), pos_ < s_.size()) {
      size_t at = pos_;
      if (word() != "func") error_at(at, "expected 'func' or end of text");
      ws();
      at = pos_;
      std::string name = node_name();
      if (main->library->functions.count(name)) error_at(at, "function '", name, "' defined twice");
      auto fn = std::make_shared<Graph>(FunctionLibrary::borrow(main->library));
      fn->name = name;
      parse_graph_block(*fn);
      main->library->functions[name] = fn;
    }
    try {
      verify_graph(*main);
    } catch (const Error& e) {  // bad text, not a Tessera bug
      throw Error(str_cat("IR text: ", e.what()), ErrorCode::kInvalidArgument);
    }
    return main;
  }

 private:
  // ---- position, errors, lexing ----
  std::pair<int, int> line_col(size_t at) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < at && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return {line, col};
  }
  template <typename... Args>
  [[noreturn]] void error_at(size_t at, const Args&... args) const {
    auto [line, col] = line_col(at);
    fail("IR text line ", line, ", column ", col, ": ", args...);
  }
  template <typename... Args>
  [[noreturn]] void error(const Args&... args) const { error_at(pos_, args...); }

  template <typename F>
  auto with_line(size_t at, F&& body) {
    try {
      return body();
    } catch (const Error& e) {
      auto [line, col] = line_col(at);
      throw Error(str_cat("IR text line ", line, ", column ", col, ": ", e.what()), e.code());
    }
  }

  void ws() {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        ++pos_;
      } else {
        break;
      }
    }
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool accept(char c) {
    ws();
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c, const char* context) {
    if (!accept(c)) {
      if (pos_ >= s_.size()) error("expected '", c, "' ", context, ", got end of text");
      error("expected '", c, "' ", context, ", got '", s_[pos_], "'");
    }
  }
  std::string word() {
    size_t start = pos_;
    while (pos_ < s_.size() && is_word_char(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }
  std::string node_name() {
    ws();
    size_t start = pos_;
    if (peek() != '-')
      while (pos_ < s_.size() && is_name_char(s_[pos_])) ++pos_;
    if (pos_ == start) error("expected a name");
    return s_.substr(start, pos_ - start);
  }

  // ---- values ----
  std::string string_literal() {
    expect('"', "to start a string");
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) error("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) error("unterminated string");
      char e = s_[pos_++];
      if (e == 'n') out += '\n';
      else if (e == 't') out += '\t';
      else if (e == '"' || e == '\\') out += e;
      else if (e == 'x' && pos_ + 2 <= s_.size() && std::isxdigit(static_cast<unsigned char>(s_[pos_])) &&
               std::isxdigit(static_cast<unsigned char>(s_[pos_ + 1]))) {
        out += static_cast<char>(std::stoi(s_.substr(pos_, 2), nullptr, 16));
        pos_ += 2;
      } else {
        error_at(pos_ - 2, "bad escape '\\", e, "' in string");
      }
    }
  }

  template <typename T>
  T number(const std::string& w, size_t at) {
    T v{};
    const char* b = w.data();
    if (!w.empty() && w[0] == '+') ++b;
    auto r = std::from_chars(b, w.data() + w.size(), v);
    if (r.ec != std::errc() || r.ptr != w.data() + w.size()) error_at(at, "bad number '", w, "'");
    return v;
  }
  static bool looks_float(const std::string& w) {
    return w.find_first_of(".eE") != std::string::npos || w.find("inf") != std::string::npos ||
           w.find("nan") != std::string::npos;
  }

  PartialShape shape() {
    if (s_.compare(pos_, 9, "<unknown>") == 0) {
      pos_ += 9;
      return PartialShape::unknown();
    }
    if (peek() != '[') error("expected a shape '[...]' or '<unknown>'");
    ++pos_;
    std::vector<int64_t> dims;
    if (accept(']')) return PartialShape(dims);
    do {
      ws();
      if (accept('?')) {
        dims.push_back(-1);
        continue;
      }
      size_t at = pos_;
      int64_t d = number<int64_t>(word(), at);
      if (d < -1) error_at(at, "bad dimension ", d);
      dims.push_back(d);
    } while (accept(','));
    expect(']', "to end the shape");
    return PartialShape(dims);
  }

  ValueInfo type() {
    ws();
    size_t at = pos_;
    std::string w = word();
    auto dt = dtype_named(w);
    if (!dt) error_at(at, "expected a type like float32[?,4], got '", w, "'");
    return {*dt, shape()};
  }

  void element(Tensor& t, int64_t i) {
    ws();
    size_t at = pos_;
    DType dt = t.dtype();
    if (dt == DType::kString) {
      t.strings()[static_cast<size_t>(i)] = string_literal();
      return;
    }
    std::string w = word();
    if (w.empty()) error("expected a tensor element");
    if (w == "...") error_at(at, "tensor value is elided; print with a larger max_inline_elements");
    switch (dt) {
      case DType::kFloat32: t.data<float>()[i] = number<float>(w, at); return;
      case DType::kFloat64: t.data<double>()[i] = number<double>(w, at); return;
      case DType::kFloat16: t.data<float16>()[i] = float16(number<float>(w, at)); return;
      case DType::kBFloat16: t.data<bfloat16>()[i] = bfloat16(number<float>(w, at)); return;
      case DType::kBool:
        if (w != "true" && w != "false") error_at(at, "expected true or false, got '", w, "'");
        t.data<bool>()[i] = w == "true";
        return;
      case DType::kUInt64: t.data<uint64_t>()[i] = number<uint64_t>(w, at); return;
      default: break;
    }
    if (!is_integer(dt)) error_at(at, "cannot write ", dtype_name(dt), " tensors in IR text");
    int64_t v = number<int64_t>(w, at);
    dispatch(IntTypesFor{}, dt, "tensor", [&]<typename T>() { t.data<T>()[i] = static_cast<T>(v); });
  }
  using IntTypesFor = Types<int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t>;

  Tensor tensor(DType dt, size_t at) {
    PartialShape ps = shape();
    if (!ps.fully_known()) error_at(at, "a tensor value needs a fully known shape, got ", ps.str());
    Tensor t = with_line(at, [&] { return Tensor(dt, ps.dims); });
    expect('{', "to start the tensor's elements");
    if (accept('}')) {
      if (t.num_elements() != 0) error_at(at, "tensor ", dtype_name(dt), ps.str(), " has no elements listed");
      return t;
    }
    int64_t n = 0;
    do {
      ws();
      if (s_.compare(pos_, 3, "...") == 0)
        error("tensor value is elided; print with a larger max_inline_elements");
      if (n >= std::max<int64_t>(t.num_elements(), 1)) error("too many elements for ", dtype_name(dt), ps.str());
      element(t, n++);
    } while (accept(','));
    expect('}', "to end the tensor's elements");
    if (n == 1 && t.num_elements() > 1) {  // one value fills the tensor
      for (int64_t i = 1; i < t.num_elements(); ++i) {
        if (dt == DType::kString) t.strings()[static_cast<size_t>(i)] = t.strings()[0];
        else std::memcpy(static_cast<char*>(t.mutable_raw()) + i * dtype_size(dt), t.raw(), dtype_size(dt));
      }
    } else if (n != t.num_elements()) {
      error_at(at, "tensor ", dtype_name(dt), ps.str(), " needs ", t.num_elements(), " elements, got ", n);
    }
    return t;
  }

  AttrValue attr_value() {
    ws();
    size_t at = pos_;
    char c = peek();
    if (c == '"') return string_literal();
    if (c == '@') {
      ++pos_;
      return FuncRef{node_name(), nullptr};
    }
    if (c == '[') {
      ++pos_;
      std::vector<AttrValue> items;
      if (!accept(']')) {
        do items.push_back(attr_value());
        while (accept(','));
        expect(']', "to end the list");
      }
      return make_list(items, at);
    }
    std::string w = word();
    if (w.empty()) error("expected an attribute value");
    if (w == "none") return std::monostate{};
    if (w == "true" || w == "false") return w == "true";
    if (w == "shape" && (peek() == '[' || peek() == '<')) return shape();
    if (auto dt = dtype_named(w)) {
      if (peek() == '[' || peek() == '<') return tensor(*dt, at);
      return *dt;
    }
    if (looks_float(w)) return number<float>(w, at);
    return number<int64_t>(w, at);
  }

  template <typename T>
  static bool all_are(const std::vector<AttrValue>& items) {
    for (const auto& v : items)
      if (!std::holds_alternative<T>(v)) return false;
    return true;
  }
  template <typename T>
  static std::vector<T> collect(const std::vector<AttrValue>& items) {
    std::vector<T> out;
    for (const auto& v : items) out.push_back(std::get<T>(v));
    return out;
  }
  AttrValue make_list(const std::vector<AttrValue>& items, size_t at) {
    if (items.empty() || all_are<int64_t>(items)) return collect<int64_t>(items);
    bool numeric = true;
    for (const auto& v : items)
      numeric = numeric && (std::holds_alternative<int64_t>(v) || std::holds_alternative<float>(v));
    if (numeric) {
      std::vector<float> out;
      for (const auto& v : items)
        out.push_back(std::holds_alternative<float>(v) ? std::get<float>(v) : static_cast<float>(std::get<int64_t>(v)));
      return out;
    }
    if (all_are<bool>(items)) {
      std::vector<bool> out;
      for (const auto& v : items) out.push_back(std::get<bool>(v));
      return out;
    }
    if (all_are<std::string>(items)) return collect<std::string>(items);
    if (all_are<DType>(items)) return collect<DType>(items);
    if (all_are<PartialShape>(items)) return collect<PartialShape>(items);
    if (all_are<Tensor>(items)) return collect<Tensor>(items);
    if (all_are<FuncRef>(items)) return collect<FuncRef>(items);
    error_at(at, "list elements must all be of one kind");
  }

  // ---- graph structure ----
  Value ref(Graph& g) {
    ws();
    size_t at = pos_;
    std::string name = node_name();
    Node* n = g.find(name);
    if (!n) error_at(at, "undefined node '", name, "'");
    int index = 0;
    if (peek() == ':' && pos_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_ + 1]))) {
      ++pos_;
      size_t iat = pos_;
      int64_t i = number<int64_t>(word(), iat);
      index = i < 0 || i > INT32_MAX ? -1 : static_cast<int>(i);
    }
    if (index < 0 || index >= n->num_outputs())
      error_at(at, n->label(), " has ", n->num_outputs(), " outputs; no output ", index);
    return {n, index};
  }

  struct PendingResult {
    size_t at;
    std::string label;
    bool control;
    size_t body_pos;  // where the reference text starts
  };

  void parse_graph_block(Graph& g) {
    std::vector<PendingResult> results;
    ws();
    if (accept('(')) {
      if (!accept(')')) {
        do {
          ws();
          size_t at = pos_;
          std::string name = node_name();
          expect(':', "after the argument name");
          ValueInfo t = type();
          if (g.find(name)) error_at(at, "argument '", name, "' declared twice");
          Node* a = g.add(name, "_Arg", {},
                          {{"T", t.dtype}, {"index", static_cast<int64_t>(g.args.size())}, {"_shape", t.shape}});
          with_line(at, [&] { infer_node(*a); });
          g.args.push_back(a);
        } while (accept(','));
        expect(')', "to end the arguments");
      }
      ws();
      if (s_.compare(pos_, 2, "->") != 0) error("expected '->' and the results");
      pos_ += 2;
      expect('(', "to start the results");
      if (!accept(')')) {
        do {
          ws();
          size_t at = pos_;
          if (accept('^')) {
            results.push_back({at, "", true, pos_});
            node_name();
            continue;
          }
          if (peek() == '"') {  // a quoted label
            std::string label = string_literal();
            expect(':', "after the result label");
            ws();
            results.push_back({at, label, false, pos_});
            node_name();
            if (peek() == ':') {
              ++pos_;
              word();
            }
            continue;
          }
          std::string first = node_name();
          std::string label;
          if (peek() == ':' && !(pos_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_ + 1])))) {
            ++pos_;
            label = first;
            ws();
            results.push_back({at, label, false, pos_});
            node_name();
          } else {
            results.push_back({at, "", false, at});
          }
          if (peek() == ':') {  // output index
            ++pos_;
            word();
          }
        } while (accept(','));
        expect(')', "to end the results");
      }
    }
    expect('{', "to start the graph body");
    while (!accept('}')) {
      if (pos_ >= s_.size()) error("expected '}' to end the graph body, got end of text");
      parse_node(g);
    }
    // Results may name any node of the body; resolve them now.
    size_t end = pos_;
    bool any_label = false;
    for (const PendingResult& r : results) {
      pos_ = r.body_pos;
      if (r.control) {
        std::string name = node_name();
        Node* n = g.find(name);
        if (!n) error_at(r.body_pos, "undefined node '", name, "'");
        g.control_results.push_back(n);
      } else {
        g.results.push_back(ref(g));
        g.result_names.push_back(r.label);
        any_label = any_label || !r.label.empty();
      }
    }
    if (!any_label) g.result_names.clear();
    pos_ = end;
  }

  void parse_node(Graph& g) {
    ws();
    size_t at = pos_;
    std::string name = node_name();
    if (g.find(name)) error_at(at, "node '", name, "' defined twice");
    expect('=', "after the node name");
    ws();
    size_t op_at = pos_;
    std::string op = word();
    if (op.empty()) error("expected an op name");
    if (!OpRegistry::global().find(op)) error_at(op_at, "unknown op '", op, "'");
    expect('(', "to start the inputs");
    std::vector<Value> inputs;
    std::vector<Node*> controls;
    if (!accept(')')) {
      do {
        ws();
        size_t in_at = pos_;
        if (accept('^')) {
          std::string c = node_name();
          Node* n = g.find(c);
          if (!n) error_at(in_at, "undefined node '", c, "'");
          controls.push_back(n);
        } else {
          if (!controls.empty()) error_at(in_at, "data inputs must come before control inputs");
          inputs.push_back(ref(g));
        }
      } while (accept(','));
      expect(')', "to end the inputs");
    }
    AttrMap attrs;
    if (accept('{')) {
      if (!accept('}')) {
        do {
          ws();
          size_t key_at = pos_;
          std::string key = word();
          if (key.empty()) error("expected an attribute name");
          if (attrs.count(key)) error_at(key_at, "attribute '", key, "' given twice");
          expect('=', "after the attribute name");
          attrs[key] = attr_value();
        } while (accept(','));
        expect('}', "to end the attributes");
      }
    }
    std::vector<ValueInfo> declared;
    bool has_types = false;
    if (accept(':')) {
      has_types = true;
      // A node without outputs prints " :" and nothing after it.
      while (true) {
        ws();
        size_t save = pos_;
        std::string w = word();
        bool is_type = dtype_named(w) && (peek() == '[' || peek() == '<');
        pos_ = save;
        if (!is_type) break;
        declared.push_back(type());
        if (!accept(',')) break;
      }
    }
    Node* n = g.add(name, op, inputs, attrs);
    n->control_inputs = controls;
    with_line(at, [&] { infer_node(*n); });
    if (has_types) {
      bool same = declared.size() == n->outputs.size();
      for (size_t i = 0; same && i < declared.size(); ++i)
        same = declared[i].dtype == n->outputs[i].dtype && declared[i].shape == n->outputs[i].shape;
      if (!same) {
        std::string inferred;
        for (size_t i = 0; i < n->outputs.size(); ++i)
          inferred += (i ? ", " : "") + std::string(dtype_name(n->outputs[i].dtype)) + n->outputs[i].shape.str();
        std::string written;
        for (size_t i = 0; i < declared.size(); ++i)
          written += (i ? ", " : "") + std::string(dtype_name(declared[i].dtype)) + declared[i].shape.str();
        error_at(at, n->label(), ": declared type '", written, "' but inference gives '", inferred, "'");
      }
    }
  }

  const std::string& s_;
  size_t pos_ = 0;
};

}  // namespace

std::shared_ptr<Graph> parse_graph(const std::string& text) { return Parser(text).parse(); }

}  // namespace tessera
