// Disk usage of a directory tree, as containerd's snapshotters report it: allocated bytes
// (st_blocks * 512) and inode count, each hard-linked inode counted once. Never crosses mounts.
#pragma once

#include <string>

#include "snapshotter/types.h"

namespace lazysnap::snapshotter {

Usage DiskUsage(const std::string& dir);

}  // namespace lazysnap::snapshotter
