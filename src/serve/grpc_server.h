// The gRPC front end (issue 6): tensorflow.serving.PredictionService and ModelService on a
// ServerCore, with TF Serving's message size limit (INT32_MAX both ways) and the call's
// deadline and cancellation passed into CallContext.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "serve/server_core.h"

namespace tessera::serve {

class AccessLog;

struct GrpcOptions {
  std::string host = "0.0.0.0";
  int port = 8500;       // 0: pick a free port (see GrpcServer::port)
  int max_threads = 0;   // --grpc_max_threads; 0: max(1024, 4 x hardware threads) (grpc_server.cc says why)
  // --grpc_channel_arguments "k=v,k=v": integer values become int args, others strings.
  std::vector<std::pair<std::string, std::string>> channel_arguments;
  AccessLog* access_log = nullptr;
};

// Parses TF Serving's --grpc_channel_arguments text; throws on an entry without '='.
std::vector<std::pair<std::string, std::string>> parse_channel_arguments(const std::string& text);

class GrpcServer {
 public:
  GrpcServer(ServerCore& core, GrpcOptions options);
  ~GrpcServer();
  void start();  // throws tessera::Error when the port cannot be bound
  int port() const;
  // Stops accepting calls and waits up to `drain_ms` for running ones.
  void stop(int drain_ms = 30000);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::serve
