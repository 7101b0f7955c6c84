// Closed-loop gRPC load generator for bench/serve.py: N concurrent clients each keep exactly
// one unary call in flight against PredictionService/Predict for a fixed duration, re-sending
// the same pre-serialized PredictRequest (read from a file), so the client does no protobuf
// work and stays off the server's CPU budget as far as a client can. It uses gRPC's generic
// (byte-level) API, hence links grpc++ only; bench/serve.py compiles it with g++ and caches
// the binary.
//
// usage: serve_load HOST:PORT REQUEST_FILE CLIENTS SECONDS [WARMUP_SECONDS] [CHANNELS]
// Prints one JSON object: requests (ok), errors (by gRPC code), seconds, per-request latency
// percentiles in ms (each call timed from send to status) over the calls completed in the
// measured window, response bytes of the last call.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
const char kMethod[] = "/tensorflow.serving.PredictionService/Predict";

// One client: a call slot that is re-armed as soon as its previous call finishes.
struct Call {
  grpc::ClientContext ctx;
  grpc::ByteBuffer reply;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  Clock::time_point sent;
  int client = 0;
};

struct Stats {
  std::vector<double> latencies_ms;
  std::map<int, long> errors;
  size_t last_reply_bytes = 0;
};

// Drives `clients` calls on one completion queue until `stop_at`; completions recorded only
// from `record_from` on (warm-up excluded).
void drive(grpc::GenericStub* stub, const grpc::ByteBuffer& request, int clients, Clock::time_point record_from,
           Clock::time_point stop_at, Stats* stats) {
  grpc::CompletionQueue cq;
  auto start = [&](int client) {
    auto* call = new Call;
    call->client = client;
    call->sent = Clock::now();
    // A server that never answers must not hang the benchmark: the call fails as an error.
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    call->reader = stub->PrepareUnaryCall(&call->ctx, kMethod, request, &cq);
    call->reader->StartCall();
    call->reader->Finish(&call->reply, &call->status, call);
  };
  for (int i = 0; i < clients; ++i) start(i);
  int live = clients;
  void* tag;
  bool ok;
  while (live > 0 && cq.Next(&tag, &ok)) {
    std::unique_ptr<Call> call(static_cast<Call*>(tag));
    const auto now = Clock::now();
    // Every call that completes inside the window counts, whenever it was sent (as wrk counts):
    // counting only calls sent after the warm-up would drop about rate x latency of them,
    // a large share when latency nears the window (64 clients on a slow model).
    if (now >= record_from && now <= stop_at) {
      if (call->status.ok()) {
        stats->latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - call->sent).count());
        stats->last_reply_bytes = call->reply.Length();
      } else {
        ++stats->errors[call->status.error_code()];
      }
    }
    if (now < stop_at)
      start(call->client);
    else
      --live;
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s HOST:PORT REQUEST_FILE CLIENTS SECONDS [WARMUP_SECONDS] [CHANNELS]\n", argv[0]);
    return 2;
  }
  const std::string target = argv[1];
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "serve_load: cannot read %s\n", argv[2]);
    return 2;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  const int clients = std::atoi(argv[3]);
  const double seconds = std::atof(argv[4]);
  const double warmup = argc > 5 ? std::atof(argv[5]) : 1.0;
  // A few HTTP/2 connections so one connection's flow control / framing does not serialise
  // 64 clients; at most one per client.
  const int channels = std::max(1, std::min(clients, argc > 6 ? std::atoi(argv[6]) : 4));

  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  std::vector<std::shared_ptr<grpc::Channel>> chans;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int i = 0; i < channels; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // a separate TCP connection per channel
    args.SetInt("tessera.load_channel", i);             // distinct args: no subchannel sharing
    chans.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
    if (!chans.back()->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "serve_load: cannot connect to %s\n", target.c_str());
      return 1;
    }
    stubs.push_back(std::make_unique<grpc::GenericStub>(chans.back()));
  }
  const auto t0 = Clock::now();
  const auto record_from = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup));
  const auto stop_at = record_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  // One thread per channel, clients spread evenly over them.
  std::vector<Stats> stats(channels);
  std::vector<std::thread> threads;
  for (int i = 0; i < channels; ++i) {
    int n = clients / channels + (i < clients % channels ? 1 : 0);
    threads.emplace_back(drive, stubs[i].get(), std::cref(request), n, record_from, stop_at, &stats[i]);
  }
  for (auto& t : threads) t.join();
  Stats all;
  for (auto& s : stats) {
    all.latencies_ms.insert(all.latencies_ms.end(), s.latencies_ms.begin(), s.latencies_ms.end());
    for (auto [code, n] : s.errors) all.errors[code] += n;
    all.last_reply_bytes = std::max(all.last_reply_bytes, s.last_reply_bytes);
  }
  const size_t n = all.latencies_ms.size();
  double mean = 0;
  for (double x : all.latencies_ms) mean += x;
  mean = n ? mean / n : 0;
  std::printf("{\"requests\": %zu, \"seconds\": %.6f, \"clients\": %d, \"channels\": %d, \"mean_ms\": %.4f, ", n, seconds,
              clients, channels, mean);
  std::printf("\"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, ", percentile(all.latencies_ms, 50),
              percentile(all.latencies_ms, 90), percentile(all.latencies_ms, 99));
  std::printf("\"reply_bytes\": %zu, \"errors\": {", all.last_reply_bytes);
  bool first = true;
  for (auto [code, cnt] : all.errors) {
    std::printf("%s\"%d\": %ld", first ? "" : ", ", code, cnt);
    first = false;
  }
  std::printf("}}\n");
  return 0;
}
