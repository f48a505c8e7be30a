#pragma once
// safetensors: our own reader and writer of the format
//   [8-byte little-endian header length N][N bytes of JSON header][raw tensor data]
// where the header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the start of the data) plus an optional "__metadata__" string map.
//
// The reader memory-maps the file (copy-on-write private mapping: writing into a returned tensor
// never touches the file) and hands out CPU tensors that alias the mapping without copying; each
// tensor keeps the mapping alive through its deleter, so tensors may outlive the SafetensorsFile
// object. Every offset, size and dtype is checked against the header before any tensor is made;
// errors name the file and the tensor.
//
// A model's weights, sharded (model.safetensors.index.json with a "weight_map" from tensor name to
// shard file) or in one model.safetensors, are read through ShardedWeights and written by
// save_sharded_weights.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace metamath::model {

struct TensorEntry {
  std::string name;
  std::string dtype;  // "F32", "BF16", "F16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the data section
  int64_t numel() const;
};

struct SafetensorsHeader {
  std::vector<TensorEntry> tensors;  // in header (name) order
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // 8 + header length
};

// Bytes per element of a safetensors dtype name; 0 when the dtype is unknown.
std::size_t safetensors_dtype_size(std::string_view dtype);
// Parses and validates the header of a safetensors file whose first bytes are `data` and whose
// total size is `file_size` (`data` must hold at least the header). Torch-free. Errors name `file`.
SafetensorsHeader parse_safetensors_header(const char* data, uint64_t available, uint64_t file_size,
                                           const std::string& file);

class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  // Maps and validates the file; throws metamath::Error naming the file on any problem.
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  std::vector<std::string> names() const;
  // Throws naming the file and the tensor when absent.
  const TensorEntry& entry(const std::string& name) const;
  // A CPU tensor aliasing the mapped bytes (no copy; a copy only when the data is misaligned for
  // its dtype). Throws for a missing tensor or an unsupported dtype.
  at::Tensor get(const std::string& name) const;
  // Drops the whole pages under a tensor's bytes from this process's memory (they are read from
  // the file again if used): for a loader that has copied the tensor and will not use get()'s
  // alias again. Writes through that alias are lost.
  void drop_pages(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  void* base_ = nullptr;
  std::size_t size_ = 0;
  SafetensorsHeader header_;
  std::map<std::string, std::size_t> index_;
};

// A model's weights: DIR/model.safetensors, or DIR/model.safetensors.index.json and its shards,
// or one .safetensors file given directly.
class ShardedWeights {
 public:
  static ShardedWeights open(const std::filesystem::path& dir_or_file);
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  std::vector<std::string> names() const;  // sorted
  const TensorEntry& entry(const std::string& name) const;
  // Path of the file holding `name` (for error messages).
  std::string file_of(const std::string& name) const;
  // Zero-copy CPU tensor; throws naming the checkpoint and the tensor when absent.
  at::Tensor get(const std::string& name) const;
  void drop_pages(const std::string& name) const;  // SafetensorsFile::drop_pages
  // Description for messages: the file, or the index file for a sharded checkpoint.
  const std::string& source() const { return source_; }

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::size_t> where_;
  std::string source_;
};

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Writes tensors (any device, any layout: they are made contiguous on the CPU) atomically
// (temp file + rename). Deterministic: tensors are laid out by element size (largest first, so
// every tensor is aligned to its element size) then by name; the header is padded to a multiple
// of 8 bytes. `metadata` goes to "__metadata__" (default {"format": "pt"}). Duplicate names,
// unsupported dtypes and an empty name are errors.
void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Writes model weights into `dir`: model.safetensors when everything fits in max_shard_bytes (or
// max_shard_bytes == 0), else model-0000i-of-0000n.safetensors shards (tensors in name order) plus
// model.safetensors.index.json. Returns the files written.
std::vector<std::filesystem::path> save_sharded_weights(const std::filesystem::path& dir,
                                                        const NamedTensors& tensors,
                                                        uint64_t max_shard_bytes = 0);

}  // namespace metamath::model
