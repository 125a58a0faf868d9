// Durable snapshot metadata in SQLite (WAL, synchronous=FULL): one row per snapshot, labels in
// their own table, parents by row id so a parent with children cannot be deleted. Every change
// runs in a transaction, so a crash (kill -9) between or during calls leaves the old or the new
// state, never half of one. Callers serialise access (the Snapshotter holds a mutex).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "snapshotter/sqlite_db.h"
#include "snapshotter/types.h"

namespace lazysnap::snapshotter {

struct SnapshotRecord {
  int64_t id = 0;         // also names the snapshot's directory; never reused
  int64_t parent_id = 0;  // 0: no parent
  LayerMode mode = LayerMode::kNative;
  Info info;
  std::optional<Usage> usage;  // recorded at commit; active snapshots are measured on demand
};

// How many snapshots of one kind and mode exist.
struct SnapshotTally {
  Kind kind = Kind::kUnknown;
  LayerMode mode = LayerMode::kNative;
  int64_t count = 0;
};

class MetadataStore {
 public:
  // Opens or creates the database; checks its integrity and schema version.
  explicit MetadataStore(const std::string& path);

  SqliteDb& db() { return db_; }

  std::optional<SnapshotRecord> Get(const std::string& key);
  SnapshotRecord GetOrThrow(const std::string& key);  // Error(kNotFound) naming the key

  // Inserts a snapshot. Errors: kAlreadyExists (key taken), kNotFound (parent missing),
  // kInvalidArgument (parent is not committed).
  SnapshotRecord Create(const std::string& key, const std::string& parent, Kind kind,
                        LayerMode mode, const Labels& labels, int64_t now_ns);
  // Turns active snapshot `id` into committed snapshot `name` (kAlreadyExists if name is taken).
  void Commit(int64_t id, const std::string& name, const Labels& labels, const Usage& usage,
              int64_t now_ns);
  // Deletes a snapshot; kFailedPrecondition if it has children.
  void Delete(int64_t id, const std::string& key);
  void SetLabels(int64_t id, const Labels& labels, int64_t now_ns);
  // Ancestor ids, nearest parent first.
  std::vector<int64_t> Ancestors(int64_t id);
  std::vector<SnapshotRecord> AncestorRecords(int64_t id);
  void ForEach(const std::function<void(const SnapshotRecord&)>& fn);
  std::vector<int64_t> AllIds();
  int64_t Count();
  std::vector<SnapshotTally> CountByKindAndMode();  // only the pairs that exist

 private:
  SnapshotRecord Load(int64_t id);
  Labels LoadLabels(int64_t id);
  void StoreLabels(int64_t id, const Labels& labels);

  SqliteDb db_;
};

}  // namespace lazysnap::snapshotter
