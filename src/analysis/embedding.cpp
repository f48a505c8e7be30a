#include "analysis/embedding.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <unordered_set>

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "llm/backend.h"
#include "llm/local_backend.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "train/sft_data.h"

namespace metamath::analysis {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'M', 'M', 'E', 'M', 'B', '0', '0', '1'};
constexpr uint32_t kRecordMark = 0x454D4252;

using u128 = unsigned __int128;
// FNV-1a 128-bit: offset basis and prime from the FNV specification.
constexpr u128 kFnv128Offset =
    (static_cast<u128>(0x6c62272e07bb0142ull) << 64) | 0x62b821756295c58dull;
constexpr u128 kFnv128Prime =
    (static_cast<u128>(0x0000000001000000ull) << 64) | 0x000000000000013Bull;

// The cache file's name: the model id's readable part, then a hash of the whole id.
std::string cache_file_name(const std::string& model_id) {
  std::string slug;
  for (char c : model_id) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    if (slug.size() < 60) slug.push_back(ok ? c : '_');
  }
  return fmt::format("{}-{}.emb", slug, text_hash(model_id).hex().substr(0, 16));
}

void pread_all(int fd, void* dst, std::size_t n, int64_t offset, const fs::path& file) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t got = ::pread(fd, p, n, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      fail("{}: cannot read ({})", file.string(),
           got < 0 ? std::strerror(errno) : "unexpected end");
    p += got;
    n -= static_cast<std::size_t>(got);
    offset += got;
  }
}

void write_all(int fd, const char* p, std::size_t n, const fs::path& file) {
  while (n > 0) {
    const ssize_t put = ::write(fd, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) fail("{}: cannot write ({})", file.string(), std::strerror(errno));
    p += put;
    n -= static_cast<std::size_t>(put);
  }
}

int64_t file_size(int fd, const fs::path& file) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail("{}: cannot stat ({})", file.string(), std::strerror(errno));
  return static_cast<int64_t>(st.st_size);
}

// Holds an flock for its scope.
class FileLock {
 public:
  FileLock(int fd, int op) : fd_(fd) {
    while (::flock(fd_, op) != 0)
      if (errno != EINTR) fail("cannot lock the embedding cache ({})", std::strerror(errno));
  }
  ~FileLock() { ::flock(fd_, LOCK_UN); }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

std::string header_bytes(const std::string& model_id, int64_t dim) {
  std::string h(kMagic, 8);
  const auto n = static_cast<uint32_t>(model_id.size());
  h.append(reinterpret_cast<const char*>(&n), 4);
  h += model_id;
  const auto d = static_cast<uint32_t>(dim);
  h.append(reinterpret_cast<const char*>(&d), 4);
  return h;
}

// Hash of a model folder: config.json, the tokenizer files and each weight file's name, size,
// first and last MiB (cheap for a 13 GB checkpoint, and changes whenever the weights do in
// practice).
uint64_t model_fingerprint(const fs::path& dir) {
  uint64_t h = train::hash_file(dir / "config.json");
  auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  mix(train::hash_tokenizer_dir(dir));
  std::vector<fs::path> weights;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") weights.push_back(e.path());
  std::sort(weights.begin(), weights.end());
  std::vector<char> buf(1 << 20);
  for (const fs::path& w : weights) {
    const auto size = static_cast<int64_t>(fs::file_size(w));
    mix(text_hash(w.filename().string()).lo);
    mix(static_cast<uint64_t>(size));
    std::ifstream in(w, std::ios::binary);
    for (int64_t at : {int64_t{0}, std::max<int64_t>(0, size - static_cast<int64_t>(buf.size()))}) {
      in.seekg(at);
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      mix(text_hash(std::string_view(buf.data(), static_cast<std::size_t>(in.gcount()))).lo);
      in.clear();
    }
  }
  return h;
}

}  // namespace

std::string TextHash::hex() const { return fmt::format("{:016x}{:016x}", hi, lo); }

TextHash text_hash(std::string_view text) {
  u128 h = kFnv128Offset;
  for (unsigned char c : text) {
    h ^= c;
    h *= kFnv128Prime;
  }
  return {static_cast<uint64_t>(h >> 64), static_cast<uint64_t>(h)};
}

std::string local_model_id(const fs::path& model_dir, const std::string& dtype) {
  std::string name = model_dir.filename().string();
  if (name.empty()) name = model_dir.parent_path().filename().string();
  const char* dt = model::parse_dtype(dtype) == at::kFloat ? "f32" : dtype.c_str();
  return fmt::format("local {} {} mean {:016x}", name, dt, model_fingerprint(model_dir));
}

Embedder make_embedder(const llm::BackendOptions& o, std::size_t batch) {
  Embedder e;
  e.backend = o.kind;
  e.model = o.model;
  if (o.kind == "openai") {
    if (o.model.empty())
      fail("embeddings over the openai backend need --model (e.g. text-embedding-ada-002)");
    std::shared_ptr<llm::Backend> backend = llm::make_backend(o);
    e.model_id = fmt::format("openai {} {}", o.base_url, o.model);
    e.embed = [backend](const std::vector<std::string>& texts) { return backend->embed(texts); };
    e.batch = batch > 0 ? batch : 4096;
    return e;
  }
  if (o.kind != "local") fail("unknown backend '{}' (local or openai)", o.kind);
  if (o.model.empty()) fail("the local backend needs --model DIR (a Hugging Face model folder)");
  // Loaded on the first call: a run whose texts are all cached never loads the model.
  struct Loaded {
    std::once_flag once;
    std::unique_ptr<model::Model> model;
    std::unique_ptr<model::Tokenizer> tok;
  };
  auto loaded = std::make_shared<Loaded>();
  e.model_id = local_model_id(o.model, o.dtype);
  e.embed = [loaded, o](const std::vector<std::string>& texts) {
    std::call_once(loaded->once, [&] {
      loaded->model = std::make_unique<model::Model>(
          model::Model::load(o.model, model::parse_dtype(o.dtype), model::parse_device(o.device)));
      loaded->tok = model::Tokenizer::load(o.model);
    });
    const int max_len = static_cast<int>(
        std::min<int64_t>(o.max_len, loaded->model->config().max_position_embeddings));
    return llm::mean_pooled_embeddings(*loaded->model, *loaded->tok, texts, max_len);
  };
  e.batch = batch > 0 ? batch : 64;
  return e;
}

// ---- cache -------------------------------------------------------------------------------------

EmbeddingCache::EmbeddingCache(const fs::path& dir, const std::string& model_id)
    : file_(dir / cache_file_name(model_id)), model_id_(model_id) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("{}: cannot create the embedding cache folder ({})", dir.string(), ec.message());
  // The file is created by the first append: a run that only reads leaves no empty file behind.
  fd_ = ::open(file_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  if (fd_ < 0 && errno == ENOENT) return;
  if (fd_ < 0) fail("{}: cannot open ({})", file_.string(), std::strerror(errno));
  try {
    open_existing();
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

EmbeddingCache::~EmbeddingCache() {
  if (fd_ >= 0) ::close(fd_);
}

void EmbeddingCache::open_existing() {
  FileLock lock(fd_, LOCK_SH);
  load_index();
}

void EmbeddingCache::load_index() {
  const int64_t size = file_size(fd_, file_);
  if (size == 0) return;
  const std::string bad = fmt::format(
      "{}: not an embedding cache file of this version (delete it to start over)", file_.string());
  if (size < 16) fail("{}", bad);
  char magic[8];
  pread_all(fd_, magic, 8, 0, file_);
  if (std::memcmp(magic, kMagic, 8) != 0) fail("{}", bad);
  uint32_t n = 0;
  pread_all(fd_, &n, 4, 8, file_);
  if (12 + int64_t{n} + 4 > size) fail("{}", bad);
  std::string id(n, '\0');
  pread_all(fd_, id.data(), n, 12, file_);
  if (id != model_id_)
    fail("{}: holds embeddings of '{}', not '{}' (delete it to start over)", file_.string(), id,
         model_id_);
  uint32_t d = 0;
  pread_all(fd_, &d, 4, 12 + n, file_);
  if (d == 0) fail("{}", bad);
  dim_ = d;
  header_bytes_ = 16 + n;
  const int64_t records = (size - header_bytes_) / record_bytes();  // a torn tail is ignored
  index_.reserve(static_cast<std::size_t>(records));
  for (int64_t r = 0; r < records; ++r) {
    const int64_t at = header_bytes_ + r * record_bytes();
    char head[20];
    pread_all(fd_, head, sizeof head, at, file_);
    uint32_t mark = 0;
    TextHash h;
    std::memcpy(&mark, head, 4);
    std::memcpy(&h, head + 4, 16);
    if (mark != kRecordMark)
      fail("{}: record {} is corrupt (delete the file to start over)", file_.string(), r);
    index_.emplace(h, at + 20);
  }
}

void EmbeddingCache::append(const std::vector<TextHash>& hashes,
                            const std::vector<std::vector<float>>& vectors) {
  if (hashes.size() != vectors.size())
    fail("embedding cache: {} hashes for {} vectors", hashes.size(), vectors.size());
  if (hashes.empty()) return;
  const auto d = static_cast<int64_t>(vectors[0].size());
  if (d == 0) fail("embeddings: the backend returned an empty vector");
  if (dim_ != 0 && d != dim_)
    fail("embeddings: the backend returned {}-dimensional vectors but {} holds {}-dimensional ones",
         d, file_.string(), dim_);
  std::string buf;
  buf.reserve(hashes.size() * static_cast<std::size_t>(20 + 4 * d));
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    const auto& v = vectors[i];
    if (static_cast<int64_t>(v.size()) != d)
      fail("embeddings: vector {} of a batch has {} values, the others {}", i, v.size(), d);
    for (float x : v)
      if (!std::isfinite(x)) fail("embeddings: vector {} of a batch has a non-finite value", i);
    buf.append(reinterpret_cast<const char*>(&kRecordMark), 4);
    buf.append(reinterpret_cast<const char*>(&hashes[i]), 16);
    buf.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  }
  if (fd_ < 0) {
    fd_ = ::open(file_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("{}: cannot create ({})", file_.string(), std::strerror(errno));
  }
  FileLock lock(fd_, LOCK_EX);
  int64_t size = file_size(fd_, file_);
  if (size == 0) {
    const std::string h = header_bytes(model_id_, d);
    write_all(fd_, h.data(), h.size(), file_);
    header_bytes_ = static_cast<int64_t>(h.size());
    dim_ = d;
    size = header_bytes_;
  } else if (dim_ == 0) {
    // Another process created the file after we opened it: read its header and index.
    load_index();
    if (d != dim_)
      fail(
          "embeddings: the backend returned {}-dimensional vectors but {} holds {}-dimensional "
          "ones",
          d, file_.string(), dim_);
    size = file_size(fd_, file_);
  }
  const int64_t torn = (size - header_bytes_) % record_bytes();
  if (torn != 0) {
    log::warn("{}: dropping a torn last record ({} bytes) left by a killed run", file_.string(),
              torn);
    if (::ftruncate(fd_, size - torn) != 0)
      fail("{}: cannot truncate ({})", file_.string(), std::strerror(errno));
    size -= torn;
  }
  write_all(fd_, buf.data(), buf.size(), file_);  // O_APPEND: lands at the end
  for (std::size_t i = 0; i < hashes.size(); ++i)
    index_.emplace(hashes[i], size + static_cast<int64_t>(i) * record_bytes() + 20);
}

void EmbeddingCache::read(const TextHash& h, float* dst) const {
  auto it = index_.find(h);
  if (it == index_.end()) fail("{}: no vector for text {}", file_.string(), h.hex());
  pread_all(fd_, dst, static_cast<std::size_t>(dim_) * sizeof(float), it->second, file_);
}

// ---- embedding a list of texts -----------------------------------------------------------------

std::vector<TextHash> ensure_embedded(const std::vector<std::string>& texts, Embedder& embedder,
                                      EmbeddingCache& cache, EmbedStats* stats, bool progress,
                                      const std::string& label) {
  std::vector<TextHash> hashes(texts.size());
  std::vector<std::size_t> missing;  // first occurrence of each distinct text not in the cache
  std::unordered_set<TextHash, TextHashHasher> seen;
  EmbedStats s;
  s.texts = static_cast<int64_t>(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    hashes[i] = text_hash(texts[i]);
    if (!seen.insert(hashes[i]).second) continue;
    ++s.unique;
    if (cache.contains(hashes[i]))
      ++s.cached;
    else
      missing.push_back(i);
  }
  if (!missing.empty()) {
    log::info("{}: {} of {} distinct texts are not in {}; embedding them with {}", label,
              missing.size(), s.unique, cache.file().string(), embedder.model_id);
    std::unique_ptr<Progress> bar;
    if (progress) bar = std::make_unique<Progress>(label, missing.size());
    const std::size_t step = std::max<std::size_t>(1, embedder.batch);
    for (std::size_t start = 0; start < missing.size(); start += step) {
      const std::size_t end = std::min(missing.size(), start + step);
      std::vector<std::string> batch;
      std::vector<TextHash> keys;
      for (std::size_t k = start; k < end; ++k) {
        batch.push_back(texts[missing[k]]);
        keys.push_back(hashes[missing[k]]);
      }
      std::vector<std::vector<float>> vecs = embedder.embed(batch);
      if (vecs.size() != batch.size())
        fail("embeddings: {} returned {} vectors for {} texts", embedder.model_id, vecs.size(),
             batch.size());
      cache.append(keys, vecs);
      s.embedded += static_cast<int64_t>(batch.size());
      if (bar) bar->tick(batch.size());
    }
    if (bar) bar->finish();
  }
  if (stats) *stats = s;
  return hashes;
}

void gather_vectors(const EmbeddingCache& cache, const std::vector<TextHash>& hashes, int64_t start,
                    int64_t n, float* dst) {
  const int64_t d = cache.dim();
  for (int64_t i = 0; i < n; ++i)
    cache.read(hashes[static_cast<std::size_t>(start + i)], dst + i * d);
}

}  // namespace metamath::analysis
