// On-disk cache of compiled models: SavedModel/GraphDef loads on the cpu target reuse a .tsr
// keyed by a content hash of the model's files, the compile options and the Tessera version.
// Directory: $TESSERA_CACHE_DIR, else ~/.cache/tessera/compiled.
#pragma once
#include <string>
#include <vector>

namespace tessera {

std::string compile_cache_dir();

// A hex key over every file of `model_path` (a directory is walked; names, sizes and bytes
// count) and `options_text` (everything else that changes the compiled result).
std::string compile_cache_key(const std::string& model_path, const std::string& options_text);

// Where the cached .tsr for `key` lives (the directory is created).
std::string compile_cache_path(const std::string& key);

// Marks an entry as used (its mtime orders eviction).
void touch_compile_cache_entry(const std::string& path);

// Evicts the least recently used .tsr files until the cache holds at most
// $TESSERA_CACHE_MAX_BYTES (default 4 GiB); `keep` (the entry just written) stays.
void prune_compile_cache(const std::string& keep);

}  // namespace tessera
