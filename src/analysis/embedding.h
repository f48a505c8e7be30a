#pragma once
// Text embeddings for the analyses (diversity gain): where vectors come from (an Embedder over the
// openai backend's /v1/embeddings or a local model's mean-pooled hidden states) and an on-disk
// cache that keeps every vector ever computed, so a re-run, or a run over a second new set, embeds
// only texts it has not seen.
//
// Cache key. A vector is stored under (model id, 128-bit FNV-1a hash of the exact text). The model
// id names the vector space: "openai BASE_URL MODEL" for a server, "local NAME DTYPE mean
// FINGERPRINT" for a model folder (FINGERPRINT: hash of config.json, the tokenizer files and each
// weight file's size, first and last MiB). Each model id has its own file in the cache folder,
// DIR/<name>-<hash of the id>.emb.
//
// File format (little-endian): "MMEMB001", u32 id length, the id, u32 dim; then records of
// u32 0x454D4252 ("RBME"), the 16-byte text hash, dim float32. Records are only ever appended, one
// write() per batch under an exclusive flock, so a killed run keeps every batch it finished and
// several processes may share the file. A torn last record (a writer killed mid-write) is cut off
// by the next writer and ignored by readers. A file whose header names another model id, or whose
// records are misaligned, is an error naming the file (delete it to start over).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace metamath::llm {
class Backend;
struct BackendOptions;
}  // namespace metamath::llm

namespace metamath::analysis {

struct TextHash {
  uint64_t hi = 0, lo = 0;
  bool operator==(const TextHash& o) const { return hi == o.hi && lo == o.lo; }
  std::string hex() const;
};
struct TextHashHasher {
  std::size_t operator()(const TextHash& h) const { return static_cast<std::size_t>(h.lo ^ h.hi); }
};
// 128-bit FNV-1a of the text's bytes.
TextHash text_hash(std::string_view text);

// Where vectors come from. embed() returns one vector per text, all of one dimension.
struct Embedder {
  std::string model_id;  // the vector space: the cache key, recorded in every output
  std::string backend;   // "openai" or "local" (recorded)
  std::string model;     // the model name or folder (recorded)
  std::function<std::vector<std::vector<float>>(const std::vector<std::string>&)> embed;
  std::size_t batch = 1024;  // texts per embed() call; each call's vectors are cached at once
};

// The openai backend's /v1/embeddings (batched, parallel, with its retries and rate limits), or a
// local model folder's mean-pooled final hidden states (loaded at the first call, without a
// generation engine: a run whose texts are all cached never loads it), as the backend options say
// (opts.kind). batch = 0: a default (openai 4096, local 64).
Embedder make_embedder(const llm::BackendOptions& opts, std::size_t batch = 0);
// "local NAME DTYPE mean FINGERPRINT" for a model folder (see the header comment).
std::string local_model_id(const std::filesystem::path& model_dir, const std::string& dtype);

class EmbeddingCache {
 public:
  // Opens the cache file of model_id under dir (created on first append). Throws naming the file
  // when it holds another model's vectors or is corrupt.
  EmbeddingCache(const std::filesystem::path& dir, const std::string& model_id);
  ~EmbeddingCache();
  EmbeddingCache(const EmbeddingCache&) = delete;
  EmbeddingCache& operator=(const EmbeddingCache&) = delete;

  const std::filesystem::path& file() const { return file_; }
  int64_t dim() const { return dim_; }  // 0 while empty
  int64_t size() const { return static_cast<int64_t>(index_.size()); }
  bool contains(const TextHash& h) const { return index_.count(h) > 0; }
  // Appends the vectors (one write under an exclusive lock). All must have the cache's dimension
  // (the first append sets it) and finite values.
  void append(const std::vector<TextHash>& hashes, const std::vector<std::vector<float>>& vectors);
  // Copies the vector of h into dst (dim() floats); throws when absent.
  void read(const TextHash& h, float* dst) const;

 private:
  void open_existing();  // takes a shared lock, then load_index()
  void load_index();     // reads the header and the record index (the caller holds a lock)
  int64_t record_bytes() const { return 20 + 4 * dim_; }
  std::filesystem::path file_;
  std::string model_id_;
  int fd_ = -1;
  int64_t dim_ = 0, header_bytes_ = 0;
  std::unordered_map<TextHash, int64_t, TextHashHasher> index_;  // -> offset of the vector
};

struct EmbedStats {
  int64_t texts = 0;     // texts asked for
  int64_t unique = 0;    // distinct texts among them
  int64_t cached = 0;    // distinct texts already in the cache
  int64_t embedded = 0;  // distinct texts embedded now
};

// Makes sure every text has a vector in the cache: the distinct missing ones are embedded
// embedder.batch at a time, each batch appended before the next call (a run killed midway keeps
// what it finished). Returns each text's hash. A progress bar labelled `label` when progress.
std::vector<TextHash> ensure_embedded(const std::vector<std::string>& texts, Embedder& embedder,
                                      EmbeddingCache& cache, EmbedStats* stats = nullptr,
                                      bool progress = false, const std::string& label = "embed");

// Copies the vectors of hashes[start .. start + n) into dst, row after row (n x cache.dim()).
void gather_vectors(const EmbeddingCache& cache, const std::vector<TextHash>& hashes, int64_t start,
                    int64_t n, float* dst);

}  // namespace metamath::analysis
