#include "ir/module.h"

namespace tessera {

const TensorSpec* Signature::find_input(const std::string& k) const {
  for (const auto& s : inputs)
    if (s.key == k) return &s;
  return nullptr;
}

const TensorSpec* Signature::find_output(const std::string& k) const {
  for (const auto& s : outputs)
    if (s.key == k) return &s;
  return nullptr;
}

const Signature& Module::signature(const std::string& key) const {
  auto it = signatures.find(key);
  if (it != signatures.end()) return it->second;
  std::string available;
  for (const auto& [k, sig] : signatures) available += (available.empty() ? "" : ", ") + k;
  fail_code(ErrorCode::kNotFound, "'", source, "' has no signature '", key, "' (available: ",
            available.empty() ? "none" : available, ")");
}

}  // namespace tessera
