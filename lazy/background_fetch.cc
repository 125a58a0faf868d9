#include "lazy/background_fetch.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/error.h"

namespace lazysnap::lazy {

using Clock = std::chrono::steady_clock;

const char* BackgroundStateName(BackgroundState s) {
  switch (s) {
    case BackgroundState::kWaiting:
      return "waiting";
    case BackgroundState::kFetching:
      return "fetching";
    case BackgroundState::kDone:
      return "done";
    case BackgroundState::kFailed:
      return "failed";
  }
  return "unknown";
}

struct BackgroundFetch::Impl {
  std::shared_ptr<fetcher::RangeFetcher> blob;
  BackgroundFetchOptions opts;
  const Logger& log;
  mutable std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  BackgroundFetchStats stats;
  std::thread thread;  // last: started after everything it uses

  Impl(std::shared_ptr<fetcher::RangeFetcher> b, BackgroundFetchOptions o, const Logger& l)
      : blob(std::move(b)), opts(o), log(l) {
    opts.request_bytes = std::max<uint64_t>(opts.request_bytes, 1);
  }

  // Sleeps until `until` or a stop; false when stopped.
  bool SleepUntil(Clock::time_point until) {
    std::unique_lock lock(mu);
    return !cv.wait_until(lock, until, [&] { return stop; });
  }

  // Requests readers made (not the prefetch's own).
  uint64_t ReaderRequests() const {
    auto s = blob->Stats();
    return s.requests - s.prefetch_requests;
  }

  void Run() {
    if (!SleepUntil(Clock::now() + opts.delay)) return;
    {
      std::lock_guard lock(mu);
      stats.state = BackgroundState::kFetching;
    }
    auto started = Clock::now();
    uint64_t fetched = 0, offset = 0;
    uint64_t readers = ReaderRequests();
    auto backoff = std::chrono::milliseconds(1000);
    while (offset < blob->size()) {
      // Readers first: go on only after `yield_for` without a reader's request.
      uint64_t now_readers = ReaderRequests();
      if (now_readers != readers) {
        readers = now_readers;
        if (!SleepUntil(Clock::now() + opts.yield_for)) return;
        continue;
      }
      try {
        fetched += blob->Prefetch(offset, opts.request_bytes);
        offset += opts.request_bytes;
        backoff = std::chrono::milliseconds(1000);
        std::lock_guard lock(mu);
        stats.bytes_fetched = fetched;
        stats.position = std::min(offset, blob->size());
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kUnavailable) {
          std::lock_guard lock(mu);
          stats.state = BackgroundState::kFailed;
          stats.error = e.what();
          log.Warn("background fetch stopped", {{"blob", blob->digest()}, {"error", e.what()}});
          return;
        }
        {
          std::lock_guard lock(mu);
          stats.error = e.what();
        }
        if (!SleepUntil(Clock::now() + backoff)) return;
        backoff = std::min(backoff * 2, std::chrono::milliseconds(30000));
        continue;
      }
      if (opts.bytes_per_second) {
        // Pace by what came over the network: at most bytes_per_second on average.
        auto due = started + std::chrono::microseconds(fetched * 1000000 / opts.bytes_per_second);
        if (!SleepUntil(due)) return;
      } else {
        std::lock_guard lock(mu);
        if (stop) return;
      }
    }
    std::lock_guard lock(mu);
    stats.state = BackgroundState::kDone;
    stats.error.clear();
    log.Info("layer fetched in the background",
             {{"blob", blob->digest()}, {"bytes_fetched", std::to_string(fetched)}});
  }
};

BackgroundFetch::BackgroundFetch(std::shared_ptr<fetcher::RangeFetcher> blob,
                                 BackgroundFetchOptions opts, const Logger& log)
    : impl_(std::make_unique<Impl>(std::move(blob), opts, log)) {
  impl_->thread = std::thread([im = impl_.get()] { im->Run(); });
}

BackgroundFetch::~BackgroundFetch() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
}

BackgroundFetchStats BackgroundFetch::Stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

}  // namespace lazysnap::lazy
