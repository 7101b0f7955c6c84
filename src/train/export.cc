#include "train/export.h"

#include <unistd.h>

#include <filesystem>

#include "io/tensor_bundle.h"
#include "io/tensor_bundle_writer.h"
#include "support/error.h"
#include "support/file.h"
#include "train/checkpoint.h"

namespace tessera::train {

namespace fs = std::filesystem;

void export_saved_model(const std::string& src_dir, const std::string& dst_dir,
                        const std::map<std::string, Tensor>& values) {
  with_context(str_cat("export of '", src_dir, "' to '", dst_dir, "'"), [&] {
    const fs::path src(src_dir);
    bool has_pb = fs::exists(src / "saved_model.pb"), has_txt = fs::exists(src / "saved_model.pbtxt");
    if (!has_pb && !has_txt) fail_code(ErrorCode::kNotFound, "not a SavedModel directory (no saved_model.pb)");

    // Original bundle, with trained values (and their aliases) substituted.
    const std::string src_prefix = (src / "variables" / "variables").string();
    std::map<std::string, Tensor> bundle;
    if (fs::exists(src_prefix + ".index")) {
      TensorBundleReader reader(src_prefix);
      for (const std::string& k : reader.keys()) bundle[k] = reader.read(k);
    }
    const ModelLayout layout = model_layout_from_bundle(bundle);
    for (const auto& [key, value] : values) {
      auto it = bundle.find(key);
      if (it == bundle.end()) fail_code(ErrorCode::kNotFound, "the original variables have no key '", key, "'");
      TS_CHECK(it->second.dtype() == value.dtype() && it->second.shape() == value.shape(), "variable '", key,
               "': trained value is ", dtype_name(value.dtype()), shape_str(value.shape()), ", the original ",
               dtype_name(it->second.dtype()), shape_str(it->second.shape()));
      it->second = value;
      auto al = layout.aliases.find(key);
      if (al != layout.aliases.end())
        for (const std::string& other : al->second)
          if (!values.count(other)) bundle[other] = value;
    }

    const fs::path dst(dst_dir);
    const fs::path tmp = dst.string() + ".tmp-" + std::to_string(::getpid());
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp / "variables");
    for (const char* f : {"saved_model.pb", "saved_model.pbtxt"})
      if (fs::exists(src / f)) fs::copy_file(src / f, tmp / f);
    for (const char* d : {"assets", "assets.extra"})
      if (fs::is_directory(src / d)) fs::copy(src / d, tmp / d, fs::copy_options::recursive);
    if (!bundle.empty()) write_tensor_bundle((tmp / "variables" / "variables").string(), bundle);
    // Swap in: the old export (if any) is removed only after the new one is complete.
    const fs::path old = dst.string() + ".old-" + std::to_string(::getpid());
    if (fs::exists(dst)) fs::rename(dst, old);
    fs::rename(tmp, dst);
    fs::remove_all(old, ec);
  });
}

}  // namespace tessera::train
