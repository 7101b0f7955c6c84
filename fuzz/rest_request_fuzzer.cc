// libFuzzer target for the REST request parsers (src/serve/json_codec.*): byte 0 picks the
// body kind (predict against a few signatures, classify, regress) and, for predict, the answer
// is also printed back as a response. Any outcome but a ServeStatus is a bug (a crash, an
// escaping exception, a sanitizer report), and so is a predict answer of the fast path that
// differs from the general path's.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <google/protobuf/util/message_differencer.h>

#include "serve/json_codec.h"

namespace {

namespace tf = ::tensorflow;
using namespace tessera::serve;

tf::SignatureDef make_sig(int which) {
  tf::SignatureDef sig;
  auto add = [&](const char* name, tf::DataType dt) { (*sig.mutable_inputs())[name].set_dtype(dt); };
  switch (which % 4) {
    case 0: add("x", tf::DT_FLOAT); break;
    case 1: add("s", tf::DT_STRING); break;
    case 2: add("a", tf::DT_INT8); add("b", tf::DT_BOOL); break;
    default: add("u", tf::DT_UINT64); add("d", tf::DT_DOUBLE); add("i", tf::DT_INT32); break;
  }
  return sig;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  int mode = data[0];
  try {
    if (mode % 3 == 0) {
      tf::SignatureDef sig = make_sig(mode / 3);
      SignatureLookup lookup = [&](const std::string&, tf::SignatureDef* out) {
        *out = sig;
        return ServeStatus{};
      };
      tfs::PredictRequest req;
      PredictFormat fmt;
      const ServeStatus st = predict_request_from_json(body, lookup, &req, &fmt);
      // The fast path (json_predict_fast.h) must answer exactly as the general path does.
      tfs::PredictRequest general_req;
      PredictFormat general_fmt;
      const ServeStatus general = predict_request_from_json_general(body, lookup, &general_req, &general_fmt);
      if (st.code != general.code || st.message != general.message ||
          !google::protobuf::util::MessageDifferencer::Equals(req, general_req) || (st.ok() && fmt != general_fmt))
        std::abort();
      if (st.ok()) {
        // Echo the inputs as outputs (named *_bytes for strings, to reach the b64 writer).
        tfs::PredictResponse resp;
        for (const auto& [k, t] : req.inputs())
          (*resp.mutable_outputs())[t.dtype() == tf::DT_STRING ? k + "_bytes" : k] = t;
        std::string json;
        (void)predict_response_to_json(resp, fmt, &json);
      }
    } else if (mode % 3 == 1) {
      tfs::ClassificationRequest req;
      (void)classification_request_from_json(body, &req);
    } else {
      tfs::RegressionRequest req;
      (void)regression_request_from_json(body, &req);
    }
  } catch (...) {
    std::abort();  // the codec reports errors as ServeStatus, never by throwing
  }
  return 0;
}
