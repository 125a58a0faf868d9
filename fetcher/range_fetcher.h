// Random-access reads of one registry blob through the chunk cache.
//
// A read is cut into the cache's chunks. Chunks already cached are read through io_uring;
// chunks another reader is fetching are waited for (two readers of one chunk cause one request);
// the remaining misses are grouped into runs of adjacent chunks, one HTTP range request per run,
// all sent at once on the shared MultiHttp (bounded connections, keep-alive, HTTP/2).
//
// Integrity: with per-chunk digests (from a layer index) every fetched chunk is verified before
// it is cached or returned. Without them reads are refused unless the caller opted into
// unverified bytes; FetchAll() fetches the rest and checks the whole blob against its digest,
// after which every chunk counts as verified. Verified readers never see unverified chunks.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fetcher/chunk_cache.h"
#include "fetcher/multi_http.h"
#include "fetcher/registry_client.h"

namespace lazysnap::fetcher {

struct RangeFetcherOptions {
  // sha256 digests ("sha256:..." or bare hex) of each cache-chunk-sized piece of the blob.
  std::vector<std::string> chunk_digests;
  bool allow_unverified = false;            // serve bytes no digest has checked yet
  uint64_t max_request_bytes = 8ull << 20;  // adjacent misses merge up to this size
  int attempts = 4;                         // per request: transport errors, 429/5xx, bad bytes
  long request_timeout_ms = 120000;
  // The blob's GET as RegistryClient::PrepareBlobRequest made it (URL, headers, credentials),
  // when the caller made it ahead of time: the first read then skips that HEAD. A stale one is
  // remade on a 401 like any other.
  std::optional<HttpRequest> prepared_request;
};

struct RangeFetcherStats {
  uint64_t requests = 0;        // HTTP range requests sent (retries included)
  uint64_t bytes_fetched = 0;   // body bytes received
  uint64_t chunks_fetched = 0;  // chunks that came from the network
  uint64_t chunk_hits = 0;      // chunks served from the cache
  uint64_t shared_waits = 0;    // chunks another reader was already fetching
  uint64_t verify_failures = 0;
  uint64_t prefetch_requests = 0;  // of `requests`: sent by Prefetch
  uint64_t prefetch_bytes = 0;     // of `bytes_fetched`: received by Prefetch
};

class RangeFetcher {
 public:
  // `client` is used under this fetcher's lock (it is not thread-safe) to find the blob's URL
  // and credentials and as the fallback through mirrors when direct requests keep failing.
  RangeFetcher(std::shared_ptr<RegistryClient> client, std::string digest, uint64_t blob_size,
               ChunkCache& cache, MultiHttp& http, RangeFetcherOptions opts = {});
  ~RangeFetcher();
  RangeFetcher(const RangeFetcher&) = delete;
  RangeFetcher& operator=(const RangeFetcher&) = delete;

  const std::string& digest() const;
  uint64_t size() const;

  // Reads [offset, offset + len) into `out`; short only at the end of the blob. Thread-safe.
  // Throws Error(kDataLoss) when bytes fail verification on every attempt, Error(kUnavailable)
  // when the registry cannot be reached.
  size_t Read(uint64_t offset, size_t len, char* out);
  // Fetches every missing chunk and verifies the whole blob against its digest; on mismatch
  // drops the blob from the cache and throws Error(kDataLoss).
  void FetchAll();
  // Fetches the chunks of [offset, offset + len) that the cache lacks into the cache, verified,
  // without reading cached ones back; its requests count as prefetch_requests (so a background
  // fetcher can tell its own traffic from readers'). Returns the bytes it fetched. Same errors as
  // Read.
  uint64_t Prefetch(uint64_t offset, uint64_t len);
  bool verified() const;  // reads are digest-checked (chunk digests, or FetchAll succeeded)

  RangeFetcherStats Stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::fetcher
