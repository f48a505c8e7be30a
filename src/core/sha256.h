#pragma once
// SHA-256 of bytes and of files, as lowercase hex: the same string `sha256sum` prints, so a user
// can check a run's recorded data file by hand. Run folders record the hashes of their input files
// with it (train_run.json, eval's run.json), which is how `metamath report` knows two runs used
// the same data without asking. The digest is OpenSSL's (libcrypto).
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace metamath {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view bytes);
  // The digest as 64 lowercase hex digits; the object must not be updated afterwards.
  std::string hex_digest();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string sha256_hex(std::string_view bytes);
// Streams the file (constant memory); throws metamath::Error naming it when unreadable.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace metamath
