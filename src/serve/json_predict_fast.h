// The REST :predict fast path (json_codec.cc's predict_request_from_json tries it first). The
// general path parses the body into a RapidJSON DOM and walks it: ~1.2-1.5 ms for a
// MobileNetV2 body (27648 numbers, 580 KB), most of it RapidJSON's digit-by-digit number
// parsing. Most bodies are json.dumps of {"signature_name": ..., "instances"|"inputs": <one
// unnamed, rectangular list of numbers>}, so this reads just that subset of JSON with a small
// reader that computes every number exactly as RapidJSON's reader does (kParseNanAndInfFlag,
// normal precision, as TF Serving parses; the final scaling is RapidJSON's own
// StrtodNormalPrecision), straight into the tensor's bytes (~0.7 ms). Anything outside the
// subset (named inputs, strings with escapes, bools, nulls, NaN, integers of 10+ digits, ragged
// lists, repeated keys, any syntax or type error, ...) gives up, and the general path answers,
// errors included: what is accepted, the values and every message stay the general path's.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "serve/json_codec.h"

namespace tessera::serve {

enum class FastResult { kDone, kLookupFailed, kGiveUp };

// kGiveUp leaves `request` untouched. `looked_up` keeps the signature the lookup returned, so
// the general path need not look it up again.
FastResult predict_fast(std::string_view body, const SignatureLookup& lookup, tfs::PredictRequest* request,
                        PredictFormat* format, ServeStatus* status,
                        std::optional<std::pair<std::string, ::tensorflow::SignatureDef>>* looked_up);

}  // namespace tessera::serve
