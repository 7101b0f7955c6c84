// The local communicator and the in-process thread group that stands in for processes.
#include <gtest/gtest.h>

#include <thread>

#include "train/communicator.h"

namespace tessera::train {
namespace {

TEST(StepCommunicator, LocalIsTheIdentity) {
  auto c = make_local_communicator();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  float f[2] = {1.5f, -2.0f};
  c->allreduce_sum(f, 2);
  EXPECT_EQ(f[0], 1.5f);
}

TEST(StepCommunicator, ThreadGroupSumsInRankOrderAndBroadcasts) {
  const int n = 3;
  auto group = make_thread_group(n);
  std::vector<std::vector<float>> data(n);
  std::vector<double> scalars(n);
  std::vector<int64_t> bcast(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      Communicator& c = *group[r];
      EXPECT_EQ(c.rank(), r);
      EXPECT_EQ(c.size(), n);
      for (int round = 0; round < 50; ++round) {  // repeated: no collective overtakes another
        data[r] = {1e8f * (r == 0 ? 1 : r == 1 ? -1 : 0), 1.0f + r, static_cast<float>(round)};
        c.allreduce_sum(data[r].data(), data[r].size());
        scalars[r] = 0.25 * (r + 1);
        c.allreduce_sum(&scalars[r], 1);
        bcast[r] = r == 1 ? 42 + round : -1;
        c.broadcast(&bcast[r], sizeof(int64_t), 1);
        EXPECT_EQ(bcast[r], 42 + round);
        c.barrier();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; ++r) {
    // Rank order: (1e8 + -1e8) + 0 = 0 exactly, and the small parts add up the same everywhere.
    EXPECT_EQ(data[r][0], 0.0f);
    EXPECT_EQ(data[r][1], 6.0f);
    EXPECT_EQ(data[r][2], 3.0f * 49);
    EXPECT_DOUBLE_EQ(scalars[r], 1.5);
  }
}

}  // namespace
}  // namespace tessera::train
