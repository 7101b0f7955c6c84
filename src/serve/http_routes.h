// TF Serving's REST API over a ServerCore, independent of the HTTP library (issue 6):
//   GET  /v1/models/N[/versions/V|/labels/L]            model status
//   GET  /v1/models/N[/versions/V|/labels/L]/metadata   signature defs
//   POST /v1/models/N[/versions/V|/labels/L]:predict|:classify|:regress
//   GET  <prometheus path>                              metrics page (when configured)
// rest_server.* feeds it parsed requests; the unit tests call it directly.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "serve/server_core.h"

namespace tessera::serve {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path plus optional "?query"
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// A parsed /v1/models/... path.
struct Route {
  enum class Kind { kStatus, kMetadata, kPredict, kClassify, kRegress };
  Kind kind = Kind::kStatus;
  std::string model;
  std::optional<int64_t> version;
  std::string label;  // empty: none
};

// Parses a REST path (the "/v1/" prefix is case-insensitive, as in TF Serving). Returns
// nullopt when the path is not a model path; fills *error (and returns nullopt) when it is one
// but is invalid (e.g. a model name with "..").
std::optional<Route> parse_route(std::string_view path, std::string* error);

struct RouteOptions {
  std::string prometheus_path;  // empty: no metrics page
};

class HttpRoutes {
 public:
  HttpRoutes(ServerCore& core, RouteOptions options) : core_(core), options_(std::move(options)) {}
  // Never throws: every failure becomes an HTTP status and {"error": ...}.
  HttpResponse handle(const HttpRequest& request, const CallContext& ctx) const;

 private:
  HttpResponse dispatch(const HttpRequest& request, const CallContext& ctx) const;
  HttpResponse predict(const Route& route, const std::string& body, const CallContext& ctx) const;

  ServerCore& core_;
  RouteOptions options_;
};

}  // namespace tessera::serve
