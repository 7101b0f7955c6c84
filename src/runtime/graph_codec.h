// Encoding of IR values for the .tsr artifact: tensors (large ones as 64-byte-aligned raw
// blobs, later mmapped), attributes, and function-form graphs with their function library.
// Decoding treats the bytes as untrusted; graphs are rebuilt through Graph::add and shape
// inference, so a decoded graph satisfies the same contracts as an imported one.
#pragma once
#include <functional>
#include <map>
#include <memory>

#include "ir/graph.h"
#include "runtime/byte_io.h"

namespace tessera::artifact_io {

// Collects blob payloads while encoding; offsets are relative to the blob section.
class BlobWriter {
 public:
  uint64_t add(const Tensor& t);  // deduplicates by storage
  const std::string& bytes() const { return data_.bytes(); }
  std::string& mutable_bytes() { return data_.bytes(); }

 private:
  Writer data_;
  std::map<std::pair<const void*, size_t>, uint64_t> seen_;
};

// The mapped blob section tensors borrow from.
struct BlobSection {
  const char* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> owner;  // keeps the mapping alive
};

void write_tensor(Writer& w, BlobWriter& blobs, const Tensor& t);
Tensor read_tensor(Reader& r, const BlobSection& blobs);
void write_shape(Writer& w, const PartialShape& s);
PartialShape read_shape(Reader& r);
void write_dtype(Writer& w, DType t);
DType read_dtype(Reader& r);

// A graph with its library (functions written callee-agnostic, by name).
void write_graph_with_library(Writer& w, BlobWriter& blobs, const Graph& g);
std::shared_ptr<Graph> read_graph_with_library(Reader& r, const BlobSection& blobs);

}  // namespace tessera::artifact_io
