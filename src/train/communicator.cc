#include "train/communicator.h"

#include <condition_variable>
#include <cstring>
#include <mutex>

#include "support/error.h"

namespace tessera::train {
namespace {

// One process: every collective is the identity.
class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(double*, size_t) override {}
  void allreduce_sum(float*, size_t) override {}
  void broadcast(void*, size_t, int) override {}
  void barrier() override {}
};

struct Group {
  explicit Group(int n) : size(n), ptrs(static_cast<size_t>(n), nullptr) {}
  int size;
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  int64_t generation = 0;
  std::vector<void*> ptrs;  // each member's buffer for the collective in progress

  void wait_all() {
    std::unique_lock lock(mu);
    int64_t gen = generation;
    if (++arrived == size) {
      arrived = 0;
      ++generation;
      cv.notify_all();
      return;
    }
    cv.wait(lock, [&] { return generation != gen; });
  }
};

class ThreadGroupCommunicator : public Communicator {
 public:
  ThreadGroupCommunicator(std::shared_ptr<Group> g, int rank) : g_(std::move(g)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_->size; }
  void allreduce_sum(double* data, size_t n) override { reduce(data, n); }
  void allreduce_sum(float* data, size_t n) override { reduce(data, n); }
  void broadcast(void* data, size_t bytes, int root) override {
    TS_CHECK(root >= 0 && root < g_->size, "broadcast root ", root, " out of range");
    g_->ptrs[static_cast<size_t>(rank_)] = data;
    g_->wait_all();
    if (rank_ != root && bytes) std::memcpy(data, g_->ptrs[static_cast<size_t>(root)], bytes);
    g_->wait_all();
  }
  void barrier() override { g_->wait_all(); }

 private:
  template <typename T>
  void reduce(T* data, size_t n) {
    g_->ptrs[static_cast<size_t>(rank_)] = data;
    g_->wait_all();
    // Every member sums all buffers in rank order (same bits everywhere), then waits until
    // everyone has read before overwriting its own buffer.
    std::vector<T> sum(n, T(0));
    for (int r = 0; r < g_->size; ++r) {
      const T* p = static_cast<const T*>(g_->ptrs[static_cast<size_t>(r)]);
      for (size_t i = 0; i < n; ++i) sum[i] += p[i];
    }
    g_->wait_all();
    if (n) std::memcpy(data, sum.data(), n * sizeof(T));
    g_->wait_all();
  }

  std::shared_ptr<Group> g_;
  int rank_;
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }

std::vector<std::unique_ptr<Communicator>> make_thread_group(int n) {
  TS_CHECK(n >= 1, "a thread group needs at least one member, got ", n);
  auto g = std::make_shared<Group>(n);
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < n; ++r) out.push_back(std::make_unique<ThreadGroupCommunicator>(g, r));
  return out;
}

}  // namespace tessera::train
