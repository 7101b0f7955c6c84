// `tessera serve`: a TensorFlow-Serving-compatible model server (issue 6). Flags and defaults
// follow tensorflow_model_server's; Tessera adds --port_file, client limits and an access log.
#include <google/protobuf/text_format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "serve/grpc_server.h"
#include "serve/rest_server.h"
#include "serve/server_core.h"
#include "support/error.h"
#include "tensorflow_serving/config/monitoring_config.pb.h"
#include "tools/cli.h"
#include "support/cpus.h"

namespace tessera::cli {

namespace {

struct Flag {
  const char* name;
  const char* fallback;  // TF Serving's default
  const char* help;
  bool is_bool = false;
};

const Flag kFlags[] = {
    {"port", "8500", "gRPC port (0: pick a free port)"},
    {"rest_api_port", "0", "REST port (0: REST off; auto: a free port); must differ from --port"},
    {"rest_api_num_threads", "0", "REST io threads (0: one per CPU; with batching, requests wait on up to max(128, 4 x CPUs) more)"},
    {"rest_api_timeout_in_ms", "30000", "REST call deadline"},
    {"model_name", "default", "model name (single-model mode)"},
    {"model_base_path", "", "folder of numbered version folders (single-model mode)"},
    {"model_config_file", "", "text ModelServerConfig (overrides --model_name/--model_base_path)"},
    {"model_config_file_poll_wait_seconds", "0", "re-read --model_config_file every N s (0: once)"},
    {"file_system_poll_wait_seconds", "1", "scan base paths for new versions every N s (0: once)"},
    {"enable_batching", "false", "batch concurrent requests", true},
    {"batching_parameters_file", "", "text BatchingParameters"},
    {"monitoring_config_file", "", "text MonitoringConfig (Prometheus page on the REST port)"},
    {"grpc_max_threads", "0", "gRPC worker threads (0: max(1024, 4 x CPUs))"},
    {"grpc_channel_arguments", "", "k=v,k=v gRPC server arguments"},
    {"enable_model_warmup", "true", "replay assets.extra/tf_serving_warmup_requests at load", true},
    {"num_request_iterations_for_warmup", "1", "warm-up replays per record"},
    {"allow_version_labels_for_unavailable_models", "false", "labels may name versions not yet loaded", true},
    {"tensorflow_intra_op_parallelism", "0", "intra-op threads, shared equally by the executions that may run at once (0: every core)"},
    {"tensorflow_inter_op_parallelism", "0", "un-batched model executions at once (0: 1)"},
    // Tessera's own.
    {"host", "0.0.0.0", "address both servers bind"},
    {"port_file", "", "after start-up, write {\"grpc\": p, \"rest\": q} (the bound ports) here"},
    {"target", "cpu", "execution target: cpu or reference"},
    {"rest_api_max_body_bytes", "1073741824", "larger request bodies get HTTP 413"},
    {"rest_api_header_timeout_in_ms", "30000", "time to send request headers (slow clients are cut off)"},
    {"rest_api_body_timeout_in_ms", "60000", "time to send a request body"},
    {"max_concurrent_requests", "0", "REST requests in progress beyond this get HTTP 429 (0: no limit)"},
    {"access_log", "", "structured access log: a file, or '-' for stderr (default: off)"},
    {"drain_timeout_in_ms", "30000", "on SIGTERM/SIGINT, how long in-flight calls may finish"},
};

// TF Serving flags accepted for compatibility but without effect here.
const char* const kIgnored[] = {"enable_profiler", "flush_filesystem_caches", "remove_unused_fields_from_bundle_metagraph",
                                "xla_cpu_compilation_enabled", "enable_signature_method_name_check",
                                "tensorflow_session_parallelism",
                                "saved_model_tags", "per_process_gpu_memory_fraction", "num_load_threads",
                                "num_unload_threads", "max_num_load_retries", "load_retry_interval_micros"};

void print_help() {
  std::printf("usage: tessera serve --model_base_path DIR [--model_name NAME] | --model_config_file FILE [flags]\n\n");
  for (const Flag& f : kFlags) std::printf("  --%-44s %s (default: %s)\n", f.name, f.help, *f.fallback ? f.fallback : "\"\"");
  std::printf("\nAccepted and ignored (TF Serving compatibility):");
  for (const char* name : kIgnored) std::printf(" --%s", name);
  std::printf("\n");
}

class Flags {
 public:
  Flags(int argc, char** argv) {
    for (const Flag& f : kFlags) values_[f.name] = f.fallback;
    for (int i = 0; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) fail("unexpected argument '", a, "' (flags are --name=value)");
      a = a.substr(2);
      std::string name = a, value;
      bool has_value = false;
      if (auto eq = a.find('='); eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_value = true;
      }
      bool ignored = std::find(std::begin(kIgnored), std::end(kIgnored), name) != std::end(kIgnored);
      const Flag* flag = nullptr;
      for (const Flag& f : kFlags)
        if (name == f.name) flag = &f;
      if (!flag && !ignored) fail("unknown flag --", name, " (see tessera serve --help)");
      if (!has_value) {
        if (flag && flag->is_bool) {
          value = "true";
        } else if (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0) {
          value = argv[++i];
        } else if (!ignored) {
          fail("flag --", name, " needs a value");
        }
      }
      if (ignored) {
        std::fprintf(stderr, "tessera serve: note: --%s has no effect in Tessera\n", name.c_str());
        continue;
      }
      if (flag->is_bool && value != "true" && value != "false" && value != "1" && value != "0")
        fail("flag --", name, ": expected true or false, got '", value, "'");
      values_[name] = value;
    }
  }

  std::string str(const std::string& name) const { return values_.at(name); }
  bool boolean(const std::string& name) const { return str(name) == "true" || str(name) == "1"; }
  long long integer(const std::string& name, long long lo = LLONG_MIN, long long hi = LLONG_MAX) const {
    const std::string v = str(name);
    try {
      size_t used = 0;
      long long x = std::stoll(v, &used);
      if (used != v.size() || x < lo || x > hi) throw std::invalid_argument(v);
      return x;
    } catch (const std::exception&) {
      fail("flag --", name, ": expected an integer in [", lo, ", ", hi, "], got '", v, "'");
    }
  }

 private:
  std::map<std::string, std::string> values_;
};

std::string read_text(const std::string& path, const char* what) {
  std::ifstream f(path);
  if (!f) fail(what, " '", path, "' cannot be read");
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Writes atomically (temp file + rename), so a test polling for the file never reads half of it.
void write_port_file(const std::string& path, int grpc_port, int rest_port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    if (!f) fail("--port_file '", path, "' cannot be written");
    f << "{\"grpc\": " << grpc_port << ", \"rest\": " << rest_port << "}\n";
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("--port_file '", path, "': rename failed");
}

}  // namespace

int cmd_serve(int argc, char** argv) {
  for (int i = 0; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      print_help();
      return 0;
    }
  Flags flags(argc, argv);

  serve::ServerOptions options;
  options.model_name = flags.str("model_name");
  options.model_base_path = flags.str("model_base_path");
  options.model_config_file = flags.str("model_config_file");
  if (options.model_base_path.empty() && options.model_config_file.empty())
    fail("give --model_base_path (with --model_name) or --model_config_file");
  options.model_config_file_poll_wait_seconds =
      static_cast<int>(flags.integer("model_config_file_poll_wait_seconds", 0, INT_MAX));
  options.file_system_poll_wait_seconds =
      static_cast<int>(flags.integer("file_system_poll_wait_seconds", INT_MIN, INT_MAX));
  options.enable_batching = flags.boolean("enable_batching");
  options.batching_parameters_file = flags.str("batching_parameters_file");
  options.enable_model_warmup = flags.boolean("enable_model_warmup");
  options.num_request_iterations_for_warmup =
      static_cast<int>(flags.integer("num_request_iterations_for_warmup", 1, INT_MAX));
  options.allow_version_labels_for_unavailable_models = flags.boolean("allow_version_labels_for_unavailable_models");
  options.intra_op_threads = static_cast<int>(flags.integer("tensorflow_intra_op_parallelism", 0, 4096));
  options.run_threads = static_cast<int>(flags.integer("tensorflow_inter_op_parallelism", 0, 256));
  options.target = flags.str("target");
  if (options.target != "cpu" && options.target != "reference")
    fail("--target '", options.target, "': expected cpu or reference");

  int grpc_port = static_cast<int>(flags.integer("port", 0, 65535));
  // TF Serving: REST port 0 means REST off. "auto" (Tessera's) binds a free port, which
  // --port_file then reports.
  bool rest_on = flags.str("rest_api_port") == "auto" || flags.integer("rest_api_port", 0, 65535) != 0;
  int rest_port = flags.str("rest_api_port") == "auto" ? 0 : static_cast<int>(flags.integer("rest_api_port", 0, 65535));
  if (rest_port != 0 && rest_port == grpc_port) fail("--rest_api_port and --port must differ (both ", rest_port, ")");

  std::string prometheus_path;
  if (!flags.str("monitoring_config_file").empty()) {
    ::tensorflow::serving::MonitoringConfig mc;
    std::string text = read_text(flags.str("monitoring_config_file"), "--monitoring_config_file");
    if (!google::protobuf::TextFormat::ParseFromString(text, &mc))
      fail("Error parsing text-format tensorflow.serving.MonitoringConfig in '", flags.str("monitoring_config_file"),
           "'");
    if (mc.prometheus_config().enable()) {
      prometheus_path = mc.prometheus_config().path().empty() ? "/monitoring/prometheus/metrics"
                                                              : mc.prometheus_config().path();
      if (prometheus_path[0] != '/') fail("--monitoring_config_file: the Prometheus path must start with '/'");
    }
  }

  serve::AccessLog access_log(flags.str("access_log"));
  int drain_ms = static_cast<int>(flags.integer("drain_timeout_in_ms", 0, INT_MAX));

  // Signals are taken by sigwait below; block them before any thread starts so every thread
  // inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<serve::ServerCore> core = serve::ServerCore::create(options);

  serve::GrpcOptions grpc_options;
  grpc_options.host = flags.str("host");
  grpc_options.port = grpc_port;
  grpc_options.max_threads = static_cast<int>(flags.integer("grpc_max_threads", 0, 100000));
  grpc_options.channel_arguments = serve::parse_channel_arguments(flags.str("grpc_channel_arguments"));
  grpc_options.access_log = &access_log;
  serve::GrpcServer grpc_server(*core, grpc_options);
  grpc_server.start();

  std::unique_ptr<serve::RestServer> rest_server;
  if (rest_on) {
    serve::RestOptions rest;
    rest.host = flags.str("host");
    rest.port = rest_port;
    rest.num_threads = static_cast<int>(flags.integer("rest_api_num_threads", 0, 100000));
    // With batching a REST request waits in the batch queue, so it is handled on a pool that
    // lets up to 128 requests wait, while the io threads stay few (see RestOptions): 128 io
    // threads with 64 clients made asio wake idle threads ~90-160 times per request (MLP, 64
    // clients, 2 shared cores, medians of 3: ~1.1k req/s vs ~3.2k without batching; ~5.6k now).
    // Without batching a call that ran on its io thread blocked it until the model had run, so
    // only as many requests as io threads were read at a time and asio's event order chose the
    // next: at 64 clients ResNet50 p50 440-610 ms, p99 1.8-3.6 s. A pool of 2 x CPUs reads every
    // request and runs them in arrival order (p50 390-410 ms, p99 420-450 ms; MobileNetV2 p99
    // 380-460 -> 220 ms; the MLP 3.5-5.5k -> 6.9-8.2k req/s); an idle server still runs a
    // request on its io thread (inline_when_idle).
    const int cpus = cpu_count();
    if (options.enable_batching) {
      rest.handler_threads = std::max(128, 4 * cpus);
    } else {
      rest.handler_threads = 2 * cpus;
      rest.inline_when_idle = true;
    }
    rest.timeout_ms = static_cast<int>(flags.integer("rest_api_timeout_in_ms", 0, INT_MAX));
    rest.max_body_bytes = static_cast<size_t>(flags.integer("rest_api_max_body_bytes", 1, LLONG_MAX));
    rest.header_timeout_ms = static_cast<int>(flags.integer("rest_api_header_timeout_in_ms", 1, INT_MAX));
    rest.body_timeout_ms = static_cast<int>(flags.integer("rest_api_body_timeout_in_ms", 1, INT_MAX));
    rest.max_concurrent_requests = static_cast<int>(flags.integer("max_concurrent_requests", 0, INT_MAX));
    rest.routes.prometheus_path = prometheus_path;
    rest.access_log = &access_log;
    rest_server = std::make_unique<serve::RestServer>(*core, rest);
    rest_server->start();
  } else if (!prometheus_path.empty()) {
    std::fprintf(stderr, "tessera serve: note: the Prometheus page needs --rest_api_port\n");
  }

  int bound_rest = rest_server ? rest_server->port() : 0;
  if (!flags.str("port_file").empty()) write_port_file(flags.str("port_file"), grpc_server.port(), bound_rest);
  std::fprintf(stderr, "tessera serve: ready: gRPC on port %d, REST %s%s\n", grpc_server.port(),
               rest_server ? "on port " : "off", rest_server ? std::to_string(bound_rest).c_str() : "");

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "tessera serve: %s: draining in-flight calls\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  // Stop accepting on both ports first, then let what is running finish.
  if (rest_server) rest_server->stop(drain_ms);
  grpc_server.stop(drain_ms);
  core->shutdown();
  std::fprintf(stderr, "tessera serve: stopped\n");
  return 0;
}

}  // namespace tessera::cli
