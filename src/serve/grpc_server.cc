#include "serve/grpc_server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>

#include <chrono>
#include <climits>
#include <thread>

#include "serve/rest_server.h"
#include "support/error.h"
#include "tensorflow_serving/apis/model_service.grpc.pb.h"
#include "tensorflow_serving/apis/prediction_service.grpc.pb.h"
#include "support/cpus.h"

namespace tessera::serve {

namespace {

using Clock = std::chrono::steady_clock;

grpc::Status to_grpc(const ServeStatus& st) {
  // TF's canonical codes are gRPC's numbers.
  return st.ok() ? grpc::Status::OK : grpc::Status(static_cast<grpc::StatusCode>(st.code), st.message);
}

CallContext call_context(grpc::ServerContext* context) {
  CallContext ctx;
  ctx.entrypoint = "GRPC";
  auto deadline = context->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    // gRPC gives a wall-clock deadline; the core works on the steady clock.
    auto left = deadline - std::chrono::system_clock::now();
    ctx.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
  }
  ctx.cancelled = [context] { return context->IsCancelled(); };
  return ctx;
}

// Runs one call of the core: logs it (with the messages' sizes) and turns an escaping exception
// into INTERNAL.
template <typename Request, typename Response, typename F>
grpc::Status run_call(AccessLog* log, grpc::ServerContext* context, const char* method, const Request& request,
                      const Response& response, F&& body) {
  auto start = Clock::now();
  grpc::Status st;
  try {
    st = to_grpc(body());
  } catch (const std::exception& e) {
    st = grpc::Status(grpc::StatusCode::INTERNAL, e.what());
  }
  if (log && log->enabled()) {
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    log->write("GRPC", context->peer(), "POST", method, static_cast<int>(st.error_code()), request.ByteSizeLong(),
               response.ByteSizeLong(), ms);
  }
  return st;
}

class PredictionServiceImpl final : public tfs::PredictionService::Service {
 public:
  PredictionServiceImpl(ServerCore& core, AccessLog* log) : core_(core), log_(log) {}

  grpc::Status Predict(grpc::ServerContext* c, const tfs::PredictRequest* req, tfs::PredictResponse* resp) override {
    return run_call(log_, c, "/tensorflow.serving.PredictionService/Predict", *req, *resp,
                    [&] { return core_.predict(*req, resp, call_context(c)); });
  }
  grpc::Status Classify(grpc::ServerContext* c, const tfs::ClassificationRequest* req,
                        tfs::ClassificationResponse* resp) override {
    return run_call(log_, c, "/tensorflow.serving.PredictionService/Classify", *req, *resp,
                    [&] { return core_.classify(*req, resp, call_context(c)); });
  }
  grpc::Status Regress(grpc::ServerContext* c, const tfs::RegressionRequest* req,
                       tfs::RegressionResponse* resp) override {
    return run_call(log_, c, "/tensorflow.serving.PredictionService/Regress", *req, *resp,
                    [&] { return core_.regress(*req, resp, call_context(c)); });
  }
  grpc::Status MultiInference(grpc::ServerContext* c, const tfs::MultiInferenceRequest* req,
                              tfs::MultiInferenceResponse* resp) override {
    return run_call(log_, c, "/tensorflow.serving.PredictionService/MultiInference", *req, *resp,
                    [&] { return core_.multi_inference(*req, resp, call_context(c)); });
  }
  grpc::Status GetModelMetadata(grpc::ServerContext* c, const tfs::GetModelMetadataRequest* req,
                                tfs::GetModelMetadataResponse* resp) override {
    return run_call(log_, c, "/tensorflow.serving.PredictionService/GetModelMetadata", *req, *resp,
                    [&] { return core_.get_model_metadata(*req, resp); });
  }

 private:
  ServerCore& core_;
  AccessLog* log_;
};

class ModelServiceImpl final : public tfs::ModelService::Service {
 public:
  ModelServiceImpl(ServerCore& core, AccessLog* log) : core_(core), log_(log) {}

  grpc::Status GetModelStatus(grpc::ServerContext* c, const tfs::GetModelStatusRequest* req,
                              tfs::GetModelStatusResponse* resp) override {
    return run_call(log_, c, "/tensorflow.serving.ModelService/GetModelStatus", *req, *resp,
                    [&] { return core_.get_model_status(*req, resp); });
  }
  grpc::Status HandleReloadConfigRequest(grpc::ServerContext* c, const tfs::ReloadConfigRequest* req,
                                         tfs::ReloadConfigResponse* resp) override {
    return run_call(log_, c, "/tensorflow.serving.ModelService/HandleReloadConfigRequest", *req, *resp,
                    [&] { return core_.reload_config(*req, resp); });
  }
  grpc::Status ListModelNames(grpc::ServerContext* c, const tfs::ListModelNamesRequest* req,
                              tfs::ListModelNamesResponse* resp) override {
    return run_call(log_, c, "/tensorflow.serving.ModelService/ListModelNames", *req, *resp,
                    [&] { return core_.list_model_names(*req, resp); });
  }

 private:
  ServerCore& core_;
  AccessLog* log_;
};

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return s.size() <= 10;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_channel_arguments(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? text.size() : comma + 1;
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) fail("--grpc_channel_arguments: '", item, "' is not key=value");
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

struct GrpcServer::Impl {
  Impl(ServerCore& core, GrpcOptions o)
      : options(std::move(o)), prediction(core, options.access_log), model(core, options.access_log) {}
  GrpcOptions options;
  PredictionServiceImpl prediction;
  ModelServiceImpl model;
  std::unique_ptr<grpc::Server> server;
  int bound_port = 0;
};

GrpcServer::GrpcServer(ServerCore& core, GrpcOptions options)
    : impl_(std::make_unique<Impl>(core, std::move(options))) {}

GrpcServer::~GrpcServer() { stop(0); }

void GrpcServer::start() {
  Impl& s = *impl_;
  grpc::ServerBuilder builder;
  std::string address = s.options.host + ":" + std::to_string(s.options.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &s.bound_port);
  builder.RegisterService(&s.prediction);
  builder.RegisterService(&s.model);
  // Large batches exceed gRPC's 4 MiB default; TF Serving lifts both limits to INT32_MAX.
  builder.SetMaxReceiveMessageSize(INT_MAX);
  builder.SetMaxSendMessageSize(INT_MAX);
  // A synchronous call holds its thread while it waits in the batch queue, and gRPC answers
  // RESOURCE_EXHAUSTED to calls beyond the thread quota. TF Serving's default (4 x CPUs) is 8
  // threads on a 2-core machine: at 64 clients most calls were rejected and batches never
  // grew past ~8 rows. So the default lets kMinDefaultThreads calls wait together; idle
  // threads only sleep.
  constexpr int kMinDefaultThreads = 1024;
  int threads = s.options.max_threads > 0
                    ? s.options.max_threads
                    : std::max(kMinDefaultThreads, 4 * cpu_count());
  grpc::ResourceQuota quota("tessera_grpc");
  quota.SetMaxThreads(std::max(threads, 2));
  builder.SetResourceQuota(quota);
  // grpc++ ends a sync server's idle threads beyond MAX_POLLERS (default 2) and starts new ones
  // when calls arrive: under 64 closed-loop clients each batch's burst of calls created and
  // joined ~60 threads (clone, stacks, per-thread malloc arenas), ~15% of the server's cycles.
  // Keeping up to kIdlePollers idle threads asleep instead costs their stacks' touched pages.
  constexpr int kIdlePollers = 256;
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, std::min(kIdlePollers, threads));
  for (const auto& [k, v] : s.options.channel_arguments) {
    if (all_digits(v)) builder.AddChannelArgument(k, std::stoi(v));
    else builder.AddChannelArgument(k, v);
  }
  s.server = builder.BuildAndStart();
  if (!s.server || s.bound_port == 0) fail("gRPC server: cannot listen on ", address);
}

int GrpcServer::port() const { return impl_->bound_port; }

void GrpcServer::stop(int drain_ms) {
  Impl& s = *impl_;
  if (!s.server) return;
  // Shutdown(deadline) refuses new calls, waits for running ones until the deadline, then
  // cancels what is left.
  s.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(drain_ms));
  s.server->Wait();
  s.server.reset();
}

}  // namespace tessera::serve
