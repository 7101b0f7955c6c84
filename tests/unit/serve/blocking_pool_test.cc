// The REST server's pool for calls that may wait (batch queue): it must grow so that up to its
// cap of jobs can block at once, never beyond the cap, and run every job posted.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "serve/rest_server.h"

namespace tessera::serve {
namespace {

// Jobs that block until `needed` of them run at the same time (or a 10 s safety timeout).
struct Rendezvous {
  std::mutex mu;
  std::condition_variable cv;
  int running = 0, peak = 0, finished = 0;
  bool met = false;
  void job(int needed) {
    std::unique_lock lock(mu);
    peak = std::max(peak, ++running);
    if (running >= needed) met = true;
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return met; });
    --running;
    ++finished;
    cv.notify_all();
  }
};

TEST(BlockingPool, GrowsSoThatWaitingJobsDoNotStarveEachOther) {
  Rendezvous r;
  {
    BlockingPool pool(32);
    for (int i = 0; i < 32; ++i) pool.post([&] { r.job(32); });
    std::unique_lock lock(r.mu);
    ASSERT_TRUE(r.cv.wait_for(lock, std::chrono::seconds(20), [&] { return r.finished == 32; }));
  }
  EXPECT_TRUE(r.met) << "only " << r.peak << " of 32 jobs ran at once";
  EXPECT_EQ(r.peak, 32);
}

TEST(BlockingPool, NeverExceedsItsCapAndRunsEveryJob) {
  std::atomic<int> running{0}, peak{0}, done{0};
  {
    BlockingPool pool(3);
    for (int i = 0; i < 50; ++i)
      pool.post([&] {
        int now = ++running;
        for (int p = peak; now > p && !peak.compare_exchange_weak(p, now);) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        --running;
        ++done;
      });
  }  // the destructor runs what was posted, then joins
  EXPECT_EQ(done.load(), 50);
  EXPECT_LE(peak.load(), 3);
  EXPECT_GE(peak.load(), 1);
}

}  // namespace
}  // namespace tessera::serve
