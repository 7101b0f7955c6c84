// Reader for immutable sorted string tables in LevelDB's on-disk format, as TensorFlow writes
// them for checkpoint `.index` files (TF's fork of LevelDB's table format):
//
//   [data block 0][trailer] ... [data block n-1][trailer] [metaindex block][trailer]
//   [index block][trailer] [footer: 48 bytes]
//
// A block is a run of prefix-compressed entries (varint32 shared, varint32 non_shared,
// varint32 value_len, key delta, value) followed by a restart array (fixed32 offsets) and a
// fixed32 restart count. Each block's 5-byte trailer is a compression type byte plus the
// masked CRC32C of block contents + type byte. The index block maps a separator key (>= every
// key of a data block, < every key of the next) to that block's BlockHandle (varint64 offset,
// varint64 size). The footer holds the metaindex and index handles, zero-padded to 40 bytes,
// then the 8-byte magic 0xdb4775248b80fb57 (little-endian).
//
// The whole file is untrusted: every handle, length and varint is bounds-checked, every
// block's checksum is verified, and keys must be strictly increasing. Corruption raises
// ErrorCode::kDataLoss naming the file.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::io {

constexpr uint64_t kTableMagic = 0xdb4775248b80fb57ull;
constexpr size_t kTableFooterSize = 48;
constexpr size_t kBlockTrailerSize = 5;

struct BlockHandle {
  uint64_t offset = 0;
  uint64_t size = 0;
};

class SSTable {
 public:
  // Parses the footer and index block of a table whose complete bytes are `contents`.
  // `name` (usually the file path) is used in error messages.
  SSTable(std::string contents, std::string name);
  static SSTable open(const std::string& path);

  // Visits every entry in key order. The views are valid only during the call.
  void for_each(const std::function<void(std::string_view key, std::string_view value)>& f) const;
  // The value stored under `key`, if any.
  std::optional<std::string> get(std::string_view key) const;

  const std::string& name() const { return name_; }
  size_t num_data_blocks() const { return index_.size(); }

 private:
  // Returns the verified contents of the block at `h` (a view into contents_, or into the
  // decompressed copy of a Snappy block, kept for the table's lifetime).
  std::string_view block(const BlockHandle& h, const char* what) const;
  // Decodes the entries of one block, checking they are in increasing key order.
  void parse_block(std::string_view block, const char* what,
                   const std::function<bool(std::string_view, std::string_view)>& f) const;

  std::string contents_;
  std::string name_;
  std::vector<std::pair<std::string, BlockHandle>> index_;  // separator key -> data block
  mutable std::mutex decompressed_mu_;
  mutable std::map<uint64_t, std::string> decompressed_;  // block offset -> uncompressed bytes
};

}  // namespace tessera::io
