// The .tsr executable artifact: one file holding what a target needs to run a model's
// signatures without importing or recompiling it.
//
//   [header 64 B: magic, format version, section count, file size, table offset, CRCs]
//   [section table: kind, offset, size, CRC32C per section]
//   [meta]      what it was built for: target, ISA, oneDNN and Tessera versions, source
//   [graphs]    per signature: names/dtypes/shapes + the optimised function-form graph
//   [variables] values of variables the graphs still read (not frozen by the passes)
//   [packed]    packed weights: Const node, layout (names the ISA), tensor
//   [blobs]     raw tensor data, each 64-byte aligned; mmapped on load, tensors borrow it
//   [rdu_mapping] optional (`compile --target rdu --chip C --batch N`): per signature, the
//               encoded rdu mapping (backend/rdu/mapping_codec.h), opaque here
//
// Every section starts 64-byte aligned. Loading treats the file as untrusted: offsets and
// lengths are bounds-checked, counts are capped by the bytes left, checksums are verified
// before a section is parsed, and every error names the file, section and field.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/executable.h"

namespace tessera {

inline constexpr uint32_t kArtifactFormatVersion = 1;

struct ArtifactInfo {
  uint32_t format_version = kArtifactFormatVersion;
  std::string target;           // "cpu" | "reference"
  std::string isa;              // the ISA the packed weights were made for ("" for reference)
  std::string onednn_version;   // "2.6.3"
  std::string tessera_version;
  std::string source;           // the model it was compiled from
  std::vector<std::string> passes;
  std::vector<std::string> packed_layouts;  // distinct layouts of the packed weights
};

struct Artifact {
  ArtifactInfo info;
  std::map<std::string, CompiledSignature> signatures;  // executables not made yet
  std::map<std::string, std::vector<cpu::PackedWeight>> packed;  // by signature
  std::map<std::string, Tensor> variables;
  std::map<std::string, std::string> rdu_mappings;  // by signature; decoded by the rdu target
};

std::string onednn_version_string();

// True if the file starts with the .tsr magic (false for directories and short files).
bool is_artifact_file(const std::string& path);

// Serialises compiled signatures (with their executables' packed weights) and the values of
// the variables their graphs read. Written to a temporary file and renamed into place.
std::string encode_artifact(const ArtifactInfo& info, const std::map<std::string, CompiledSignature>& signatures,
                            const std::map<std::string, Tensor>& variables,
                            const std::map<std::string, std::string>& rdu_mappings = {});
void write_artifact(const std::string& path, const ArtifactInfo& info,
                    const std::map<std::string, CompiledSignature>& signatures,
                    const std::map<std::string, Tensor>& variables,
                    const std::map<std::string, std::string>& rdu_mappings = {});

// Parses bytes that `owner` keeps alive (tensors borrow them). `name` is used in messages.
// `verify_checksums` = false only for the fuzzer, so mutated bytes reach the section parsers.
Artifact parse_artifact(const char* data, size_t size, const std::string& name, std::shared_ptr<const void> owner,
                        bool verify_checksums = true);
// mmaps the file and parses it.
Artifact read_artifact(const std::string& path);

}  // namespace tessera
