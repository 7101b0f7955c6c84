#include "runtime/compile_cache.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/crc32c.h"
#include "runtime/artifact.h"
#include "runtime/build_id.h"
#include "runtime/version.h"
#include "support/error.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

// Two independent 64-bit-ish digests (CRC32C and a word-wise multiplicative hash): a cache
// key, not a security boundary, but collisions must be negligible.
struct Hasher {
  uint32_t crc = 0;
  uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* data, size_t n) {
    crc = crc32c::extend(crc, data, n);
    const auto* p = static_cast<const unsigned char*>(data);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
      h ^= h >> 29;
    }
    for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
  void add(const std::string& s) {
    uint64_t n = s.size();
    add(&n, 8);
    add(s.data(), s.size());
  }
};

void add_file(Hasher& hasher, const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("cannot read '", file.string(), "'");
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    hasher.add(buf.data(), static_cast<size_t>(in.gcount()));
  }
}

}  // namespace

std::string compile_cache_dir() {
  if (const char* env = std::getenv("TESSERA_CACHE_DIR"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.cache/tessera/compiled";
}

std::string compile_cache_key(const std::string& model_path, const std::string& options_text) {
  Hasher hasher;
  hasher.add(std::string(kTesseraVersion));
  hasher.add(program_build_id());
  hasher.add(std::to_string(kArtifactFormatVersion));
  hasher.add(options_text);
  fs::path root(model_path);
  if (fs::is_directory(root)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(root))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      hasher.add(fs::relative(f, root).string());
      hasher.add(std::to_string(fs::file_size(f)));
      add_file(hasher, f);
    }
  } else {
    add_file(hasher, root);
  }
  char out[64];
  std::snprintf(out, sizeof out, "%016llx%08x", static_cast<unsigned long long>(hasher.h), hasher.crc);
  return out;
}

std::string compile_cache_path(const std::string& key) {
  fs::path dir(compile_cache_dir());
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create the compile cache directory '", dir.string(), "': ", ec.message());
  return (dir / (key + ".tsr")).string();
}

void touch_compile_cache_entry(const std::string& path) {
  std::error_code ec;
  fs::last_write_time(path, fs::file_time_type::clock::now(), ec);  // best effort
}

void prune_compile_cache(const std::string& keep) {
  uint64_t limit = 4ull << 30;
  if (const char* env = std::getenv("TESSERA_CACHE_MAX_BYTES"); env && *env) limit = std::strtoull(env, nullptr, 10);
  std::error_code ec;
  std::vector<std::pair<fs::file_time_type, fs::path>> entries;
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(compile_cache_dir(), ec)) {
    if (!e.is_regular_file(ec) || e.path().extension() != ".tsr") continue;
    total += e.file_size(ec);
    entries.push_back({e.last_write_time(ec), e.path()});
  }
  std::sort(entries.begin(), entries.end());
  for (const auto& [time, path] : entries) {
    if (total <= limit) break;
    if (fs::equivalent(path, keep, ec)) continue;
    uint64_t size = fs::file_size(path, ec);
    if (fs::remove(path, ec)) total -= size;
  }
}

}  // namespace tessera
