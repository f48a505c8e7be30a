#include "core/jsonl.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/log.h"

namespace metamath {
namespace fs = std::filesystem;

namespace {

// "parse error at line 1, column 2: ..." (nlohmann's message without its "[json.exception...]"
// prefix).
std::string parse_error_text(const json::exception& e) {
  std::string msg = e.what();
  auto p = msg.find("parse error");
  return p == std::string::npos ? msg : msg.substr(p);
}

// The 1-based line of byte `byte` (nlohmann's 1-based position of the offending character).
std::size_t line_of_byte(std::string_view text, std::size_t byte) {
  std::size_t end = std::min(byte > 0 ? byte - 1 : 0, text.size());
  return 1 + static_cast<std::size_t>(
                 std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(end), '\n'));
}

}  // namespace

json parse_json(std::string_view text, const std::string& where) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: malformed JSON ({})", where, parse_error_text(e));
  }
}

json read_json_file(const fs::path& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail("{}:{}: malformed JSON ({})", path.string(), line_of_byte(text, e.byte),
         parse_error_text(e));
  } catch (const json::exception& e) {
    fail("{}: malformed JSON ({})", path.string(), parse_error_text(e));
  }
}

JsonlReader::JsonlReader(fs::path path, JsonlOptions opts) : path_(std::move(path)), opts_(opts) {
  std::error_code ec;
  if (!fs::exists(path_, ec)) fail("{}: no such file", path_.string());
  if (fs::is_directory(path_, ec)) fail("{}: is a folder, expected a .jsonl file", path_.string());
  size_ = fs::file_size(path_, ec);
  in_.open(path_, std::ios::binary);
  if (!in_) fail("{}: cannot open: {}", path_.string(), std::strerror(errno));
}

std::uintmax_t JsonlReader::bytes_read() const {
  auto& in = const_cast<std::ifstream&>(in_);
  auto pos = in.tellg();
  return pos < 0 ? size_ : static_cast<std::uintmax_t>(pos);
}

std::string JsonlReader::where() const { return fmt::format("{}:{}", path_.string(), line_); }

bool JsonlReader::next(json& out) {
  while (std::getline(in_, buf_)) {
    ++line_;
    if (!buf_.empty() && buf_.back() == '\r') buf_.pop_back();
    std::size_t i = buf_.find_first_not_of(" \t");
    if (i == std::string::npos) continue;
    std::string problem;
    try {
      out = json::parse(buf_);
      if (opts_.require_object && !out.is_object())
        problem = "expected a JSON object, got " + std::string(out.type_name());
    } catch (const json::parse_error& e) {
      problem = "malformed JSON (" + parse_error_text(e) + ")";
    }
    if (problem.empty()) {
      ++records_;
      return true;
    }
    if (!opts_.skip_bad) fail("{}:{}: {}", path_.string(), line_, problem);
    ++bad_;
    log::warn("{}:{}: skipped: {}", path_.string(), line_, problem);
  }
  return false;
}

std::vector<json> read_jsonl(const fs::path& path, JsonlOptions opts) {
  JsonlReader r(path, opts);
  std::vector<json> v;
  json rec;
  while (r.next(rec)) v.push_back(std::move(rec));
  return v;
}

const json& require_field(const json& rec, const char* field, const std::string& where) {
  auto it = rec.find(field);
  if (it == rec.end()) fail("{}: missing field \"{}\"", where, field);
  return *it;
}

std::string require_string(const json& rec, const char* field, const std::string& where) {
  const json& v = require_field(rec, field, where);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return v.dump();
  fail("{}: field \"{}\" should be a string, got {}", where, field, v.type_name());
}

JsonlWriter::JsonlWriter(fs::path path, Mode mode) : mode_(mode), path_(std::move(path)) {
  if (mode_ == Mode::Atomic) {
    atomic_ = std::make_unique<AtomicFile>(path_);
  } else {
    if (path_.has_parent_path()) fs::create_directories(path_.parent_path());
    append_.open(path_, std::ios::binary | std::ios::app);
    if (!append_) fail("{}: cannot open for appending: {}", path_.string(), std::strerror(errno));
  }
}

void JsonlWriter::write(const json& rec) {
  std::string line = rec.dump(-1, ' ', false, json::error_handler_t::replace);
  line.push_back('\n');
  if (mode_ == Mode::Atomic) {
    atomic_->write(line);
  } else {
    append_.write(line.data(), static_cast<std::streamsize>(line.size()));
    append_.flush();
    if (!append_) fail("{}: write failed: {}", path_.string(), std::strerror(errno));
  }
  ++written_;
}

void JsonlWriter::commit() {
  if (mode_ == Mode::Atomic) {
    atomic_->commit();
  } else {
    append_.flush();
    int fd = ::open(path_.c_str(), O_RDONLY);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
}

std::string first_difference(const json& a, const json& b, const std::string& path) {
  if (a.type() != b.type() || !a.is_structured()) {
    return a == b ? std::string()
                  : fmt::format("{}: was {}, now {}", path.empty() ? "settings" : path, a.dump(),
                                b.dump());
  }
  if (a.is_object()) {
    std::set<std::string> keys;
    for (const auto& [k, v] : a.items()) keys.insert(k);
    for (const auto& [k, v] : b.items()) keys.insert(k);
    // Plain values first: "prompt" says more than the template text it implies.
    for (bool nested : {false, true}) {
      for (const auto& k : keys) {
        std::string p = path.empty() ? k : path + "." + k;
        bool structured =
            (a.contains(k) && a[k].is_structured()) || (b.contains(k) && b[k].is_structured());
        if (structured != nested) continue;
        if (!a.contains(k) || !b.contains(k))
          return fmt::format("{}: was {}, now {}", p, a.contains(k) ? a[k].dump() : "absent",
                             b.contains(k) ? b[k].dump() : "absent");
        std::string d = first_difference(a[k], b[k], p);
        if (!d.empty()) return d;
      }
    }
    return {};
  }
  if (a.size() != b.size()) return fmt::format("{}: was {}, now {}", path, a.dump(), b.dump());
  for (std::size_t i = 0; i < a.size(); ++i) {
    std::string d = first_difference(a[i], b[i], fmt::format("{}[{}]", path, i));
    if (!d.empty()) return d;
  }
  return {};
}

}  // namespace metamath
