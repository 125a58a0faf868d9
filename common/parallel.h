// Runs independent jobs on a few threads: the layers of an image fetched and built (or indexed)
// at once.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace lazysnap {

// Runs job(0), job(1), ... job(count - 1) on up to `workers` threads (this one included), started
// in index order. A job returns false when it failed (it keeps its own error): the jobs not
// started by then are skipped, the running ones finish. Returns once all started jobs have; jobs
// must not throw.
inline void RunInParallel(size_t count, unsigned workers, const std::function<bool(size_t)>& job) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  auto work = [&] {
    for (size_t j; !failed.load() && (j = next.fetch_add(1)) < count;) {
      if (!job(j)) failed = true;
    }
  };
  std::vector<std::thread> threads;
  size_t n = std::min<size_t>(std::max(workers, 1u), count);
  for (size_t t = 1; t < n; ++t) threads.emplace_back(work);
  if (n > 0) work();
  for (auto& t : threads) t.join();
}

}  // namespace lazysnap
