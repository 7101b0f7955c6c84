// Test helper (not part of the product): inspects TensorBundle checkpoints and converts
// .npy/.npz through Tessera's readers/writers, so Python tests can compare against TF/NumPy.
//
//   tessera_bundle_dump PREFIX [OUT.npz] [--skip-unsupported]
//       prints "key<TAB>dtype<TAB>[d0,d1,...]" per tensor; with OUT.npz also reads every tensor
//       and writes them there (bfloat16 as float32, which is exact).
//   tessera_bundle_dump --convert IN.npy|IN.npz OUT.npz [--compress]
//       reads with Tessera's npy reader and writes back with its npz writer.
//   tessera_bundle_dump --bench PREFIX [REPEATS]
//       reads every tensor REPEATS times (default 3), prints bytes and MB/s of the best pass.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "io/npy.h"
#include "io/tensor_bundle.h"
#include "support/error.h"

namespace {

using tessera::DType;
using tessera::Tensor;

Tensor npz_compatible(const Tensor& t) {
  if (t.dtype() != DType::kBFloat16) return t;
  Tensor f(DType::kFloat32, t.shape());
  const auto* src = t.data<tessera::bfloat16>();
  float* dst = f.data<float>();
  for (int64_t i = 0; i < t.num_elements(); ++i) dst[i] = static_cast<float>(src[i]);
  return f;
}

size_t tensor_bytes(const Tensor& t) {
  if (t.dtype() != DType::kString) return t.nbytes();
  size_t n = 0;
  for (const auto& s : t.strings()) n += s.size();
  return n;
}

int dump(const std::string& prefix, const char* out, bool skip_unsupported) {
  tessera::TensorBundleReader reader(prefix);
  tessera::npy::NamedTensors tensors;
  for (const auto& key : reader.keys()) {
    std::string dtype, shape;
    try {
      dtype = tessera::dtype_name(reader.dtype(key));
      shape = tessera::shape_str(reader.shape(key));
    } catch (const tessera::Error& e) {
      if (!skip_unsupported) throw;
      std::fprintf(stderr, "skipped: %s\n", e.what());
      continue;
    }
    std::printf("%s\t%s\t%s\n", key.c_str(), dtype.c_str(), shape.c_str());
    if (!out) continue;
    try {
      tensors.emplace_back(key, npz_compatible(reader.read(key)));
    } catch (const tessera::Error& e) {
      if (!skip_unsupported || e.code() != tessera::ErrorCode::kUnimplemented) throw;
      std::fprintf(stderr, "skipped: %s\n", e.what());
    }
  }
  if (out) tessera::npy::save_npz(out, tensors);
  return 0;
}

int bench(const std::string& prefix, int repeats) {
  double best = 1e30;
  size_t bytes = 0;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    tessera::TensorBundleReader reader(prefix);
    bytes = 0;
    for (const auto& key : reader.keys()) bytes += tensor_bytes(reader.read(key));
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, s);
  }
  std::printf("bytes=%zu best_seconds=%.4f MB_per_s=%.1f\n", bytes, best, bytes / best / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() >= 3 && args[0] == "--convert") {
      const std::string& in = args[1];
      tessera::npy::NamedTensors tensors;
      if (in.size() >= 4 && in.compare(in.size() - 4, 4, ".npy") == 0)
        tensors.emplace_back("arr_0", tessera::npy::load_npy(in));
      else
        tensors = tessera::npy::load_npz(in);
      bool compress = args.size() > 3 && args[3] == "--compress";
      tessera::npy::save_npz(args[2], tensors, compress);
      return 0;
    }
    if (args.size() >= 2 && args[0] == "--bench")
      return bench(args[1], args.size() > 2 ? std::stoi(args[2]) : 3);
    bool skip = false;
    std::vector<std::string> pos;
    for (const auto& a : args) {
      if (a == "--skip-unsupported") skip = true;
      else pos.push_back(a);
    }
    if (pos.empty() || pos.size() > 2) {
      std::fprintf(stderr,
                   "usage: tessera_bundle_dump PREFIX [OUT.npz] [--skip-unsupported]\n"
                   "       tessera_bundle_dump --convert IN.npy|IN.npz OUT.npz [--compress]\n"
                   "       tessera_bundle_dump --bench PREFIX [REPEATS]\n");
      return 2;
    }
    return dump(pos[0], pos.size() > 1 ? pos[1].c_str() : nullptr, skip);
  } catch (const tessera::Error& e) {
    std::fprintf(stderr, "error (%s): %s\n", tessera::error_code_name(e.code()), e.what());
    return 1;
  }
}
