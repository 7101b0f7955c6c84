// The REST :predict codec (src/serve/json_codec.*) on a MobileNetV2-size row-format body
// ([1,96,96,3] float32 as Python's json.dumps writes it: 17 significant digits), the body
// bench/serve.py sends: parse + convert to a PredictRequest, and a 1000-class response back to
// JSON. Pass --body FILE to time another body (one input, float32).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "serve/json_codec.h"

namespace {

using namespace tessera::serve;
namespace tf = ::tensorflow;

std::string g_body;

// json.dumps of float32 values widened to double: repr's shortest round-trip text of the double.
std::string make_body(int h, int w, int c) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0, 1);
  std::string s = "{\"signature_name\": \"serving_default\", \"instances\": [";
  char buf[40];
  s += '[';
  for (int i = 0; i < h; ++i) {
    s += i ? ", [" : "[";
    for (int j = 0; j < w; ++j) {
      s += j ? ", [" : "[";
      for (int k = 0; k < c; ++k) {
        std::snprintf(buf, sizeof buf, "%.17g", static_cast<double>(d(rng)));
        if (k) s += ", ";
        s += buf;
      }
      s += ']';
    }
    s += ']';
  }
  return s + "]]}";
}

tf::SignatureDef signature() {
  tf::SignatureDef sig;
  tf::TensorInfo in;
  in.set_dtype(tf::DT_FLOAT);
  (*sig.mutable_inputs())["keras_tensor"] = in;
  (*sig.mutable_outputs())["output_0"] = in;
  return sig;
}

// Arg 0: predict_request_from_json; 1: its general path (a DOM parse and walk), for comparison.
void BM_PredictRequestFromJson(benchmark::State& state) {
  tf::SignatureDef sig = signature();
  SignatureLookup lookup = [&](const std::string&, tf::SignatureDef* out) {
    *out = sig;
    return ServeStatus{};
  };
  auto* parse = state.range(0) ? &predict_request_from_json_general : &predict_request_from_json;
  for (auto _ : state) {
    tfs::PredictRequest req;
    PredictFormat format;
    ServeStatus st = parse(g_body, lookup, &req, &format);
    if (!st.ok()) {
      state.SkipWithError(st.message.c_str());
      break;
    }
    benchmark::DoNotOptimize(req);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(g_body.size()));
}
BENCHMARK(BM_PredictRequestFromJson)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

void BM_PredictResponseToJson(benchmark::State& state) {
  tfs::PredictResponse resp;
  tf::TensorProto& t = (*resp.mutable_outputs())["output_0"];
  t.set_dtype(tf::DT_FLOAT);
  t.mutable_tensor_shape()->add_dim()->set_size(1);
  t.mutable_tensor_shape()->add_dim()->set_size(state.range(0));
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> d(0, 0.01f);
  std::string content(state.range(0) * 4, '\0');
  for (int64_t i = 0; i < state.range(0); ++i) {
    float x = d(rng);
    std::memcpy(&content[i * 4], &x, 4);
  }
  t.set_tensor_content(content);
  std::string json;
  for (auto _ : state) {
    ServeStatus st = predict_response_to_json(resp, PredictFormat::kRow, &json);
    benchmark::DoNotOptimize(json);
    if (!st.ok()) state.SkipWithError(st.message.c_str());
  }
}
BENCHMARK(BM_PredictResponseToJson)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  std::string body_file;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--body") == 0 && i + 1 < argc) body_file = argv[++i];
    else rest.push_back(argv[i]);
  }
  if (!body_file.empty()) {
    std::ifstream f(body_file, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    g_body = ss.str();
  } else {
    g_body = make_body(96, 96, 3);
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
