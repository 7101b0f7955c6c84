// Where the C++ tests find the TensorFlow-written zoo (tests/zoo/generate.py): the same
// $TESSERA_ZOO_DIR the Python tests use, by default ~/.cache/tessera/zoo.
#pragma once
#include <cstdlib>
#include <filesystem>

namespace tessera::testing {

inline std::filesystem::path zoo_dir() {
  if (const char* d = std::getenv("TESSERA_ZOO_DIR")) return d;
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home ? home : "/root") / ".cache/tessera/zoo";
}

}  // namespace tessera::testing
