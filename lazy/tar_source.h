// The uncompressed tar of a registry layer as a random-access BlockSource, without downloading
// the layer: the device an index-only EROFS image points its file data into.
//
// A read of tar bytes [off, off+len) finds the checkpoints (gzip or zstd) around it (from the layer
// index), fetches the compressed bytes between them through the RangeFetcher (which verifies every
// chunk against the index's digests and keeps it in the on-disk chunk cache), and inflates that
// span from the checkpoint's window. Inflated spans stay in a small in-memory LRU and, with a store
// directory, in a SpanStore on local disk, so each span is inflated once per server lifetime;
// concurrent readers of one span wait for one inflate; a reader that moves forward span by span
// makes the next `readahead_spans` spans fetch and inflate on `workers` background threads, so
// network round trips, digest checks and inflate overlap on every core.
// Plain-tar layers map one to one onto the blob.
//
// Registry outages: a read keeps retrying while the registry is unreachable, up to
// `unavailable_timeout`, then throws Error(kUnavailable); bytes that fail verification throw
// Error(kDataLoss). Wrong bytes are never returned.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "erofs/layer_decoder.h"
#include "erofs/reader.h"
#include "fetcher/range_fetcher.h"
#include "lazy/prefetch_list.h"

namespace lazysnap::lazy {

struct TarSourceOptions {
  uint64_t span_cache_bytes = 64ull << 20;  // inflated spans kept in memory
  // Inflated spans kept on disk (an unlinked file in this directory); empty: memory only.
  std::string store_dir;
  uint64_t store_bytes = 4ull << 30;
  // Spans fetched and inflated ahead of a sequential reader, and the threads doing it. Without a
  // store the window is capped at half the memory LRU, so read-ahead never evicts itself.
  unsigned readahead_spans = 8;
  unsigned workers = 3;
  // Read-ahead fetches runs of adjacent spans in one request up to this many compressed bytes: a
  // registry pays a few milliseconds per request whatever its size.
  uint64_t readahead_fetch_bytes = 16ull << 20;
  std::chrono::milliseconds unavailable_timeout = std::chrono::seconds(60);
  // Start reads: the spans readers touch within this long of the first read are recorded, in
  // the order first touched (StartReads); 0: none.
  std::chrono::milliseconds record_window = std::chrono::seconds(30);
};

struct TarSourceStats {
  uint64_t reads = 0;
  uint64_t bytes_served = 0;
  uint64_t spans_inflated = 0;
  uint64_t span_hits = 0;         // reads served from inflated spans in memory
  uint64_t readahead_spans = 0;   // spans inflated in the background
  uint64_t store_hits = 0;        // reads served from the on-disk span store
  uint64_t store_bytes = 0;       // inflated bytes in the store now
  bool store_disabled = false;    // the store's disk refused a write (full?): memory only since
  uint64_t fetch_us = 0;          // time spent getting compressed bytes (network or chunk cache)
  uint64_t inflate_us = 0;        // time spent inflating spans
  uint64_t prefetch_spans = 0;    // spans Prefetch queued (not already local)
  uint64_t prefetched = 0;        // ... of which are local now (fetched by it or by a reader)
  uint64_t start_read_spans = 0;  // spans recorded as start reads
};

class TarSource : public erofs::BlockSource {
 public:
  // `checkpoints` (gzip, zstd): ascending by `out`, the first at out = 0. Throws
  // Error(kInvalidArgument) for an inconsistent table.
  TarSource(std::shared_ptr<fetcher::RangeFetcher> blob, erofs::LayerCompression compression,
            uint64_t tar_size, std::vector<erofs::Checkpoint> checkpoints,
            TarSourceOptions opts = {});
  ~TarSource() override;
  TarSource(const TarSource&) = delete;
  TarSource& operator=(const TarSource&) = delete;

  void Read(uint64_t offset, size_t len, void* buf) const override;
  uint64_t Size() const override;
  // Bytes already in the span store are lent as the store's fd (same offsets as the tar), so a
  // FUSE reply can splice them instead of copying.
  bool LendFd(uint64_t offset, size_t len, const FdUser& use) const override;

  // Fetches (verified) and inflates the spans covering `ranges`, in the given order, ahead of
  // readers: an image's prefetch list (lazy/prefetch_list.h). One read-ahead thread at a time
  // works on it, and only when no reader's read-ahead is queued. Ranges
  // past the end of the tar are cut; without a span store, no more than half the memory LRU is
  // queued, so the list never evicts itself. Errors cost nothing: a reader fetches what it needs.
  void Prefetch(const std::vector<TarRange>& ranges) const;
  // The tar ranges of the spans read within `record_window` of the first read, in the order
  // first read (adjacent spans merged).
  std::vector<TarRange> StartReads() const;

  TarSourceStats Stats() const;
  fetcher::RangeFetcherStats FetchStats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::lazy
