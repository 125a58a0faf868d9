#include "lazy/tar_source.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include "common/error.h"

namespace lazysnap::lazy {
namespace {

using Clock = std::chrono::steady_clock;
using SpanData = std::shared_ptr<const std::string>;

}  // namespace

struct TarSource::Impl {
  std::shared_ptr<fetcher::RangeFetcher> blob;
  erofs::LayerCompression compression;
  uint64_t tar_size;
  std::vector<erofs::GzipCheckpoint> cps;
  TarSourceOptions opts;

  mutable std::mutex mu;
  mutable std::condition_variable work_cv;
  // Inflated spans, most recently used first.
  mutable std::list<size_t> lru;
  struct Cached {
    SpanData data;
    std::list<size_t>::iterator pos;
  };
  mutable std::map<size_t, Cached> cached;
  mutable uint64_t cached_bytes = 0;
  mutable std::map<size_t, std::shared_future<SpanData>> inflight;
  mutable std::deque<size_t> readahead_queue;
  mutable size_t last_span = SIZE_MAX;
  mutable TarSourceStats stats;
  bool stopping = false;
  std::thread worker;

  size_t SpanOf(uint64_t offset) const {
    auto it =
        std::upper_bound(cps.begin(), cps.end(), offset,
                         [](uint64_t off, const erofs::GzipCheckpoint& c) { return off < c.out; });
    return static_cast<size_t>(it - cps.begin()) - 1;
  }
  uint64_t SpanEnd(size_t s) const { return s + 1 < cps.size() ? cps[s + 1].out : tar_size; }

  SpanData InflateSpan(size_t s) const {
    auto t0 = Clock::now();
    const erofs::GzipCheckpoint& cp = cps[s];
    // The compressed bytes of this span: from the byte holding the checkpoint's leftover bits to
    // the byte where the next span starts (its leftover bits end this span). One ranged read
    // brings them all in (one request, chunk-verified), instead of inflate's 64 KiB sips.
    uint64_t from = cp.in - (cp.bits ? 1 : 0);
    uint64_t to = s + 1 < cps.size() ? cps[s + 1].in : blob->size();
    std::string in(to - from, '\0');
    in.resize(blob->Read(from, in.size(), in.data()));
    auto read = [&](uint64_t off, uint8_t* buf, size_t len) -> size_t {
      if (off >= from && off < from + in.size()) {
        size_t n = std::min<uint64_t>(len, from + in.size() - off);
        std::memcpy(buf, in.data() + (off - from), n);
        return n;
      }
      return blob->Read(off, len, reinterpret_cast<char*>(buf));  // past the span: rare
    };
    uint64_t len = SpanEnd(s) - cp.out;
    auto out = std::make_shared<std::string>(erofs::InflateFromCheckpoint(cp, read, cp.out, len));
    if (out->size() != len) {
      throw Error(ErrorCode::kDataLoss, "layer " + blob->digest() + ": span at tar offset " +
                                            std::to_string(cp.out) + " inflated to " +
                                            std::to_string(out->size()) + " bytes, index says " +
                                            std::to_string(len));
    }
    std::lock_guard lock(mu);
    stats.spans_inflated++;
    stats.inflate_us +=
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
    return out;
  }

  // The span's bytes: from memory, by waiting for whoever inflates it, or by inflating it here.
  SpanData GetSpan(size_t s, bool* hit) const {
    std::promise<SpanData> promise;
    {
      std::unique_lock lock(mu);
      if (auto it = cached.find(s); it != cached.end()) {
        lru.splice(lru.begin(), lru, it->second.pos);
        if (hit) *hit = true;
        return it->second.data;
      }
      if (auto it = inflight.find(s); it != inflight.end()) {
        auto f = it->second;
        lock.unlock();
        return f.get();
      }
      inflight.emplace(s, promise.get_future().share());
    }
    SpanData data;
    try {
      data = InflateSpan(s);
    } catch (...) {
      std::lock_guard lock(mu);
      inflight.erase(s);
      promise.set_exception(std::current_exception());
      throw;
    }
    std::lock_guard lock(mu);
    inflight.erase(s);
    lru.push_front(s);
    cached[s] = {data, lru.begin()};
    cached_bytes += data->size();
    while (cached_bytes > opts.span_cache_bytes && lru.size() > 1) {
      size_t victim = lru.back();
      lru.pop_back();
      cached_bytes -= cached[victim].data->size();
      cached.erase(victim);
    }
    promise.set_value(data);
    return data;
  }

  // Retries while the registry is unreachable, so a short outage stalls readers instead of
  // failing them.
  SpanData GetSpanPatiently(size_t s, bool* hit) const {
    auto deadline = Clock::now() + opts.unavailable_timeout;
    for (;;) {
      try {
        return GetSpan(s, hit);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kUnavailable || Clock::now() >= deadline) throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }

  void NoteAccess(size_t s) const {
    std::lock_guard lock(mu);
    bool sequential = last_span != SIZE_MAX && (s == last_span || s == last_span + 1);
    last_span = s;
    if (!sequential) return;
    for (size_t k = 1; k <= opts.readahead_spans && s + k < cps.size(); ++k) {
      size_t next = s + k;
      if (cached.count(next) || inflight.count(next) ||
          std::find(readahead_queue.begin(), readahead_queue.end(), next) !=
              readahead_queue.end()) {
        continue;
      }
      readahead_queue.push_back(next);
    }
    work_cv.notify_one();
  }

  void ReadaheadLoop() {
    std::unique_lock lock(mu);
    for (;;) {
      work_cv.wait(lock, [&] { return stopping || !readahead_queue.empty(); });
      if (stopping) return;
      size_t s = readahead_queue.front();
      readahead_queue.pop_front();
      lock.unlock();
      try {
        GetSpan(s, nullptr);
        std::lock_guard l(mu);
        stats.readahead_spans++;
      } catch (...) {
        // A failed readahead costs nothing: the reader that needs the span fetches it itself and
        // sees the error.
      }
      lock.lock();
    }
  }
};

TarSource::TarSource(std::shared_ptr<fetcher::RangeFetcher> blob,
                     erofs::LayerCompression compression, uint64_t tar_size,
                     std::vector<erofs::GzipCheckpoint> checkpoints, TarSourceOptions opts)
    : impl_(std::make_unique<Impl>()) {
  impl_->blob = std::move(blob);
  impl_->compression = compression;
  impl_->tar_size = tar_size;
  impl_->cps = std::move(checkpoints);
  impl_->opts = opts;
  if (compression == erofs::LayerCompression::kZstd) {
    throw Error(ErrorCode::kInvalidArgument, "zstd layers cannot be read lazily");
  }
  if (compression == erofs::LayerCompression::kGzip) {
    const auto& c = impl_->cps;
    if (c.empty() || c.front().out != 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "layer " + impl_->blob->digest() + ": gzip index has no checkpoint at offset 0");
    }
    for (size_t i = 0; i < c.size(); ++i) {
      bool ordered = i == 0 || (c[i].out > c[i - 1].out && c[i].in > c[i - 1].in);
      if (!ordered || c[i].out > tar_size || c[i].in > impl_->blob->size() ||
          (c[i].bits && c[i].in == 0)) {
        throw Error(ErrorCode::kInvalidArgument, "layer " + impl_->blob->digest() +
                                                     ": gzip checkpoint " + std::to_string(i) +
                                                     " is out of order or out of range");
      }
    }
    impl_->worker = std::thread([this] { impl_->ReadaheadLoop(); });
  } else if (tar_size != impl_->blob->size()) {
    throw Error(ErrorCode::kInvalidArgument,
                "layer " + impl_->blob->digest() + ": plain tar size differs from the blob size");
  }
}

TarSource::~TarSource() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->work_cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

uint64_t TarSource::Size() const {
  return impl_->tar_size;
}

void TarSource::Read(uint64_t offset, size_t len, void* buf) const {
  if (offset > impl_->tar_size || len > impl_->tar_size - offset) {
    throw Error(ErrorCode::kInvalidArgument,
                "read beyond the end of layer " + impl_->blob->digest() + "'s tar");
  }
  char* out = static_cast<char*>(buf);
  if (impl_->compression == erofs::LayerCompression::kNone) {
    auto deadline = Clock::now() + impl_->opts.unavailable_timeout;
    for (;;) {
      try {
        if (impl_->blob->Read(offset, len, out) != len) {
          throw Error(ErrorCode::kDataLoss, "layer " + impl_->blob->digest() + " is short");
        }
        break;
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kUnavailable || Clock::now() >= deadline) throw;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  } else {
    uint64_t pos = offset, end = offset + len;
    while (pos < end) {
      size_t s = impl_->SpanOf(pos);
      bool hit = false;
      SpanData span = impl_->GetSpanPatiently(s, &hit);
      impl_->NoteAccess(s);
      uint64_t span_start = impl_->cps[s].out;
      size_t n = std::min<uint64_t>(end - pos, span_start + span->size() - pos);
      std::memcpy(out + (pos - offset), span->data() + (pos - span_start), n);
      pos += n;
      if (hit) {
        std::lock_guard lock(impl_->mu);
        impl_->stats.span_hits++;
      }
    }
  }
  std::lock_guard lock(impl_->mu);
  impl_->stats.reads++;
  impl_->stats.bytes_served += len;
}

TarSourceStats TarSource::Stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

fetcher::RangeFetcherStats TarSource::FetchStats() const {
  return impl_->blob->Stats();
}

}  // namespace lazysnap::lazy
