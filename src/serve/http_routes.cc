#include "serve/http_routes.h"

#include <cctype>
#include <charconv>
#include <exception>

#include "serve/json_codec.h"
#include "support/error.h"

namespace tessera::serve {

namespace tf = ::tensorflow;

namespace {

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

// Percent-decodes a path segment; false on a malformed escape.
bool url_decode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(in[i + 2])))
      return false;
    out->push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
    i += 2;
  }
  return true;
}

// Model names and labels become map keys and (for model names) parts of file paths in the
// core's logs; reject anything that could climb out of a directory or hide a separator.
bool valid_name(const std::string& s) {
  if (s.empty() || s == "." || s.find("..") != std::string::npos) return false;
  for (unsigned char c : s)
    if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) return false;
  return true;
}

HttpResponse json_response(int status, std::string body) { return {status, "application/json", std::move(body)}; }

HttpResponse error_response(const ServeStatus& st) {
  return json_response(http_status_for(st.code), error_json(st.message));
}

HttpResponse error_response(tf::error::Code code, std::string message) {
  return error_response(ServeStatus{code, std::move(message)});
}

void fill_spec(const Route& route, tfs::ModelSpec* spec) {
  spec->set_name(route.model);
  if (route.version) spec->mutable_version()->set_value(*route.version);
  else if (!route.label.empty()) spec->set_version_label(route.label);
}

const char* kind_verb(Route::Kind k) {
  switch (k) {
    case Route::Kind::kPredict: return "predict";
    case Route::Kind::kClassify: return "classify";
    case Route::Kind::kRegress: return "regress";
    default: return "";
  }
}

}  // namespace

std::optional<Route> parse_route(std::string_view path, std::string* error) {
  error->clear();
  static constexpr std::string_view kPrefix = "/v1/models/";
  if (!iequals_prefix(path, kPrefix)) return std::nullopt;
  std::string_view rest = path.substr(kPrefix.size());
  Route route;
  // The verb follows the last ':' of the path (names themselves may not contain ':').
  std::string_view verb;
  if (auto colon = rest.find(':'); colon != std::string_view::npos) {
    verb = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    if (verb == "predict") route.kind = Route::Kind::kPredict;
    else if (verb == "classify") route.kind = Route::Kind::kClassify;
    else if (verb == "regress") route.kind = Route::Kind::kRegress;
    else return std::nullopt;
  }
  // Segments: name [versions V | labels L] [metadata]
  std::vector<std::string_view> seg;
  while (!rest.empty()) {
    auto slash = rest.find('/');
    seg.push_back(rest.substr(0, slash));
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  }
  if (seg.empty()) return std::nullopt;
  if (!url_decode(seg[0], &route.model) || !valid_name(route.model)) {
    *error = str_cat("Invalid model name: '", seg[0], "'");
    return std::nullopt;
  }
  size_t i = 1;
  if (i + 1 < seg.size() && (seg[i] == "versions" || seg[i] == "labels")) {
    if (seg[i] == "versions") {
      std::string_view v = seg[i + 1];
      int64_t n = 0;
      auto r = std::from_chars(v.data(), v.data() + v.size(), n);
      if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size() || n < 0) {
        *error = str_cat("Invalid version: '", v, "'");
        return std::nullopt;
      }
      route.version = n;
    } else {
      if (!url_decode(seg[i + 1], &route.label) || !valid_name(route.label)) {
        *error = str_cat("Invalid version label: '", seg[i + 1], "'");
        return std::nullopt;
      }
    }
    i += 2;
  }
  if (i < seg.size() && seg[i] == "metadata" && verb.empty()) {
    route.kind = Route::Kind::kMetadata;
    ++i;
  }
  if (i != seg.size()) return std::nullopt;
  return route;
}

HttpResponse HttpRoutes::handle(const HttpRequest& request, const CallContext& ctx) const {
  try {
    return dispatch(request, ctx);
  } catch (const std::exception& e) {
    // The core promises ServeStatus, but a front end must never drop a connection on a throw.
    return error_response(tf::error::INTERNAL, e.what());
  }
}

HttpResponse HttpRoutes::dispatch(const HttpRequest& request, const CallContext& ctx) const {
  std::string_view path = request.target;
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (!options_.prometheus_path.empty() && path == options_.prometheus_path) {
    if (request.method != "GET") return error_response(tf::error::INVALID_ARGUMENT, "metrics page: use GET");
    return {200, "text/plain; version=0.0.4", core_.prometheus_text()};
  }
  std::string error;
  std::optional<Route> route = parse_route(path, &error);
  if (!error.empty()) return error_response(tf::error::INVALID_ARGUMENT, error);
  if (!route)
    return error_response(tf::error::NOT_FOUND, str_cat("Malformed request: ", request.method, " ", path));

  bool is_get = route->kind == Route::Kind::kStatus || route->kind == Route::Kind::kMetadata;
  if (request.method != (is_get ? "GET" : "POST")) {
    HttpResponse r = error_response(tf::error::INVALID_ARGUMENT,
                                    str_cat("Malformed request: ", request.method, " ", path, " (expected ",
                                            is_get ? "GET" : "POST", ")"));
    r.status = 405;
    return r;
  }

  switch (route->kind) {
    case Route::Kind::kStatus: {
      tfs::GetModelStatusRequest req;
      fill_spec(*route, req.mutable_model_spec());
      tfs::GetModelStatusResponse resp;
      ServeStatus st = core_.get_model_status(req, &resp);
      if (!st.ok()) return error_response(st);
      return json_response(200, model_status_to_json(resp));
    }
    case Route::Kind::kMetadata: {
      tfs::GetModelMetadataRequest req;
      fill_spec(*route, req.mutable_model_spec());
      req.add_metadata_field("signature_def");
      tfs::GetModelMetadataResponse resp;
      ServeStatus st = core_.get_model_metadata(req, &resp);
      if (!st.ok()) return error_response(st);
      return json_response(200, model_metadata_to_json(resp));
    }
    case Route::Kind::kPredict:
      return predict(*route, request.body, ctx);
    case Route::Kind::kClassify: {
      tfs::ClassificationRequest req;
      ServeStatus st = classification_request_from_json(request.body, &req);
      if (!st.ok()) return error_response(st);
      fill_spec(*route, req.mutable_model_spec());
      tfs::ClassificationResponse resp;
      st = core_.classify(req, &resp, ctx);
      if (!st.ok()) return error_response(st);
      return json_response(200, classification_response_to_json(resp));
    }
    case Route::Kind::kRegress: {
      tfs::RegressionRequest req;
      ServeStatus st = regression_request_from_json(request.body, &req);
      if (!st.ok()) return error_response(st);
      fill_spec(*route, req.mutable_model_spec());
      tfs::RegressionResponse resp;
      st = core_.regress(req, &resp, ctx);
      if (!st.ok()) return error_response(st);
      return json_response(200, regression_response_to_json(resp));
    }
  }
  return error_response(tf::error::INTERNAL, str_cat("unhandled route ", kind_verb(route->kind)));
}

HttpResponse HttpRoutes::predict(const Route& route, const std::string& body, const CallContext& ctx) const {
  // The JSON carries no dtypes: they come from the signature, which the core's metadata call
  // resolves for the same model spec (latest, version or label).
  auto lookup = [&](const std::string& signature_name, tf::SignatureDef* sig) -> ServeStatus {
    tfs::GetModelMetadataRequest req;
    fill_spec(route, req.mutable_model_spec());
    req.add_metadata_field("signature_def");
    tfs::GetModelMetadataResponse resp;
    ServeStatus st = core_.get_model_metadata(req, &resp);
    if (!st.ok()) return st;
    tfs::SignatureDefMap sigs;
    auto it = resp.metadata().find("signature_def");
    if (it == resp.metadata().end() || !it->second.UnpackTo(&sigs))
      return {tf::error::INTERNAL, "model metadata has no signature_def map"};
    std::string key = signature_name.empty() ? "serving_default" : signature_name;
    auto s = sigs.signature_def().find(key);
    if (s == sigs.signature_def().end())
      return {tf::error::FAILED_PRECONDITION, str_cat("Serving signature key \"", key, "\" not found.")};
    *sig = s->second;
    return {};
  };
  tfs::PredictRequest req;
  PredictFormat format;
  ServeStatus st = predict_request_from_json(body, lookup, &req, &format);
  if (!st.ok()) return error_response(st);
  fill_spec(route, req.mutable_model_spec());
  tfs::PredictResponse resp;
  st = core_.predict(req, &resp, ctx);
  if (!st.ok()) return error_response(st);
  std::string json;
  st = predict_response_to_json(resp, format, &json);
  if (!st.ok()) return error_response(st);
  return json_response(200, std::move(json));
}

}  // namespace tessera::serve
