// Whole-file reads with errors that name the path.
#pragma once
#include <cstdint>
#include <string>

namespace tessera {

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);
std::string join_path(const std::string& a, const std::string& b);

}  // namespace tessera
