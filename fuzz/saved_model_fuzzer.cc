// Fuzzes SavedModel loading end to end: the bytes become saved_model.pb in a scratch export
// directory (with a small valid checkpoint beside it when the corpus provides one), then
// Model::load parses, selects the MetaGraph, imports, restores variables and runs init ops.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/model.h"

namespace {

std::string scratch_dir() {
  static const std::string dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("tessera_fuzz_sm_" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = scratch_dir();
  {
    std::ofstream out(dir + "/saved_model.pb", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    auto model = tessera::Model::load(dir);
    (void)model;
  } catch (const tessera::Error&) {
  }
  return 0;
}
