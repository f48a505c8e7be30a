#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "core/error.h"

namespace metamath {
namespace fs = std::filesystem;

AtomicFile::AtomicFile(fs::path path) : path_(std::move(path)) {
  if (path_.has_parent_path() && !path_.parent_path().empty()) {
    std::error_code ec;
    fs::create_directories(path_.parent_path(), ec);
    if (ec)
      fail("{}: cannot create folder {}: {}", path_.string(), path_.parent_path().string(),
           ec.message());
  }
  tmp_ = path_;
  tmp_ += ".tmp." + std::to_string(::getpid());
  out_.open(tmp_, std::ios::binary | std::ios::trunc);
  if (!out_) fail("{}: cannot open for writing: {}", tmp_.string(), std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (!committed_) {
    out_.close();
    std::error_code ec;
    fs::remove(tmp_, ec);
  }
}

void AtomicFile::commit() {
  out_.flush();
  if (!out_) fail("{}: write failed: {}", tmp_.string(), std::strerror(errno));
  out_.close();
  int fd = ::open(tmp_.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::error_code ec;
  fs::rename(tmp_, path_, ec);
  if (ec) fail("{}: cannot rename {} into place: {}", path_.string(), tmp_.string(), ec.message());
  committed_ = true;
}

void write_file_atomic(const fs::path& path, std::string_view content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace metamath
