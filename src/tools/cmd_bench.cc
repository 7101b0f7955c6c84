// `tessera bench MODEL`: latency percentiles and throughput of one signature at given batch
// sizes. The contract (flags, JSON keys) is shared with bench/ (the cross-runtime harness):
// each timed iteration copies the host inputs into fresh Tensors and runs the signature, so
// input conversion is inside the timed call as it is for the peers.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <cstdlib>
#include <random>
#include <thread>

#include "io/npy.h"
#include "runtime/model.h"
#include "tools/cli.h"
#include "support/cpus.h"

namespace tessera::cli {
namespace {

const char* kUsage =
    "usage: tessera bench MODEL [--signature KEY] [--target cpu|reference] [--batch 1,32]\n"
    "                     [--threads N] [--inter-op N] [--warmup N] [--iters N] [--min-seconds S]\n"
    "                     [--inputs FILE.npz] [--json OUT.json] [--save-outputs OUT.npz]\n"
    "                     [--passes a,b|none] [--isa ISA] [--precision fp32|bf16] [--no-cache]\n"
    "                     [--profile]\n"
    "  MODEL           a SavedModel directory, a .pb/.pbtxt GraphDef, or a .tsr\n"
    "  --batch         comma-separated batch sizes (default 1)\n"
    "  --threads N     intra-op threads (default: every core)\n"
    "  --inter-op N    independent ops run at once, sharing the threads (default 1)\n"
    "  --warmup N      untimed iterations per batch (default 5)\n"
    "  --iters N       timed iterations per batch (default 50), continued until --min-seconds\n"
    "  --inputs F      inputs keyed by signature input name (its batch must be the one --batch)\n"
    "                  instead of seeded random inputs\n"
    "  --json OUT      write the results as JSON\n"
    "  --profile       time every op (cpu target) and report each batch's top ops; adds a\n"
    "                  little per-op overhead, so time without it\n"
    "  --save-outputs  write the outputs of the last run to an .npz\n";

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int parse_int(const std::string& flag, const std::string& text, int min) {
  try {
    size_t used = 0;
    int v = std::stoi(text, &used);
    if (used == text.size() && v >= min) return v;
  } catch (const std::exception&) {
  }
  fail(flag, " '", text, "': expected an integer >= ", min);
}

// Seed-0 inputs shaped from the signature, the leading unknown dimension set to `batch`.
std::vector<std::pair<std::string, Tensor>> random_inputs(const Signature& sig, int64_t batch) {
  std::mt19937_64 rng(0);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> small(0, 9);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const TensorSpec& spec : sig.inputs) {
    if (!spec.shape.known_rank)
      fail("input '", spec.key, "' has unknown rank; pass --inputs FILE.npz");
    Shape shape;
    for (size_t i = 0; i < spec.shape.dims.size(); ++i) {
      int64_t d = spec.shape.dims[i];
      if (d >= 0) shape.push_back(d);
      else if (i == 0) shape.push_back(batch);
      else fail("input '", spec.key, "' has shape ", spec.shape.str(), ": only the leading (batch) dimension may be unknown; pass --inputs FILE.npz");
    }
    Tensor t(spec.dtype, shape);
    int64_t n = t.num_elements();
    switch (spec.dtype) {
      case DType::kFloat32: for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = normal(rng); break;
      case DType::kFloat64: for (int64_t i = 0; i < n; ++i) t.data<double>()[i] = normal(rng); break;
      case DType::kInt32: for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = small(rng); break;
      case DType::kInt64: for (int64_t i = 0; i < n; ++i) t.data<int64_t>()[i] = small(rng); break;
      case DType::kBool: for (int64_t i = 0; i < n; ++i) t.data<bool>()[i] = small(rng) < 5; break;
      default: fail("input '", spec.key, "' is ", dtype_name(spec.dtype), ": no random inputs for it; pass --inputs FILE.npz");
    }
    out.push_back({spec.key, t});
  }
  return out;
}

// A fresh tensor with the host bytes copied in (what a caller converting its buffers pays).
Tensor fresh_copy(const Tensor& host) {
  if (!is_pod(host.dtype())) return host.clone();
  Tensor t(host.dtype(), host.shape());
  std::memcpy(t.mutable_raw(), host.raw(), host.nbytes());
  return t;
}

struct OpShare {
  std::string op;
  double ms_per_iter, share;  // share of all op time in the window
};

struct Run {
  int64_t batch;
  std::vector<double> ms;
  double p50, p90, p99, mean, min, throughput;
  std::vector<OpShare> profile;  // with --profile, largest first
};

std::map<std::string, double> op_seconds(const Model& model, const std::string& sig_key) {
  return model.compiled() ? model.compiled_signature(sig_key).executable->op_seconds() : std::map<std::string, double>{};
}

// Per-op time over the timed iterations only: the difference of two cumulative snapshots.
std::vector<OpShare> profile_window(const std::map<std::string, double>& before,
                                    const std::map<std::string, double>& after, size_t iters) {
  std::vector<OpShare> rows;
  double total = 0;
  for (const auto& [op, secs] : after) {
    auto it = before.find(op);
    double d = secs - (it == before.end() ? 0 : it->second);
    if (d > 0) rows.push_back({op, d, 0}), total += d;
  }
  for (OpShare& r : rows) r.share = total > 0 ? r.ms_per_iter / total : 0, r.ms_per_iter *= 1e3 / std::max<size_t>(iters, 1);
  std::sort(rows.begin(), rows.end(), [](const OpShare& a, const OpShare& b) { return a.ms_per_iter > b.ms_per_iter; });
  return rows;
}

double percentile(std::vector<double> sorted, double q) {
  // Nearest-rank on sorted samples, interpolated linearly between neighbours.
  double pos = q * (sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 32) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  std::vector<std::string> flags = {"--signature", "--batch", "--warmup", "--iters", "--min-seconds",
                                    "--inputs", "--json", "--save-outputs"};
  for (const auto& f : load_value_flags()) flags.push_back(f);
  Args args = parse_args(argc, argv, flags);
  if (args.has("--help") || args.positional.size() != 1) {
    std::printf("%s", kUsage);
    return args.has("--help") ? 0 : 2;
  }
  const std::string path = args.positional[0];
  const std::string sig_key = args.get("--signature", "serving_default");
  LoadOptions options;
  apply_load_flags(args, options, "cpu");
  int threads = options.threads ? options.threads : cpu_count();
  options.threads = threads;
  std::vector<int64_t> batches;
  {
    std::string text = args.get("--batch", "1");
    for (size_t pos = 0; pos <= text.size();) {
      size_t c = text.find(',', pos);
      if (c == std::string::npos) c = text.size();
      if (c > pos) batches.push_back(parse_int("--batch", text.substr(pos, c - pos), 1));
      pos = c + 1;
    }
    if (batches.empty()) fail("--batch '", text, "': no batch sizes");
  }
  int warmup = parse_int("--warmup", args.get("--warmup", "5"), 0);
  int iters = parse_int("--iters", args.get("--iters", "50"), 1);
  double min_seconds = 0;
  if (args.has("--min-seconds")) {
    try {
      min_seconds = std::stod(args.get("--min-seconds"));
    } catch (const std::exception&) {
      fail("--min-seconds '", args.get("--min-seconds"), "': expected a number");
    }
  }
  const bool profile = args.has("--profile");
  // The cpu executable reads this when it is built: set it before the model loads.
  if (profile) setenv("TESSERA_CPU_PROFILE", "1", 1);
  npy::NamedTensors npz_inputs;
  if (args.has("--inputs")) {
    if (batches.size() != 1) fail("--inputs needs exactly one --batch value (the inputs' batch)");
    npz_inputs = npy::load_npz(args.get("--inputs"));
  }

  auto t0 = Clock::now();
  auto model = Model::load(path, options);
  const Signature& sig = model->signature(sig_key);
  std::string isa;
  if (model->compiled()) isa = model->compiled_signature(sig_key).executable->isa();  // compiles if needed
  double total_load = since(t0);
  double compile_s = model->cache_hit() ? 0 : model->compile_seconds();
  double load_s = std::max(0.0, total_load - compile_s);
  Session session(model);

  std::vector<Run> runs;
  TensorMap last_outputs;
  for (int64_t batch : batches) {
    std::vector<std::pair<std::string, Tensor>> host;
    if (!npz_inputs.empty()) {
      for (const TensorSpec& spec : sig.inputs) {
        auto it = std::find_if(npz_inputs.begin(), npz_inputs.end(), [&](const auto& p) { return p.first == spec.key; });
        if (it == npz_inputs.end()) fail("--inputs '", args.get("--inputs"), "' has no array '", spec.key, "'");
        if (it->second.rank() == 0 || it->second.dim(0) != batch)
          fail("--inputs array '", spec.key, "' has shape ", shape_str(it->second.shape()), ", not batch ", batch);
        host.push_back(*it);
      }
    } else {
      host = random_inputs(sig, batch);
    }
    auto one = [&] {
      TensorMap feeds;
      for (const auto& [k, t] : host) feeds[k] = fresh_copy(t);
      return session.run(sig_key, feeds);
    };
    for (int i = 0; i < warmup; ++i) {
      std::fprintf(stderr, "\rbatch %lld: warm-up %d/%d   ", static_cast<long long>(batch), i + 1, warmup);
      last_outputs = one();
    }
    Run run{batch, {}, 0, 0, 0, 0, 0, 0, {}};
    const auto profile_before = op_seconds(*model, sig_key);
    auto start = Clock::now();
    while (static_cast<int>(run.ms.size()) < iters || since(start) < min_seconds) {
      auto t = Clock::now();
      last_outputs = one();
      run.ms.push_back(since(t) * 1e3);
      if (run.ms.size() % 5 == 1 || static_cast<int>(run.ms.size()) == iters)
        std::fprintf(stderr, "\rbatch %lld: %zu/%d iterations, last %.3f ms   ", static_cast<long long>(batch),
                     run.ms.size(), iters, run.ms.back());
    }
    std::fprintf(stderr, "\n");
    std::vector<double> sorted = run.ms;
    std::sort(sorted.begin(), sorted.end());
    double sum = 0;
    for (double v : sorted) sum += v;
    run.p50 = percentile(sorted, 0.50);
    run.p90 = percentile(sorted, 0.90);
    run.p99 = percentile(sorted, 0.99);
    run.mean = sum / sorted.size();
    run.min = sorted.front();
    run.throughput = batch * 1e3 / run.mean;
    if (profile) run.profile = profile_window(profile_before, op_seconds(*model, sig_key), run.ms.size());
    runs.push_back(std::move(run));
  }

  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  uint64_t peak_rss = static_cast<uint64_t>(ru.ru_maxrss) * 1024;

  const std::string precision = model->target() == "cpu" ? model->compile_options().precision : "fp32";
  const int inter_op = cpu::resolve_inter_op(options.inter_op);
  std::printf("model %s  signature %s  target %s%s%s%s  threads %d  inter-op %d\n", path.c_str(), sig_key.c_str(),
              model->target().c_str(), isa.empty() ? "" : "/", isa.c_str(), precision == "bf16" ? "/bf16" : "",
              threads, inter_op);
  std::printf("compile %.3f s  load %.3f s  peak RSS %.1f MiB\n", compile_s, load_s, peak_rss / 1048576.0);
  std::printf("%6s %6s %10s %10s %10s %10s %10s %12s\n", "batch", "iters", "p50 ms", "p90 ms", "p99 ms", "mean ms",
              "min ms", "items/s");
  for (const Run& r : runs)
    std::printf("%6lld %6zu %10.3f %10.3f %10.3f %10.3f %10.3f %12.1f\n", static_cast<long long>(r.batch), r.ms.size(),
                r.p50, r.p90, r.p99, r.mean, r.min, r.throughput);
  for (const Run& r : runs) {
    if (r.profile.empty()) continue;
    std::printf("batch %lld profile (op time per call, share of op time):\n", static_cast<long long>(r.batch));
    for (size_t k = 0; k < r.profile.size() && k < 10; ++k)
      std::printf("  %-40s %10.3f ms %5.1f%%\n", r.profile[k].op.c_str(), r.profile[k].ms_per_iter,
                  100 * r.profile[k].share);
  }

  if (args.has("--json")) {
    std::string j = str_cat("{\"model\": \"", json_escape(path), "\", \"signature\": \"", json_escape(sig_key),
                            "\", \"target\": \"", model->target(), "\", \"isa\": \"", isa, "\", \"precision\": \"", precision,
                            "\", \"threads\": ", threads, ", \"inter_op\": ", inter_op,
                            ", \"compile_seconds\": ", compile_s, ", \"load_seconds\": ", load_s,
                            ", \"peak_rss_bytes\": ", peak_rss, ", \"runs\": [");
    for (size_t i = 0; i < runs.size(); ++i) {
      const Run& r = runs[i];
      j += str_cat(i ? ", " : "", "{\"batch\": ", r.batch, ", \"iters\": ", r.ms.size(), ", \"latency_ms\": {\"p50\": ",
                   r.p50, ", \"p90\": ", r.p90, ", \"p99\": ", r.p99, ", \"mean\": ", r.mean, ", \"min\": ", r.min,
                   "}, \"throughput_per_s\": ", r.throughput);
      if (profile) {
        j += ", \"profile\": [";
        for (size_t k = 0; k < r.profile.size(); ++k)
          j += str_cat(k ? ", " : "", "{\"op\": \"", json_escape(r.profile[k].op), "\", \"ms_per_iter\": ",
                       r.profile[k].ms_per_iter, ", \"share\": ", r.profile[k].share, "}");
        j += "]";
      }
      j += "}";
    }
    j += "]}\n";
    std::ofstream(args.get("--json")) << j;
  }
  if (args.has("--save-outputs")) {
    npy::NamedTensors outs(last_outputs.begin(), last_outputs.end());
    npy::save_npz(args.get("--save-outputs"), outs);
  }
  return 0;
}

}  // namespace tessera::cli
