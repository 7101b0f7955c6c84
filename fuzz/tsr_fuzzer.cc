// libFuzzer target for the .tsr artifact loader. Checksums are not verified here (a mutated
// byte would otherwise almost always stop at a CRC), so mutations reach the section parsers,
// tensor/attribute decoding and graph rebuilding. Whatever parses must re-encode and parse
// again (checksums verified) to the same signatures and graph sizes. Stored rdu mappings are
// decoded against their signature's graph; one that decodes must re-encode and decode again.
// Anything but success or tessera::Error is a bug.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "backend/rdu/mapping_codec.h"
#include "runtime/artifact.h"
#include "support/error.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("TESSERA_MAX_TENSOR_BYTES", "67108864", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A private copy: the loader borrows blob bytes for the artifact's lifetime.
  auto bytes = std::make_shared<std::string>(reinterpret_cast<const char*>(data), size);
  try {
    tessera::Artifact a = tessera::parse_artifact(bytes->data(), bytes->size(), "fuzz.tsr", bytes,
                                                      /*verify_checksums=*/false);
    for (const auto& [key, bytes] : a.rdu_mappings) {
      tessera::rdu::StoredMapping m;
      try {
        m = tessera::rdu::decode_mapping(bytes, *a.signatures.at(key).graph, "fuzz mapping");
      } catch (const tessera::Error&) {
        continue;
      }
      std::string round = tessera::rdu::encode_mapping(m.mapping, m.options, m.timing);
      if (tessera::rdu::decode_mapping(round, *a.signatures.at(key).graph, "rt mapping").mapping.sections.size() !=
          m.mapping.sections.size())
        std::abort();
    }
    std::string again = tessera::encode_artifact(a.info, a.signatures, a.variables, a.rdu_mappings);
    auto copy = std::make_shared<std::string>(std::move(again));
    tessera::Artifact b = tessera::parse_artifact(copy->data(), copy->size(), "rt.tsr", copy);
    if (b.signatures.size() != a.signatures.size()) std::abort();
    for (const auto& [key, cs] : a.signatures) {
      auto it = b.signatures.find(key);
      if (it == b.signatures.end() || it->second.graph->nodes().size() != cs.graph->nodes().size()) std::abort();
    }
  } catch (const tessera::Error&) {
  }
  return 0;
}
