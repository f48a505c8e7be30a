#pragma once
// Streaming JSON Lines reading and writing. A malformed line is an error that names the file, the
// line number and what was wrong; with skip_bad it becomes a counted warning instead.
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/atomic_file.h"

namespace metamath {

using json = nlohmann::json;

struct JsonlOptions {
  bool skip_bad = false;       // warn and count malformed lines instead of throwing
  bool require_object = true;  // each line must be a JSON object
};

class JsonlReader {
 public:
  explicit JsonlReader(std::filesystem::path path, JsonlOptions opts = {});
  // Reads the next record into `out`; returns false at end of file. Blank lines are skipped.
  bool next(json& out);
  std::size_t line() const { return line_; }  // 1-based line number of the last record read
  std::size_t records() const { return records_; }
  std::size_t bad_lines() const { return bad_; }
  const std::filesystem::path& path() const { return path_; }
  // "file:line" of the last record read, for error messages about its fields.
  std::string where() const;
  std::uintmax_t bytes_total() const { return size_; }
  std::uintmax_t bytes_read() const;

 private:
  std::filesystem::path path_;
  JsonlOptions opts_;
  std::ifstream in_;
  std::string buf_;
  std::size_t line_ = 0, records_ = 0, bad_ = 0;
  std::uintmax_t size_ = 0;
};

// Parses one JSON value (any type). Malformed text throws
//   WHERE: malformed JSON (parse error at line L, column C: ...)
// where WHERE names the source: "FILE:LINE" of a JSONL line, a database field, ...
json parse_json(std::string_view text, const std::string& where);

// Reads and parses a whole JSON file (any type). A missing file throws read_file's error;
// malformed JSON throws
//   FILE:LINE: malformed JSON (parse error at line LINE, column C: ...)
json read_json_file(const std::filesystem::path& path);

// The first key path where two JSON values differ, as "PATH: was A, now B" ("" when equal). At
// each level plain values are compared before nested ones, so a changed option is named before the
// text it implies ("prompt" before the template). A difference at the top is named "settings".
std::string first_difference(const json& a, const json& b, const std::string& path = "");

// Reads all records of a file (convenience for small files).
std::vector<json> read_jsonl(const std::filesystem::path& path, JsonlOptions opts = {});

// Field access with errors that name file:line and the field.
const json& require_field(const json& rec, const char* field, const std::string& where);
std::string require_string(const json& rec, const char* field, const std::string& where);

// Writes records one per line. Mode::Atomic writes to a temp file renamed on commit();
// Mode::Append appends whole lines and flushes each (a journal: a crash loses at most the line in
// flight, and a torn last line is detected and dropped by readers with skip_bad).
class JsonlWriter {
 public:
  enum class Mode { Atomic, Append };
  JsonlWriter(std::filesystem::path path, Mode mode = Mode::Atomic);
  void write(const json& rec);
  void commit();  // Atomic: rename into place. Append: flush and fsync.
  std::size_t written() const { return written_; }

 private:
  Mode mode_;
  std::filesystem::path path_;
  std::unique_ptr<AtomicFile> atomic_;
  std::ofstream append_;
  std::size_t written_ = 0;
};

}  // namespace metamath
