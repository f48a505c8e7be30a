#pragma once
// A small RAII layer over the SQLite C API for the bootstrap job store (WAL journal, so a kill at
// any point leaves every committed transaction intact and nothing half-written).
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace metamath::bootstrap {

class Db;

// One prepared statement. bind() indexes are 1-based, column() indexes 0-based (as in SQLite).
class Stmt {
 public:
  Stmt(Db& db, std::string_view sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);
  Stmt& bind(int i, std::string_view v);
  Stmt& bind_null(int i);
  // Steps once: true while a row is available.
  bool step();
  // Steps to completion and resets, for INSERT/UPDATE.
  void run();
  void reset();

  int64_t int_at(int col) const;
  double double_at(int col) const;
  std::string text_at(int col) const;
  bool null_at(int col) const;

 private:
  Db& db_;
  sqlite3_stmt* st_ = nullptr;
  std::string sql_;
};

class Db {
 public:
  // Opens (creating when allowed) the database; WAL mode, synchronous=NORMAL.
  Db(const std::filesystem::path& file, bool create);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(std::string_view sql);
  void begin() { exec("BEGIN IMMEDIATE"); }
  void commit() { exec("COMMIT"); }
  void rollback();
  int64_t changes() const;
  sqlite3* handle() { return db_; }
  const std::filesystem::path& path() const { return path_; }
  [[noreturn]] void fail_sql(std::string_view what) const;

 private:
  sqlite3* db_ = nullptr;
  std::filesystem::path path_;
};

// Commits on success, rolls back when destroyed by an exception.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) { db_.begin(); }
  ~Transaction() {
    if (!done_) db_.rollback();
  }
  void commit() {
    db_.commit();
    done_ = true;
  }

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace metamath::bootstrap
