#include "fetcher/range_fetcher.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "common/error.h"
#include "common/sha256.h"
#include "fetcher/url.h"

namespace lazysnap::fetcher {

namespace {

constexpr int kMaxRedirects = 5;

// A chunk some reader is getting; other readers of the same chunk wait on it.
struct InFlight {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::shared_ptr<const std::string> data;  // shared with the other chunks of one response
  size_t offset = 0, length = 0;
  std::exception_ptr error;

  void Finish(std::shared_ptr<const std::string> d, size_t off, size_t len, std::exception_ptr e) {
    std::lock_guard lock(mu);
    data = std::move(d);
    offset = off;
    length = len;
    error = e;
    done = true;
    cv.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
  }
};

// Adjacent missing chunks fetched with one range request.
struct Run {
  uint64_t first = 0, count = 0;  // chunk indexes
  uint64_t offset = 0, length = 0;
  std::string body;
  uint64_t seen = 0;         // bytes of a 200 (whole blob) answer seen so far
  std::string redirect_url;  // after a 3xx: fetched from there, without credentials
  int hops = 0;
  bool done = false;
};

std::string BareHex(const std::string& d) {
  return d.starts_with("sha256:") ? d.substr(7) : d;
}

}  // namespace

struct RangeFetcher::Impl {
  std::shared_ptr<RegistryClient> client;
  std::string digest;
  uint64_t size = 0;
  ChunkCache& cache;
  MultiHttp& http;
  RangeFetcherOptions opts;
  uint32_t cs = 0;
  uint64_t nchunks = 0;
  std::vector<std::string> chunk_hex;
  std::atomic<bool> whole_verified{false};
  uint64_t window = 16;  // chunks per FetchAll step

  std::mutex client_mu;  // the registry client and the prepared request
  std::optional<HttpRequest> base;

  mutable std::mutex mu;  // inflight and stats
  std::unordered_map<uint64_t, std::shared_ptr<InFlight>> inflight;
  RangeFetcherStats stats;

  Impl(std::shared_ptr<RegistryClient> c, std::string d, uint64_t s, ChunkCache& ca, MultiHttp& h,
       RangeFetcherOptions o)
      : client(std::move(c)),
        digest(std::move(d)),
        size(s),
        cache(ca),
        http(h),
        opts(std::move(o)),
        base(std::move(opts.prepared_request)) {}

  uint64_t ChunkLen(uint64_t i) const {
    return std::min<uint64_t>(cs, size - i * static_cast<uint64_t>(cs));
  }
  bool Verified() const { return !chunk_hex.empty() || whole_verified.load(); }
  // Range reads and prefetches need chunk digests (or a verified whole blob), unless the caller
  // opted into unverified bytes.
  void RequireVerifiable(const std::string& what) const {
    if (Verified() || opts.allow_unverified) return;
    throw Error(ErrorCode::kFailedPrecondition, "blob " + digest + ": no chunk digests to verify " +
                                                    what + " with; fetch the whole blob first");
  }

  HttpRequest BaseRequest(bool refresh) {
    std::lock_guard lock(client_mu);
    if (refresh || !base) base = client->PrepareBlobRequest(digest);
    return *base;
  }

  bool ChunkOk(uint64_t index, const char* data, size_t len) {
    if (chunk_hex.empty()) return true;
    return Sha256Hex(std::string_view(data, len)) == chunk_hex[index];
  }

  // Fetches the runs over HTTP, verifying every chunk; fills run.body. Throws after the last
  // attempt, naming host, digest and range.
  void FetchRuns(std::vector<Run>& runs, bool prefetch) {
    std::mt19937 rng{std::random_device{}()};
    auto backoff = std::chrono::milliseconds(100);
    std::string last_error;
    bool refresh = false;
    for (int attempt = 1; attempt <= opts.attempts; ++attempt) {
      HttpRequest tmpl = BaseRequest(refresh);
      refresh = false;
      std::vector<HttpRequest> reqs;
      std::vector<BodySink> sinks;
      std::vector<Run*> active;
      for (auto& r : runs) {
        if (r.done) continue;
        r.body.clear();
        r.body.reserve(r.length);
        r.seen = 0;
        HttpRequest req = tmpl;
        if (!r.redirect_url.empty()) {
          req.url = r.redirect_url;
          std::erase_if(req.headers, [](const std::string& h) {
            return h.starts_with("Authorization:");  // never forwarded to another host
          });
        }
        std::string range =
            std::to_string(r.offset) + "-" + std::to_string(r.offset + r.length - 1);
        req.headers.push_back("Range: bytes=" + range);
        req.timeout_ms = opts.request_timeout_ms;
        reqs.push_back(std::move(req));
        Run* rp = &r;
        sinks.push_back([rp](long status, const char* data, size_t len) {
          if (status == 200) {  // no range support: cut the range out of the whole blob
            uint64_t start = rp->seen;
            rp->seen += len;
            if (rp->seen <= rp->offset) return true;
            uint64_t from = rp->offset > start ? rp->offset - start : 0;
            uint64_t take = std::min<uint64_t>(len - from, rp->length - rp->body.size());
            rp->body.append(data + from, take);
            return rp->body.size() < rp->length;
          }
          if (rp->body.size() + len > rp->length) return false;  // more than asked for
          rp->body.append(data, len);
          return true;
        });
        active.push_back(&r);
      }
      if (active.empty()) return;
      auto results = http.PerformAll(reqs, sinks);
      bool retry_now = false;
      uint64_t got = 0;
      for (size_t k = 0; k < active.size(); ++k) {
        Run& r = *active[k];
        const MultiResult& res = results[k];
        const std::string range =
            std::to_string(r.offset) + "-" + std::to_string(r.offset + r.length - 1);
        const std::string what =
            "blob " + digest + " from " + HostOf(reqs[k].url) + " range " + range;
        got += r.body.size();
        if (res.error) {
          try {
            std::rethrow_exception(res.error);
          } catch (const std::exception& e) {
            last_error = e.what();
          }
          continue;
        }
        long st = res.response.status;
        if (st == 401 && r.redirect_url.empty()) {
          refresh = true;  // token expired: authenticate again through the client
          last_error = what + ": HTTP 401";
          continue;
        }
        if (st >= 300 && st < 400) {
          std::string loc = res.response.Header("location");
          if (loc.empty() || ++r.hops > kMaxRedirects) {
            throw Error(ErrorCode::kUnavailable,
                        what + ": bad redirect (HTTP " + std::to_string(st) + ")");
          }
          r.redirect_url = ResolveLocation(reqs[k].url, loc);
          retry_now = true;
          continue;
        }
        if (RetryableStatus(st)) {
          last_error = what + ": HTTP " + std::to_string(st);
          continue;
        }
        if (st != 200 && st != 206) {
          throw Error(st == 404 ? ErrorCode::kNotFound
                                : (st == 401 || st == 403 ? ErrorCode::kFailedPrecondition
                                                          : ErrorCode::kUnavailable),
                      what + ": HTTP " + std::to_string(st));
        }
        if (st == 206) {
          std::string cr = res.response.Header("content-range");
          if (!cr.starts_with("bytes " + range + "/") || res.response.aborted_by_sink) {
            last_error = what + ": answered Content-Range \"" + cr + "\"";
            continue;
          }
        }
        if (r.body.size() != r.length) {
          last_error = what + ": short read, " + std::to_string(r.body.size()) + " of " +
                       std::to_string(r.length) + " bytes";
          continue;
        }
        bool ok = true;
        for (uint64_t i = 0; i < r.count && ok; ++i) {
          uint64_t idx = r.first + i;
          ok = ChunkOk(idx, r.body.data() + i * cs, ChunkLen(idx));
        }
        if (!ok) {
          std::lock_guard lock(mu);
          ++stats.verify_failures;
          last_error = what + ": bytes failed verification against the chunk digests";
          continue;
        }
        r.done = true;
      }
      {
        std::lock_guard lock(mu);
        stats.requests += active.size();
        stats.bytes_fetched += got;
        if (prefetch) {
          stats.prefetch_requests += active.size();
          stats.prefetch_bytes += got;
        }
      }
      cache.AddFetchedBytes(got);
      if (std::all_of(runs.begin(), runs.end(), [](const Run& r) { return r.done; })) return;
      if (retry_now || refresh) continue;
      if (attempt < opts.attempts) {
        std::uniform_int_distribution<long> d(backoff.count() / 2, backoff.count());
        std::this_thread::sleep_for(std::chrono::milliseconds(d(rng)));
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      }
    }
    // Direct requests keep failing: one more try per run through the client, which walks the
    // mirrors in hosts.toml.
    for (auto& r : runs) {
      if (r.done) continue;
      std::string body;
      {
        std::lock_guard lock(client_mu);
        body = client->ReadRange(digest, r.offset, r.length);
      }
      bool ok = body.size() == r.length;
      for (uint64_t i = 0; i < r.count && ok; ++i) {
        ok = ChunkOk(r.first + i, body.data() + i * cs, ChunkLen(r.first + i));
      }
      if (!ok) {
        throw Error(ErrorCode::kDataLoss,
                    "blob " + digest + " range " + std::to_string(r.offset) + "-" +
                        std::to_string(r.offset + r.length - 1) +
                        ": bytes failed verification on every attempt (last: " + last_error + ")");
      }
      r.body = std::move(body);
      r.done = true;
    }
  }

  // Gets chunks [first, last] (owned by this caller or awaited) and hands each to `use`.
  template <typename Use>
  void GetChunks(uint64_t first, uint64_t last, Use&& use, bool prefetch = false) {
    const bool need_verified = Verified();
    size_t n = last - first + 1;
    std::vector<std::shared_ptr<InFlight>> entries(n);
    std::vector<uint64_t> owned;
    {
      std::lock_guard lock(mu);
      for (size_t k = 0; k < n; ++k) {
        auto [it, inserted] = inflight.try_emplace(first + k);
        if (inserted) {
          it->second = std::make_shared<InFlight>();
          owned.push_back(first + k);
        } else {
          ++stats.shared_waits;
        }
        entries[k] = it->second;
      }
    }
    auto finish = [&](uint64_t idx, std::shared_ptr<const std::string> d, size_t off, size_t len,
                      std::exception_ptr e) {
      std::shared_ptr<InFlight> f = entries[idx - first];
      {
        std::lock_guard lock(mu);
        inflight.erase(idx);  // after the cache has it, so no one fetches it twice
      }
      f->Finish(std::move(d), off, len, e);
    };
    std::vector<uint64_t> unfinished = owned;
    try {
      // Cache first, in one io_uring batch for every owned chunk the cache holds (buffers only
      // for those: a cold window allocates nothing here).
      std::vector<uint64_t> misses, present;
      for (uint64_t idx : owned) {
        (cache.Contains(digest, idx, need_verified) ? present : misses).push_back(idx);
      }
      cache.CountMisses(misses.size());
      std::vector<std::string> bufs(present.size());
      std::vector<ChunkCache::ChunkRead> reads(present.size());
      for (size_t k = 0; k < present.size(); ++k) {
        bufs[k].resize(ChunkLen(present[k]));
        reads[k] = {present[k], bufs[k].data(), bufs[k].size(), false};
      }
      cache.Get(digest, reads, need_verified);
      for (size_t k = 0; k < present.size(); ++k) {
        if (reads[k].hit) {
          size_t len = bufs[k].size();
          finish(present[k], std::make_shared<const std::string>(std::move(bufs[k])), 0, len,
                 nullptr);
        } else {
          misses.push_back(present[k]);  // evicted in between
        }
      }
      std::sort(misses.begin(), misses.end());
      unfinished = misses;
      {
        std::lock_guard lock(mu);
        stats.chunk_hits += owned.size() - misses.size();
      }
      if (!misses.empty()) {
        std::vector<Run> runs;
        for (uint64_t idx : misses) {
          if (!runs.empty() && runs.back().first + runs.back().count == idx &&
              runs.back().length + ChunkLen(idx) <= opts.max_request_bytes) {
            ++runs.back().count;
            runs.back().length += ChunkLen(idx);
          } else {
            Run r;
            r.first = idx;
            r.count = 1;
            r.offset = idx * static_cast<uint64_t>(cs);
            r.length = ChunkLen(idx);
            runs.push_back(std::move(r));
          }
        }
        FetchRuns(runs, prefetch);
        for (auto& r : runs) {
          std::vector<ChunkCache::ChunkWrite> writes;
          for (uint64_t i = 0; i < r.count; ++i) {
            writes.push_back({r.first + i, r.body.data() + i * cs, ChunkLen(r.first + i)});
          }
          try {
            cache.Put(digest, writes, need_verified);
          } catch (const Error&) {
            // A full cache disk must not fail reads: the bytes are served from memory.
          }
          auto body = std::make_shared<const std::string>(std::move(r.body));
          for (uint64_t i = 0; i < r.count; ++i) {
            finish(r.first + i, body, i * cs, ChunkLen(r.first + i), nullptr);
          }
        }
        std::lock_guard lock(mu);
        stats.chunks_fetched += misses.size();
      }
    } catch (...) {
      auto e = std::current_exception();
      for (uint64_t idx : unfinished) {
        if (!entries[idx - first]->done) finish(idx, nullptr, 0, 0, e);
      }
      throw;
    }
    for (size_t k = 0; k < n; ++k) {
      entries[k]->Wait();
      if (entries[k]->error) std::rethrow_exception(entries[k]->error);
      const InFlight& f = *entries[k];
      use(first + k, std::string_view(f.data->data() + f.offset, f.length));
    }
  }
};

RangeFetcher::RangeFetcher(std::shared_ptr<RegistryClient> client, std::string digest,
                           uint64_t blob_size, ChunkCache& cache, MultiHttp& http,
                           RangeFetcherOptions opts)
    : impl_(std::make_unique<Impl>(std::move(client), std::move(digest), blob_size, cache, http,
                                   std::move(opts))) {
  auto& im = *impl_;
  im.cs = cache.chunk_size();
  im.nchunks = (blob_size + im.cs - 1) / im.cs;
  if (!im.opts.chunk_digests.empty()) {
    if (im.opts.chunk_digests.size() != im.nchunks) {
      throw Error(ErrorCode::kInvalidArgument,
                  "blob " + im.digest + ": " + std::to_string(im.opts.chunk_digests.size()) +
                      " chunk digests for " + std::to_string(im.nchunks) + " chunks of " +
                      std::to_string(im.cs) + " bytes");
    }
    for (const auto& d : im.opts.chunk_digests) im.chunk_hex.push_back(BareHex(d));
  }
  if (im.opts.max_request_bytes < im.cs) im.opts.max_request_bytes = im.cs;
  // FetchAll asks for four requests' worth at a time so they run in parallel.
  im.window = std::max<uint64_t>(1, 4 * im.opts.max_request_bytes / im.cs);
}

RangeFetcher::~RangeFetcher() = default;

const std::string& RangeFetcher::digest() const {
  return impl_->digest;
}
uint64_t RangeFetcher::size() const {
  return impl_->size;
}
bool RangeFetcher::verified() const {
  return impl_->Verified();
}

size_t RangeFetcher::Read(uint64_t offset, size_t len, char* out) {
  auto& im = *impl_;
  im.RequireVerifiable("range reads");
  if (offset >= im.size || len == 0) return 0;
  len = static_cast<size_t>(std::min<uint64_t>(len, im.size - offset));
  uint64_t first = offset / im.cs, last = (offset + len - 1) / im.cs;
  im.GetChunks(first, last, [&](uint64_t idx, std::string_view data) {
    uint64_t chunk_start = idx * static_cast<uint64_t>(im.cs);
    uint64_t from = std::max(offset, chunk_start);
    uint64_t to = std::min<uint64_t>(offset + len, chunk_start + data.size());
    std::memcpy(out + (from - offset), data.data() + (from - chunk_start), to - from);
  });
  return len;
}

void RangeFetcher::FetchAll() {
  auto& im = *impl_;
  if (im.whole_verified) return;
  // Windows of four parallel requests, hashed as they arrive. Fetching the next window while
  // hashing this one was measured slower on 2 cores (the registry, curl and the hash compete
  // for CPU, and the read-back costs a copy): bench/RESULTS.md.
  const bool hash_whole = im.chunk_hex.empty();  // chunk digests verify every piece already
  Sha256 hash;
  for (uint64_t i = 0; i < im.nchunks; i += im.window) {
    im.GetChunks(i, std::min(im.nchunks, i + im.window) - 1, [&](uint64_t, std::string_view data) {
      if (hash_whole) hash.Update(data);
    });
  }
  if (!hash_whole) return;
  std::string actual = hash.FinishDigest();
  if (actual != im.digest) {
    im.cache.DropBlob(im.digest);
    throw Error(ErrorCode::kDataLoss,
                "blob " + im.digest + " failed verification: its bytes hash to " + actual);
  }
  im.cache.MarkVerified(im.digest);
  im.whole_verified = true;
}

uint64_t RangeFetcher::Prefetch(uint64_t offset, uint64_t len) {
  auto& im = *impl_;
  im.RequireVerifiable("a prefetch");
  if (offset >= im.size || len == 0) return 0;
  len = std::min(len, im.size - offset);
  uint64_t first = offset / im.cs, last = (offset + len - 1) / im.cs;
  const bool need_verified = im.Verified();
  uint64_t before = Stats().prefetch_bytes;
  // Runs of chunks the cache lacks, each got as one GetChunks (whose requests may merge them).
  for (uint64_t i = first; i <= last;) {
    if (im.cache.Contains(im.digest, i, need_verified)) {
      ++i;
      continue;
    }
    uint64_t j = i;
    while (j < last && !im.cache.Contains(im.digest, j + 1, need_verified)) ++j;
    im.GetChunks(
        i, j, [](uint64_t, std::string_view) {}, true);
    i = j + 1;
  }
  return Stats().prefetch_bytes - before;
}

RangeFetcherStats RangeFetcher::Stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

}  // namespace lazysnap::fetcher
