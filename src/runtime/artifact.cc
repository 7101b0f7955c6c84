#include "runtime/artifact.h"

#include <dnnl.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <set>

#include "io/crc32c.h"
#include "ir/verifier.h"
#include "runtime/byte_io.h"
#include "runtime/compiler.h"
#include "runtime/graph_codec.h"
#include "runtime/version.h"
#include "support/file.h"

namespace tessera {
namespace {

using artifact_io::BlobSection;
using artifact_io::BlobWriter;
using artifact_io::Reader;
using artifact_io::Writer;

// PNG-style magic: a non-ASCII first byte and CR-LF / EOF bytes expose text-mode mangling.
constexpr char kMagic[8] = {'\x89', 'T', 'S', 'R', '\r', '\n', '\x1a', '\n'};
constexpr size_t kHeaderSize = 64;
constexpr size_t kTableEntrySize = 32;
constexpr uint32_t kMaxSections = 64;

enum SectionKind : uint32_t { kMeta = 1, kGraphs = 2, kVariables = 3, kPacked = 4, kBlobs = 5, kRduMapping = 6 };
const char* section_name(uint32_t kind) {
  switch (kind) {
    case kMeta: return "meta";
    case kGraphs: return "graphs";
    case kVariables: return "variables";
    case kPacked: return "packed";
    case kBlobs: return "blobs";
    case kRduMapping: return "rdu_mapping";
  }
  return "unknown";
}

std::string var_handle_key(const Node& n) {
  std::string shared = n.attr_or<std::string>("shared_name", "");
  return n.attr_or<std::string>("container", "") + "/" + (shared.empty() ? n.name : shared);
}

void collect_variable_keys(const Graph& g, std::set<std::string>& keys) {
  for (const auto& n : g.nodes())
    if (n->op == "VarHandleOp") keys.insert(var_handle_key(*n));
  if (g.library)
    for (const auto& [name, fn] : g.library->functions)
      for (const auto& n : fn->nodes())
        if (n->op == "VarHandleOp") keys.insert(var_handle_key(*n));
}

void write_spec(Writer& w, const TensorSpec& s) {
  w.str(s.key);
  w.str(s.tensor);
  artifact_io::write_dtype(w, s.dtype);
  artifact_io::write_shape(w, s.shape);
}

TensorSpec read_spec(Reader& r) {
  TensorSpec s;
  s.key = r.str("spec key");
  s.tensor = r.str("spec tensor");
  s.dtype = artifact_io::read_dtype(r);
  s.shape = artifact_io::read_shape(r);
  return s;
}

void put_u32(std::string& s, size_t at, uint32_t v) { std::memcpy(&s[at], &v, 4); }
void put_u64(std::string& s, size_t at, uint64_t v) { std::memcpy(&s[at], &v, 8); }
uint32_t get_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t get_u64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace

std::string onednn_version_string() {
  const dnnl_version_t* v = dnnl_version();
  return str_cat(v->major, ".", v->minor, ".", v->patch);
}

bool is_artifact_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  char buf[8];
  ssize_t n = ::read(fd, buf, 8);
  ::close(fd);
  return n == 8 && std::memcmp(buf, kMagic, 8) == 0;
}

std::string encode_artifact(const ArtifactInfo& info, const std::map<std::string, CompiledSignature>& signatures,
                            const std::map<std::string, Tensor>& variables,
                            const std::map<std::string, std::string>& rdu_mappings) {
  BlobWriter blobs;
  Writer graphs, vars, packed, meta;
  std::set<std::string> var_keys, layouts;

  graphs.u64(signatures.size());
  for (const auto& [key, cs] : signatures) {
    const Signature& s = cs.signature;
    graphs.str(key);
    graphs.str(s.method_name);
    graphs.u64(s.inputs.size());
    for (const auto& spec : s.inputs) write_spec(graphs, spec);
    graphs.u64(s.outputs.size());
    for (const auto& spec : s.outputs) write_spec(graphs, spec);
    const Graph& graph = *cs.graph;  // a named reference: clang lambdas cannot capture bindings
    with_context("writing signature '" + key + "'", [&] { artifact_io::write_graph_with_library(graphs, blobs, graph); });
    collect_variable_keys(*cs.graph, var_keys);
  }

  std::vector<std::pair<std::string, Tensor>> stored;
  for (const auto& key : var_keys)
    if (auto it = variables.find(key); it != variables.end()) stored.push_back(*it);
  vars.u64(stored.size());
  for (const auto& [key, t] : stored) {
    vars.str(key);
    artifact_io::write_tensor(vars, blobs, t);
  }

  packed.u64(signatures.size());
  for (const auto& [key, cs] : signatures) {
    std::vector<cpu::PackedWeight> weights;
    if (cs.executable) weights = cs.executable->packed_weights();
    packed.str(key);
    packed.u64(weights.size());
    for (const auto& pw : weights) {
      packed.str(pw.key);
      packed.str(pw.layout);
      artifact_io::write_tensor(packed, blobs, pw.data);
      layouts.insert(pw.layout);
    }
  }

  std::vector<std::pair<std::string, std::string>> kv = {
      {"target", info.target}, {"isa", info.isa}, {"precision", info.precision},
      {"onednn_version", info.onednn_version},
      {"tessera_version", info.tessera_version}, {"source", info.source}};
  std::string pass_text, layout_text;
  for (const auto& p : info.passes) pass_text += (pass_text.empty() ? "" : ",") + p;
  for (const auto& l : layouts) layout_text += (layout_text.empty() ? "" : ",") + l;
  kv.push_back({"passes", pass_text});
  kv.push_back({"packed_layouts", layout_text});
  meta.u64(kv.size());
  for (const auto& [k, v] : kv) {
    meta.str(k);
    meta.str(v);
  }

  std::vector<std::pair<uint32_t, const std::string*>> sections = {
      {kMeta, &meta.bytes()}, {kGraphs, &graphs.bytes()}, {kVariables, &vars.bytes()},
      {kPacked, &packed.bytes()}, {kBlobs, &blobs.bytes()}};
  // Only rdu artifacts with a stored mapping get the section (others stay byte-identical).
  Writer rdu;
  if (!rdu_mappings.empty()) {
    rdu.u64(rdu_mappings.size());
    for (const auto& [key, bytes] : rdu_mappings) {
      if (!signatures.count(key)) fail("rdu mapping for unknown signature '", key, "'");
      rdu.str(key);
      rdu.str(bytes);
    }
    sections.push_back({kRduMapping, &rdu.bytes()});
  }
  std::string out(kHeaderSize + sections.size() * kTableEntrySize, '\0');
  std::memcpy(&out[0], kMagic, 8);
  put_u32(out, 8, info.format_version);
  put_u32(out, 12, static_cast<uint32_t>(sections.size()));
  put_u64(out, 24, kHeaderSize);
  size_t total = out.size();
  for (size_t i = 0; i < sections.size(); ++i) {
    total = (total + 63) / 64 * 64;
    size_t at = kHeaderSize + i * kTableEntrySize;
    put_u32(out, at, sections[i].first);
    put_u64(out, at + 8, total);
    put_u64(out, at + 16, sections[i].second->size());
    put_u32(out, at + 24, crc32c::value(sections[i].second->data(), sections[i].second->size()));
    total += sections[i].second->size();
  }
  put_u64(out, 16, total);
  put_u32(out, 32, crc32c::value(out.data() + kHeaderSize, sections.size() * kTableEntrySize));
  put_u32(out, 36, crc32c::value(out.data(), 36));
  out.reserve(total);
  for (const auto& [kind, bytes] : sections) {
    out.append((64 - out.size() % 64) % 64, '\0');
    out += *bytes;
  }
  return out;
}

void write_artifact(const std::string& path, const ArtifactInfo& info,
                    const std::map<std::string, CompiledSignature>& signatures,
                    const std::map<std::string, Tensor>& variables,
                    const std::map<std::string, std::string>& rdu_mappings) {
  std::string bytes =
      with_context("writing '" + path + "'", [&] { return encode_artifact(info, signatures, variables, rdu_mappings); });
  // Write beside the target and rename, so readers (and a concurrent cache fill) never see a partial file.
  std::string tmp = str_cat(path, ".tmp.", ::getpid());
  write_file(tmp, bytes);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    fail("cannot rename '", tmp, "' to '", path, "'");
  }
}

Artifact parse_artifact(const char* data, size_t size, const std::string& name, std::shared_ptr<const void> owner,
                        bool verify_checksums) {
  const std::string file = "'" + name + "'";
  if (size < 8 || std::memcmp(data, kMagic, 8) != 0)
    fail_code(ErrorCode::kInvalidArgument, file, " is not a Tessera artifact (.tsr): bad magic number");
  if (size < kHeaderSize)
    fail_code(ErrorCode::kDataLoss, file, ": truncated .tsr: ", size, " bytes, the header alone is ", kHeaderSize);
  Artifact a;
  a.info.format_version = get_u32(data + 8);
  if (a.info.format_version != kArtifactFormatVersion)
    fail_code(ErrorCode::kFailedPrecondition, file, ": .tsr format version ", a.info.format_version,
              ", this Tessera (", kTesseraVersion, ") reads version ", kArtifactFormatVersion,
              "; recompile the model with 'tessera compile'");
  if (verify_checksums && crc32c::value(data, 36) != get_u32(data + 36))
    fail_code(ErrorCode::kDataLoss, file, ": header checksum mismatch (corrupt file)");
  uint64_t file_size = get_u64(data + 16);
  if (file_size != size)
    fail_code(ErrorCode::kDataLoss, file, ": header field 'file_size' says ", file_size, " bytes, the file has ", size,
              file_size > size ? " (truncated)" : " (trailing data)");
  uint32_t num_sections = get_u32(data + 12);
  uint64_t table = get_u64(data + 24);
  if (num_sections == 0 || num_sections > kMaxSections)
    fail_code(ErrorCode::kDataLoss, file, ": header field 'section_count' is ", num_sections);
  uint64_t table_end = table + static_cast<uint64_t>(num_sections) * kTableEntrySize;
  if (table < kHeaderSize || table > size || table_end > size)
    fail_code(ErrorCode::kDataLoss, file, ": header field 'table_offset' ", table, " is outside the file");
  if (verify_checksums && crc32c::value(data + table, table_end - table) != get_u32(data + 32))
    fail_code(ErrorCode::kDataLoss, file, ": section table checksum mismatch (corrupt file)");

  std::map<uint32_t, std::pair<const char*, size_t>> sections;
  for (uint32_t i = 0; i < num_sections; ++i) {
    const char* e = data + table + i * kTableEntrySize;
    uint32_t kind = get_u32(e);
    uint64_t off = get_u64(e + 8), len = get_u64(e + 16);
    std::string what = str_cat(file, ": section ", i, " (", section_name(kind), ")");
    if (off % 64 != 0 || off < table_end || off > size || len > size - off)
      fail_code(ErrorCode::kDataLoss, what, ": offset ", off, " / size ", len, " is outside the file or misaligned");
    if (sections.count(kind)) fail_code(ErrorCode::kDataLoss, what, ": appears twice");
    if (verify_checksums && crc32c::value(data + off, len) != get_u32(e + 24))
      fail_code(ErrorCode::kDataLoss, what, ": checksum mismatch (corrupt file)");
    sections[kind] = {data + off, len};
  }
  for (uint32_t kind : {kMeta, kGraphs, kVariables, kPacked, kBlobs})
    if (!sections.count(kind)) fail_code(ErrorCode::kDataLoss, file, ": section '", section_name(kind), "' is missing");
  auto reader = [&](uint32_t kind) {
    return Reader(sections[kind].first, sections[kind].second, file + " section " + section_name(kind));
  };
  BlobSection blobs{sections[kBlobs].first, sections[kBlobs].second, owner};

  {
    Reader r = reader(kMeta);
    uint64_t n = r.count("meta entries", 16, 1024);
    std::map<std::string, std::string> kv;
    for (uint64_t i = 0; i < n; ++i) {
      std::string k = r.str("meta key");
      kv[k] = r.str("meta value");
    }
    a.info.target = kv["target"];
    a.info.isa = kv["isa"];
    a.info.precision = kv.count("precision") ? kv["precision"] : "fp32";  // files from before bf16
    if (a.info.precision != "fp32" && a.info.precision != "bf16")
      r.bad("precision", "unknown precision '" + a.info.precision + "'");
    a.info.onednn_version = kv["onednn_version"];
    a.info.tessera_version = kv["tessera_version"];
    a.info.source = kv["source"];
    if (a.info.target != "cpu" && a.info.target != "reference" && a.info.target != "rdu")
      r.bad("target", "unknown target '" + a.info.target + "'");
    auto split = [](const std::string& s) {
      std::vector<std::string> out;
      for (size_t pos = 0; pos < s.size();) {
        size_t c = s.find(',', pos);
        if (c == std::string::npos) c = s.size();
        if (c > pos) out.push_back(s.substr(pos, c - pos));
        pos = c + 1;
      }
      return out;
    };
    a.info.passes = split(kv["passes"]);
    a.info.packed_layouts = split(kv["packed_layouts"]);
  }
  {
    Reader r = reader(kGraphs);
    uint64_t n = r.count("signature count", 32, 10000);
    for (uint64_t i = 0; i < n; ++i) {
      Signature s;
      s.key = r.str("signature key");
      if (a.signatures.count(s.key)) r.bad("signature key", "duplicate signature '" + s.key + "'");
      s.method_name = r.str("method name");
      uint64_t ni = r.count("input count", 22);
      for (uint64_t k = 0; k < ni; ++k) s.inputs.push_back(read_spec(r));
      uint64_t no = r.count("output count", 22);
      for (uint64_t k = 0; k < no; ++k) s.outputs.push_back(read_spec(r));
      CompiledSignature cs;
      std::shared_ptr<Graph> g = with_context("signature '" + s.key + "'", [&] {
        auto graph = artifact_io::read_graph_with_library(r, blobs);
        verify_graph(*graph);
        return graph;
      });
      // An input's stored dtype is its SignatureDef's (metadata: GetModelMetadata reports it); it
      // may differ from its arg's, as in TF1 exports, and feeds are checked against the arg's
      // own dtype (input_dtype in model.h), as TF checks the fed tensor's.
      cs.signature = with_context(file + ": signature '" + s.key + "'", [&] { return bind_signature(s, *g); });
      cs.graph = g;
      a.signatures[s.key] = std::move(cs);
    }
    if (r.remaining()) r.bad("end", str_cat(r.remaining(), " unexpected trailing bytes"));
  }
  {
    Reader r = reader(kVariables);
    uint64_t n = r.count("variable count", 22);
    for (uint64_t i = 0; i < n; ++i) {
      std::string key = r.str("variable key");
      a.variables[key] = artifact_io::read_tensor(r, blobs);
    }
  }
  {
    Reader r = reader(kPacked);
    uint64_t n = r.count("packed signature count", 16);
    for (uint64_t i = 0; i < n; ++i) {
      std::string key = r.str("packed signature");
      if (!a.signatures.count(key)) r.bad("packed signature", "names no signature: '" + key + "'");
      uint64_t nw = r.count("packed weight count", 30);
      auto& list = a.packed[key];
      for (uint64_t k = 0; k < nw; ++k) {
        cpu::PackedWeight pw;
        pw.key = r.str("packed weight key");
        pw.layout = r.str("packed weight layout");
        pw.data = artifact_io::read_tensor(r, blobs);
        list.push_back(std::move(pw));
      }
    }
  }
  if (sections.count(kRduMapping)) {
    Reader r = reader(kRduMapping);
    uint64_t n = r.count("rdu mapping count", 16, 10000);
    for (uint64_t i = 0; i < n; ++i) {
      std::string key = r.str("rdu mapping signature");
      if (!a.signatures.count(key)) r.bad("rdu mapping signature", "names no signature: '" + key + "'");
      if (a.rdu_mappings.count(key)) r.bad("rdu mapping signature", "duplicate signature '" + key + "'");
      a.rdu_mappings[key] = r.str("rdu mapping");
    }
    if (r.remaining()) r.bad("end", str_cat(r.remaining(), " unexpected trailing bytes"));
  }
  return a;
}

Artifact read_artifact(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail_code(ErrorCode::kNotFound, "cannot open '", path, "': ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("'", path, "' is not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size < kHeaderSize) {
    std::string head(size, '\0');
    ssize_t got = size ? ::read(fd, head.data(), size) : 0;
    ::close(fd);
    return parse_artifact(head.data(), got > 0 ? static_cast<size_t>(got) : 0, path, nullptr);
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) fail("cannot map '", path, "': ", std::strerror(errno));
  std::shared_ptr<const void> owner(map, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  return parse_artifact(static_cast<const char*>(map), size, path, owner);
}

}  // namespace tessera
