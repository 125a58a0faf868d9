// RunInParallel (common/parallel.h): every job once, no more at a time than asked, and a failure
// stops the jobs not started yet.
#include "common/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace lazysnap {
namespace {

TEST(RunInParallel, RunsEveryJobOnceWithAtMostTheWorkersAsked) {
  for (unsigned workers : {0u, 1u, 3u, 16u}) {
    std::mutex mu;
    std::multiset<size_t> ran;
    std::atomic<int> running{0}, peak{0};
    RunInParallel(10, workers, [&](size_t j) {
      int now = ++running;
      for (int p = peak.load(); now > p && !peak.compare_exchange_weak(p, now);) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      --running;
      std::lock_guard lock(mu);
      ran.insert(j);
      return true;
    });
    std::multiset<size_t> want;
    for (size_t j = 0; j < 10; ++j) want.insert(j);
    EXPECT_EQ(ran, want) << workers << " workers";
    EXPECT_LE(peak.load(), static_cast<int>(std::max(workers, 1u))) << workers << " workers";
    if (workers == 3) {
      EXPECT_GE(peak.load(), 2);  // they did run at once
    }
  }
  bool called = false;
  RunInParallel(0, 4, [&](size_t) { return called = true; });
  EXPECT_FALSE(called);
}

TEST(RunInParallel, AFailureSkipsTheJobsNotStarted) {
  std::vector<size_t> ran;
  RunInParallel(10, 1, [&](size_t j) {
    ran.push_back(j);
    return j != 3;
  });
  EXPECT_EQ(ran, (std::vector<size_t>{0, 1, 2, 3}));

  // With several workers the running jobs finish; nothing past them starts.
  std::atomic<size_t> started{0};
  std::atomic<bool> finished_slow{false};
  RunInParallel(100, 2, [&](size_t j) {
    ++started;
    if (j == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      finished_slow = true;
      return true;
    }
    return j != 1;
  });
  EXPECT_TRUE(finished_slow);
  EXPECT_LE(started.load(), 3u);
}

}  // namespace
}  // namespace lazysnap
