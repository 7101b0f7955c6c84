// Test-only writers for the LevelDB table format and TensorBundle checkpoints, used to build
// valid (and deliberately broken) inputs for the io readers' unit tests and fuzz seeds.
#pragma once
#include <cstdint>
#include <cstdio>
#include <map>
#include <snappy.h>

#include <string>
#include <utility>
#include <vector>

#include "io/crc32c.h"
#include "io/sstable.h"
#include "io/varint.h"
#include "tensorflow/core/protobuf/tensor_bundle.pb.h"

namespace tessera::testing {

// Builds a table from sorted key/value pairs: data blocks of ~block_size bytes with a restart
// point every `restart_interval` entries, an empty metaindex block, an index block, a footer.
struct TableWriter {
  size_t block_size = 256;
  int restart_interval = 4;
  uint8_t compression = 0;  // written into every trailer: 0 none, 1 Snappy, else invalid

  std::string build(const std::vector<std::pair<std::string, std::string>>& entries) const {
    std::string file;
    std::vector<std::pair<std::string, io::BlockHandle>> index;
    std::vector<std::pair<std::string, std::string>> block;
    size_t block_bytes = 0;
    auto flush = [&] {
      if (block.empty()) return;
      index.emplace_back(block.back().first, write_block(file, encode_block(block)));
      block.clear();
      block_bytes = 0;
    };
    for (const auto& kv : entries) {
      block.push_back(kv);
      block_bytes += kv.first.size() + kv.second.size() + 3;
      if (block_bytes >= block_size) flush();
    }
    flush();
    io::BlockHandle meta = write_block(file, encode_block({}));
    std::vector<std::pair<std::string, std::string>> index_entries;
    for (const auto& [key, h] : index) {
      std::string v;
      io::put_varint64(&v, h.offset);
      io::put_varint64(&v, h.size);
      index_entries.emplace_back(key, v);
    }
    io::BlockHandle idx = write_block(file, encode_block(index_entries));
    std::string footer;
    io::put_varint64(&footer, meta.offset);
    io::put_varint64(&footer, meta.size);
    io::put_varint64(&footer, idx.offset);
    io::put_varint64(&footer, idx.size);
    footer.resize(40, '\0');
    io::put_fixed64(&footer, io::kTableMagic);
    return file + footer;
  }

  std::string encode_block(const std::vector<std::pair<std::string, std::string>>& kvs) const {
    std::string out;
    std::vector<uint32_t> restarts;
    std::string prev;
    for (size_t i = 0; i < kvs.size(); ++i) {
      const auto& [key, value] = kvs[i];
      size_t shared = 0;
      if (i % static_cast<size_t>(restart_interval) == 0) {
        restarts.push_back(static_cast<uint32_t>(out.size()));
      } else {
        while (shared < prev.size() && shared < key.size() && prev[shared] == key[shared]) ++shared;
      }
      io::put_varint32(&out, static_cast<uint32_t>(shared));
      io::put_varint32(&out, static_cast<uint32_t>(key.size() - shared));
      io::put_varint32(&out, static_cast<uint32_t>(value.size()));
      out.append(key, shared);
      out += value;
      prev = key;
    }
    if (restarts.empty()) restarts.push_back(0);
    for (uint32_t r : restarts) io::put_fixed32(&out, r);
    io::put_fixed32(&out, static_cast<uint32_t>(restarts.size()));
    return out;
  }

  io::BlockHandle write_block(std::string& file, const std::string& raw) const {
    std::string contents = raw;
    if (compression == 1) snappy::Compress(raw.data(), raw.size(), &contents);
    io::BlockHandle h{file.size(), contents.size()};
    file += contents;
    file.push_back(static_cast<char>(compression));
    uint32_t crc = crc32c::extend(crc32c::value(contents.data(), contents.size()),
                                  file.data() + file.size() - 1, 1);
    io::put_fixed32(&file, crc32c::mask(crc));
    return h;
  }
};

inline void write_test_file(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + path);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

// Builds a TensorBundle the way TF lays it out: tensors appended to data shards, one entry
// per tensor, header under the empty key.
struct BundleWriter {
  int num_shards = 1;
  tensorflow::BundleHeaderProto header;
  std::map<std::string, tensorflow::BundleEntryProto> entries;
  std::vector<std::string> shards;

  BundleWriter() { shards.resize(1); }
  void set_shards(int n) {
    num_shards = n;
    shards.resize(static_cast<size_t>(n));
  }

  tensorflow::BundleEntryProto& add_raw(const std::string& key, int dtype,
                                        const std::vector<int64_t>& shape, const std::string& bytes,
                                        uint32_t crc, int shard = 0) {
    auto& e = entries[key];
    e.set_dtype(static_cast<tensorflow::DataType>(dtype));
    for (int64_t d : shape) e.mutable_shape()->add_dim()->set_size(d);
    e.set_shard_id(shard);
    e.set_offset(static_cast<int64_t>(shards[static_cast<size_t>(shard)].size()));
    e.set_size(static_cast<int64_t>(bytes.size()));
    e.set_crc32c(crc32c::mask(crc));
    shards[static_cast<size_t>(shard)] += bytes;
    return e;
  }

  tensorflow::BundleEntryProto& add_numeric(const std::string& key, int dtype,
                                            const std::vector<int64_t>& shape,
                                            const void* data, size_t nbytes, int shard = 0) {
    std::string bytes(static_cast<const char*>(data), nbytes);
    return add_raw(key, dtype, shape, bytes, crc32c::value(bytes.data(), bytes.size()), shard);
  }

  // DT_STRING layout: varint64 lengths, masked CRC of the lengths (as u32/u64), the bytes.
  static std::string encode_strings(const std::vector<std::string>& values, uint32_t* crc_out) {
    std::string out;
    uint32_t crc = 0;
    for (const auto& s : values) {
      io::put_varint64(&out, s.size());
      uint32_t len = static_cast<uint32_t>(s.size());
      crc = crc32c::extend(crc, &len, 4);
    }
    std::string masked;
    io::put_fixed32(&masked, crc32c::mask(crc));
    out += masked;
    crc = crc32c::extend(crc, masked.data(), 4);
    for (const auto& s : values) {
      out += s;
      crc = crc32c::extend(crc, s.data(), s.size());
    }
    *crc_out = crc;
    return out;
  }

  tensorflow::BundleEntryProto& add_strings(const std::string& key, const std::vector<int64_t>& shape,
                                            const std::vector<std::string>& values, int shard = 0) {
    uint32_t crc;
    std::string bytes = encode_strings(values, &crc);
    return add_raw(key, 7, shape, bytes, crc, shard);
  }

  std::string index_bytes(size_t block_size = 256) const {
    tensorflow::BundleHeaderProto h = header;
    h.set_num_shards(num_shards);
    if (!h.has_version()) h.mutable_version()->set_producer(1);
    std::vector<std::pair<std::string, std::string>> kvs;
    kvs.emplace_back("", h.SerializeAsString());
    for (const auto& [k, e] : entries) kvs.emplace_back(k, e.SerializeAsString());
    TableWriter w;
    w.block_size = block_size;
    return w.build(kvs);
  }

  static std::string shard_name(const std::string& prefix, int i, int n) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), ".data-%05d-of-%05d", i, n);
    return prefix + buf;
  }

  void write(const std::string& prefix) const {
    write_test_file(prefix + ".index", index_bytes());
    for (int i = 0; i < num_shards; ++i)
      write_test_file(shard_name(prefix, i, num_shards), shards[static_cast<size_t>(i)]);
  }
};

}  // namespace tessera::testing
