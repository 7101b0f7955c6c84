#include "serve/rest_server.h"

#include <poll.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <thread>
#include <vector>

#include "serve/json_codec.h"
#include "support/error.h"
#include "support/cpus.h"

namespace tessera::serve {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

// ---- access log ----

AccessLog::AccessLog(const std::string& where) {
  if (where.empty()) return;
  if (where == "-" || where == "stderr") {
    out_ = stderr;
    return;
  }
  out_ = std::fopen(where.c_str(), "a");
  if (!out_) fail("cannot open access log '", where, "'");
  owned_ = true;
}

AccessLog::~AccessLog() {
  if (owned_) std::fclose(out_);
}

void AccessLog::write(const std::string& api, const std::string& peer, const std::string& method,
                      const std::string& path, int status, size_t bytes_in, size_t bytes_out, double latency_ms) {
  if (!out_) return;
  char when[32];
  std::time_t t = std::time(nullptr);
  std::tm tm;
  gmtime_r(&t, &tm);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  // error_json's escaping, reused for the two client-controlled strings.
  auto quoted = [](const std::string& s) {
    std::string j = error_json(s);  // {"error":"..."}
    return j.substr(9, j.size() - 10);
  };
  std::string line = str_cat("{\"time\":\"", when, "\",\"api\":\"", api, "\",\"peer\":\"", peer, "\",\"method\":",
                             quoted(method), ",\"path\":", quoted(path), ",\"status\":", status, ",\"bytes_in\":",
                             bytes_in, ",\"bytes_out\":", bytes_out, ",\"latency_ms\":", latency_ms, "}\n");
  std::lock_guard<std::mutex> lock(mu_);
  std::fputs(line.c_str(), out_);
  std::fflush(out_);
}

// ---- blocking pool ----

BlockingPool::~BlockingPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void BlockingPool::post(std::function<void()> job) {
  std::unique_lock lock(mu_);
  jobs_.push_back(std::move(job));
  if (jobs_.size() > idle_ && static_cast<int>(threads_.size()) < max_threads_) {
    threads_.emplace_back([this] { loop(); });  // takes a job as soon as it runs
    return;
  }
  lock.unlock();
  cv_.notify_one();
}

void BlockingPool::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    --idle_;
    if (jobs_.empty()) return;  // stopping
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

// ---- server ----

struct RestServer::Impl {
  Impl(ServerCore& core, RestOptions o) : options(std::move(o)), routes(core, options.routes) {}

  RestOptions options;
  HttpRoutes routes;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::unique_ptr<BlockingPool> handlers;  // null: handle on the io threads
  std::atomic<int> in_flight{0};
  std::atomic<bool> stopping{false};
  int bound_port = 0;

  void do_accept();
};

namespace {

const char* reason_for(int status) {
  switch (status) {
    case 499: return "Client Closed Request";
    case 429: return "Too Many Requests";
    default: return nullptr;
  }
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(RestServer::Impl& server, tcp::socket&& socket) : server_(server), stream_(std::move(socket)) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void run() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::read_request, shared_from_this()));
  }

 private:
  using ms = std::chrono::milliseconds;
  static constexpr uint64_t kMaxRead = 65536;  // Beast's largest read_some into a DynamicBuffer

  void read_request() {
    if (server_.stopping) return close();
    parser_.emplace();
    parser_->body_limit(server_.options.max_body_bytes);
    parser_->header_limit(64 * 1024);
    // Covers the keep-alive idle wait too: a client that trickles its headers is cut off.
    stream_.expires_after(ms(server_.options.header_timeout_ms));
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, size_t) {
    if (ec) return on_read_error(ec);
    start_ = Clock::now();
    if (parser_->is_done()) return handle();
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(ms(server_.options.body_timeout_ms));
      net::async_write(stream_, net::buffer(kContinue, sizeof kContinue - 1),
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (ec) return self->close();
                         self->read_body();
                       });
      return;
    }
    read_body();
  }

  void read_body() {
    // Beast reads at most the buffer's free capacity per read_some (never under 512 bytes, never
    // over 64 KiB), and the parser drains the buffer into the body after each read, so a
    // buffer sized by the header read stays ~512 bytes: a 580 KB predict body took ~1200
    // reads, each a recvmsg plus a timer and epoll round trip (~5 ms in all). Room for 64 KiB
    // reads cuts that to ~10.
    buffer_.reserve(static_cast<size_t>(std::min<uint64_t>(parser_->content_length().value_or(kMaxRead), kMaxRead)));
    stream_.expires_after(ms(server_.options.body_timeout_ms));
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_body, shared_from_this()));
  }

  void on_body(beast::error_code ec, size_t) {
    if (ec) return on_read_error(ec);
    handle();
  }

  void on_read_error(beast::error_code ec) {
    // Clean close between requests, a client gone mid-request, or a read deadline: just close.
    if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == beast::error::timeout ||
        ec.category() != http::make_error_code(http::error::bad_target).category())
      return close();
    if (start_ == Clock::time_point()) start_ = Clock::now();
    if (ec == http::error::body_limit)
      return send_error(413, str_cat("Request body too large (limit ", server_.options.max_body_bytes, " bytes)"));
    if (ec == http::error::header_limit) return send_error(431, "Request headers too large");
    send_error(400, str_cat("Malformed HTTP request: ", ec.message()));
  }

  // Answers and closes: the rest of the request (if any) is not read.
  void send_error(int status, const std::string& message) {
    keep_alive_ = false;
    unread_ = true;
    HttpResponse r{status, "application/json", error_json(message)};
    method_ = parser_ && parser_->is_header_done() ? std::string(parser_->get().method_string()) : "?";
    target_ = parser_ && parser_->is_header_done() ? std::string(parser_->get().target()) : "?";
    counted_ = false;
    write(r, 11);
  }

  void handle() {
    auto req = parser_->release();
    stream_.expires_never();
    keep_alive_ = req.keep_alive();
    method_ = std::string(req.method_string());
    target_ = std::string(req.target());
    bytes_in_ = req.body().size();
    HttpRequest hr{method_, target_, std::move(req.body())};
    counted_ = true;
    int now = ++server_.in_flight;
    int limit = server_.options.max_concurrent_requests;
    HttpResponse r;
    if (limit > 0 && now > limit) {
      r = {429, "application/json", error_json(str_cat("Too many concurrent requests (limit ", limit, ")"))};
    } else {
      CallContext ctx;
      ctx.entrypoint = "REST";
      if (server_.options.timeout_ms > 0) ctx.deadline = start_ + ms(server_.options.timeout_ms);
      // A client that closed its end no longer wants the answer (poll is cheap, no read).
      int fd = stream_.socket().native_handle();
      ctx.cancelled = [fd] {
        pollfd p{fd, POLLRDHUP, 0};
        return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
      };
      if (server_.handlers && !(server_.options.inline_when_idle && now == 1)) {
        // The call may wait (batch queue): off the io threads; the answer is written on the strand.
        unsigned version = req.version();
        server_.handlers->post([self = shared_from_this(), hr = std::move(hr), ctx, version]() mutable {
          auto res = std::make_shared<HttpResponse>(self->server_.routes.handle(hr, ctx));
          net::post(self->stream_.get_executor(), [self, res, version] { self->write(*res, version); });
        });
        return;
      }
      r = server_.routes.handle(hr, ctx);
    }
    write(r, req.version());
  }

  void write(const HttpResponse& r, unsigned version) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(version);
    res->result(static_cast<unsigned>(r.status));
    if (const char* reason = reason_for(r.status)) res->reason(reason);
    res->set(http::field::server, "tessera");
    res->set(http::field::content_type, r.content_type);
    res->keep_alive(keep_alive_ && !server_.stopping);
    res->body() = r.body;
    res->prepare_payload();
    status_ = r.status;
    bytes_out_ = r.body.size();
    stream_.expires_after(ms(server_.options.body_timeout_ms));
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      self->on_write(ec, res->keep_alive());
    });
  }

  void on_write(beast::error_code ec, bool keep_alive) {
    if (server_.options.access_log) {
      double latency = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
      server_.options.access_log->write("REST", peer_, method_, target_, status_, bytes_in_, bytes_out_, latency);
    }
    if (counted_) --server_.in_flight;
    counted_ = false;
    start_ = Clock::time_point();
    if (!ec && unread_) return linger();
    if (ec || !keep_alive) return close();
    read_request();
  }

  // After an error answer to a request whose body was not read: closing at once would make
  // the kernel reset the connection (unread data), and the client could lose the answer. So
  // stop sending, discard what the client still sends for a bounded time and size, then close.
  void linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(ms(1000));
    discard_ = std::make_shared<std::array<char, 65536>>();
    read_discard(0);
  }

  void read_discard(size_t total) {
    stream_.async_read_some(net::buffer(*discard_), [self = shared_from_this(), total](beast::error_code ec, size_t n) {
      if (ec || total + n > (64u << 20)) return self->stream_.close();
      self->read_discard(total + n);
    });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  RestServer::Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string peer_, method_, target_;
  Clock::time_point start_;
  bool keep_alive_ = false, counted_ = false, unread_ = false;
  std::shared_ptr<std::array<char, 65536>> discard_;
  int status_ = 0;
  size_t bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace

void RestServer::Impl::do_accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (stopping || ec == net::error::operation_aborted) return;
    if (!ec) {
      // An answer goes out as soon as it is written, not held back by Nagle's algorithm
      // waiting for the client's delayed ACK of the previous segment.
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(*this, std::move(socket))->run();
    }
    do_accept();
  });
}

RestServer::RestServer(ServerCore& core, RestOptions options)
    : impl_(std::make_unique<Impl>(core, std::move(options))) {}

RestServer::~RestServer() { stop(0); }

void RestServer::start() {
  Impl& s = *impl_;
  beast::error_code ec;
  auto address = net::ip::make_address(s.options.host, ec);
  if (ec) fail("REST server: bad host '", s.options.host, "': ", ec.message());
  tcp::endpoint ep(address, static_cast<unsigned short>(s.options.port));
  s.acceptor.open(ep.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(ep, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) fail("REST server: cannot listen on ", s.options.host, ":", s.options.port, ": ", ec.message());
  s.bound_port = s.acceptor.local_endpoint().port();
  s.work.emplace(s.ioc.get_executor());
  s.do_accept();
  int n = s.options.num_threads > 0 ? s.options.num_threads : cpu_count();
  if (s.options.handler_threads > 0) s.handlers = std::make_unique<BlockingPool>(s.options.handler_threads);
  for (int i = 0; i < n; ++i) s.threads.emplace_back([&s] { s.ioc.run(); });
}

int RestServer::port() const { return impl_->bound_port; }

void RestServer::stop(int drain_ms) {
  Impl& s = *impl_;
  if (s.threads.empty()) return;
  s.stopping = true;
  net::post(s.ioc, [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
  });
  // In-flight requests finish and are answered (with Connection: close); idle keep-alive
  // connections are simply dropped when the io_context stops.
  auto until = Clock::now() + std::chrono::milliseconds(drain_ms);
  while (s.in_flight > 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
  s.handlers.reset();  // calls still running finish; their answers are dropped (io stopped)
}

}  // namespace tessera::serve
