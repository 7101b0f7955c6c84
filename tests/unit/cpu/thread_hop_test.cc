// A compiled model is called from whatever thread a server hands the request to: runs from
// successive threads (and from several at once) must give the same answers as the first.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <thread>

#include "runtime/model.h"
#include "zoo_test_util.h"

namespace tessera {
namespace {

Tensor random_image(int64_t batch, const PartialShape& shape, uint32_t seed) {
  Shape s;
  for (size_t i = 0; i < shape.dims.size(); ++i) s.push_back(i == 0 ? batch : shape.dims[i]);
  Tensor t(DType::kFloat32, s);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

TEST(CpuThreadHop, ConvModelGivesTheSameOutputsFromEveryThread) {
  auto dir = testing::zoo_dir() / "resnet50_k3" / "saved_model";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "zoo not generated: " << dir;
  LoadOptions o;
  o.target = "cpu";
  o.use_cache = false;
  auto model = Model::load(dir.string(), o);
  const Signature& sig = model->signature("serving_default");
  ASSERT_EQ(sig.inputs.size(), 1u);
  for (int64_t batch : {1, 3}) {
  TensorMap feeds{{sig.inputs[0].key, random_image(batch, sig.inputs[0].shape, 1)}};
  Session first(model);
  const TensorMap want = first.run("serving_default", feeds);
  auto same = [&](const TensorMap& got) {
    for (const auto& [k, t] : want) {
      const Tensor& g = got.at(k);
      ASSERT_EQ(g.shape(), t.shape());
      for (int64_t i = 0; i < t.num_elements(); ++i) ASSERT_FLOAT_EQ(g.data<float>()[i], t.data<float>()[i]) << k << "[" << i << "]";
    }
  };
  for (int round = 0; round < 3; ++round) {  // one new thread per call, as a server's pool does
    TensorMap got;
    std::thread([&] { Session s(model); got = s.run("serving_default", feeds); }).join();
    same(got);
  }
  std::vector<TensorMap> got(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back([&, i] { Session s(model); got[i] = s.run("serving_default", feeds); });
  for (auto& t : threads) t.join();
  for (const TensorMap& g : got) same(g);
  }
}

}  // namespace
}  // namespace tessera
