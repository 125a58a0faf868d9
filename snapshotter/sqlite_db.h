// Thin RAII wrapper over SQLite: a connection, prepared statements, and IMMEDIATE transactions
// that roll back unless committed. Errors throw lazysnap::Error naming the database and statement.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace lazysnap::snapshotter {

class SqliteDb;

class SqliteStmt {
 public:
  SqliteStmt(SqliteDb& db, std::string_view sql);
  SqliteStmt(const SqliteStmt&) = delete;
  SqliteStmt& operator=(const SqliteStmt&) = delete;
  ~SqliteStmt();

  SqliteStmt& Bind(int index, int64_t value);
  SqliteStmt& Bind(int index, std::string_view value);
  SqliteStmt& BindNull(int index);
  // Makes the statement runnable again with new bindings.
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  // Advances; true while a row is available.
  bool Step();
  // Runs a statement that returns no rows.
  void Exec() {
    while (Step()) {
    }
  }
  int64_t Int(int col) const;
  std::string Text(int col) const;
  bool IsNull(int col) const;

 private:
  SqliteDb& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class SqliteDb {
 public:
  // Opens (creating if absent) the database. Throws Error(kFailedPrecondition) when the file is
  // not a database, kUnavailable when locked.
  explicit SqliteDb(const std::string& path);
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  ~SqliteDb();

  void Exec(std::string_view sql);
  int64_t LastInsertId() const { return sqlite3_last_insert_rowid(db_); }
  int Changes() const { return sqlite3_changes(db_); }
  sqlite3* raw() { return db_; }
  const std::string& path() const { return path_; }
  [[noreturn]] void Fail(std::string_view what, int rc) const;

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

// BEGIN IMMEDIATE on construction; ROLLBACK on destruction unless Commit() was called.
class SqliteTxn {
 public:
  explicit SqliteTxn(SqliteDb& db);
  SqliteTxn(const SqliteTxn&) = delete;
  SqliteTxn& operator=(const SqliteTxn&) = delete;
  ~SqliteTxn();
  void Commit();

 private:
  SqliteDb& db_;
  bool done_ = false;
};

}  // namespace lazysnap::snapshotter
