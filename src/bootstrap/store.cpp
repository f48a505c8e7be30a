#include "bootstrap/store.h"

#include <sqlite3.h>

#include "core/error.h"

namespace metamath::bootstrap {

Db::Db(const std::filesystem::path& file, bool create) : path_(file) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  if (sqlite3_open_v2(file.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    fail("{}: cannot open the job store: {}", file.string(), msg);
  }
  sqlite3_busy_timeout(db_, 10000);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  exec("PRAGMA foreign_keys=ON");
}

Db::~Db() {
  if (db_) sqlite3_close(db_);
}

void Db::fail_sql(std::string_view what) const {
  fail("{}: job store error in {}: {}", path_.string(), what, sqlite3_errmsg(db_));
}

void Db::exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  if (sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    fail("{}: job store error in '{}': {}", path_.string(), s.substr(0, 60), msg);
  }
}

void Db::rollback() { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }

int64_t Db::changes() const { return sqlite3_changes(db_); }

Stmt::Stmt(Db& db, std::string_view sql) : db_(db), sql_(sql) {
  if (sqlite3_prepare_v2(db.handle(), sql_.c_str(), static_cast<int>(sql_.size()), &st_, nullptr) !=
      SQLITE_OK)
    db_.fail_sql(sql_.substr(0, 60));
}

Stmt::~Stmt() { sqlite3_finalize(st_); }

Stmt& Stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(st_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, double v) {
  sqlite3_bind_double(st_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_null(int i) {
  sqlite3_bind_null(st_, i);
  return *this;
}

bool Stmt::step() {
  int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_.fail_sql(sql_.substr(0, 60));
}

void Stmt::run() {
  while (step()) {
  }
  reset();
}

void Stmt::reset() {
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
}

int64_t Stmt::int_at(int col) const { return sqlite3_column_int64(st_, col); }
double Stmt::double_at(int col) const { return sqlite3_column_double(st_, col); }
std::string Stmt::text_at(int col) const {
  const unsigned char* p = sqlite3_column_text(st_, col);
  int n = sqlite3_column_bytes(st_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n))
           : std::string();
}
bool Stmt::null_at(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }

}  // namespace metamath::bootstrap
