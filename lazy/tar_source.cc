#include "lazy/tar_source.h"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "common/error.h"
#include "lazy/span_store.h"

namespace lazysnap::lazy {
namespace {

using Clock = std::chrono::steady_clock;
using SpanData = std::shared_ptr<const std::string>;

// Plain-tar layers have no spans: their start reads are recorded in pieces of this size.
constexpr uint64_t kPlainUnit = 1u << 20;

uint64_t MicrosSince(Clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
}

}  // namespace

struct TarSource::Impl {
  std::shared_ptr<fetcher::RangeFetcher> blob;
  erofs::LayerCompression compression;
  uint64_t tar_size;
  std::vector<erofs::Checkpoint> cps;
  TarSourceOptions opts;
  std::unique_ptr<SpanStore> store;  // null: memory only

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
  // A few recent readers (files read side by side): where each one's last read ended.
  struct Stream {
    uint64_t next = UINT64_MAX;  // tar offset right after its last read
    size_t span = SIZE_MAX;      // the span its last read ended in
    unsigned window = 0;         // spans it reads ahead: 1, doubling per span it moves on
  };
  mutable std::array<Stream, 8> streams{};
  mutable size_t next_stream = 0;
  mutable TarSourceStats stats;
  // Start reads: the spans (pieces of kPlainUnit for a plain tar) read in the first
  // `record_window`, in the order first read.
  mutable std::optional<Clock::time_point> first_read;
  mutable std::vector<size_t> recorded;
  mutable std::set<size_t> recorded_set;
  // Spans Prefetch queued (in list order), those not local yet, whether a worker is on one;
  // plain-tar ranges it queued.
  mutable std::deque<size_t> prefetch_queue;
  mutable std::set<size_t> prefetch_wanted;
  mutable bool prefetch_busy = false;
  mutable std::deque<TarRange> raw_prefetch;
  bool stopping = false;
  std::vector<std::thread> workers;

  size_t SpanOf(uint64_t offset) const {
    auto it =
        std::upper_bound(cps.begin(), cps.end(), offset,
                         [](uint64_t off, const erofs::Checkpoint& c) { return off < c.out; });
    return static_cast<size_t>(it - cps.begin()) - 1;
  }
  uint64_t SpanEnd(size_t s) const { return s + 1 < cps.size() ? cps[s + 1].out : tar_size; }
  bool Plain() const { return compression == erofs::LayerCompression::kNone; }
  // The unit start reads are recorded in: a span, or a kPlainUnit piece of a plain tar.
  size_t UnitOf(uint64_t offset) const { return Plain() ? offset / kPlainUnit : SpanOf(offset); }
  TarRange UnitRange(size_t u) const {
    uint64_t from = Plain() ? u * kPlainUnit : cps[u].out;
    uint64_t to = Plain() ? std::min(tar_size, from + kPlainUnit) : SpanEnd(u);
    return {from, to - from};
  }

  // Records a read of [offset, offset + len) as a start read while the window is open. mu held.
  void RecordLocked(uint64_t offset, size_t len) const {
    if (opts.record_window.count() <= 0 || len == 0) return;
    auto now = Clock::now();
    if (!first_read) first_read = now;
    if (now - *first_read > opts.record_window) return;
    for (size_t u = UnitOf(offset), last = UnitOf(offset + len - 1); u <= last; ++u) {
      if (recorded_set.insert(u).second) recorded.push_back(u);
    }
  }

  uint64_t CompressedFrom(size_t s) const { return cps[s].in - (cps[s].bits ? 1 : 0); }
  uint64_t CompressedTo(size_t s) const {
    return s + 1 < cps.size() ? cps[s + 1].in : blob->size();
  }

  // Compressed bytes [from, to) in one ranged read (chunk-verified by the fetcher).
  std::shared_ptr<const std::string> FetchCompressed(uint64_t from, uint64_t to) const {
    auto t0 = Clock::now();
    auto in = std::make_shared<std::string>(to - from, '\0');
    in->resize(blob->Read(from, in->size(), in->data()));
    uint64_t us = MicrosSince(t0);
    std::lock_guard lock(mu);
    stats.fetch_us += us;
    return in;
  }

  // Inflates span `s` from `in`, compressed bytes starting at blob offset `in_from` that cover
  // the span (the span's own range from the checkpoint's leftover-bits byte to where the next
  // span starts: one ranged read instead of inflate's 64 KiB sips).
  SpanData InflateSpan(size_t s, const std::string& in, uint64_t in_from) const {
    auto t0 = Clock::now();
    const erofs::Checkpoint& cp = cps[s];
    auto read = [&](uint64_t off, uint8_t* buf, size_t len) -> size_t {
      if (off >= in_from && off < in_from + in.size()) {
        size_t n = std::min<uint64_t>(len, in_from + in.size() - off);
        std::memcpy(buf, in.data() + (off - in_from), n);
        return n;
      }
      return blob->Read(off, len, reinterpret_cast<char*>(buf));  // past the span: rare
    };
    uint64_t len = SpanEnd(s) - cp.out;
    auto out =
        std::make_shared<std::string>(compression == erofs::LayerCompression::kZstd
                                          ? erofs::DecodeZstdFrames(read, cp.in, len)
                                          : erofs::InflateFromCheckpoint(cp, read, cp.out, len));
    if (out->size() != len) {
      throw Error(ErrorCode::kDataLoss, "layer " + blob->digest() + ": span at tar offset " +
                                            std::to_string(cp.out) + " inflated to " +
                                            std::to_string(out->size()) + " bytes, index says " +
                                            std::to_string(len));
    }
    uint64_t inflate_us = MicrosSince(t0);
    if (store) store->Put(s, cp.out, *out);
    std::lock_guard lock(mu);
    stats.spans_inflated++;
    stats.inflate_us += inflate_us;
    return out;
  }

  // The right to inflate span `s`: whoever holds it fulfils the promise others wait on.
  struct Claim {
    size_t span = 0;
    std::promise<SpanData> promise;
  };

  // mu held. False when the span is in memory, in the store or being inflated.
  bool ClaimLocked(size_t s, std::vector<Claim>& claims) const {
    if (cached.count(s) || inflight.count(s) || (store && store->Has(s))) return false;
    Claim c;
    c.span = s;
    inflight.emplace(s, c.promise.get_future().share());
    claims.push_back(std::move(c));
    return true;
  }

  void Fail(Claim& c, std::exception_ptr e) const {
    {
      std::lock_guard lock(mu);
      inflight.erase(c.span);
    }
    c.promise.set_exception(e);
  }

  // Inflates a claimed span (from `in` when given, else fetching its own bytes), keeps it in
  // memory and hands it to the waiters.
  SpanData Fulfill(Claim& c, std::shared_ptr<const std::string> in, uint64_t in_from) const {
    SpanData data;
    try {
      if (!in) {
        in_from = CompressedFrom(c.span);
        in = FetchCompressed(in_from, CompressedTo(c.span));
      }
      data = InflateSpan(c.span, *in, in_from);
    } catch (...) {
      Fail(c, std::current_exception());
      throw;
    }
    std::lock_guard lock(mu);
    inflight.erase(c.span);
    if (prefetch_wanted.erase(c.span)) stats.prefetched++;
    lru.push_front(c.span);
    cached[c.span] = {data, lru.begin()};
    cached_bytes += data->size();
    while (cached_bytes > opts.span_cache_bytes && lru.size() > 1) {
      size_t victim = lru.back();
      lru.pop_back();
      cached_bytes -= cached[victim].data->size();
      cached.erase(victim);
    }
    c.promise.set_value(data);
    return data;
  }

  // The span's bytes: from memory, by waiting for whoever inflates it, or by inflating it here.
  SpanData GetSpan(size_t s, bool* hit) const {
    std::vector<Claim> claims;
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
      Claim c;
      c.span = s;
      inflight.emplace(s, c.promise.get_future().share());
      claims.push_back(std::move(c));
    }
    return Fulfill(claims[0], nullptr, 0);
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

  // Copies tar bytes [pos, pos + n) of span `s` into `out`: from the store, else memory or
  // inflate.
  void CopyFromSpan(size_t s, uint64_t pos, size_t n, char* out) const {
    if (store && store->Read(s, pos, n, out)) {
      std::lock_guard lock(mu);
      stats.store_hits++;
      return;
    }
    bool hit = false;
    SpanData span = GetSpanPatiently(s, &hit);
    std::memcpy(out, span->data() + (pos - cps[s].out), n);
    if (hit) {
      std::lock_guard lock(mu);
      stats.span_hits++;
    }
  }

  bool Have(size_t s) const {  // mu held
    return cached.count(s) || inflight.count(s) || (store && store->Has(s)) ||
           std::find(readahead_queue.begin(), readahead_queue.end(), s) != readahead_queue.end();
  }

  unsigned ReadaheadWindow() const {
    if (store && !store->Stats().disabled) return opts.readahead_spans;
    uint64_t span = std::max<uint64_t>(1, tar_size / std::max<size_t>(1, cps.size()));
    return static_cast<unsigned>(
        std::min<uint64_t>(opts.readahead_spans, opts.span_cache_bytes / span / 2));
  }

  // A read of [offset, offset+len) that continues one of the recent readers (it starts where
  // that one's last read ended, as the kernel's read-ahead asks) queues the spans after it.
  // Readers that merely hit the same span (random reads of small files) queue nothing.
  // (Spans already in the store are left to the kernel's read-ahead: a posix_fadvise(WILLNEED)
  // of the next spans here made warm reads 1.8x slower, measured.)
  // The window starts at one span and doubles each time the reader moves on to the next span,
  // up to `readahead_spans`: a program starting (a binary paged in, a few libraries) reads short
  // contiguous runs, and a full window on each of those fetched 1.3-1.7x the bytes it used
  // before its first output (measured on the gcc, jre and node images).
  void NoteAccess(uint64_t offset, size_t len) const {
    unsigned max_window = ReadaheadWindow();
    size_t s = SpanOf(offset + len - 1);
    std::lock_guard lock(mu);
    Stream* stream = nullptr;
    for (Stream& st : streams) {
      if (st.next == offset) {
        stream = &st;
        break;
      }
    }
    if (!stream) {
      streams[next_stream] = {offset + len, s, 0};
      next_stream = (next_stream + 1) % streams.size();
      return;
    }
    stream->next = offset + len;
    if (s != stream->span) {
      stream->span = s;
      stream->window = stream->window == 0 ? 1 : std::min(2 * stream->window, max_window);
    } else if (stream->window == 0) {
      stream->window = 1;
    }
    unsigned window = std::min(stream->window, max_window);
    bool queued = false;
    for (size_t k = 1; k <= window && s + k < cps.size(); ++k) {
      if (Have(s + k)) continue;
      readahead_queue.push_back(s + k);
      queued = true;
    }
    if (queued) work_cv.notify_all();
  }

  // Pops the first span of `q` and the adjacent ones after it (one request of at most
  // readahead_fetch_bytes), claiming them; stops at one already claimed. mu held.
  void ClaimRunLocked(std::deque<size_t>& q, std::vector<Claim>& claims) const {
    size_t s = q.front();
    q.pop_front();
    if (!ClaimLocked(s, claims)) return;
    while (!q.empty() && q.front() == claims.back().span + 1 &&
           CompressedTo(q.front()) - CompressedFrom(s) <= opts.readahead_fetch_bytes) {
      size_t next = q.front();
      q.pop_front();
      if (!ClaimLocked(next, claims)) break;
    }
  }

  // Spans a worker fetched together and another worker may inflate.
  struct InflateTask {
    Claim claim;
    std::shared_ptr<const std::string> in;
    uint64_t in_from = 0;
  };
  mutable std::deque<InflateTask> inflate_tasks;

  void ReadaheadLoop() {
    std::unique_lock lock(mu);
    for (;;) {
      work_cv.wait(lock, [&] {
        return stopping || !readahead_queue.empty() || !inflate_tasks.empty() ||
               !raw_prefetch.empty() || (!prefetch_queue.empty() && !prefetch_busy);
      });
      if (stopping) return;
      if (!raw_prefetch.empty()) {
        TarRange r = raw_prefetch.front();
        raw_prefetch.pop_front();
        lock.unlock();
        bool ok = true;
        try {
          blob->Prefetch(r.offset, r.length);
        } catch (...) {
          ok = false;  // a reader fetches it itself
        }
        lock.lock();
        if (ok) stats.prefetched++;
        continue;
      }
      if (!inflate_tasks.empty()) {
        InflateTask t = std::move(inflate_tasks.front());
        inflate_tasks.pop_front();
        lock.unlock();
        try {
          Fulfill(t.claim, t.in, t.in_from);
        } catch (...) {
          // Waiters got the error; the reader that needs the span retries it itself.
        }
        lock.lock();
        continue;
      }
      // Read-ahead before the prefetch list: a reader is about to need it. The list goes on one
      // worker at a time, fetched and inflated there, so a starting container keeps the other
      // cores (measured: on all workers, a list holding a 128 MiB file delayed lazy-app's first
      // output 0.36 -> 0.68 s).
      bool prefetching = readahead_queue.empty();
      std::vector<Claim> claims;
      ClaimRunLocked(prefetching ? prefetch_queue : readahead_queue, claims);
      if (claims.empty()) continue;
      if (prefetching) {
        prefetch_busy = true;
      } else {
        stats.readahead_spans += claims.size();
      }
      lock.unlock();
      uint64_t from = CompressedFrom(claims.front().span);
      std::shared_ptr<const std::string> in;
      try {
        in = FetchCompressed(from, CompressedTo(claims.back().span));
      } catch (...) {
        // A failed read-ahead costs nothing: a reader that needs the span fetches it itself.
        for (auto& c : claims) Fail(c, std::current_exception());
        lock.lock();
        if (prefetching) prefetch_busy = false;
        continue;
      }
      if (prefetching) {
        for (auto& c : claims) {
          try {
            Fulfill(c, in, from);
          } catch (...) {
          }
        }
        lock.lock();
        prefetch_busy = false;
        work_cv.notify_all();
        continue;
      }
      lock.lock();
      for (size_t k = 1; k < claims.size(); ++k) {
        inflate_tasks.push_back({std::move(claims[k]), in, from});
      }
      if (claims.size() > 1) work_cv.notify_all();
      lock.unlock();
      try {
        Fulfill(claims.front(), in, from);
      } catch (...) {
      }
      lock.lock();
    }
  }
};

TarSource::TarSource(std::shared_ptr<fetcher::RangeFetcher> blob,
                     erofs::LayerCompression compression, uint64_t tar_size,
                     std::vector<erofs::Checkpoint> checkpoints, TarSourceOptions opts)
    : impl_(std::make_unique<Impl>()) {
  impl_->blob = std::move(blob);
  impl_->compression = compression;
  impl_->tar_size = tar_size;
  impl_->cps = std::move(checkpoints);
  impl_->opts = opts;
  if (compression != erofs::LayerCompression::kNone) {
    const auto& c = impl_->cps;
    const bool zstd = compression == erofs::LayerCompression::kZstd;
    if (c.empty() || c.front().out != 0) {
      throw Error(ErrorCode::kInvalidArgument, "layer " + impl_->blob->digest() + ": " +
                                                   erofs::LayerCompressionName(compression) +
                                                   " index has no checkpoint at offset 0");
    }
    for (size_t i = 0; i < c.size(); ++i) {
      bool ordered = i == 0 || (c[i].out > c[i - 1].out && c[i].in > c[i - 1].in);
      if (!ordered || c[i].out > tar_size || c[i].in > impl_->blob->size() ||
          (c[i].bits && (c[i].in == 0 || zstd))) {
        throw Error(ErrorCode::kInvalidArgument, "layer " + impl_->blob->digest() +
                                                     ": gzip checkpoint " + std::to_string(i) +
                                                     " is out of order or out of range");
      }
    }
    if (!opts.store_dir.empty() && opts.store_bytes > 0) {
      impl_->store = std::make_unique<SpanStore>(opts.store_dir, opts.store_bytes);
    }
  } else if (tar_size != impl_->blob->size()) {
    throw Error(ErrorCode::kInvalidArgument,
                "layer " + impl_->blob->digest() + ": plain tar size differs from the blob size");
  }
  // A plain tar has no read-ahead; one thread serves its prefetch list.
  unsigned workers = impl_->Plain() ? 1u : std::max(1u, opts.workers);
  for (unsigned i = 0; i < workers; ++i) {
    impl_->workers.emplace_back([this] { impl_->ReadaheadLoop(); });
  }
}

TarSource::~TarSource() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->work_cv.notify_all();
  for (auto& w : impl_->workers) w.join();
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
      size_t n = std::min<uint64_t>(end - pos, impl_->SpanEnd(s) - pos);
      // Queue the read-ahead first, so the next spans are on the wire while this one inflates.
      impl_->NoteAccess(pos, n);
      impl_->CopyFromSpan(s, pos, n, out + (pos - offset));
      pos += n;
    }
  }
  std::lock_guard lock(impl_->mu);
  impl_->stats.reads++;
  impl_->stats.bytes_served += len;
  impl_->RecordLocked(offset, len);
}

bool TarSource::LendFd(uint64_t offset, size_t len, const FdUser& use) const {
  auto& im = *impl_;
  if (!im.store || len == 0 || offset > im.tar_size || len > im.tar_size - offset) return false;
  size_t first = im.SpanOf(offset), last = im.SpanOf(offset + len - 1);
  size_t pinned = first;
  while (pinned <= last && im.store->Pin(pinned)) ++pinned;
  struct Unpin {
    const Impl& im;
    size_t first, end;
    ~Unpin() {
      for (size_t s = first; s < end; ++s) im.store->Unpin(s);
    }
  } unpin{im, first, pinned};
  if (pinned <= last) return false;
  im.NoteAccess(offset, len);
  use(im.store->fd(), offset);
  std::lock_guard lock(im.mu);
  im.stats.store_hits++;
  im.stats.reads++;
  im.stats.bytes_served += len;
  im.RecordLocked(offset, len);
  return true;
}

void TarSource::Prefetch(const std::vector<TarRange>& ranges) const {
  auto& im = *impl_;
  // Checked before taking mu (the store has its own lock).
  bool stored = im.store && !im.store->Stats().disabled;
  std::lock_guard lock(im.mu);
  if (im.Plain()) {
    for (TarRange r : ranges) {
      if (r.offset >= im.tar_size) continue;
      r.length = std::min(r.length, im.tar_size - r.offset);
      im.raw_prefetch.push_back(r);
      im.stats.prefetch_spans++;
    }
  } else {
    const uint64_t budget = stored ? im.opts.store_bytes / 2 : im.opts.span_cache_bytes / 2;
    uint64_t queued = 0;
    bool full = false;
    for (auto r = ranges.begin(); r != ranges.end() && !full; ++r) {
      if (r->offset >= im.tar_size) continue;
      uint64_t end = std::min(im.tar_size, r->offset + r->length);
      for (size_t s = im.SpanOf(r->offset), last = im.SpanOf(end - 1); s <= last && !full; ++s) {
        if (im.Have(s) || im.prefetch_wanted.count(s)) continue;
        uint64_t len = im.SpanEnd(s) - im.cps[s].out;
        full = queued + len > budget;
        if (full) break;
        queued += len;
        im.prefetch_queue.push_back(s);
        im.prefetch_wanted.insert(s);
        im.stats.prefetch_spans++;
      }
    }
  }
  im.work_cv.notify_all();
}

std::vector<TarRange> TarSource::StartReads() const {
  auto& im = *impl_;
  std::lock_guard lock(im.mu);
  std::vector<TarRange> out;
  for (size_t u : im.recorded) {
    TarRange r = im.UnitRange(u);
    if (!out.empty() && out.back().offset + out.back().length == r.offset) {
      out.back().length += r.length;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

TarSourceStats TarSource::Stats() const {
  TarSourceStats s;
  {
    std::lock_guard lock(impl_->mu);
    s = impl_->stats;
    s.start_read_spans = impl_->recorded.size();
  }
  if (impl_->store) {
    SpanStoreStats st = impl_->store->Stats();
    s.store_bytes = st.bytes;
    s.store_disabled = st.disabled;
  }
  return s;
}

fetcher::RangeFetcherStats TarSource::FetchStats() const {
  return impl_->blob->Stats();
}

}  // namespace lazysnap::lazy
