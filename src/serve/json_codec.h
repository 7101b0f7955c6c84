// TF Serving's REST JSON <-> its API messages (issue 6): predict in row (`instances` ->
// `predictions`) and columnar (`inputs` -> `outputs`) form, classify/regress (`examples`,
// `context` -> `results`), model status and metadata in proto3 JSON, and `{"error": ...}`.
// Pure functions over strings and protos, so they are tested and fuzzed without a server.
#pragma once
#include <functional>
#include <string>
#include <string_view>

#include "serve/server_core.h"

namespace tessera::serve {

// TF Serving's status -> HTTP mapping (model_servers/http_server.cc).
int http_status_for(::tensorflow::error::Code code);
// The body of an error answer: {"error": "<message>"}.
std::string error_json(std::string_view message);

enum class PredictFormat { kRow, kColumnar };

// Returns the signature a predict body names ("" = the default), so the codec learns the
// inputs' dtypes; a failing lookup (unknown model/signature) is passed through.
using SignatureLookup =
    std::function<ServeStatus(const std::string& signature_name, ::tensorflow::SignatureDef* signature)>;

// Fills request->inputs and ->model_spec.signature_name (model name and version are the
// caller's, from the URL) and says which form the body used.
ServeStatus predict_request_from_json(std::string_view body, const SignatureLookup& lookup,
                                      tfs::PredictRequest* request, PredictFormat* format);
// The same without the fast path for bodies of one unnamed list of numbers (a DOM parse and
// walk): for tests, which check that both paths agree.
ServeStatus predict_request_from_json_general(std::string_view body, const SignatureLookup& lookup,
                                              tfs::PredictRequest* request, PredictFormat* format);
// Whether predict_request_from_json answers `body` on its fast path (for tests).
bool predict_json_takes_fast_path(std::string_view body, const SignatureLookup& lookup);
ServeStatus predict_response_to_json(const tfs::PredictResponse& response, PredictFormat format,
                                     std::string* json);

// Classify and regress bodies both hold `signature_name`, `context` and `examples`.
ServeStatus classification_request_from_json(std::string_view body, tfs::ClassificationRequest* request);
ServeStatus regression_request_from_json(std::string_view body, tfs::RegressionRequest* request);
std::string classification_response_to_json(const tfs::ClassificationResponse& response);
std::string regression_response_to_json(const tfs::RegressionResponse& response);

// proto3 JSON as TF Serving prints it: int64 as strings, enums by name, defaults printed.
std::string model_status_to_json(const tfs::GetModelStatusResponse& response);
// The `signature_def` entry is printed as a SignatureDefMap without an "@type" key, as TF
// Serving does.
std::string model_metadata_to_json(const tfs::GetModelMetadataResponse& response);

// Base64 (standard alphabet, padded) and its inverse (also accepts the URL-safe alphabet and
// missing padding); decode returns false on bad input.
std::string base64_encode(std::string_view bytes);
bool base64_decode(std::string_view text, std::string* bytes);

}  // namespace tessera::serve
