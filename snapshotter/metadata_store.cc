#include "snapshotter/metadata_store.h"

#include "common/error.h"

namespace lazysnap::snapshotter {
namespace {

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
  kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),
  mode INTEGER NOT NULL DEFAULT 0,
  created_ns INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL,
  usage_size INTEGER,
  usage_inodes INTEGER
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
CREATE TABLE IF NOT EXISTS labels (
  snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (snapshot_id, key)
);
)";

constexpr const char* kSelect =
    "SELECT s.id, s.key, COALESCE(p.key, ''), s.kind, s.mode, s.created_ns, s.updated_ns, "
    "s.usage_size, s.usage_inodes, COALESCE(s.parent_id, 0) FROM snapshots s "
    "LEFT JOIN snapshots p ON p.id = s.parent_id ";

SnapshotRecord RowToRecord(const SqliteStmt& st) {
  SnapshotRecord r;
  r.id = st.Int(0);
  r.info.name = st.Text(1);
  r.info.parent = st.Text(2);
  r.info.kind = static_cast<Kind>(st.Int(3));
  r.mode = static_cast<LayerMode>(st.Int(4));
  r.info.created_ns = st.Int(5);
  r.info.updated_ns = st.Int(6);
  if (!st.IsNull(7)) r.usage = Usage{st.Int(7), st.Int(8)};
  r.parent_id = st.Int(9);
  return r;
}

}  // namespace

MetadataStore::MetadataStore(const std::string& path) : db_(path) {
  // journal_mode is persistent; WAL survives restarts. synchronous=FULL makes each COMMIT durable
  // against power loss too, not only against a killed process.
  {
    SqliteStmt wal(db_, "PRAGMA journal_mode=WAL");
    if (!wal.Step() || wal.Text(0) != "wal") {
      throw Error(ErrorCode::kFailedPrecondition,
                  "metadata database " + path + ": cannot enable WAL");
    }
  }
  db_.Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
  {
    SqliteStmt check(db_, "PRAGMA quick_check");
    std::string problems;
    while (check.Step()) {
      if (check.Text(0) != "ok") problems += check.Text(0) + "; ";
    }
    if (!problems.empty()) {
      throw Error(ErrorCode::kDataLoss, "metadata database " + path +
                                            " failed its integrity check: " + problems +
                                            "restore it from a backup or move it away");
    }
  }
  int64_t version = 0;
  {
    SqliteStmt ver(db_, "PRAGMA user_version");
    ver.Step();
    version = ver.Int(0);
  }
  if (version > kSchemaVersion) {
    throw Error(ErrorCode::kFailedPrecondition,
                "metadata database " + path + " has schema version " + std::to_string(version) +
                    ", newer than this lazysnapd understands (" + std::to_string(kSchemaVersion) +
                    ")");
  }
  if (version < kSchemaVersion) {
    SqliteTxn txn(db_);
    db_.Exec(kSchema);
    db_.Exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
    txn.Commit();
  }
}

std::optional<SnapshotRecord> MetadataStore::Get(const std::string& key) {
  SqliteStmt st(db_, std::string(kSelect) + "WHERE s.key = ?");
  st.Bind(1, key);
  if (!st.Step()) return std::nullopt;
  SnapshotRecord r = RowToRecord(st);
  r.info.labels = LoadLabels(r.id);
  return r;
}

SnapshotRecord MetadataStore::GetOrThrow(const std::string& key) {
  auto r = Get(key);
  if (!r) throw Error(ErrorCode::kNotFound, "snapshot " + key + " does not exist");
  return *r;
}

SnapshotRecord MetadataStore::Load(int64_t id) {
  SqliteStmt st(db_, std::string(kSelect) + "WHERE s.id = ?");
  st.Bind(1, id);
  if (!st.Step())
    throw Error(ErrorCode::kNotFound, "snapshot id " + std::to_string(id) + " does not exist");
  SnapshotRecord r = RowToRecord(st);
  r.info.labels = LoadLabels(r.id);
  return r;
}

Labels MetadataStore::LoadLabels(int64_t id) {
  Labels labels;
  SqliteStmt st(db_, "SELECT key, value FROM labels WHERE snapshot_id = ?");
  st.Bind(1, id);
  while (st.Step()) labels.emplace(st.Text(0), st.Text(1));
  return labels;
}

void MetadataStore::StoreLabels(int64_t id, const Labels& labels) {
  SqliteStmt del(db_, "DELETE FROM labels WHERE snapshot_id = ?");
  del.Bind(1, id).Exec();
  SqliteStmt ins(db_, "INSERT INTO labels (snapshot_id, key, value) VALUES (?, ?, ?)");
  for (const auto& [k, v] : labels) {
    ins.Reset();
    ins.Bind(1, id).Bind(2, k).Bind(3, v).Exec();
  }
}

SnapshotRecord MetadataStore::Create(const std::string& key, const std::string& parent, Kind kind,
                                     LayerMode mode, const Labels& labels, int64_t now_ns) {
  if (Get(key)) throw Error(ErrorCode::kAlreadyExists, "snapshot " + key + " already exists");
  int64_t parent_id = 0;
  if (!parent.empty()) {
    auto p = Get(parent);
    if (!p) throw Error(ErrorCode::kNotFound, "parent snapshot " + parent + " does not exist");
    if (p->info.kind != Kind::kCommitted) {
      throw Error(ErrorCode::kInvalidArgument, "parent " + parent +
                                                   " is not a committed snapshot (it is " +
                                                   KindName(p->info.kind) + ")");
    }
    parent_id = p->id;
  }
  SqliteStmt ins(db_,
                 "INSERT INTO snapshots (key, parent_id, kind, mode, created_ns, updated_ns) "
                 "VALUES (?, ?, ?, ?, ?, ?)");
  ins.Bind(1, key);
  if (parent_id) {
    ins.Bind(2, parent_id);
  } else {
    ins.BindNull(2);
  }
  ins.Bind(3, static_cast<int64_t>(kind))
      .Bind(4, static_cast<int64_t>(mode))
      .Bind(5, now_ns)
      .Bind(6, now_ns);
  ins.Exec();
  int64_t id = db_.LastInsertId();
  StoreLabels(id, labels);
  return Load(id);
}

void MetadataStore::Commit(int64_t id, const std::string& name, const Labels& labels,
                           const Usage& usage, int64_t now_ns) {
  if (Get(name)) throw Error(ErrorCode::kAlreadyExists, "snapshot " + name + " already exists");
  SqliteStmt up(
      db_,
      "UPDATE snapshots SET key = ?, kind = ?, updated_ns = ?, usage_size = ?, usage_inodes = ? "
      "WHERE id = ?");
  up.Bind(1, name)
      .Bind(2, static_cast<int64_t>(Kind::kCommitted))
      .Bind(3, now_ns)
      .Bind(4, usage.size);
  up.Bind(5, usage.inodes).Bind(6, id).Exec();
  StoreLabels(id, labels);
}

void MetadataStore::Delete(int64_t id, const std::string& key) {
  SqliteStmt kids(db_, "SELECT COUNT(*) FROM snapshots WHERE parent_id = ?");
  kids.Bind(1, id);
  kids.Step();
  if (kids.Int(0) > 0) {
    throw Error(ErrorCode::kFailedPrecondition, "cannot remove snapshot " + key + ": it has " +
                                                    std::to_string(kids.Int(0)) +
                                                    " child snapshot(s)");
  }
  SqliteStmt del(db_, "DELETE FROM snapshots WHERE id = ?");
  del.Bind(1, id).Exec();
}

void MetadataStore::SetLabels(int64_t id, const Labels& labels, int64_t now_ns) {
  SqliteStmt up(db_, "UPDATE snapshots SET updated_ns = ? WHERE id = ?");
  up.Bind(1, now_ns).Bind(2, id).Exec();
  StoreLabels(id, labels);
}

std::vector<int64_t> MetadataStore::Ancestors(int64_t id) {
  std::vector<int64_t> out;
  SqliteStmt st(db_,
                "WITH RECURSIVE chain(id, parent_id, depth) AS ("
                "  SELECT id, parent_id, 0 FROM snapshots WHERE id = ?"
                "  UNION ALL SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s"
                "  JOIN chain c ON s.id = c.parent_id) "
                "SELECT id FROM chain WHERE depth > 0 ORDER BY depth");
  st.Bind(1, id);
  while (st.Step()) out.push_back(st.Int(0));
  return out;
}

std::vector<SnapshotRecord> MetadataStore::AncestorRecords(int64_t id) {
  std::vector<SnapshotRecord> out;
  for (int64_t a : Ancestors(id)) out.push_back(Load(a));
  return out;
}

void MetadataStore::ForEach(const std::function<void(const SnapshotRecord&)>& fn) {
  std::vector<SnapshotRecord> all;
  {
    SqliteStmt st(db_, std::string(kSelect) + "ORDER BY s.id");
    while (st.Step()) all.push_back(RowToRecord(st));
  }
  // Labels in one pass rather than a query per snapshot: List is called with thousands of rows.
  {
    SqliteStmt st(db_, "SELECT snapshot_id, key, value FROM labels ORDER BY snapshot_id");
    size_t i = 0;
    while (st.Step()) {
      int64_t sid = st.Int(0);
      while (i < all.size() && all[i].id < sid) ++i;
      if (i < all.size() && all[i].id == sid) all[i].info.labels.emplace(st.Text(1), st.Text(2));
    }
  }
  for (const auto& r : all) fn(r);
}

std::vector<int64_t> MetadataStore::AllIds() {
  std::vector<int64_t> out;
  SqliteStmt st(db_, "SELECT id FROM snapshots");
  while (st.Step()) out.push_back(st.Int(0));
  return out;
}

int64_t MetadataStore::Count() {
  SqliteStmt st(db_, "SELECT COUNT(*) FROM snapshots");
  st.Step();
  return st.Int(0);
}

std::vector<SnapshotTally> MetadataStore::CountByKindAndMode() {
  SqliteStmt st(db_, "SELECT kind, mode, COUNT(*) FROM snapshots GROUP BY kind, mode");
  std::vector<SnapshotTally> out;
  while (st.Step()) {
    out.push_back({static_cast<Kind>(st.Int(0)), static_cast<LayerMode>(st.Int(1)), st.Int(2)});
  }
  return out;
}

}  // namespace lazysnap::snapshotter
