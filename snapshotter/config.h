// lazysnapd's TOML configuration (/etc/lazysnap/config.toml by default). Unknown keys and wrong
// types are startup errors naming the key, so a typo never silently falls back to a default.
#pragma once

#include <string>

#include "common/log.h"

namespace lazysnap::snapshotter {

struct DaemonConfig {
  std::string root = "/var/lib/lazysnap";               // snapshots, metadata.db
  std::string address = "/run/lazysnap/lazysnap.sock";  // gRPC unix socket containerd dials
  LogLevel log_level = LogLevel::kInfo;
};

// Parses TOML text; `origin` names the file in errors. Throws Error(kInvalidArgument).
DaemonConfig ParseDaemonConfig(const std::string& text, const std::string& origin);
// Reads and parses a file; a missing file is an error only when `must_exist`.
DaemonConfig LoadDaemonConfig(const std::string& path, bool must_exist);

}  // namespace lazysnap::snapshotter
