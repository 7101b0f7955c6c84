#include "runtime/graph_codec.h"

#include <cstring>
#include <unordered_map>

#include "ir/op_registry.h"
#include "ops/tensor_list.h"

namespace tessera::artifact_io {
namespace {

constexpr uint64_t kMaxRank = 64;
constexpr int kMaxAttrDepth = 8;
constexpr size_t kInlineLimit = 64;  // smaller POD tensors are stored inline

enum TensorStorage : uint8_t { kInline = 0, kBlob = 1, kStrings = 2, kVariants = 3 };
constexpr int kMaxVariantDepth = 4;  // TensorLists of TensorLists ...

void write_tensor_at(Writer& w, BlobWriter& blobs, const Tensor& t, int depth);
Tensor read_tensor_at(Reader& r, const BlobSection& blobs, int depth);

// Variant elements: null, or a TensorList (constant folding can fold an empty list or a
// list built from constants, e.g. Keras RNN accumulators).
void write_variant(Writer& w, BlobWriter& blobs, const VariantPtr& v, int depth) {
  if (!v) {
    w.u8(0);
    return;
  }
  const auto* list = dynamic_cast<const TensorList*>(v.get());
  if (!list) fail("cannot store a variant holding ", v->type_name(), " in an artifact");
  if (depth >= kMaxVariantDepth) fail("cannot store TensorLists nested more than ", kMaxVariantDepth, " deep");
  w.u8(1);
  write_dtype(w, list->element_dtype);
  write_shape(w, list->element_shape);
  w.i64(list->max_num_elements);
  w.u64(list->tensors.size());
  for (const Tensor& item : list->tensors) {
    w.u8(item.valid());
    if (item.valid()) write_tensor_at(w, blobs, item, depth + 1);
  }
}

VariantPtr read_variant(Reader& r, const BlobSection& blobs, int depth) {
  uint8_t kind = r.u8();
  if (kind == 0) return nullptr;
  if (kind != 1) r.bad("variant", str_cat("unknown variant kind ", int(kind)));
  if (depth >= kMaxVariantDepth) r.bad("variant", "TensorLists nested too deeply");
  auto list = std::make_shared<TensorList>();
  list->element_dtype = read_dtype(r);
  list->element_shape = read_shape(r);
  list->max_num_elements = r.i64();
  if (list->max_num_elements < -1) r.bad("variant", "bad max_num_elements");
  uint64_t n = r.count("list length", 1);
  for (uint64_t i = 0; i < n; ++i) {
    uint8_t valid = r.u8();
    if (valid > 1) r.bad("list item", "bad flag");
    list->tensors.push_back(valid ? read_tensor_at(r, blobs, depth + 1) : Tensor());
    const Tensor& item = list->tensors.back();
    if (item.valid() && (item.dtype() != list->element_dtype || !list->element_shape.matches(item.shape())))
      r.bad("list item", "does not match the list's element dtype/shape");
  }
  return list;
}

}  // namespace

uint64_t BlobWriter::add(const Tensor& t) {
  auto key = std::make_pair(t.raw(), t.nbytes());
  if (auto it = seen_.find(key); it != seen_.end()) return it->second;
  data_.align(64);
  uint64_t offset = data_.size();
  data_.put(t.raw(), t.nbytes());
  seen_[key] = offset;
  return offset;
}

void write_dtype(Writer& w, DType t) { w.u32(static_cast<uint32_t>(t)); }

DType read_dtype(Reader& r) {
  uint32_t v = r.u32();
  DType t = static_cast<DType>(v);
  if (t == DType::kInvalid || std::string(dtype_name(t)) == "invalid") r.bad("dtype", str_cat("unknown dtype ", v));
  return t;
}

void write_shape(Writer& w, const PartialShape& s) {
  w.u8(s.known_rank);
  if (!s.known_rank) return;
  w.u64(s.dims.size());
  for (int64_t d : s.dims) w.i64(d);
}

PartialShape read_shape(Reader& r) {
  uint8_t known = r.u8();
  if (known > 1) r.bad("shape", "bad known-rank flag");
  if (!known) return PartialShape::unknown();
  uint64_t rank = r.count("shape rank", 8, kMaxRank);
  std::vector<int64_t> dims(rank);
  for (auto& d : dims) {
    d = r.i64();
    if (d < -1) r.bad("shape", str_cat("dimension ", d));
  }
  return PartialShape(std::move(dims));
}

void write_tensor(Writer& w, BlobWriter& blobs, const Tensor& t) { write_tensor_at(w, blobs, t, 0); }
Tensor read_tensor(Reader& r, const BlobSection& blobs) { return read_tensor_at(r, blobs, 0); }

namespace {

void write_tensor_at(Writer& w, BlobWriter& blobs, const Tensor& t, int depth) {
  TS_CHECK(t.valid(), "cannot store an invalid tensor");
  write_dtype(w, t.dtype());
  w.u64(t.shape().size());
  for (int64_t d : t.shape()) w.i64(d);
  if (t.dtype() == DType::kString) {
    w.u8(kStrings);
    for (const std::string& s : t.strings()) w.str(s);
  } else if (is_pod(t.dtype())) {
    if (t.nbytes() < kInlineLimit) {
      w.u8(kInline);
      w.put(t.raw(), t.nbytes());
    } else {
      w.u8(kBlob);
      w.u64(blobs.add(t));
    }
  } else if (t.dtype() == DType::kVariant) {
    w.u8(kVariants);
    for (const VariantPtr& v : t.variants()) write_variant(w, blobs, v, depth);
  } else {
    fail("cannot store a ", dtype_name(t.dtype()), " tensor in an artifact");
  }
}

Tensor read_tensor_at(Reader& r, const BlobSection& blobs, int depth) {
  DType dtype = read_dtype(r);
  uint64_t rank = r.count("tensor rank", 8, kMaxRank);
  Shape shape(rank);
  for (auto& d : shape) {
    d = r.i64();
    if (d < 0) r.bad("tensor shape", str_cat("dimension ", d));
  }
  int64_t n = with_context(r.what() + ": tensor shape", [&] { return num_elements(shape); });
  uint8_t storage = r.u8();
  if (dtype == DType::kString) {
    if (storage != kStrings) r.bad("tensor storage", "a string tensor must be stored as strings");
    if (static_cast<uint64_t>(n) > r.remaining() / 8) r.bad("tensor", str_cat(n, " strings cannot fit"));
    Tensor t(dtype, shape);
    for (auto& s : t.strings()) s = r.str("string element");
    return t;
  }
  if (dtype == DType::kVariant) {
    if (storage != kVariants) r.bad("tensor storage", "a variant tensor must be stored as variants");
    if (static_cast<uint64_t>(n) > r.remaining()) r.bad("tensor", str_cat(n, " variants cannot fit"));
    Tensor t(dtype, shape);
    for (auto& v : t.variants()) v = read_variant(r, blobs, depth);
    return t;
  }
  if (!is_pod(dtype)) r.bad("tensor dtype", str_cat(dtype_name(dtype), " tensors cannot be stored"));
  // Overflow-safe byte size: n * size <= max_tensor_bytes.
  size_t elem = dtype_size(dtype);
  if (static_cast<uint64_t>(n) > max_tensor_bytes() / elem) r.bad("tensor", str_cat(n, " elements is too large"));
  uint64_t nbytes = static_cast<uint64_t>(n) * elem;
  if (storage == kInline) {
    if (nbytes > r.remaining()) r.bad("tensor data", str_cat("needs ", nbytes, " bytes, ", r.remaining(), " left"));
    Tensor t(dtype, shape);
    std::memcpy(t.mutable_raw(), r.take(nbytes, "tensor data"), nbytes);
    return t;
  }
  if (storage != kBlob) r.bad("tensor storage", str_cat("unknown storage kind ", int(storage)));
  uint64_t offset = r.u64();
  if (offset % 64 != 0) r.bad("blob offset", str_cat(offset, " is not 64-byte aligned"));
  if (offset > blobs.size || nbytes > blobs.size - offset)
    r.bad("blob offset", str_cat("[", offset, ", +", nbytes, ") is outside the blob section (", blobs.size, " bytes)"));
  return Tensor::borrow(dtype, shape, blobs.data + offset, blobs.owner);
}

void write_attrs(Writer& w, BlobWriter& blobs, const AttrMap& attrs);
AttrMap read_attrs(Reader& r, const BlobSection& blobs, int depth);

void write_funcref(Writer& w, BlobWriter& blobs, const FuncRef& f) {
  w.str(f.name);
  w.u8(f.attrs != nullptr);
  if (f.attrs) write_attrs(w, blobs, *f.attrs);
}

FuncRef read_funcref(Reader& r, const BlobSection& blobs, int depth) {
  FuncRef f;
  f.name = r.str("function name");
  uint8_t has = r.u8();
  if (has > 1) r.bad("function attrs", "bad flag");
  if (has) f.attrs = std::make_shared<AttrMap>(read_attrs(r, blobs, depth + 1));
  return f;
}

template <typename T, typename F>
void write_list(Writer& w, const std::vector<T>& v, F each) {
  w.u64(v.size());
  for (const auto& x : v) each(x);
}

template <typename T, typename F>
std::vector<T> read_list(Reader& r, const char* field, size_t min_bytes, F each) {
  uint64_t n = r.count(field, min_bytes);
  std::vector<T> v;
  v.reserve(n);
  for (uint64_t i = 0; i < n; ++i) v.push_back(each());
  return v;
}

void write_attr(Writer& w, BlobWriter& blobs, const AttrValue& a) {
  w.u8(static_cast<uint8_t>(a.index()));
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
        } else if constexpr (std::is_same_v<T, int64_t>) w.i64(x);
        else if constexpr (std::is_same_v<T, float>) w.f32(x);
        else if constexpr (std::is_same_v<T, bool>) w.u8(x);
        else if constexpr (std::is_same_v<T, std::string>) w.str(x);
        else if constexpr (std::is_same_v<T, DType>) write_dtype(w, x);
        else if constexpr (std::is_same_v<T, PartialShape>) write_shape(w, x);
        else if constexpr (std::is_same_v<T, Tensor>) write_tensor(w, blobs, x);
        else if constexpr (std::is_same_v<T, FuncRef>) write_funcref(w, blobs, x);
        else if constexpr (std::is_same_v<T, std::vector<int64_t>>) write_list(w, x, [&](int64_t v) { w.i64(v); });
        else if constexpr (std::is_same_v<T, std::vector<float>>) write_list(w, x, [&](float v) { w.f32(v); });
        else if constexpr (std::is_same_v<T, std::vector<bool>>) write_list(w, x, [&](bool v) { w.u8(v); });
        else if constexpr (std::is_same_v<T, std::vector<std::string>>) write_list(w, x, [&](const std::string& v) { w.str(v); });
        else if constexpr (std::is_same_v<T, std::vector<DType>>) write_list(w, x, [&](DType v) { write_dtype(w, v); });
        else if constexpr (std::is_same_v<T, std::vector<PartialShape>>) write_list(w, x, [&](const PartialShape& v) { write_shape(w, v); });
        else if constexpr (std::is_same_v<T, std::vector<Tensor>>) write_list(w, x, [&](const Tensor& v) { write_tensor(w, blobs, v); });
        else if constexpr (std::is_same_v<T, std::vector<FuncRef>>) write_list(w, x, [&](const FuncRef& v) { write_funcref(w, blobs, v); });
        else static_assert(sizeof(T) == 0, "attribute kind without an encoding");
      },
      static_cast<const AttrVariant&>(a));
}

AttrValue read_attr(Reader& r, const BlobSection& blobs, int depth) {
  if (depth > kMaxAttrDepth) r.bad("attribute", "nested too deeply");
  uint8_t kind = r.u8();
  switch (kind) {
    case 0: return AttrValue();
    case 1: return AttrValue(r.i64());
    case 2: return AttrValue(r.f32());
    case 3: {
      uint8_t b = r.u8();
      if (b > 1) r.bad("bool attribute", "not 0 or 1");
      return AttrValue(b == 1);
    }
    case 4: return AttrValue(r.str("string attribute"));
    case 5: return AttrValue(read_dtype(r));
    case 6: return AttrValue(read_shape(r));
    case 7: return AttrValue(read_tensor(r, blobs));
    case 8: return AttrValue(read_funcref(r, blobs, depth));
    case 9: return AttrValue(read_list<int64_t>(r, "int list", 8, [&] { return r.i64(); }));
    case 10: return AttrValue(read_list<float>(r, "float list", 4, [&] { return r.f32(); }));
    case 11: return AttrValue(read_list<bool>(r, "bool list", 1, [&] { return r.u8() != 0; }));
    case 12: return AttrValue(read_list<std::string>(r, "string list", 8, [&] { return r.str("string"); }));
    case 13: return AttrValue(read_list<DType>(r, "dtype list", 4, [&] { return read_dtype(r); }));
    case 14: return AttrValue(read_list<PartialShape>(r, "shape list", 1, [&] { return read_shape(r); }));
    case 15: return AttrValue(read_list<Tensor>(r, "tensor list", 14, [&] { return read_tensor(r, blobs); }));
    case 16: return AttrValue(read_list<FuncRef>(r, "function list", 9, [&] { return read_funcref(r, blobs, depth); }));
    default: r.bad("attribute", str_cat("unknown kind ", int(kind)));
  }
}

void write_attrs(Writer& w, BlobWriter& blobs, const AttrMap& attrs) {
  w.u64(attrs.size());
  for (const auto& [k, v] : attrs) {
    w.str(k);
    write_attr(w, blobs, v);
  }
}

AttrMap read_attrs(Reader& r, const BlobSection& blobs, int depth) {
  uint64_t n = r.count("attribute count", 9);
  AttrMap attrs;
  for (uint64_t i = 0; i < n; ++i) {
    std::string key = r.str("attribute name");
    attrs[key] = read_attr(r, blobs, depth);
  }
  return attrs;
}

void write_body(Writer& w, BlobWriter& blobs, const Graph& g) {
  w.str(g.name);
  std::vector<Node*> order = g.topo_order();
  std::unordered_map<const Node*, uint32_t> index;
  for (Node* n : order) index[n] = static_cast<uint32_t>(index.size());
  w.u64(order.size());
  for (Node* n : order) {
    w.str(n->name);
    w.str(n->op);
    w.str(n->device);
    w.u64(n->inputs.size());
    for (const Value& v : n->inputs) {
      w.u32(index.at(v.node));
      w.u32(static_cast<uint32_t>(v.index));
    }
    w.u64(n->control_inputs.size());
    for (Node* c : n->control_inputs) w.u32(index.at(c));
    write_attrs(w, blobs, n->attrs);
  }
  write_list(w, g.args, [&](Node* a) { w.u32(index.at(a)); });
  write_list(w, g.results, [&](const Value& v) {
    w.u32(index.at(v.node));
    w.u32(static_cast<uint32_t>(v.index));
  });
  write_list(w, g.result_names, [&](const std::string& s) { w.str(s); });
  write_list(w, g.control_results, [&](Node* c) { w.u32(index.at(c)); });
}

void read_body(Reader& r, const BlobSection& blobs, Graph& g) {
  g.name = r.str("graph name");
  const std::string where = "graph '" + g.name + "'";
  uint64_t n = r.count("node count", 40);
  std::vector<Node*> nodes;
  nodes.reserve(n);
  auto node_at = [&](const char* field) -> Node* {
    uint32_t i = r.u32();
    if (i >= nodes.size()) r.bad(field, str_cat(where, ": node index ", i, " is not an earlier node"));
    return nodes[i];
  };
  auto value_at = [&](const char* field) -> Value {
    Node* node = node_at(field);
    uint32_t k = r.u32();
    if (k >= static_cast<uint32_t>(node->num_outputs()))
      r.bad(field, str_cat(where, ": ", node->label(), " has no output ", k));
    return node->out(static_cast<int>(k));
  };
  for (uint64_t i = 0; i < n; ++i) {
    std::string name = r.str("node name");
    std::string op = r.str("node op");
    std::string device = r.str("node device");
    uint64_t ni = r.count("input count", 8);
    std::vector<Value> inputs;
    for (uint64_t k = 0; k < ni; ++k) inputs.push_back(value_at("node input"));
    uint64_t nc = r.count("control input count", 4);
    std::vector<Node*> controls;
    for (uint64_t k = 0; k < nc; ++k) controls.push_back(node_at("control input"));
    AttrMap attrs = read_attrs(r, blobs, 0);
    if (!OpRegistry::global().find(op))
      r.bad("node op", str_cat(where, ": node '", name, "' uses op '", op, "', which this Tessera does not know"));
    if (g.find(name)) r.bad("node name", str_cat(where, ": duplicate node name '", name, "'"));
    Node* node = g.add(name, op, std::move(inputs), std::move(attrs));
    node->control_inputs = std::move(controls);
    node->device = std::move(device);
    with_context(r.what() + ": " + where, [&] { infer_node(*node); });
    nodes.push_back(node);
  }
  g.args = read_list<Node*>(r, "arg count", 4, [&] { return node_at("arg"); });
  g.results = read_list<Value>(r, "result count", 8, [&] { return value_at("result"); });
  g.result_names = read_list<std::string>(r, "result name count", 8, [&] { return r.str("result name"); });
  g.control_results = read_list<Node*>(r, "control result count", 4, [&] { return node_at("control result"); });
}

}  // namespace

void write_graph_with_library(Writer& w, BlobWriter& blobs, const Graph& g) {
  const auto& fns = g.library ? g.library->functions : std::map<std::string, std::shared_ptr<Graph>>{};
  w.u64(fns.size());
  for (const auto& [name, fn] : fns) {
    w.str(name);
    write_body(w, blobs, *fn);
  }
  write_body(w, blobs, g);
}

std::shared_ptr<Graph> read_graph_with_library(Reader& r, const BlobSection& blobs) {
  auto lib = std::make_shared<FunctionLibrary>();
  uint64_t n = r.count("function count", 16, 100000);
  for (uint64_t i = 0; i < n; ++i) {
    std::string name = r.str("function name");
    if (lib->functions.count(name)) r.bad("function name", "duplicate function '" + name + "'");
    auto fn = std::make_shared<Graph>(FunctionLibrary::borrow(lib));
    read_body(r, blobs, *fn);
    lib->functions[name] = fn;
  }
  auto g = std::make_shared<Graph>(lib);
  read_body(r, blobs, *g);
  return g;
}

}  // namespace tessera::artifact_io
