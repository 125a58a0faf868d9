#include "snapshotter/sqlite_db.h"

#include "common/error.h"

namespace lazysnap::snapshotter {

SqliteDb::SqliteDb(const std::string& path) : path_(path) {
  int rc =
      sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) Fail("open", rc);
  sqlite3_busy_timeout(db_, 2000);
  sqlite3_extended_result_codes(db_, 1);
}

SqliteDb::~SqliteDb() {
  sqlite3_close_v2(db_);
}

void SqliteDb::Fail(std::string_view what, int rc) const {
  std::string msg = "metadata database " + path_ + ": " + std::string(what) + ": " +
                    (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw Error(ErrorCode::kUnavailable, msg + " (is another lazysnapd using this root?)");
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      throw Error(ErrorCode::kDataLoss, msg +
                                            " (the file is damaged; restore it from a backup or "
                                            "move it away to start empty)");
    case SQLITE_FULL:
      throw Error(ErrorCode::kResourceExhausted, msg);
    case SQLITE_CONSTRAINT:
      throw Error(ErrorCode::kFailedPrecondition, msg);
    default:
      throw Error(ErrorCode::kInternal, msg);
  }
}

void SqliteDb::Exec(std::string_view sql) {
  char* err = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (err) sqlite3_free(err);
  if (rc != SQLITE_OK) Fail(s, rc);
}

SqliteStmt::SqliteStmt(SqliteDb& db, std::string_view sql) : db_(db) {
  int rc = sqlite3_prepare_v2(db.raw(), sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) db.Fail(sql, rc);
}

SqliteStmt::~SqliteStmt() {
  sqlite3_finalize(stmt_);
}

SqliteStmt& SqliteStmt::Bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) db_.Fail("bind", rc);
  return *this;
}

SqliteStmt& SqliteStmt::Bind(int index, std::string_view value) {
  int rc = sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                             SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) db_.Fail("bind", rc);
  return *this;
}

SqliteStmt& SqliteStmt::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) db_.Fail("bind", rc);
  return *this;
}

bool SqliteStmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_.Fail(sqlite3_sql(stmt_), rc);
}

int64_t SqliteStmt::Int(int col) const {
  return sqlite3_column_int64(stmt_, col);
}

std::string SqliteStmt::Text(int col) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
}

bool SqliteStmt::IsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

SqliteTxn::SqliteTxn(SqliteDb& db) : db_(db) {
  db_.Exec("BEGIN IMMEDIATE");
}

SqliteTxn::~SqliteTxn() {
  if (!done_) sqlite3_exec(db_.raw(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void SqliteTxn::Commit() {
  db_.Exec("COMMIT");
  done_ = true;
}

}  // namespace lazysnap::snapshotter
