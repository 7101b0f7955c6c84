// The REST front end (issue 6): an HTTP/1.1 server (Boost.Beast on an asio thread pool, with
// keep-alive) that hands each request to HttpRoutes. Guards against misbehaving clients: a body
// size limit (413), header/body read deadlines (slow-loris), a cap on concurrent requests (429)
// and a per-request timeout that becomes the call's deadline. Also the structured access log
// that the gRPC front end shares.
#pragma once
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serve/http_routes.h"

namespace tessera::serve {

// One JSON line per request, to a file or stderr; thread-safe.
class AccessLog {
 public:
  // "" : off; "-" or "stderr": standard error; else a file (appended).
  explicit AccessLog(const std::string& where);
  ~AccessLog();
  bool enabled() const { return out_ != nullptr; }
  void write(const std::string& api, const std::string& peer, const std::string& method, const std::string& path,
             int status, size_t bytes_in, size_t bytes_out, double latency_ms);

 private:
  std::mutex mu_;
  FILE* out_ = nullptr;
  bool owned_ = false;
};

// Threads for work that may block, started on demand up to a cap: each job wakes at most one
// idle thread (an io_context with many idle threads wakes many per event: with 128 REST io
// threads and 64 clients that was ~160 context switches per request).
class BlockingPool {
 public:
  explicit BlockingPool(int max_threads) : max_threads_(max_threads) {}
  ~BlockingPool();  // runs the jobs already posted, then joins
  void post(std::function<void()> job);

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  const int max_threads_;
  bool stop_ = false;
};

struct RestOptions {
  std::string host = "0.0.0.0";
  int port = 0;          // 0: pick a free port (see RestServer::port)
  // io threads; 0: one per hardware thread. TF Serving's default is 4 x CPUs; here that was
  // slower at every load (2 cores, batching off, wrk: MLP 882 / 3710 / 3649 req/s at 1 / 16 /
  // 64 clients with 8 threads against 2453 / 4814 / 4905 with 2; MobileNetV2 36 / 126 / 139
  // against 92 / 132 / 170): idle io threads are woken for every read of a request's body.
  int num_threads = 0;
  // > 0: requests are handled (and may wait, e.g. in the batch queue) on a separate pool that
  // grows on demand up to this many threads, so the io threads never block. 0: on the io threads.
  int handler_threads = 0;
  // With handler_threads: a request that arrives while no other is in flight runs on its io
  // thread (saves two thread hand-offs, ~80 us for the MLP); under load every request queues
  // for the pool in arrival order. Only for calls that never wait long (no batch queue).
  bool inline_when_idle = false;
  int timeout_ms = 30000;             // --rest_api_timeout_in_ms: the call's deadline
  size_t max_body_bytes = 1ull << 30;  // larger bodies get 413
  int header_timeout_ms = 30000;      // to receive a request's headers (and the idle wait before)
  int body_timeout_ms = 60000;        // to receive its body
  int max_concurrent_requests = 0;    // 0: unlimited; beyond it requests get 429
  RouteOptions routes;
  AccessLog* access_log = nullptr;  // may be null
};

class RestServer {
 public:
  RestServer(ServerCore& core, RestOptions options);
  ~RestServer();
  // Binds and starts serving; throws tessera::Error when the port cannot be bound.
  void start();
  int port() const;
  // Graceful stop: stop accepting, let in-flight requests finish (up to `drain_ms`), then close.
  void stop(int drain_ms = 30000);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::serve
