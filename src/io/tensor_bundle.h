// Reader for TensorFlow's TensorBundle checkpoints (<prefix>.index + <prefix>.data-*-of-*):
// a LevelDB-format sorted table mapping tensor names to BundleEntryProtos that locate the bytes
// in the data shards. Every byte read is bounds-checked and CRC32C-verified, because
// checkpoints are untrusted input.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/tensor.h"

namespace tessera {

class TensorBundleReader {
 public:
  // Opens `<prefix>.index` and validates its header; errors name the file.
  explicit TensorBundleReader(const std::string& prefix);
  ~TensorBundleReader();

  std::vector<std::string> keys() const;  // sorted, without the header key ""
  bool contains(const std::string& key) const;
  DType dtype(const std::string& key) const;
  Shape shape(const std::string& key) const;
  // Reads and verifies one tensor (numeric or string). Errors name the file and the key.
  Tensor read(const std::string& key) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera
