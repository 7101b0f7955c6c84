// Tessera's version: recorded in every .tsr and part of the compile-cache key, so artifacts
// and cached compilations from another version are never silently reused.
#pragma once

namespace tessera {

inline constexpr const char* kTesseraVersion = "0.3.0-dev";

}  // namespace tessera
