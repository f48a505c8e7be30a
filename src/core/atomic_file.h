#pragma once
// Atomic output: data goes to "<path>.tmp.<pid>" and is renamed over <path> only on commit(), so a
// crash never leaves a truncated file that looks complete.
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace metamath {

class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();  // removes the temp file if commit() was never called
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  std::ostream& stream() { return out_; }
  void write(std::string_view s) { out_.write(s.data(), static_cast<std::streamsize>(s.size())); }
  // Flushes, fsyncs and renames the temp file into place. Throws metamath::Error on I/O failure.
  void commit();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_, tmp_;
  std::ofstream out_;
  bool committed_ = false;
};

// Writes the whole content atomically.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);
// Reads a whole file; throws metamath::Error naming the file when it cannot be read.
std::string read_file(const std::filesystem::path& path);

}  // namespace metamath
