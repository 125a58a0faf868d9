// The core of lazysnap-fused: finds layer indexes (local store, else the registry's index
// artifact), mounts indexed layers lazily over FUSE and keeps them served, remembers its mounts
// across its own restarts, and reports per-layer statistics. Socket-free so tests drive it
// directly; lazysnap-fused wraps it in the control protocol (lazy/control.h).
//
// State under `root`: indexes/<hex>.idx (encoded layer indexes, keyed by the layer they index:
// the index depends only on the layer's bytes, so every image sharing a layer shares it),
// prefetch/<manifest hex>.json (images' prefetch lists, lazy/prefetch_list.h) and mounts.json
// (what is mounted where, rewritten atomically on every change).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "fetcher/registry_client.h"
#include "lazy/background_fetch.h"

namespace lazysnap::lazy {

struct LayerServiceOptions {
  std::string root;
  std::string cache_dir;
  uint64_t cache_max_bytes = 10ull << 30;
  fetcher::RegistryOptions registry;    // per-registry plain_http is decided by `plain_http`
  std::vector<std::string> plain_http;  // registry hosts reached over http
  std::chrono::milliseconds read_timeout{60000};
  unsigned fuse_threads = 8;
  uint64_t span_cache_bytes = 64ull << 20;  // inflated spans kept in memory, per mounted layer
  uint64_t span_store_bytes = 2ull << 30;   // ... and on disk under root/spans; 0: none
  unsigned readahead_spans = 8;
  unsigned readahead_threads = 3;
  unsigned read_ahead_kb = 4096;  // the kernel's read-ahead on each FUSE mount
  bool splice_reads = true;
  // Mount layers with the kernel's EROFS over a FUSE-served tar (metadata in the kernel); the
  // tree over FUSE when false or when the kernel refuses.
  bool kernel_erofs = true;
  bool erofs_directio = false;         // lazy/kernel_layer.h ErofsMountOptions
  unsigned erofs_read_ahead_kb = 512;  // ... the EROFS mount's read-ahead; 0: the kernel's
  bool background_fetch = true;        // the rest of each mounted layer, into the chunk cache
  BackgroundFetchOptions background;
  bool prefetch = true;  // fetch the spans an image's prefetch list names at once at mount
  std::chrono::milliseconds record_window{30000};  // start reads recorded (StartReads); 0: none
  // The executable run as `EXE --fd-keeper SOCKET` to keep the layers' FUSE connections
  // across this server's death (lazy/fd_keeper.h); empty: they end with it.
  std::string fd_keeper_exe;
  // How long the keeper holds a dead server's connections for a successor (0: until one comes).
  std::chrono::seconds keep_connections{300};
  std::chrono::seconds negative_ttl{30};  // how long "this image has no index" is remembered
};

struct LayerRef {
  std::string image_ref;        // as in cri.image-ref, e.g. "127.0.0.1:5000/app:v1"
  std::string manifest_digest;  // the image manifest the layer belongs to
  std::string layer_digest;     // compressed blob digest
};

class LayerService {
 public:
  // Opens the chunk cache (one owner per cache: Error(kFailedPrecondition) if another daemon has
  // it) and remounts what mounts.json lists: layers whose connections the fd keeper kept are
  // served again where they are (running containers read on), the others are mounted anew.
  LayerService(const LayerServiceOptions& opts, const Logger& log);
  ~LayerService();  // unmounts everything (and ends the fd keeper)
  LayerService(const LayerService&) = delete;
  LayerService& operator=(const LayerService&) = delete;

  // True when the layer has an index (downloaded now if needed). Registry errors while looking
  // for one propagate (callers fall back to a native unpack).
  bool Prepare(const LayerRef& layer);
  // Mounts the indexed layer at `mountpoint` (an existing, empty directory). Idempotent for the
  // same layer at the same place. Error(kNotFound) without an index.
  void Mount(const LayerRef& layer, const std::string& mountpoint);
  // Unmounts and forgets `mountpoint`; a mountpoint it does not know is not an error.
  void Unmount(const std::string& mountpoint);

  // {"layers": [{mountpoint, layer, image, bytes_fetched, requests, chunk_hits, bytes_served,
  //   file_reads, spans_inflated, span_hits, readahead_spans, store_hits, store_bytes,
  //   store_disabled, fetch_ms, inflate_ms, prefetch_spans, prefetched_spans, start_read_spans,
  //   fuse_errors, path: "kernel-erofs"|"fuse",
  //   background: waiting|fetching|done|failed|off, background_off? (why: "disabled" or the
  //   reason), background_bytes, background_error?}...], "cache": {...}}
  nlohmann::json Status() const;
  // {"layers": [{mountpoint, layer, image, manifest_digest, ranges: [[offset, length]...]}...]}:
  // each mounted layer's start reads (TarSource::StartReads), for `lazysnap prefetch`.
  nlohmann::json StartReads() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::lazy
