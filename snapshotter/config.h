// lazysnapd's TOML configuration (/etc/lazysnap/config.toml by default). Unknown keys and wrong
// types are startup errors naming the key, so a typo never silently falls back to a default.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/log.h"

namespace lazysnap::snapshotter {

// [proxy]: per-layer choice between native unpacking and remote (Kata guest) layers.
struct ProxySettings {
  bool enable = false;
  std::string fallback =
      "native";  // "native" | "error": what a layer Prepare without CRI labels gets
  std::string mount_type = "fuse.nydus-overlayfs";  // the mount type Kata's runtime recognises
  struct Override {
    std::string image;  // exact reference, or a prefix ending in '*'
    std::string mode;   // "native" | "proxy"
  };
  std::vector<Override> overrides;  // [[proxy.override]], first match wins
};

// [lazy]: layers that have an index (`lazysnap index`) are mounted lazily: their contents are
// served on demand by lazysnap-fused, a separate process so that restarting lazysnapd never
// breaks a running container's reads. Both daemons read this section.
struct LazySettings {
  bool enable = false;
  std::string socket = "/run/lazysnap/fused.sock";    // lazysnap-fused's control socket
  std::string root = "/var/lib/lazysnap/lazy";        // layer indexes and the mount table
  std::string cache_dir = "/var/lib/lazysnap/cache";  // chunk cache (compressed layer bytes)
  int64_t cache_max_mb = 10240;
  std::string hosts_dir = "/etc/containerd/certs.d";  // containerd-style hosts.toml per registry
  std::string docker_config;                          // credentials ("auths"); empty: none
  std::vector<std::string> plain_http;  // registries reached over http, e.g. "127.0.0.1:5000"
  int64_t read_timeout_s = 60;  // reads wait this long for an unreachable registry, then EIO
  int64_t fuse_threads = 8;
  int64_t span_cache_mb = 32;  // inflated spans kept in memory, per mounted layer
  // Inflated spans kept on local disk (under root) while a layer is served, per layer; 0: none.
  int64_t span_store_mb = 2048;
  int64_t readahead_spans = 8;    // spans fetched ahead of a sequential reader
  int64_t readahead_threads = 3;  // per layer: fetch + verify + inflate overlap on every core
  int64_t read_ahead_kb = 4096;   // the kernel's read-ahead on each lazy mount (its bdi)
  bool splice_reads = true;       // hand stored bytes to the kernel by splice, not a copy
  // Layers mounted by the kernel's EROFS (metadata in the kernel) over a FUSE-served tar; false:
  // the whole tree over FUSE. Falls back to the tree where the kernel refuses.
  bool kernel_erofs = true;
  // The kernel path's EROFS reads the tar with direct I/O where the kernel can (6.13+): its bytes
  // are cached once, not twice, and big sequential reads are faster, but containers' first output
  // comes later (bench/RESULTS.md round 5). `erofs_read_ahead_kb`: the EROFS mount's read-ahead
  // (with direct I/O, the size of each read it asks lazysnap-fused for).
  bool erofs_directio = false;
  int64_t erofs_read_ahead_kb = 512;
  // After a layer is mounted and `background_fetch_delay_s` has passed, the rest of its blob is
  // fetched into the chunk cache at low priority (pausing while containers read), at most
  // `background_fetch_mb_per_s` (0: no limit): served layers end up local.
  bool background_fetch = true;
  int64_t background_fetch_delay_s = 10;
  int64_t background_fetch_mb_per_s = 64;
  // At mount, the spans an image's prefetch list (recorded start reads, pushed with its index)
  // names are fetched first; each layer's reads in its first `prefetch_record_s` after its first
  // read are recorded for `lazysnap prefetch` (0: none).
  bool prefetch = true;
  int64_t prefetch_record_s = 30;
  // The kernel path's FUSE connections are kept by a small process (lazysnap-fused --fd-keeper)
  // so that a killed lazysnap-fused's successor serves them again: running containers' reads
  // wait for it instead of failing -- for `keep_connections_s` after it died (0: until it comes);
  // then they fail (ENOTCONN / EIO).
  bool keep_connections = true;
  int64_t keep_connections_s = 300;
  // Where lazysnap-fused serves Prometheus metrics (GET /metrics), "HOST:PORT" (numeric IPv4 or
  // [IPv6]; port 0: any free one). Empty: no metrics endpoint.
  std::string metrics_address;
};

struct DaemonConfig {
  std::string root = "/var/lib/lazysnap";               // snapshots, metadata.db
  std::string address = "/run/lazysnap/lazysnap.sock";  // gRPC unix socket containerd dials
  LogLevel log_level = LogLevel::kInfo;
  // Where lazysnapd serves Prometheus metrics (GET /metrics), "HOST:PORT" (numeric IPv4 or
  // [IPv6]; port 0: any free one, logged). Empty: no metrics endpoint.
  std::string metrics_address;
  ProxySettings proxy;
  LazySettings lazy;
};

// Parses TOML text; `origin` names the file in errors. Throws Error(kInvalidArgument).
DaemonConfig ParseDaemonConfig(const std::string& text, const std::string& origin);
// Reads and parses a file; a missing file is an error only when `must_exist`.
DaemonConfig LoadDaemonConfig(const std::string& path, bool must_exist);

}  // namespace lazysnap::snapshotter
