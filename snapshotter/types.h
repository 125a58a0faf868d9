// The snapshotter's vocabulary, independent of gRPC: what containerd's snapshots.v1 API carries.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lazysnap::snapshotter {

using Labels = std::map<std::string, std::string>;

enum class Kind { kUnknown = 0, kView = 1, kActive = 2, kCommitted = 3 };

const char* KindName(Kind kind);  // "view", "active", "committed" (containerd's filter values)

// How a snapshot's contents come to exist on this host.
enum class LayerMode {
  kNative = 0,  // directories on local disk, filled by containerd (overlayfs like containerd's own)
  kProxy = 1,   // nothing on the host: a Kata guest mounts the image from the descriptor
  kLazy = 2,    // served on demand over FUSE
};

const char* LayerModeName(LayerMode mode);

struct Info {
  std::string name;
  std::string parent;
  Kind kind = Kind::kUnknown;
  int64_t created_ns = 0;  // UNIX time in nanoseconds
  int64_t updated_ns = 0;
  Labels labels;
};

struct Mount {
  std::string type;
  std::string source;
  std::string target;
  std::vector<std::string> options;
};

struct Usage {
  int64_t size = 0;  // bytes on disk
  int64_t inodes = 0;
};

}  // namespace lazysnap::snapshotter
