// The transport-independent model server (issue 6): the models and versions it serves, their
// life cycle (polling, load + warm-up, labels, unload after in-flight calls), batching, and the
// TF Serving API calls on TF Serving's own request/response messages. The REST and gRPC front
// ends (rest_server.*, grpc_server.*) translate their wire formats to these calls and map
// ServeStatus codes to HTTP / gRPC statuses. Every method is thread-safe.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "tensorflow_serving/apis/classification.pb.h"
#include "tensorflow_serving/apis/get_model_metadata.pb.h"
#include "tensorflow_serving/apis/get_model_status.pb.h"
#include "tensorflow_serving/apis/inference.pb.h"
#include "tensorflow_serving/apis/model_management.pb.h"
#include "tensorflow_serving/apis/predict.pb.h"
#include "tensorflow_serving/apis/regression.pb.h"
#include "tensorflow_serving/config/model_server_config.pb.h"
#include "xla/tsl/protobuf/error_codes.pb.h"

namespace tessera::serve {

namespace tfs = ::tensorflow::serving;

// A call's outcome: TF's canonical code (the numbers gRPC uses) and a message for the client.
struct ServeStatus {
  ::tensorflow::error::Code code = ::tensorflow::error::OK;
  std::string message;
  bool ok() const { return code == ::tensorflow::error::OK; }
};

// What a front end knows about one call: its deadline and whether the client went away, so a
// queued request can be dropped instead of computed for nobody.
struct CallContext {
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::function<bool()> cancelled;  // may be empty
  std::string entrypoint;           // "REST" or "GRPC", for metrics
};

struct ServerOptions {
  // Either a single model (TF Serving's --model_name/--model_base_path) ...
  std::string model_name = "default";
  std::string model_base_path;
  // ... or a text ModelServerConfig file (overrides the two above).
  std::string model_config_file;
  int model_config_file_poll_wait_seconds = 0;  // 0: read once
  int file_system_poll_wait_seconds = 1;        // 0: scan once
  bool enable_batching = false;
  std::string batching_parameters_file;  // text BatchingParameters
  bool enable_model_warmup = true;
  int num_request_iterations_for_warmup = 1;
  bool allow_version_labels_for_unavailable_models = false;
  // Threads for op-level parallelism, 0: every core. Like TensorFlow's one intra-op pool they
  // are shared by the runs that may execute at once (see intra_op_threads_per_run).
  int intra_op_threads = 0;
  // Un-batched model runs at once (threads that execute them, at least 1; see run_threads.h).
  // With more than 1, each run thread executes on its own copy of the signature's plan
  // (LoadOptions::concurrent_runs), e.g. inter-op 2 for small models on 2 cores.
  int run_threads = 1;
  std::string target = "cpu";
};

// Intra-op threads each run gets when `concurrent_runs` runs may execute at once (the larger of
// the un-batched run threads and the batch threads): an equal share of `intra_op_threads`
// (0: every core), at least 1. Each run owns a fixed OpenMP team, so giving every run all the
// cores would put runs x cores threads on the cores: on 2 cores, two batch threads (TF
// Serving's default num_batch_threads) with 2 threads each ran MobileNetV2 at 64 clients at
// 750-990 requests/s, one thread each at 1190-1260.
int intra_op_threads_per_run(int intra_op_threads, int concurrent_runs);

class ServerCore {
 public:
  // Loads the initial models (every servable's first versions are loaded before it returns,
  // so a server that says "ready" can answer) and starts the polling threads.
  static std::unique_ptr<ServerCore> create(const ServerOptions& options);
  virtual ~ServerCore() = default;

  virtual ServeStatus predict(const tfs::PredictRequest& request, tfs::PredictResponse* response,
                              const CallContext& ctx) = 0;
  virtual ServeStatus classify(const tfs::ClassificationRequest& request, tfs::ClassificationResponse* response,
                               const CallContext& ctx) = 0;
  virtual ServeStatus regress(const tfs::RegressionRequest& request, tfs::RegressionResponse* response,
                              const CallContext& ctx) = 0;
  virtual ServeStatus multi_inference(const tfs::MultiInferenceRequest& request,
                                      tfs::MultiInferenceResponse* response, const CallContext& ctx) = 0;
  virtual ServeStatus get_model_metadata(const tfs::GetModelMetadataRequest& request,
                                         tfs::GetModelMetadataResponse* response) = 0;
  virtual ServeStatus get_model_status(const tfs::GetModelStatusRequest& request,
                                       tfs::GetModelStatusResponse* response) = 0;
  virtual ServeStatus reload_config(const tfs::ReloadConfigRequest& request, tfs::ReloadConfigResponse* response) = 0;
  // ModelService.ListModelNames: the models with an AVAILABLE version, sorted.
  virtual ServeStatus list_model_names(const tfs::ListModelNamesRequest& request,
                                       tfs::ListModelNamesResponse* response) = 0;

  // The Prometheus text page (TF Serving's metric names and labels, plus Tessera's own).
  virtual std::string prometheus_text() const = 0;
  // Stops polling and waits for in-flight calls (graceful shutdown).
  virtual void shutdown() = 0;
};

}  // namespace tessera::serve
