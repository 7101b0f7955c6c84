// libFuzzer target for tf.train.Example parsing. Byte 0 splits the rest into two serialized
// Examples, parsed as one batch with fixed-length, defaulted, variable-length and string
// features. Invariants: only tessera::Error escapes, and a successful parse has the shapes
// the specs promise.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "support/error.h"
#include "train/example.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera;
  using namespace tessera::train;
  if (size == 0) return 0;
  static const std::vector<FeatureSpec> specs = {
      parse_feature_spec("x:float32:2"), parse_feature_spec("label:int64::-1"),
      parse_feature_spec("tags:int64:var"), parse_feature_spec("name:string::none"),
      parse_feature_spec("m:float32:2x2:0.5")};
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = std::min<size_t>(data[0], rest.size());
  std::vector<std::string_view> examples = {rest.substr(0, cut), rest.substr(cut)};
  try {
    auto out = parse_examples(examples, specs);
    if (out.size() != specs.size()) std::abort();
    if (out[0].shape() != Shape({2, 2}) || out[1].shape() != Shape({2}) || out[2].rank() != 2 ||
        out[2].dim(0) != 2 || out[3].shape() != Shape({2}) || out[4].shape() != Shape({2, 2, 2}))
      std::abort();
  } catch (const Error&) {
  }
  return 0;
}
