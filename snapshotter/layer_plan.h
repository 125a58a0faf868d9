// Hooks through which the snapshotter core asks how a snapshot should come to exist, and what to
// mount for snapshots stacked on remote (proxy/lazy) layers. The core stays free of label
// parsing and descriptor formats; snapshotter/remote_layers.* implements these with labels/.
#pragma once

#include <string>
#include <vector>

#include "snapshotter/metadata_store.h"
#include "snapshotter/types.h"

namespace lazysnap::snapshotter {

struct PrepareRequest {
  Kind kind = Kind::kActive;  // kActive (Prepare) or kView (View)
  std::string key;
  std::string parent;
  Labels labels;
  const SnapshotRecord* parent_record = nullptr;  // null when there is no parent
};

struct LayerPlan {
  LayerMode mode = LayerMode::kNative;
  // For remote layers: the name of the committed snapshot to create (containerd finds it with
  // List by its snapshot.ref label and parent, then uses this name).
  std::string remote_name;
  Labels remote_labels;  // labels stored on the remote snapshot
};

class LayerPlanner {
 public:
  virtual ~LayerPlanner() = default;
  // Throws lazysnap::Error (kInvalidArgument for malformed labels, kFailedPrecondition when the
  // configured fallback is "error") to refuse the Prepare.
  virtual LayerPlan Plan(const PrepareRequest& req) = 0;
  // Lazy layers: makes the layer's contents appear at `fs_dir` (the new committed snapshot's fs
  // dir) before its metadata row commits. Throwing makes the Prepare fall back to a native unpack.
  virtual void Materialize(const LayerPlan& /*plan*/, const std::string& /*fs_dir*/) {}
  // Lazy layers: called before the snapshot's directory is removed. Must not throw.
  virtual void Release(const std::string& /*fs_dir*/) noexcept {}
};

class RemoteMountBuilder {
 public:
  virtual ~RemoteMountBuilder() = default;
  // `chain`: the snapshot's ancestors, bottom layer first; `self`: the active snapshot or view.
  // `fs_dir`/`work_dir`: self's directories; `parent_fs_dirs`: ancestors' fs dirs, nearest first.
  virtual std::vector<Mount> Build(const SnapshotRecord& self,
                                   const std::vector<SnapshotRecord>& chain,
                                   const std::string& fs_dir, const std::string& work_dir,
                                   const std::vector<std::string>& parent_fs_dirs) = 0;
};

}  // namespace lazysnap::snapshotter
