// The snapshotter core: containerd's snapshots.v1 semantics over a metadata store and a directory
// per snapshot under <root>/snapshots/<id>/{fs,work}, independent of gRPC. Thread-safe: calls are
// serialised by one mutex (metadata changes are short; directory I/O outside of SQLite is bounded).
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/unique_fd.h"
#include "snapshotter/filter.h"
#include "snapshotter/layer_plan.h"
#include "snapshotter/metadata_store.h"
#include "snapshotter/overlay_mounts.h"
#include "snapshotter/types.h"

namespace lazysnap::snapshotter {

struct SnapshotterOptions {
  std::string root;  // holds metadata.db, snapshots/, lock
  OverlayOptions overlay;
  LayerPlanner* planner = nullptr;              // null: every snapshot is native
  RemoteMountBuilder* remote_mounts = nullptr;  // required when the planner can return remote modes
};

// What the snapshotter decided since it started, for lazysnapd's metrics. Written under the
// snapshotter's lock, read without it.
struct SnapshotterCounters {
  // Layer Prepares (those with containerd.io/snapshot.ref) answered, by LayerMode: how each layer
  // came to exist. A lazy layer that could not be mounted counts as native.
  std::array<std::atomic<uint64_t>, 3> layer_prepares{};
  std::atomic<uint64_t> remote_reused{0};     // ...of which the remote layer was already recorded
  std::atomic<uint64_t> lazy_fallbacks{0};    // lazy layers unpacked natively: mount failed
  std::atomic<uint64_t> lazy_remounts{0};     // lazy layers found unserved and mounted again
  std::atomic<uint64_t> lazy_unavailable{0};  // ...and those that could not be: Mounts refused
};

class Snapshotter {
 public:
  // Takes an exclusive lock on the root (Error(kUnavailable) if another daemon holds it) and opens
  // the metadata (Error(kDataLoss) if it is damaged).
  Snapshotter(const SnapshotterOptions& opts, const Logger& log);

  std::vector<Mount> Prepare(const std::string& key, const std::string& parent,
                             const Labels& labels);
  std::vector<Mount> View(const std::string& key, const std::string& parent, const Labels& labels);
  std::vector<Mount> Mounts(const std::string& key);
  void Commit(const std::string& name, const std::string& key, const Labels& labels);
  void Remove(const std::string& key);
  Info Stat(const std::string& key);
  // Field paths as containerd sends them: "labels" or "labels.<key>"; none = replace labels.
  Info Update(const Info& info, const std::vector<std::string>& fieldpaths);
  void List(const FilterSet& filters, const std::function<void(const Info&)>& fn);
  Usage GetUsage(const std::string& key);
  // Removes directories under snapshots/ that no snapshot owns (left by crashes or removals).
  int Cleanup();
  // How many snapshots exist, by kind and mode (only the pairs that exist).
  std::vector<SnapshotTally> Tally();
  const SnapshotterCounters& counters() const { return counters_; }

  const std::string& root() const { return opts_.root; }
  std::string SnapshotDir(int64_t id) const;

 private:
  std::vector<Mount> CreateSnapshot(Kind kind, const std::string& key, const std::string& parent,
                                    const Labels& labels);
  std::vector<Mount> MountsFor(const SnapshotRecord& rec);
  void MakeSnapshotDir(int64_t id, bool with_work);
  // Creates snapshot `id`'s directory, then commits `txn`; removes the directory if that fails.
  void CommitWithDir(SqliteTxn& txn, int64_t id, bool with_work);
  // Records a remote layer as a committed snapshot and throws Error(kAlreadyExists): the
  // remote-snapshot protocol's answer, after which containerd finds it with List + Stat. Returns
  // (having recorded nothing) only when a lazy layer could not be mounted.
  void CommitRemote(const PrepareRequest& req, const LayerPlan& plan);
  // A lazy layer's fs dir must hold its live mount before anything stacks on it: mounts it
  // again through the planner if not; throws Error(kUnavailable) if that fails. True when the
  // layer is a kernel EROFS mount (its inode numbers need xino=on in the overlay).
  bool EnsureLazyServed(const SnapshotRecord& layer);

  SnapshotterOptions opts_;
  const Logger& log_;
  UniqueFd lock_fd_;
  std::mutex mu_;
  std::unique_ptr<MetadataStore> store_;
  SnapshotterCounters counters_;
};

// containerd's label rule: key + value at most 4096 bytes, key not empty.
// Throws Error(kInvalidArgument) naming the key.
void ValidateLabels(const Labels& labels);

int64_t NowNanos();

}  // namespace lazysnap::snapshotter
