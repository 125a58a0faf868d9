// The on-disk chunk cache shared by every layer and image: fixed-size chunks of blobs, keyed by
// blob digest and chunk index, read and written through io_uring.
//
// Layout under `dir`: `config.json` (format version, chunk size), `lock` (flock: one process owns
// a cache), `blobs/<hex>` (sparse file, chunk i at offset i * chunk_size), `journal` (append-only
// 64-byte records, each with a CRC) and `counters.json`.
//
// Crash safety: a chunk's "present" record is appended to the journal only after its data was
// fdatasync'ed, and an eviction's "removed" record is made durable before the hole is punched.
// After a crash the journal therefore never names bytes that are not on disk; a torn record fails
// its CRC and the journal is cut there; a chunk written but not yet journaled is simply absent
// (fetched again). Chunks carry a `verified` bit: a reader that needs verified bytes never gets
// chunks stored unverified.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace lazysnap::fetcher {

struct ChunkCacheOptions {
  std::string dir;
  uint32_t chunk_size = 512 * 1024;  // of a new cache; an existing cache keeps its own
  uint64_t max_bytes = 10ull << 30;  // LRU eviction above this
  unsigned uring_depth = 256;
  int flush_interval_ms = 200;  // how often new chunks are made durable and journaled
};

struct ChunkCacheStats {
  uint64_t hits = 0, misses = 0;        // chunk lookups
  uint64_t bytes_read = 0;              // served from the cache
  uint64_t bytes_written = 0;           // stored into the cache
  uint64_t bytes_fetched = 0;           // reported by fetchers (network bytes)
  uint64_t evictions = 0;               // chunks evicted
  uint64_t chunks = 0, bytes_used = 0;  // current occupancy
  uint64_t blobs = 0;
  uint64_t max_bytes = 0;
  uint32_t chunk_size = 0;
};

class ChunkCache {
 public:
  explicit ChunkCache(const ChunkCacheOptions& opts);  // creates or reopens; takes the lock
  ~ChunkCache();                                       // flushes
  ChunkCache(const ChunkCache&) = delete;
  ChunkCache& operator=(const ChunkCache&) = delete;

  uint32_t chunk_size() const;

  struct ChunkRead {
    uint64_t index = 0;
    char* buf = nullptr;  // at least `len` bytes
    size_t len = 0;       // the chunk's length (shorter for a blob's last chunk)
    bool hit = false;     // out: filled from the cache
  };
  // Fills every chunk that is present (and verified, when `need_verified`) in one io_uring batch.
  // Counts hits and misses. Returns the number of hits.
  size_t Get(const std::string& digest, std::span<ChunkRead> chunks, bool need_verified);
  bool Contains(const std::string& digest, uint64_t index, bool need_verified) const;

  struct ChunkWrite {
    uint64_t index = 0;
    const char* data = nullptr;
    size_t len = 0;
  };
  // Stores chunks (readable at once, durable and journaled at the next flush). Chunks already
  // present are left alone unless this upgrades them to verified.
  void Put(const std::string& digest, std::span<const ChunkWrite> chunks, bool verified);
  // Every present chunk of the blob becomes verified (the whole blob matched its digest).
  void MarkVerified(const std::string& digest);
  // Forgets a blob (e.g. its bytes failed verification).
  void DropBlob(const std::string& digest);
  // Makes stored chunks durable now, evicts above the size limit, persists counters.
  void Flush();
  // Evicts least recently used chunks until at most `max_bytes` remain.
  void Prune(uint64_t max_bytes);
  void AddFetchedBytes(uint64_t n);
  void CountMisses(uint64_t n);  // lookups a caller settled with Contains() alone

  ChunkCacheStats Stats() const;
  // Occupancy and persisted counters of a cache directory without taking it over (for
  // `lazysnap cache stats` while the daemon runs).
  static ChunkCacheStats ReadStats(const std::string& dir);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::fetcher
