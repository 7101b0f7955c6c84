// libFuzzer target for the .npy/.npz readers. Byte 0 picks the parser; whatever parses must
// survive a write/read round trip unchanged. Anything but success or tessera::Error is a bug.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "io/npy.h"
#include "support/error.h"

namespace {

bool same(const tessera::Tensor& a, const tessera::Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  if (a.dtype() == tessera::DType::kString) return a.strings() == b.strings();
  return std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("TESSERA_MAX_TENSOR_BYTES", "67108864", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    if (data[0] & 1) {
      auto tensors = tessera::npy::parse_npz(bytes, "fuzz.npz");
      auto back = tessera::npy::parse_npz(tessera::npy::serialize_npz(tensors, data[0] & 2), "rt");
      if (back.size() != tensors.size()) std::abort();
      for (size_t i = 0; i < back.size(); ++i)
        if (back[i].first != tensors[i].first || !same(back[i].second, tensors[i].second)) std::abort();
    } else {
      tessera::Tensor t = tessera::npy::parse_npy(bytes, "fuzz.npy");
      if (t.dtype() == tessera::DType::kBFloat16) return 0;
      if (!same(tessera::npy::parse_npy(tessera::npy::serialize_npy(t), "rt"), t)) std::abort();
    }
  } catch (const tessera::Error&) {
  }
  return 0;
}
