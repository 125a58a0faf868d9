// Background fetch of a lazily served layer: after a quiet start, the rest of the layer's
// compressed blob is fetched into the chunk cache (verified chunk by chunk) at low priority, so
// a layer that is served long enough ends up local and stops depending on the registry.
//
// Low priority means: it waits `delay` after the mount (the container's start reads first), it
// sends one request at a time (readers keep the other connections), it pauses whenever readers
// made the fetcher send requests in the last `yield_for`, and it keeps under `bytes_per_second`.
// Registry errors back it off (1 s doubling to 30 s) and it resumes where it stopped; bytes that
// fail verification stop it (logged); readers are never affected by its errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/log.h"
#include "fetcher/range_fetcher.h"

namespace lazysnap::lazy {

struct BackgroundFetchOptions {
  std::chrono::milliseconds delay{10000};
  uint64_t bytes_per_second = 64ull << 20;  // 0: no limit
  uint64_t request_bytes = 4ull << 20;      // per step (one request, chunks merged)
  std::chrono::milliseconds yield_for{200};
};

enum class BackgroundState { kWaiting, kFetching, kDone, kFailed };
const char* BackgroundStateName(BackgroundState s);

struct BackgroundFetchStats {
  BackgroundState state = BackgroundState::kWaiting;
  uint64_t bytes_fetched = 0;  // by the background fetch (the rest was in the cache or read)
  uint64_t position = 0;       // blob offset reached
  std::string error;           // the last registry error, or why it stopped
};

class BackgroundFetch {
 public:
  BackgroundFetch(std::shared_ptr<fetcher::RangeFetcher> blob, BackgroundFetchOptions opts,
                  const Logger& log);
  ~BackgroundFetch();  // stops it: waits for the request in flight, if any
  BackgroundFetch(const BackgroundFetch&) = delete;
  BackgroundFetch& operator=(const BackgroundFetch&) = delete;

  BackgroundFetchStats Stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::lazy
