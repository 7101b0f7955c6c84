// libFuzzer target for the checkpoint index (LevelDB table) and TensorBundle readers.
// The input is split into an `.index` file and a data shard (first byte picks the split), both
// written to a private temp directory; every key is then listed, typed and read. Any outcome
// other than success or a tessera::Error (crash, sanitizer report, other exception) is a bug.
// Mode byte 2 builds a checksum-valid index from fuzzer-chosen key/value records instead, so
// the BundleEntryProto and data-shard paths behind the table checksums get explored too.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <unistd.h>

#include "io/sstable.h"
#include "io/tensor_bundle.h"
#include "support/error.h"
#include "../tests/unit/io_test_util.h"

namespace {
std::string g_dir, g_prefix;

void cleanup() {
  unlink((g_prefix + ".index").c_str());
  unlink((g_prefix + ".data-00000-of-00001").c_str());
  rmdir(g_dir.c_str());
}

void write_all(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
}

void read_bundle() {
  try {
    tessera::TensorBundleReader reader(g_prefix);
    for (const auto& key : reader.keys()) {
      try {
        (void)reader.contains(key);
        (void)reader.dtype(key);
        (void)reader.shape(key);
        tessera::Tensor t = reader.read(key);
        (void)t.num_elements();
      } catch (const tessera::Error&) {
      }
    }
  } catch (const tessera::Error&) {
  }
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("TESSERA_MAX_TENSOR_BYTES", "67108864", 1);  // keep allocations fuzzer-sized
  const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  std::string templ = std::string(base) + "/tessera_bundle_fuzz_XXXXXX";
  char* dir = mkdtemp(templ.data());
  if (!dir) std::abort();
  g_dir = dir;
  g_prefix = g_dir + "/ckpt";
  std::atexit(cleanup);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // Byte 0 == 0: the whole rest is the index and there is no shard. Otherwise bytes 1..2 give
  // the index length; the remainder is shard 0.
  const uint8_t mode = data[0];
  const uint8_t* rest = data + 1;
  size_t n = size - 1;
  size_t index_len = n;
  std::string built_index;
  if (mode == 2) {
    // Records: [key_len u8][key][value_len u8][value]..., terminated by a 0xff key length;
    // what follows is the shard. Keys are sorted/deduplicated so the table is valid.
    std::map<std::string, std::string> kvs;
    size_t pos = 0;
    while (pos < n && rest[pos] != 0xff) {
      size_t klen = rest[pos++];
      if (pos + klen >= n) break;
      std::string key(reinterpret_cast<const char*>(rest + pos), klen);
      pos += klen;
      size_t vlen = rest[pos++];
      if (pos + vlen > n) break;
      kvs[key] = std::string(reinterpret_cast<const char*>(rest + pos), vlen);
      pos += vlen;
    }
    if (pos < n) ++pos;  // the terminator
    tessera::testing::TableWriter w;
    w.block_size = 64;
    built_index = w.build({kvs.begin(), kvs.end()});
    write_all(g_prefix + ".index", reinterpret_cast<const uint8_t*>(built_index.data()),
              built_index.size());
    write_all(g_prefix + ".data-00000-of-00001", rest + pos, n - pos);
    read_bundle();
    return 0;
  }
  if (mode != 0 && n >= 2) {
    index_len = (static_cast<size_t>(rest[0]) | (static_cast<size_t>(rest[1]) << 8)) % (n - 1);
    rest += 2;
    n -= 2;
  }
  try {  // the raw table reader on its own
    tessera::io::SSTable table(std::string(reinterpret_cast<const char*>(rest), index_len), "fuzz");
    table.for_each([](std::string_view, std::string_view) {});
    (void)table.get("");
    (void)table.get("a");
  } catch (const tessera::Error&) {
  }
  write_all(g_prefix + ".index", rest, index_len);
  const std::string shard = g_prefix + ".data-00000-of-00001";
  if (mode != 0)
    write_all(shard, rest + index_len, n - index_len);
  else
    unlink(shard.c_str());
  read_bundle();
  return 0;
}
