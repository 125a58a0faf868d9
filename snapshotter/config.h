// lazysnapd's TOML configuration (/etc/lazysnap/config.toml by default). Unknown keys and wrong
// types are startup errors naming the key, so a typo never silently falls back to a default.
#pragma once

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

struct DaemonConfig {
  std::string root = "/var/lib/lazysnap";               // snapshots, metadata.db
  std::string address = "/run/lazysnap/lazysnap.sock";  // gRPC unix socket containerd dials
  LogLevel log_level = LogLevel::kInfo;
  ProxySettings proxy;
};

// Parses TOML text; `origin` names the file in errors. Throws Error(kInvalidArgument).
DaemonConfig ParseDaemonConfig(const std::string& text, const std::string& origin);
// Reads and parses a file; a missing file is an error only when `must_exist`.
DaemonConfig LoadDaemonConfig(const std::string& path, bool must_exist);

}  // namespace lazysnap::snapshotter
