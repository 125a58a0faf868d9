#include "snapshotter/snapshotter.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "labels/cri_labels.h"
#include "snapshotter/disk_usage.h"

namespace lazysnap::snapshotter {
namespace fs = std::filesystem;

namespace {

void Count(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

// Removes a snapshot directory that no metadata row owns any more; mounts below it are detached
// first so removal never reaches into a mounted filesystem.
void RemoveTree(const std::string& dir) {
  UnmountAllBelow(dir);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) throw Error(ErrorCode::kInternal, "remove " + dir + ": " + ec.message());
}

}  // namespace

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void ValidateLabels(const Labels& labels) {
  labels::ValidateLabelSizes(labels);
}

Snapshotter::Snapshotter(const SnapshotterOptions& opts, const Logger& log)
    : opts_(opts), log_(log) {
  if (opts_.root.empty() || opts_.root.front() != '/') {
    throw Error(ErrorCode::kInvalidArgument,
                "root dir must be an absolute path, got \"" + opts_.root + "\"");
  }
  MakeDirs(opts_.root, 0700);
  MakeDirs(opts_.root + "/snapshots", 0700);
  lock_fd_.reset(::open((opts_.root + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_fd_) ThrowErrno("open " + opts_.root + "/lock");
  if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    throw Error(ErrorCode::kUnavailable, "root " + opts_.root +
                                             " is in use by another lazysnapd (lock held on " +
                                             opts_.root + "/lock)");
  }
  store_ = std::make_unique<MetadataStore>(opts_.root + "/metadata.db");
}

std::string Snapshotter::SnapshotDir(int64_t id) const {
  return opts_.root + "/snapshots/" + std::to_string(id);
}

std::vector<Mount> Snapshotter::Prepare(const std::string& key, const std::string& parent,
                                        const Labels& labels) {
  return CreateSnapshot(Kind::kActive, key, parent, labels);
}

std::vector<Mount> Snapshotter::View(const std::string& key, const std::string& parent,
                                     const Labels& labels) {
  return CreateSnapshot(Kind::kView, key, parent, labels);
}

std::vector<Mount> Snapshotter::CreateSnapshot(Kind kind, const std::string& key,
                                               const std::string& parent, const Labels& labels) {
  if (key.empty()) throw Error(ErrorCode::kInvalidArgument, "snapshot key must not be empty");
  ValidateLabels(labels);
  std::lock_guard lock(mu_);
  const bool layer = labels.contains(labels::kSnapshotRef);  // containerd unpacking an image
  LayerPlan plan;
  if (opts_.planner) {
    std::optional<SnapshotRecord> parent_rec;
    if (!parent.empty()) parent_rec = store_->Get(parent);
    PrepareRequest req{kind, key, parent, labels, parent_rec ? &*parent_rec : nullptr};
    plan = opts_.planner->Plan(req);
    // Returns only when a lazy layer could not be materialised: unpack it natively then.
    if (plan.mode != LayerMode::kNative) CommitRemote(req, plan);
  }
  SqliteTxn txn(store_->db());
  SnapshotRecord rec = store_->Create(key, parent, kind, LayerMode::kNative, labels, NowNanos());
  CommitWithDir(txn, rec.id, kind == Kind::kActive);
  if (layer) Count(counters_.layer_prepares[static_cast<int>(LayerMode::kNative)]);
  log_.Debug(
      "snapshot created",
      {{"key", key}, {"parent", parent}, {"kind", KindName(kind)}, {"id", std::to_string(rec.id)}});
  return MountsFor(rec);
}

void Snapshotter::CommitWithDir(SqliteTxn& txn, int64_t id, bool with_work) {
  // The directory is built under a temporary name and renamed into place before the row commits:
  // a crash leaves either no row (and an orphan dir for Cleanup) or a row with its directory.
  MakeSnapshotDir(id, with_work);
  try {
    txn.Commit();
  } catch (...) {
    std::error_code ec;
    fs::remove_all(SnapshotDir(id), ec);
    throw;
  }
}

void Snapshotter::MakeSnapshotDir(int64_t id, bool with_work) {
  std::string dir = SnapshotDir(id);
  std::string tmp = opts_.root + "/snapshots/new-" + std::to_string(id);
  if (PathExists(dir)) RemoveTree(dir);  // an orphan of a rolled-back create that reused this id
  if (PathExists(tmp)) RemoveTree(tmp);
  try {
    MakeDirs(tmp + "/fs", 0755);
    if (with_work) MakeDirs(tmp + "/work", 0711);
    if (::rename(tmp.c_str(), dir.c_str()) != 0) ThrowErrno("rename " + tmp + " -> " + dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

void Snapshotter::CommitRemote(const PrepareRequest& req, const LayerPlan& plan) {
  const std::string& name = plan.remote_name;
  auto existing = store_->Get(name);
  if (existing) {
    // Another pull (or namespace) recorded the same layer already: containerd's List finds it.
    if (existing->info.kind == Kind::kCommitted && existing->info.parent == req.parent) {
      Count(counters_.layer_prepares[static_cast<int>(existing->mode)]);
      Count(counters_.remote_reused);
      throw Error(ErrorCode::kAlreadyExists, "target snapshot \"" + name + "\": already exists");
    }
    throw Error(ErrorCode::kFailedPrecondition, "remote layer " + name + " exists with parent \"" +
                                                    existing->info.parent + "\", not \"" +
                                                    req.parent + "\"");
  }
  SqliteTxn txn(store_->db());
  SnapshotRecord rec =
      store_->Create(name, req.parent, Kind::kCommitted, plan.mode, plan.remote_labels, NowNanos());
  if (plan.mode == LayerMode::kLazy) {
    // The layer's lazy mount sits on the snapshot's fs dir, so overlay chains treat it like any
    // unpacked layer. Mounted before the row commits: a failure leaves no record behind.
    MakeSnapshotDir(rec.id, false);
    std::string fs_dir = SnapshotDir(rec.id) + "/fs";
    try {
      opts_.planner->Materialize(plan, fs_dir);
      txn.Commit();
    } catch (const std::exception& e) {
      opts_.planner->Release(fs_dir);
      try {
        RemoveTree(SnapshotDir(rec.id));
      } catch (const std::exception& e2) {
        log_.Warn("snapshot directory left for cleanup", {{"error", e2.what()}});
      }
      Count(counters_.lazy_fallbacks);
      log_.Warn("lazy layer could not be mounted; unpacking natively",
                {{"key", req.key}, {"name", name}, {"error", e.what()}});
      return;
    }
  } else {
    // An empty fs dir keeps overlay lowerdir chains well-formed for anyone who mounts them.
    CommitWithDir(txn, rec.id, false);
  }
  Count(counters_.layer_prepares[static_cast<int>(plan.mode)]);
  log_.Info("remote layer committed", {{"key", req.key},
                                       {"name", name},
                                       {"parent", req.parent},
                                       {"mode", LayerModeName(plan.mode)}});
  throw Error(ErrorCode::kAlreadyExists, "target snapshot \"" + name + "\": already exists");
}

bool Snapshotter::EnsureLazyServed(const SnapshotRecord& layer) {
  constexpr long kFuseSuperMagic = 0x65735546;
  constexpr long kErofsSuperMagic = 0xE0F5E1E2;
  std::string fs_dir = SnapshotDir(layer.id) + "/fs";
  struct statfs sf;
  bool ok = ::statfs(fs_dir.c_str(), &sf) == 0;
  if (ok && sf.f_type == kFuseSuperMagic) return false;  // a dead FUSE server fails: ENOTCONN
  // A kernel EROFS mount looks alive even when the FUSE server of its data died, so ask
  // lazysnap-fused to serve it (a no-op when it does; it replaces a stale mount otherwise).
  bool erofs = ok && sf.f_type == kErofsSuperMagic;
  // Otherwise lazysnap-fused lost this mount (it restarted without its table, or it died). A
  // container on an empty lower dir would see a wrong tree, so mount the layer again or refuse.
  if (!erofs) ::umount2(fs_dir.c_str(), MNT_DETACH);  // a dead mount goes first
  LayerPlan plan;
  plan.mode = LayerMode::kLazy;
  plan.remote_name = layer.info.name;
  plan.remote_labels = layer.info.labels;
  try {
    if (!opts_.planner) throw Error(ErrorCode::kFailedPrecondition, "no layer planner");
    opts_.planner->Materialize(plan, fs_dir);
  } catch (const std::exception& e) {
    Count(counters_.lazy_unavailable);
    throw Error(ErrorCode::kUnavailable,
                "lazy layer " + layer.info.name +
                    " is not served and could not be mounted again: " + e.what());
  }
  if (!erofs) {
    Count(counters_.lazy_remounts);
    log_.Warn("lazy layer was not served; mounted it again", {{"name", layer.info.name}});
  }
  struct statfs now;
  return ::statfs(fs_dir.c_str(), &now) == 0 && now.f_type == kErofsSuperMagic;
}

std::vector<Mount> Snapshotter::MountsFor(const SnapshotRecord& rec) {
  std::vector<std::string> parents;
  std::vector<SnapshotRecord> chain = store_->AncestorRecords(rec.id);  // nearest first
  bool remote = false;
  OverlayOptions overlay = opts_.overlay;
  for (const auto& a : chain) {
    parents.push_back(SnapshotDir(a.id) + "/fs");
    remote = remote || a.mode == LayerMode::kProxy;  // lazy layers' fs dirs hold their mounts
    if (a.mode == LayerMode::kLazy && EnsureLazyServed(a)) overlay.xino_on = true;
  }
  std::string dir = SnapshotDir(rec.id);
  if (remote) {
    if (!opts_.remote_mounts) {
      throw Error(ErrorCode::kFailedPrecondition,
                  "snapshot " + rec.info.name +
                      " sits on remote layers but remote mounts are not configured");
    }
    std::reverse(chain.begin(), chain.end());
    return opts_.remote_mounts->Build(rec, chain, dir + "/fs", dir + "/work", parents);
  }
  return NativeMounts(rec.info.kind, dir + "/fs", dir + "/work", parents, overlay);
}

std::vector<Mount> Snapshotter::Mounts(const std::string& key) {
  std::lock_guard lock(mu_);
  SnapshotRecord rec = store_->GetOrThrow(key);
  if (rec.info.kind == Kind::kCommitted) {
    throw Error(ErrorCode::kFailedPrecondition, "snapshot " + key +
                                                    " is committed: mounts exist only "
                                                    "for active snapshots and views");
  }
  return MountsFor(rec);
}

void Snapshotter::Commit(const std::string& name, const std::string& key, const Labels& labels) {
  if (name.empty()) throw Error(ErrorCode::kInvalidArgument, "commit name must not be empty");
  ValidateLabels(labels);
  std::lock_guard lock(mu_);
  SqliteTxn txn(store_->db());
  SnapshotRecord rec = store_->GetOrThrow(key);
  if (rec.info.kind != Kind::kActive) {
    throw Error(ErrorCode::kFailedPrecondition, "snapshot " + key + " is " +
                                                    KindName(rec.info.kind) +
                                                    ", only active snapshots can be committed");
  }
  Usage usage = DiskUsage(SnapshotDir(rec.id) + "/fs");
  store_->Commit(rec.id, name, labels, usage, NowNanos());
  txn.Commit();
  // The work dir is only needed while the snapshot is an overlay upper.
  std::error_code ec;
  fs::remove_all(SnapshotDir(rec.id) + "/work", ec);
  log_.Debug("snapshot committed", {{"key", key}, {"name", name}, {"id", std::to_string(rec.id)}});
}

void Snapshotter::Remove(const std::string& key) {
  std::lock_guard lock(mu_);
  int64_t id;
  LayerMode mode;
  {
    SqliteTxn txn(store_->db());
    SnapshotRecord rec = store_->GetOrThrow(key);
    id = rec.id;
    mode = rec.mode;
    store_->Delete(rec.id, key);
    txn.Commit();
  }
  // lazysnap-fused takes its mount down; what it could not (it is not running) RemoveTree detaches.
  if (mode == LayerMode::kLazy && opts_.planner) opts_.planner->Release(SnapshotDir(id) + "/fs");
  // Rename first so a crash mid-removal leaves a name Cleanup recognises as unowned.
  std::string dir = SnapshotDir(id);
  std::string doomed = opts_.root + "/snapshots/rm-" + std::to_string(id);
  if (PathExists(dir) && ::rename(dir.c_str(), doomed.c_str()) == 0) {
    try {
      RemoveTree(doomed);
    } catch (const Error& e) {
      log_.Warn("snapshot directory left for cleanup", {{"dir", doomed}, {"error", e.what()}});
    }
  }
  log_.Debug("snapshot removed", {{"key", key}, {"id", std::to_string(id)}});
}

Info Snapshotter::Stat(const std::string& key) {
  std::lock_guard lock(mu_);
  return store_->GetOrThrow(key).info;
}

Info Snapshotter::Update(const Info& info, const std::vector<std::string>& fieldpaths) {
  ValidateLabels(info.labels);
  std::lock_guard lock(mu_);
  SqliteTxn txn(store_->db());
  SnapshotRecord rec = store_->GetOrThrow(info.name);
  Labels labels = rec.info.labels;
  if (fieldpaths.empty()) {
    labels = info.labels;
  } else {
    for (const auto& path : fieldpaths) {
      if (path.starts_with("labels.")) {
        std::string k = path.substr(7);
        auto it = info.labels.find(k);
        if (it == info.labels.end() || it->second.empty()) {
          labels.erase(k);  // containerd removes a label by sending it absent or empty
        } else {
          labels[k] = it->second;
        }
      } else if (path == "labels") {
        labels = info.labels;
      } else {
        throw Error(ErrorCode::kInvalidArgument, "cannot update \"" + path +
                                                     "\" field on snapshot " + info.name +
                                                     ": only labels are mutable");
      }
    }
  }
  std::erase_if(labels, [](const auto& kv) { return kv.second.empty(); });
  ValidateLabels(labels);
  store_->SetLabels(rec.id, labels, NowNanos());
  txn.Commit();
  return store_->GetOrThrow(info.name).info;
}

void Snapshotter::List(const FilterSet& filters, const std::function<void(const Info&)>& fn) {
  std::vector<Info> matched;
  {
    std::lock_guard lock(mu_);
    store_->ForEach([&](const SnapshotRecord& r) {
      if (filters.Match(r.info)) matched.push_back(r.info);
    });
  }
  for (const auto& info : matched) fn(info);  // stream without holding the lock
}

Usage Snapshotter::GetUsage(const std::string& key) {
  std::lock_guard lock(mu_);
  SnapshotRecord rec = store_->GetOrThrow(key);
  if (rec.usage) return *rec.usage;
  return DiskUsage(SnapshotDir(rec.id) + "/fs");
}

int Snapshotter::Cleanup() {
  std::lock_guard lock(mu_);
  std::set<std::string> owned;
  for (int64_t id : store_->AllIds()) owned.insert(std::to_string(id));
  int removed = 0;
  for (const auto& entry : fs::directory_iterator(opts_.root + "/snapshots")) {
    std::string name = entry.path().filename().string();
    if (owned.count(name)) continue;
    RemoveTree(entry.path().string());
    log_.Info("cleanup removed unowned snapshot directory", {{"dir", entry.path().string()}});
    ++removed;
  }
  return removed;
}

std::vector<SnapshotTally> Snapshotter::Tally() {
  std::lock_guard lock(mu_);
  return store_->CountByKindAndMode();
}

}  // namespace lazysnap::snapshotter
