#include "io/sstable.h"

#include <snappy.h>

#include <algorithm>

#include "io/crc32c.h"
#include "io/varint.h"
#include "support/error.h"
#include "support/file.h"

namespace tessera::io {
namespace {

const char* decode_handle(const char* p, const char* limit, BlockHandle* h) {
  p = get_varint64(p, limit, &h->offset);
  return p ? get_varint64(p, limit, &h->size) : nullptr;
}

}  // namespace

SSTable SSTable::open(const std::string& path) { return SSTable(read_file(path), path); }

SSTable::SSTable(std::string contents, std::string name)
    : contents_(std::move(contents)), name_(std::move(name)) {
  if (contents_.size() < kTableFooterSize)
    fail_code(ErrorCode::kDataLoss, "'", name_, "' is truncated or not a table: ", contents_.size(),
              " bytes, shorter than the ", kTableFooterSize, "-byte footer");
  const char* footer = contents_.data() + contents_.size() - kTableFooterSize;
  const char* footer_end = footer + kTableFooterSize;
  if (decode_fixed64(footer_end - 8) != kTableMagic)
    fail_code(ErrorCode::kDataLoss, "'", name_,
              "' is not a checkpoint index table (bad magic number; truncated or wrong file?)");
  BlockHandle meta, index;
  const char* p = decode_handle(footer, footer_end - 8, &meta);
  if (p) p = decode_handle(p, footer_end - 8, &index);
  if (!p) fail_code(ErrorCode::kDataLoss, "'", name_, "': corrupted table footer");
  block(meta, "metaindex block");  // validated, otherwise unused (TF writes it empty)

  std::string_view index_block = block(index, "index block");
  parse_block(index_block, "index block", [&](std::string_view key, std::string_view value) {
    BlockHandle h;
    if (!decode_handle(value.data(), value.data() + value.size(), &h))
      fail_code(ErrorCode::kDataLoss, "'", name_, "': corrupted block handle in index block");
    index_.emplace_back(std::string(key), h);
    return true;
  });
}

std::string_view SSTable::block(const BlockHandle& h, const char* what) const {
  // Blocks and their trailers must lie before the footer.
  const uint64_t limit = contents_.size() - kTableFooterSize;
  if (h.offset > limit || h.size > limit - h.offset || kBlockTrailerSize > limit - h.offset - h.size)
    fail_code(ErrorCode::kDataLoss, "'", name_, "': ", what, " at offset ", h.offset, " size ",
              h.size, " extends past the end of the ", contents_.size(),
              "-byte file (truncated or corrupted)");
  const char* data = contents_.data() + h.offset;
  const char* trailer = data + h.size;
  const uint32_t stored = crc32c::unmask(decode_fixed32(trailer + 1));
  const uint32_t actual = crc32c::extend(crc32c::value(data, h.size), trailer, 1);
  if (stored != actual)
    fail_code(ErrorCode::kDataLoss, "'", name_, "': checksum mismatch in ", what, " at offset ",
              h.offset, " (file corrupted)");
  switch (static_cast<uint8_t>(trailer[0])) {
    case 0:
      return std::string_view(data, h.size);
    case 1: {  // Snappy: older TensorFlow versions (1.x) compressed index blocks
      std::lock_guard lock(decompressed_mu_);
      auto it = decompressed_.find(h.offset);
      if (it != decompressed_.end()) return it->second;
      size_t length = 0;
      if (!snappy::GetUncompressedLength(data, h.size, &length) || length > (size_t{1} << 30))
        fail_code(ErrorCode::kDataLoss, "'", name_, "': corrupted Snappy ", what, " at offset ", h.offset);
      std::string out(length, '\0');
      if (!snappy::RawUncompress(data, h.size, out.data()))
        fail_code(ErrorCode::kDataLoss, "'", name_, "': corrupted Snappy ", what, " at offset ", h.offset);
      return decompressed_.emplace(h.offset, std::move(out)).first->second;
    }
    default:
      fail_code(ErrorCode::kDataLoss, "'", name_, "': ", what, " has unknown compression type ",
                static_cast<int>(static_cast<uint8_t>(trailer[0])));
  }
}

void SSTable::parse_block(std::string_view blk, const char* what,
                          const std::function<bool(std::string_view, std::string_view)>& f) const {
  auto corrupt = [&](const char* detail) {
    fail_code(ErrorCode::kDataLoss, "'", name_, "': corrupted ", what, ": ", detail);
  };
  if (blk.size() < 4) corrupt("block shorter than its restart count");
  const uint32_t num_restarts = decode_fixed32(blk.data() + blk.size() - 4);
  if (num_restarts > (blk.size() - 4) / 4) corrupt("restart count exceeds block size");
  const size_t entries_end = blk.size() - 4 - size_t{num_restarts} * 4;
  for (uint32_t i = 0; i < num_restarts; ++i)
    if (decode_fixed32(blk.data() + entries_end + 4 * i) > entries_end)
      corrupt("restart offset out of range");

  const char* p = blk.data();
  const char* limit = blk.data() + entries_end;
  std::string key;
  bool first = true;
  while (p < limit) {
    uint32_t shared = 0, non_shared = 0, value_len = 0;
    p = get_varint32(p, limit, &shared);
    if (p) p = get_varint32(p, limit, &non_shared);
    if (p) p = get_varint32(p, limit, &value_len);
    if (!p) corrupt("truncated entry header");
    if (shared > key.size()) corrupt("entry shares more bytes than the previous key has");
    if (non_shared > static_cast<size_t>(limit - p) ||
        value_len > static_cast<size_t>(limit - p) - non_shared)
      corrupt("entry extends past the end of the block");
    std::string_view delta(p, non_shared);
    std::string_view value(p + non_shared, value_len);
    p += non_shared + value_len;
    std::string next = key.substr(0, shared);
    next.append(delta);
    if (!first && !(std::string_view(key) < std::string_view(next)))
      corrupt("keys out of order");
    key = std::move(next);
    first = false;
    if (!f(key, value)) return;
  }
}

void SSTable::for_each(
    const std::function<void(std::string_view key, std::string_view value)>& f) const {
  std::string prev;
  bool first = true;
  for (size_t b = 0; b < index_.size(); ++b) {
    const std::string& separator = index_[b].first;
    parse_block(block(index_[b].second, "data block"), "data block",
                [&](std::string_view key, std::string_view value) {
                  if (!first && !(std::string_view(prev) < key))
                    fail_code(ErrorCode::kDataLoss, "'", name_,
                              "': corrupted table: keys out of order across blocks");
                  if (std::string_view(separator) < key)
                    fail_code(ErrorCode::kDataLoss, "'", name_,
                              "': corrupted table: key beyond its index entry");
                  prev.assign(key);
                  first = false;
                  f(key, value);
                  return true;
                });
  }
}

std::optional<std::string> SSTable::get(std::string_view key) const {
  // The first block whose separator is >= key is the only one that can hold it.
  auto it = std::lower_bound(index_.begin(), index_.end(), key,
                             [](const auto& entry, std::string_view k) {
                               return std::string_view(entry.first) < k;
                             });
  if (it == index_.end()) return std::nullopt;
  std::optional<std::string> result;
  parse_block(block(it->second, "data block"), "data block",
              [&](std::string_view k, std::string_view value) {
                if (k < key) return true;
                if (k == key) result.emplace(value);
                return false;
              });
  return result;
}

}  // namespace tessera::io
