// The ServerCore implementation: TF Serving's calls on top of the model manager, the batch
// scheduler and the metrics.
#include "serve/server_core.h"

#include <algorithm>
#include <atomic>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <cstdio>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "frontend/tf/proto_convert.h"
#include "runtime/artifact.h"
#include "serve/batching.h"
#include "serve/metrics.h"
#include "serve/model_config.h"
#include "serve/model_manager.h"
#include "serve/run_threads.h"
#include "serve/status.h"
#include "serve/warmup.h"
#include "tensorflow_serving/apis/prediction_log.pb.h"
#include "support/cpus.h"

namespace tessera::serve {

namespace tfe = ::tensorflow::error;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kDefaultSignature = "serving_default";
constexpr const char* kClassifyMethod = "tensorflow/serving/classify";
constexpr const char* kRegressMethod = "tensorflow/serving/regress";

std::string signature_of(const tfs::ModelSpec& spec) {
  return spec.signature_name().empty() ? kDefaultSignature : spec.signature_name();
}

void echo_spec(const tfs::ModelSpec& request, const Servable& s, const std::string& signature, tfs::ModelSpec* out) {
  out->set_name(request.name());
  out->mutable_version()->set_value(s.version());
  out->set_signature_name(signature);
}

const Signature* find_signature(const Servable& s, const std::string& key, ServeStatus* st) {
  auto it = s.model().signatures().find(key);
  if (it != s.model().signatures().end()) return &it->second;
  *st = make_status(tfe::FAILED_PRECONDITION, "Serving signature key \"" + key + "\" not found.");
  return nullptr;
}

std::string keys_of(const std::vector<TensorSpec>& specs) {
  std::string out;
  for (const auto& s : specs) out += (out.empty() ? "" : ",") + s.key;
  return "{" + out + "}";
}

// Serialized tf.Examples of a classify/regress Input; context features merge into every
// example (serialized messages concatenate as a proto merge).
std::vector<std::string> serialized_examples(const tfs::Input& input, ServeStatus* st) {
  std::vector<std::string> out;
  if (input.kind_case() == tfs::Input::kExampleList) {
    for (const auto& e : input.example_list().examples()) out.push_back(e.SerializeAsString());
  } else if (input.kind_case() == tfs::Input::kExampleListWithContext) {
    const std::string context = input.example_list_with_context().context().SerializeAsString();
    for (const auto& e : input.example_list_with_context().examples()) out.push_back(context + e.SerializeAsString());
  }
  if (out.empty()) *st = make_status(tfe::INVALID_ARGUMENT, "Input is empty.");
  return out;
}

tensorflow::TensorInfo tensor_info(const TensorSpec& spec) {
  tensorflow::TensorInfo info;
  info.set_name(spec.tensor);
  info.set_dtype(static_cast<tensorflow::DataType>(static_cast<int>(spec.dtype)));
  auto* shape = info.mutable_tensor_shape();
  if (!spec.shape.known_rank)
    shape->set_unknown_rank(true);
  else
    for (int64_t d : spec.shape.dims) shape->add_dim()->set_size(d);
  return info;
}

class ServerCoreImpl : public ServerCore {
 public:
  explicit ServerCoreImpl(const ServerOptions& options);
  ~ServerCoreImpl() override { shutdown(); }

  ServeStatus predict(const tfs::PredictRequest& request, tfs::PredictResponse* response,
                      const CallContext& ctx) override;
  ServeStatus classify(const tfs::ClassificationRequest& request, tfs::ClassificationResponse* response,
                       const CallContext& ctx) override;
  ServeStatus regress(const tfs::RegressionRequest& request, tfs::RegressionResponse* response,
                      const CallContext& ctx) override;
  ServeStatus multi_inference(const tfs::MultiInferenceRequest& request, tfs::MultiInferenceResponse* response,
                              const CallContext& ctx) override;
  ServeStatus get_model_metadata(const tfs::GetModelMetadataRequest& request,
                                 tfs::GetModelMetadataResponse* response) override;
  ServeStatus get_model_status(const tfs::GetModelStatusRequest& request,
                               tfs::GetModelStatusResponse* response) override;
  ServeStatus reload_config(const tfs::ReloadConfigRequest& request, tfs::ReloadConfigResponse* response) override;
  ServeStatus list_model_names(const tfs::ListModelNamesRequest& request,
                               tfs::ListModelNamesResponse* response) override;
  std::string prometheus_text() const override { return metrics_.prometheus_text(); }
  void shutdown() override;

  void start();

 private:
  // Counts in-flight calls so shutdown can drain them.
  struct CallGuard {
    ServerCoreImpl* core;
    bool ok;
    explicit CallGuard(ServerCoreImpl* c) : core(c) {
      std::lock_guard lock(c->calls_mu_);
      ok = !c->stopping_;
      if (ok) ++c->in_flight_;
    }
    ~CallGuard() {
      if (!ok) return;
      std::lock_guard lock(core->calls_mu_);
      if (--core->in_flight_ == 0) core->calls_cv_.notify_all();
    }
  };

  template <typename F>
  ServeStatus call(const std::string& model, const char* api, const CallContext& ctx, F&& body);

  ServeStatus predict_on(const ServableHandle& s, const tfs::PredictRequest& request, tfs::PredictResponse* response,
                         const CallContext& ctx, bool batch);
  ServeStatus classify_on(const ServableHandle& s, const tfs::ModelSpec& spec, const tfs::Input& input,
                          tfs::ClassificationResult* result, tfs::ModelSpec* out_spec, const CallContext& ctx, bool batch);
  ServeStatus regress_on(const ServableHandle& s, const tfs::ModelSpec& spec, const tfs::Input& input,
                         tfs::RegressionResult* result, tfs::ModelSpec* out_spec, const CallContext& ctx, bool batch);
  ServeStatus multi_on(const ServableHandle& s, const tfs::MultiInferenceRequest& request,
                       tfs::MultiInferenceResponse* response, const CallContext& ctx, bool batch);
  // Runs a signature, through the batch queue when it can be batched.
  ServeStatus run_signature(const ServableHandle& s, const std::string& sig, const Signature& signature,
                            TensorMap inputs, TensorMap* outputs, const CallContext& ctx, bool batch);
  void warm_up(const ServableHandle& s);
  void plan_batch_sizes(const ServableHandle& s);
  void poll_config_file();

  ServerOptions options_;
  mutable Metrics metrics_;
  std::unique_ptr<BatchScheduler> batcher_;
  RunThreads run_threads_;  // un-batched runs execute here, not on the handler threads
  std::unique_ptr<ModelManager> manager_;

  std::mutex calls_mu_;
  std::condition_variable calls_cv_;
  int64_t in_flight_ = 0;
  bool stopping_ = false;
  bool shut_down_ = false;

  std::thread config_poller_;
  std::mutex config_mu_;
  std::condition_variable config_cv_;
  std::string config_text_;
};

ServerCoreImpl::ServerCoreImpl(const ServerOptions& options)
    : options_(options), run_threads_(options.run_threads) {
  if (options_.enable_batching) {
    tfs::BatchingParameters params;
    if (!options_.batching_parameters_file.empty())
      params = read_batching_parameters(options_.batching_parameters_file);
    batcher_ = std::make_unique<BatchScheduler>(BatchingOptions::from_proto(params), &metrics_);
  }
  LoadOptions lo;
  lo.target = options_.target;
  // As many runs of a signature at once as threads may call it: each on its own plan copy,
  // with its share of the intra-op threads.
  lo.concurrent_runs = std::max(run_threads_.size(), batcher_ ? batcher_->threads() : 1);
  lo.threads = intra_op_threads_per_run(options_.intra_op_threads, lo.concurrent_runs);
  std::fprintf(stderr, "tessera serve: up to %d model run(s) at once, %d intra-op thread(s) each\n", lo.concurrent_runs,
               lo.threads);
  manager_ = std::make_unique<ModelManager>(
      [lo](const std::string& path) {
        LoadOptions o = lo;
        if (is_artifact_file(path)) o.target = "";  // an artifact runs on the target it was compiled for
        auto model = Model::load(path, o);
        // Compile every signature now, so the first request does not pay for it.
        // One signature that cannot compile must not take the others down: its calls report it.
        if (model->compiled())
          for (const auto& [key, sig] : model->signatures()) {
            try {
              model->compiled_signature(key);
            } catch (const Error&) {
            }
          }
        return model;
      },
      [this](const ServableHandle& s) { warm_up(s); }, &metrics_, options_.allow_version_labels_for_unavailable_models);
}

void ServerCoreImpl::start() {
  manager_->set_log([](const std::string& line) { std::fprintf(stderr, "tessera serve: %s\n", line.c_str()); });
  tfs::ModelServerConfig config;
  if (!options_.model_config_file.empty()) {
    config_text_ = [&] {
      std::ifstream in(options_.model_config_file, std::ios::binary);
      if (!in) fail_code(ErrorCode::kNotFound, "cannot read model config file '", options_.model_config_file, "'");
      std::ostringstream ss;
      ss << in.rdbuf();
      return ss.str();
    }();
    config = parse_model_server_config(config_text_, options_.model_config_file);
  } else {
    TS_CHECK(!options_.model_base_path.empty(), "either a model config file or a model base path is needed");
    config = single_model_config(options_.model_name, options_.model_base_path);
  }
  ServeStatus st = manager_->apply_config(config);
  if (!st.ok()) fail("applying the model config: ", st.message);
  manager_->start_polling(options_.file_system_poll_wait_seconds);
  if (!options_.model_config_file.empty() && options_.model_config_file_poll_wait_seconds > 0)
    config_poller_ = std::thread([this] { poll_config_file(); });
}

void ServerCoreImpl::poll_config_file() {
  std::unique_lock lock(config_mu_);
  while (!config_cv_.wait_for(lock, std::chrono::seconds(options_.model_config_file_poll_wait_seconds),
                              [this] { return shut_down_; })) {
    std::ifstream in(options_.model_config_file, std::ios::binary);
    if (!in) continue;
    std::ostringstream ss;
    ss << in.rdbuf();
    if (ss.str() == config_text_) continue;
    try {
      auto config = parse_model_server_config(ss.str(), options_.model_config_file);
      config_text_ = ss.str();
      lock.unlock();
      ServeStatus st = manager_->apply_config(config);
      if (!st.ok()) std::fprintf(stderr, "tessera serve: model config applied with an error: %s\n", st.message.c_str());
      lock.lock();
    } catch (const std::exception& e) {
      // A half-written or bad file keeps the current config; the next poll tries again.
      std::fprintf(stderr, "tessera serve: model config file not applied: %s\n", e.what());
    }
  }
}

void ServerCoreImpl::shutdown() {
  {
    std::unique_lock lock(calls_mu_);
    if (shut_down_) return;
    stopping_ = true;
    calls_cv_.wait(lock, [this] { return in_flight_ == 0; });
  }
  {
    std::lock_guard lock(config_mu_);
    shut_down_ = true;
  }
  config_cv_.notify_all();
  if (config_poller_.joinable()) config_poller_.join();
  manager_->stop_polling();
  batcher_.reset();
  manager_->unload_all();
}

template <typename F>
ServeStatus ServerCoreImpl::call(const std::string& model, const char* api, const CallContext& ctx, F&& body) {
  const auto t0 = Clock::now();
  CallGuard guard(this);
  ServeStatus st;
  if (!guard.ok) {
    st = make_status(tfe::UNAVAILABLE, "the server is shutting down");
  } else {
    try {
      st = body();
    } catch (...) {
      st = status_from_current_exception();
    }
  }
  metrics_.counter_add(Metrics::kRequestCount, {{"model_name", model}, {"status", st.ok() ? "OK" : tfe::Code_Name(st.code)}});
  metrics_.observe(Metrics::kRequestLatency,
                   {{"model_name", model}, {"API", api}, {"entrypoint", ctx.entrypoint.empty() ? "GRPC" : ctx.entrypoint}},
                   std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  return st;
}

ServeStatus ServerCoreImpl::run_signature(const ServableHandle& s, const std::string& sig, const Signature& signature,
                                          TensorMap inputs, TensorMap* outputs, const CallContext& ctx, bool batch) {
  if (ctx.cancelled && ctx.cancelled()) return make_status(tfe::CANCELLED, "the client cancelled the request");
  if (ctx.deadline && *ctx.deadline <= Clock::now())
    return make_status(tfe::DEADLINE_EXCEEDED, "Deadline exceeded before the request ran");
  // Batchable: not stateful, every input has a free dim 0 that all inputs share.
  int64_t rows = -1;
  bool batchable = batch && batcher_ && !s->stateful(sig) && !inputs.empty();
  for (const auto& [key, t] : inputs) {
    if (!batchable) break;
    const TensorSpec* spec = signature.find_input(key);
    batchable = spec && t.rank() >= 1 && (!spec->shape.known_rank || (!spec->shape.dims.empty() && spec->shape.dims[0] < 0));
    if (batchable && rows >= 0 && t.dim(0) != rows) batchable = false;
    if (batchable) rows = t.dim(0);
  }
  const auto t0 = Clock::now();
  if (batchable && rows > 0) {
    const std::string queue = str_cat(s->name(), "/", s->version(), "/", sig);
    BatchResult r = batcher_->run(queue, s->name(), std::move(inputs), rows,
                                  [s, sig](const TensorMap& merged) { return s->run(sig, merged); }, ctx);
    if (!r.status.ok()) return r.status;
    *outputs = std::move(r.outputs);
  } else {
    run_threads_.run([&] { *outputs = s->run(sig, inputs); });
  }
  metrics_.observe(Metrics::kRuntimeLatency, {{"model_name", s->name()}, {"API", "Predict"}, {"runtime", "Tessera"}},
                   std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  return {};
}

ServeStatus ServerCoreImpl::predict_on(const ServableHandle& s, const tfs::PredictRequest& request,
                                       tfs::PredictResponse* response, const CallContext& ctx, bool batch) {
  ServeStatus st;
  const std::string key = signature_of(request.model_spec());
  const Signature* sig = find_signature(*s, key, &st);
  if (!sig) return st;
  echo_spec(request.model_spec(), *s, key, response->mutable_model_spec());

  TensorMap inputs;
  for (const auto& [alias, proto] : request.inputs()) {
    const TensorSpec* spec = sig->find_input(alias);
    if (!spec)
      return make_status(tfe::INVALID_ARGUMENT, "input tensor alias not found in signature: " + alias +
                                                    ". Inputs expected to be in the set " + keys_of(sig->inputs) + ".");
    Tensor t;
    try {
      t = tf::convert_tensor(proto);
    } catch (const Error& e) {
      return make_status(tfe::INVALID_ARGUMENT, "input '" + alias + "': " + e.what());
    }
    // The dtype of the tensor fed, not the SignatureDef's; shapes are the graph's business, as
    // in TF (Session::run re-infers the signature for shapes it does not declare).
    if (t.dtype() != input_dtype(*spec))
      return make_status(tfe::INVALID_ARGUMENT, str_cat("input '", alias, "' of signature '", key, "' expects dtype ",
                                                        dtype_name(input_dtype(*spec)), ", got ", dtype_name(t.dtype())));
    inputs[alias] = std::move(t);
  }
  for (const auto& spec : sig->inputs)
    if (!inputs.count(spec.key))
      return make_status(tfe::INVALID_ARGUMENT, "input '" + spec.key + "' of signature '" + key +
                                                    "' is missing; inputs expected: " + keys_of(sig->inputs));
  std::vector<std::string> wanted;
  std::set<std::string> seen;
  for (const auto& alias : request.output_filter()) {
    if (!sig->find_output(alias))
      return make_status(tfe::INVALID_ARGUMENT, "output tensor alias not found in signature: " + alias +
                                                    " Outputs expected to be in the set " + keys_of(sig->outputs) + ".");
    if (!seen.insert(alias).second)
      return make_status(tfe::INVALID_ARGUMENT, "duplicate output tensor alias: " + alias);
    wanted.push_back(alias);
  }
  TensorMap outputs;
  st = run_signature(s, key, *sig, std::move(inputs), &outputs, ctx, batch);
  if (!st.ok()) return st;
  auto& out = *response->mutable_outputs();
  for (const auto& [alias, t] : outputs) {
    if (!wanted.empty() && !seen.count(alias)) continue;
    tf::tensor_to_proto(t, &out[alias]);
  }
  return {};
}

namespace {

// The single DT_STRING input of a classify/regress signature, fed the serialized examples.
ServeStatus example_inputs(const Signature& sig, const std::string& key, std::vector<std::string> examples,
                           TensorMap* inputs) {
  if (sig.inputs.size() != 1 || input_dtype(sig.inputs[0]) != DType::kString)
    return make_status(tfe::INVALID_ARGUMENT, "signature '" + key +
                                                  "' must have exactly one DT_STRING input (serialized tf.Example) "
                                                  "for classify or regress");
  Tensor t(DType::kString, {static_cast<int64_t>(examples.size())});
  t.strings() = std::move(examples);
  (*inputs)[sig.inputs[0].key] = std::move(t);
  return {};
}

// [n] or [n, k] as n rows of k values.
ServeStatus rows_of(const Tensor& t, int64_t n, const char* what, int64_t* k) {
  if (t.rank() < 1 || t.rank() > 2 || t.dim(0) != n)
    return make_status(tfe::INVALID_ARGUMENT, str_cat(what, " tensor must have shape [", n, "] or [", n,
                                                      ", k] (one row per example), got ", shape_str(t.shape())));
  *k = t.rank() == 2 ? t.dim(1) : 1;
  return {};
}

// What classify and regress share: the signature the spec names (echoed into out_spec) and
// the request's examples as that signature's input tensor.
struct ExampleCall {
  std::string key;
  const Signature* sig = nullptr;
  TensorMap inputs;
  int64_t n = 0;  // examples
};

ServeStatus prepare_example_call(const Servable& s, const tfs::ModelSpec& spec, const tfs::Input& input,
                                 tfs::ModelSpec* out_spec, ExampleCall* ex) {
  ServeStatus st;
  ex->key = signature_of(spec);
  ex->sig = find_signature(s, ex->key, &st);
  if (!ex->sig) return st;
  echo_spec(spec, s, ex->key, out_spec);
  auto examples = serialized_examples(input, &st);
  if (!st.ok()) return st;
  ex->n = static_cast<int64_t>(examples.size());
  return example_inputs(*ex->sig, ex->key, std::move(examples), &ex->inputs);
}

}  // namespace

ServeStatus ServerCoreImpl::classify_on(const ServableHandle& s, const tfs::ModelSpec& spec, const tfs::Input& input,
                                        tfs::ClassificationResult* result, tfs::ModelSpec* out_spec,
                                        const CallContext& ctx, bool batch) {
  ExampleCall ex;
  ServeStatus st = prepare_example_call(*s, spec, input, out_spec, &ex);
  if (!st.ok()) return st;
  const std::string& key = ex.key;
  const Signature* sig = ex.sig;
  const int64_t n = ex.n;
  TensorMap outputs;
  const TensorSpec* classes = sig->find_output("classes");
  const TensorSpec* scores = sig->find_output("scores");
  if (!classes && !scores)
    return make_status(tfe::INVALID_ARGUMENT, "signature '" + key + "' has neither a 'classes' nor a 'scores' output");
  metrics_.observe(Metrics::kRequestExampleCounts, {{"model", s->name()}}, static_cast<double>(n));
  if (!(st = run_signature(s, key, *sig, std::move(ex.inputs), &outputs, ctx, batch)).ok()) return st;
  const Tensor* ct = classes ? &outputs.at("classes") : nullptr;
  const Tensor* sc = scores ? &outputs.at("scores") : nullptr;
  int64_t kc = 0, ks = 0;
  if (ct && (ct->dtype() != DType::kString || !(st = rows_of(*ct, n, "classes", &kc)).ok()))
    return st.ok() ? make_status(tfe::INVALID_ARGUMENT, "classes output must be DT_STRING") : st;
  if (sc && (sc->dtype() != DType::kFloat32 || !(st = rows_of(*sc, n, "scores", &ks)).ok()))
    return st.ok() ? make_status(tfe::INVALID_ARGUMENT, "scores output must be DT_FLOAT") : st;
  if (ct && sc && kc != ks)
    return make_status(tfe::INVALID_ARGUMENT, str_cat("classes (", kc, " per example) and scores (", ks,
                                                      " per example) disagree"));
  const int64_t k = ct ? kc : ks;
  for (int64_t i = 0; i < n; ++i) {
    auto* c = result->add_classifications();
    for (int64_t j = 0; j < k; ++j) {
      auto* cls = c->add_classes();
      if (ct) cls->set_label(ct->strings()[i * k + j]);
      if (sc) cls->set_score(sc->data<float>()[i * k + j]);
    }
  }
  return {};
}

ServeStatus ServerCoreImpl::regress_on(const ServableHandle& s, const tfs::ModelSpec& spec, const tfs::Input& input,
                                       tfs::RegressionResult* result, tfs::ModelSpec* out_spec, const CallContext& ctx,
                                       bool batch) {
  ExampleCall ex;
  ServeStatus st = prepare_example_call(*s, spec, input, out_spec, &ex);
  if (!st.ok()) return st;
  const std::string& key = ex.key;
  const Signature* sig = ex.sig;
  const int64_t n = ex.n;
  TensorMap outputs;
  if (!sig->find_output("outputs"))
    return make_status(tfe::INVALID_ARGUMENT, "signature '" + key + "' has no 'outputs' output to regress on");
  metrics_.observe(Metrics::kRequestExampleCounts, {{"model", s->name()}}, static_cast<double>(n));
  if (!(st = run_signature(s, key, *sig, std::move(ex.inputs), &outputs, ctx, batch)).ok()) return st;
  const Tensor& t = outputs.at("outputs");
  int64_t k = 0;
  if (t.dtype() != DType::kFloat32) return make_status(tfe::INVALID_ARGUMENT, "regress output must be DT_FLOAT");
  if (!(st = rows_of(t, n, "regress output", &k)).ok()) return st;
  if (k != 1)
    return make_status(tfe::INVALID_ARGUMENT, str_cat("regress output must have one value per example, got ", k));
  for (int64_t i = 0; i < n; ++i) result->add_regressions()->set_value(t.data<float>()[i]);
  return {};
}

ServeStatus ServerCoreImpl::multi_on(const ServableHandle& s, const tfs::MultiInferenceRequest& request,
                                     tfs::MultiInferenceResponse* response, const CallContext& ctx, bool batch) {
  std::set<std::string> signatures;
  for (const auto& task : request.tasks()) {
    if (task.model_spec().name() != request.tasks(0).model_spec().name())
      return make_status(tfe::INVALID_ARGUMENT, "All ModelSpecs in a MultiInferenceRequest must access the same model name.");
    if (!signatures.insert(signature_of(task.model_spec())).second)
      return make_status(tfe::INVALID_ARGUMENT, "Duplicate evaluation of signature: " + signature_of(task.model_spec()));
  }
  for (const auto& task : request.tasks()) {
    auto* r = response->add_results();
    ServeStatus st;
    if (task.method_name() == kClassifyMethod)
      st = classify_on(s, task.model_spec(), request.input(), r->mutable_classification_result(), r->mutable_model_spec(),
                       ctx, batch);
    else if (task.method_name() == kRegressMethod)
      st = regress_on(s, task.model_spec(), request.input(), r->mutable_regression_result(), r->mutable_model_spec(),
                      ctx, batch);
    else
      st = make_status(tfe::UNIMPLEMENTED, "Unsupported signature method_name: " + task.method_name());
    if (!st.ok()) return st;
  }
  return {};
}

ServeStatus ServerCoreImpl::predict(const tfs::PredictRequest& request, tfs::PredictResponse* response,
                                    const CallContext& ctx) {
  return call(request.model_spec().name(), "Predict", ctx, [&] {
    ServableHandle s;
    ServeStatus st = manager_->find(request.model_spec(), &s);
    return st.ok() ? predict_on(s, request, response, ctx, true) : st;
  });
}

ServeStatus ServerCoreImpl::classify(const tfs::ClassificationRequest& request, tfs::ClassificationResponse* response,
                                     const CallContext& ctx) {
  return call(request.model_spec().name(), "Classify", ctx, [&] {
    ServableHandle s;
    ServeStatus st = manager_->find(request.model_spec(), &s);
    return st.ok() ? classify_on(s, request.model_spec(), request.input(), response->mutable_result(),
                                 response->mutable_model_spec(), ctx, true)
                   : st;
  });
}

ServeStatus ServerCoreImpl::regress(const tfs::RegressionRequest& request, tfs::RegressionResponse* response,
                                    const CallContext& ctx) {
  return call(request.model_spec().name(), "Regress", ctx, [&] {
    ServableHandle s;
    ServeStatus st = manager_->find(request.model_spec(), &s);
    return st.ok() ? regress_on(s, request.model_spec(), request.input(), response->mutable_result(),
                                response->mutable_model_spec(), ctx, true)
                   : st;
  });
}

ServeStatus ServerCoreImpl::multi_inference(const tfs::MultiInferenceRequest& request,
                                            tfs::MultiInferenceResponse* response, const CallContext& ctx) {
  const std::string model = request.tasks_size() ? request.tasks(0).model_spec().name() : "";
  return call(model, "MultiInference", ctx, [&] {
    if (request.tasks_size() == 0) return make_status(tfe::INVALID_ARGUMENT, "MultiInferenceRequest has no tasks.");
    ServableHandle s;
    ServeStatus st = manager_->find(request.tasks(0).model_spec(), &s);
    return st.ok() ? multi_on(s, request, response, ctx, true) : st;
  });
}

ServeStatus ServerCoreImpl::get_model_metadata(const tfs::GetModelMetadataRequest& request,
                                               tfs::GetModelMetadataResponse* response) {
  CallContext ctx;
  return call(request.model_spec().name(), "GetModelMetadata", ctx, [&] {
    if (request.metadata_field_size() == 0)
      return make_status(tfe::INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one metadata_field");
    for (const auto& field : request.metadata_field())
      if (field != "signature_def")
        return make_status(tfe::INVALID_ARGUMENT, "Metadata field " + field + " is not supported");
    ServableHandle s;
    ServeStatus st = manager_->find(request.model_spec(), &s);
    if (!st.ok()) return st;
    response->mutable_model_spec()->set_name(request.model_spec().name());
    response->mutable_model_spec()->mutable_version()->set_value(s->version());
    tfs::SignatureDefMap map;
    for (const auto& [key, sig] : s->model().signatures()) {
      auto& def = (*map.mutable_signature_def())[key];
      def.set_method_name(sig.method_name);
      for (const auto& in : sig.inputs) (*def.mutable_inputs())[in.key] = tensor_info(in);
      for (const auto& out : sig.outputs) (*def.mutable_outputs())[out.key] = tensor_info(out);
    }
    // TF2 exports list their init op as a signature too; the importer keeps it as an init target.
    const Module& module = s->model().module();
    if (module.format == "saved_model (TF2)" && module.init_targets.size() == 1) {
      auto& def = (*map.mutable_signature_def())["__saved_model_init_op"];
      auto& info = (*def.mutable_outputs())["__saved_model_init_op"];
      info.set_name(module.init_targets[0]->name);
      info.mutable_tensor_shape()->set_unknown_rank(true);
    }
    (*response->mutable_metadata())["signature_def"].PackFrom(map);
    return ServeStatus{};
  });
}

ServeStatus ServerCoreImpl::get_model_status(const tfs::GetModelStatusRequest& request,
                                             tfs::GetModelStatusResponse* response) {
  return manager_->status(request.model_spec(), response);
}

ServeStatus ServerCoreImpl::reload_config(const tfs::ReloadConfigRequest& request, tfs::ReloadConfigResponse* response) {
  ServeStatus st = manager_->apply_config(request.config());
  response->mutable_status()->set_error_code(st.code);
  response->mutable_status()->set_error_message(st.message);
  return st;
}

ServeStatus ServerCoreImpl::list_model_names(const tfs::ListModelNamesRequest&, tfs::ListModelNamesResponse* response) {
  for (const std::string& name : manager_->model_names()) {  // sorted: a std::map's keys
    tfs::ModelSpec spec;
    spec.set_name(name);
    ServableHandle handle;
    if (manager_->find(spec, &handle).ok()) response->add_model_names(name);
  }
  return {};
}

// With batching and allowed_batch_sizes, every batch runs at one of those sizes. The first run
// of a compiled signature at a new input shape builds its cpu plan and kernel state (oneDNN
// primitives for each convolution: ~100 ms for MobileNetV2 on 2 cores); doing that here, before
// the version takes traffic, keeps it out of the requests' latency (the batch that first hits a
// size would otherwise stall every request queued behind it). Signatures whose inputs are not
// all numeric with only the batch dimension free are left to their first request.
void ServerCoreImpl::plan_batch_sizes(const ServableHandle& s) {
  if (!batcher_ || batcher_->options().allowed_batch_sizes.empty() || !s->model().compiled()) return;
  for (const auto& [key, sig] : s->model().signatures()) {
    if (sig.inputs.empty() || s->stateful(key)) continue;
    bool plannable = true;
    for (const TensorSpec& in : sig.inputs) {
      const DType t = input_dtype(in);
      plannable = plannable && t != DType::kString && t != DType::kResource && t != DType::kVariant &&
                  in.shape.known_rank && !in.shape.dims.empty() && in.shape.dims[0] < 0;
      for (size_t d = 1; plannable && d < in.shape.dims.size(); ++d) plannable = in.shape.dims[d] >= 0;
    }
    if (!plannable) continue;
    const auto t0 = Clock::now();
    std::string done;
    for (int64_t rows : batcher_->options().allowed_batch_sizes) {
      TensorMap inputs;
      for (const TensorSpec& in : sig.inputs) {
        Shape shape(in.shape.dims.begin(), in.shape.dims.end());
        shape[0] = rows;
        inputs[in.key] = Tensor(input_dtype(in), shape);  // zero-filled
      }
      try {
        s->run(key, inputs);
      } catch (const Error&) {  // a signature that cannot run on zeros: its requests report why
        break;
      }
      done += str_cat(done.empty() ? "" : ",", rows);
    }
    if (!done.empty())
      std::fprintf(stderr, "tessera serve: model '%s' version %lld signature '%s': planned batch sizes %s in %.0f ms\n",
                   s->name().c_str(), static_cast<long long>(s->version()), key.c_str(), done.c_str(),
                   std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
}

void ServerCoreImpl::warm_up(const ServableHandle& s) {
  plan_batch_sizes(s);
  if (!options_.enable_model_warmup) return;
  const auto logs = read_warmup_records(s->dir());
  if (logs.empty()) return;
  const auto t0 = Clock::now();
  CallContext ctx;
  ctx.entrypoint = "WARMUP";
  const int iterations = std::max(1, options_.num_request_iterations_for_warmup);
  for (int it = 0; it < iterations; ++it) {
    for (size_t i = 0; i < logs.size(); ++i) {
      const auto& log = logs[i];
      ServeStatus st;
      switch (log.log_type_case()) {
        case tfs::PredictionLog::kPredictLog: {
          tfs::PredictResponse r;
          st = predict_on(s, log.predict_log().request(), &r, ctx, false);
          break;
        }
        case tfs::PredictionLog::kClassifyLog: {
          tfs::ClassificationResponse r;
          const auto& q = log.classify_log().request();
          st = classify_on(s, q.model_spec(), q.input(), r.mutable_result(), r.mutable_model_spec(), ctx, false);
          break;
        }
        case tfs::PredictionLog::kRegressLog: {
          tfs::RegressionResponse r;
          const auto& q = log.regress_log().request();
          st = regress_on(s, q.model_spec(), q.input(), r.mutable_result(), r.mutable_model_spec(), ctx, false);
          break;
        }
        case tfs::PredictionLog::kMultiInferenceLog: {
          tfs::MultiInferenceResponse r;
          st = multi_on(s, log.multi_inference_log().request(), &r, ctx, false);
          break;
        }
        default:
          st = make_status(tfe::UNIMPLEMENTED, "unsupported warm-up record type (only predict, classify, regress and "
                                               "multi_inference logs are replayed)");
      }
      if (!st.ok())
        fail_code(ErrorCode::kFailedPrecondition, "warm-up record ", i, " of '", s->dir(), "/", kWarmupFile,
                  "' failed: ", st.message);
    }
  }
  metrics_.observe(Metrics::kWarmupLatency, {{"model_path", s->dir()}},
                   std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
}

}  // namespace

std::unique_ptr<ServerCore> ServerCore::create(const ServerOptions& options) {
#if defined(__GLIBC__)
  // glibc's default raises its mmap threshold to the size of every large block freed, after
  // which weights land on the heap. Fixed thresholds instead: blocks below 64 MiB (request and
  // response tensors, parsed protobuf strings) come from the heap and are reused, where a 1 MiB
  // threshold mmapped, page-faulted and unmapped every large request (MobileNetV2 batch 32:
  // two 3.5 MiB blocks per call, 64 MiB of page faults per second); freed memory is kept
  // (trim threshold) rather than handed back and faulted in again on the next call. A version
  // unload still returns everything free: Servable's destructor calls malloc_trim(0), which
  // ignores both thresholds (test_serve_hotswap measures VmRSS across swaps).
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
  auto core = std::make_unique<ServerCoreImpl>(options);
  core->start();
  return core;
}

int intra_op_threads_per_run(int intra_op_threads, int concurrent_runs) {
  const int total = intra_op_threads > 0 ? intra_op_threads : cpu_count();
  return std::max(1, total / std::max(1, concurrent_runs));
}

}  // namespace tessera::serve
