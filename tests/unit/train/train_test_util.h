// Helpers for the training I/O tests: a temporary directory removed at scope exit.
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace tessera::testing {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/tessera_train_testXXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

}  // namespace tessera::testing
