// Mounts for native snapshots, built the way containerd's overlay snapshotter builds them:
//  - no parent: a bind mount of the snapshot's own fs dir (rw for active, ro for a view);
//  - a view of a single committed parent: a read-only bind of that parent's fs dir;
//  - otherwise overlayfs: lowerdir = parents' fs dirs, nearest first; upperdir/workdir for active.
#pragma once

#include <string>
#include <vector>

#include "snapshotter/types.h"

namespace lazysnap::snapshotter {

struct OverlayOptions {
  bool index_off = true;  // index=off: hard links across layers would otherwise need an index dir
  // xino=on: inode numbers carry the layer, so files of lowers on different filesystems (kernel
  // EROFS lazy layers, whose inode numbers restart in each) never share one st_ino.
  bool xino_on = false;
};

// `fs_dir`/`work_dir`: this snapshot's dirs; `parent_fs_dirs`: ancestors' fs dirs, nearest first.
std::vector<Mount> NativeMounts(Kind kind, const std::string& fs_dir, const std::string& work_dir,
                                const std::vector<std::string>& parent_fs_dirs,
                                const OverlayOptions& opts = {});

}  // namespace lazysnap::snapshotter
