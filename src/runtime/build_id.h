// The linker's build ID of the running program (its .note.gnu.build-id, a hash of the linked
// code): part of the compile-cache key, so a rebuilt Tessera never reuses compilations made by
// different code under the same version string.
#pragma once
#include <string>

namespace tessera {

std::string program_build_id();  // hex; "" when the binary carries no build ID

}  // namespace tessera
