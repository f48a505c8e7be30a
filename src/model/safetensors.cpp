#include "model/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"

namespace metamath::model {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit is 100 MB

struct DtypeInfo {
  const char* name;
  std::size_t size;
  at::ScalarType type;
};

const DtypeInfo kDtypes[] = {
    {"F64", 8, at::kDouble},    {"F32", 4, at::kFloat}, {"F16", 2, at::kHalf},
    {"BF16", 2, at::kBFloat16}, {"I64", 8, at::kLong},  {"I32", 4, at::kInt},
    {"I16", 2, at::kShort},     {"I8", 1, at::kChar},   {"U8", 1, at::kByte},
    {"BOOL", 1, at::kBool},
};

const DtypeInfo* find_dtype(std::string_view name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo* find_dtype(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.type) return &d;
  return nullptr;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

uint64_t read_le64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void write_le64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

int64_t TensorEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::size_t safetensors_dtype_size(std::string_view dtype) {
  if (auto* d = find_dtype(dtype)) return d->size;
  return 0;
}

SafetensorsHeader parse_safetensors_header(const char* data, uint64_t available, uint64_t file_size,
                                           const std::string& file) {
  if (file_size < 8 || available < 8)
    fail("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", file,
         file_size);
  const uint64_t n = read_le64(data);
  if (n > kMaxHeader) fail("{}: not a safetensors file: header length {} exceeds 100 MB", file, n);
  if (n > file_size - 8)
    fail("{}: truncated safetensors file: header length {} but only {} bytes follow", file, n,
         file_size - 8);
  if (n > available - 8) fail("{}: internal error: header not fully read", file);
  json j;
  try {
    j = json::parse(std::string_view(data + 8, n));
  } catch (const json::exception& e) {
    fail("{}: safetensors header is not valid JSON: {}", file, e.what());
  }
  if (!j.is_object()) fail("{}: safetensors header must be a JSON object", file);
  SafetensorsHeader h;
  h.data_offset = 8 + n;
  const uint64_t data_size = file_size - h.data_offset;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail("{}: __metadata__ must be an object of strings", file);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail("{}: __metadata__ value for '{}' must be a string", file, m.key());
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) fail("{}: tensor '{}': header entry must be an object", file, name);
    TensorEntry e;
    e.name = name;
    auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string())
      fail("{}: tensor '{}': missing string 'dtype'", file, name);
    e.dtype = dt->get<std::string>();
    auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail("{}: tensor '{}': missing 'shape' list", file, name);
    for (const auto& d : *sh) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        fail("{}: tensor '{}': shape must hold non-negative integers", file, name);
      e.shape.push_back(d.get<int64_t>());
    }
    auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail("{}: tensor '{}': 'data_offsets' must be two non-negative integers", file, name);
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.begin > e.end)
      fail("{}: tensor '{}': data_offsets [{}, {}] are reversed", file, name, e.begin, e.end);
    if (e.end > data_size)
      fail(
          "{}: tensor '{}': data_offsets end {} is past the end of the data ({} bytes): file "
          "truncated?",
          file, name, e.end, data_size);
    const std::size_t es = safetensors_dtype_size(e.dtype);
    if (es == 0)
      fail(
          "{}: tensor '{}': unsupported dtype '{}' (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 "
          "BOOL)",
          file, name, e.dtype);
    const uint64_t want = static_cast<uint64_t>(e.numel()) * es;
    if (want != e.end - e.begin)
      fail("{}: tensor '{}': dtype {} shape {} needs {} bytes but data_offsets [{}, {}] span {}",
           file, name, e.dtype, shape_str(e.shape), want, e.begin, e.end, e.end - e.begin);
    h.tensors.push_back(std::move(e));
  }
  // No two tensors may share bytes.
  std::vector<const TensorEntry*> by_off;
  for (const auto& e : h.tensors)
    if (e.end > e.begin) by_off.push_back(&e);
  std::sort(by_off.begin(), by_off.end(),
            [](const TensorEntry* a, const TensorEntry* b) { return a->begin < b->begin; });
  for (std::size_t i = 1; i < by_off.size(); ++i)
    if (by_off[i]->begin < by_off[i - 1]->end)
      fail("{}: tensors '{}' and '{}' overlap in the data section", file, by_off[i - 1]->name,
           by_off[i]->name);
  return h;
}

// ---------------------------------------------------------------------------------------------
// SafetensorsFile

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const fs::path& path) {
  const std::string file = path.string();
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", file, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", file, std::strerror(err));
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", file, size);
  }
  // Private, writable, copy-on-write: tensors built on it may be written in place without ever
  // touching the file, and pages are shared with the page cache until written.
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (base == MAP_FAILED) fail("{}: cannot mmap: {}", file, std::strerror(err));
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->base_ = base;
  f->size_ = size;
  f->header_ = parse_safetensors_header(static_cast<const char*>(base), size, size, file);
  for (std::size_t i = 0; i < f->header_.tensors.size(); ++i)
    f->index_[f->header_.tensors[i].name] = i;
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (base_) ::munmap(base_, size_);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : index_) out.push_back(k);
  return out;
}

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("{}: no tensor named '{}'", path_.string(), name);
  return header_.tensors[it->second];
}

at::Tensor SafetensorsFile::get(const std::string& name) const {
  const TensorEntry& e = entry(name);
  const DtypeInfo* d = find_dtype(e.dtype);
  if (!d) fail("{}: tensor '{}': unsupported dtype '{}'", path_.string(), name, e.dtype);
  auto opts = at::TensorOptions().dtype(d->type).device(at::kCPU);
  if (e.numel() == 0) return at::empty(e.shape, opts);
  char* ptr = static_cast<char*>(base_) + header_.data_offset + e.begin;
  if (reinterpret_cast<std::uintptr_t>(ptr) % d->size != 0) {
    // Misaligned for its dtype (a writer that did not align): copy once.
    at::Tensor bytes = at::from_blob(ptr, {static_cast<int64_t>(e.end - e.begin)}, at::kByte);
    return bytes.clone().view(d->type).view(e.shape);
  }
  auto keep = shared_from_this();
  return at::from_blob(
      ptr, e.shape, [keep](void*) {}, opts);
}

void SafetensorsFile::drop_pages(const std::string& name) const {
  const TensorEntry& e = entry(name);
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(base_) + header_.data_offset + e.begin;
  const std::uintptr_t first = (begin + page - 1) / page * page,
                       last = (begin + (e.end - e.begin)) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

// ---------------------------------------------------------------------------------------------
// ShardedWeights

ShardedWeights ShardedWeights::open(const fs::path& dir_or_file) {
  ShardedWeights c;
  fs::path p = dir_or_file;
  if (fs::is_directory(p)) {
    if (fs::exists(p / "model.safetensors")) {
      p = p / "model.safetensors";
    } else if (fs::exists(p / "model.safetensors.index.json")) {
      p = p / "model.safetensors.index.json";
    } else if (fs::exists(p / "pytorch_model.bin") ||
               fs::exists(p / "pytorch_model.bin.index.json")) {
      fail(
          "{}: holds PyTorch .bin weights; only safetensors checkpoints are supported (convert "
          "with safetensors' convert script or save_pretrained(safe_serialization=True))",
          dir_or_file.string());
    } else {
      fail("{}: no model.safetensors or model.safetensors.index.json in this folder",
           dir_or_file.string());
    }
  }
  if (!fs::exists(p)) fail("{}: no such file", p.string());
  if (p.extension() == ".json") {
    c.source_ = p.string();
    json idx;
    try {
      idx = json::parse(read_file(p));
    } catch (const json::exception& e) {
      fail("{}: invalid JSON: {}", p.string(), e.what());
    }
    auto wm = idx.find("weight_map");
    if (!idx.is_object() || wm == idx.end() || !wm->is_object())
      fail("{}: missing 'weight_map' object (tensor name -> shard file)", p.string());
    std::map<std::string, std::size_t> file_index;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string())
        fail("{}: weight_map['{}'] must be a file name", p.string(), it.key());
      const std::string shard = it.value().get<std::string>();
      auto fi = file_index.find(shard);
      if (fi == file_index.end()) {
        fs::path sp = p.parent_path() / shard;
        if (!fs::exists(sp))
          fail("{}: shard '{}' (holding '{}') does not exist", p.string(), sp.string(), it.key());
        c.files_.push_back(SafetensorsFile::open(sp));
        fi = file_index.emplace(shard, c.files_.size() - 1).first;
      }
      if (!c.files_[fi->second]->contains(it.key()))
        fail("{}: weight_map puts '{}' in {}, but that file has no such tensor", p.string(),
             it.key(), c.files_[fi->second]->path().string());
      c.where_[it.key()] = fi->second;
    }
  } else {
    c.source_ = p.string();
    c.files_.push_back(SafetensorsFile::open(p));
    for (const auto& e : c.files_[0]->header().tensors) c.where_[e.name] = 0;
  }
  return c;
}

std::vector<std::string> ShardedWeights::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : where_) out.push_back(k);
  return out;
}

const TensorEntry& ShardedWeights::entry(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail("{}: no tensor named '{}'", source_, name);
  return files_[it->second]->entry(name);
}

std::string ShardedWeights::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return source_;
  return files_[it->second]->path().string();
}

at::Tensor ShardedWeights::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail("{}: no tensor named '{}'", source_, name);
  return files_[it->second]->get(name);
}

void ShardedWeights::drop_pages(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail("{}: no tensor named '{}'", source_, name);
  files_[it->second]->drop_pages(name);
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

struct Prepared {
  std::string name;
  const DtypeInfo* dtype;
  at::Tensor data;  // contiguous CPU
  uint64_t begin = 0, end = 0;
};

std::vector<Prepared> prepare(const fs::path& path, const NamedTensors& tensors) {
  std::vector<Prepared> out;
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    if (name.empty()) fail("{}: cannot write a tensor with an empty name", path.string());
    if (name == "__metadata__")
      fail("{}: '__metadata__' is reserved, not a tensor name", path.string());
    if (!seen.insert(name).second) fail("{}: tensor '{}' given twice", path.string(), name);
    if (!t.defined()) fail("{}: tensor '{}' is undefined", path.string(), name);
    const DtypeInfo* d = find_dtype(t.scalar_type());
    if (!d)
      fail("{}: tensor '{}' has dtype {} which safetensors cannot store here", path.string(), name,
           std::string(c10::toString(t.scalar_type())));
    out.push_back({name, d, t.detach().to(at::kCPU).contiguous()});
  }
  std::stable_sort(out.begin(), out.end(), [](const Prepared& a, const Prepared& b) {
    if (a.dtype->size != b.dtype->size) return a.dtype->size > b.dtype->size;
    return a.name < b.name;
  });
  uint64_t off = 0;
  for (auto& p : out) {
    p.begin = off;
    off += static_cast<uint64_t>(p.data.numel()) * p.dtype->size;
    p.end = off;
  }
  return out;
}

}  // namespace

void save_safetensors(const fs::path& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<Prepared> prep = prepare(path, tensors);
  json h = json::object();
  if (!metadata.empty()) {
    json m = json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = m;
  }
  for (const auto& p : prep) {
    json shape = json::array();
    for (int64_t d : p.data.sizes()) shape.push_back(d);
    h[p.name] = {{"dtype", p.dtype->name}, {"shape", shape}, {"data_offsets", {p.begin, p.end}}};
  }
  std::string hs = h.dump();
  while ((8 + hs.size()) % 8 != 0) hs.push_back(' ');
  char len[8];
  write_le64(len, hs.size());
  if (!path.parent_path().empty()) fs::create_directories(path.parent_path());
  AtomicFile out(path);
  out.write(std::string_view(len, 8));
  out.write(hs);
  for (const auto& p : prep) {
    const auto* bytes = static_cast<const char*>(p.data.data_ptr());
    out.write(std::string_view(bytes, p.end - p.begin));
  }
  if (!out.stream()) fail("{}: write failed", path.string());
  out.commit();
}

std::vector<fs::path> save_sharded_weights(const fs::path& dir, const NamedTensors& tensors,
                                           uint64_t max_shard_bytes) {
  fs::create_directories(dir);
  uint64_t total = 0;
  for (const auto& [n, t] : tensors) total += static_cast<uint64_t>(t.numel()) * t.element_size();
  if (max_shard_bytes == 0 || total <= max_shard_bytes) {
    save_safetensors(dir / "model.safetensors", tensors);
    return {dir / "model.safetensors"};
  }
  NamedTensors sorted = tensors;
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<NamedTensors> shards(1);
  uint64_t cur = 0;
  for (auto& nt : sorted) {
    uint64_t sz = static_cast<uint64_t>(nt.second.numel()) * nt.second.element_size();
    if (!shards.back().empty() && cur + sz > max_shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(nt);
    cur += sz;
  }
  std::vector<fs::path> written;
  json wm = json::object();
  for (std::size_t i = 0; i < shards.size(); ++i) {
    std::string name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    save_safetensors(dir / name, shards[i]);
    written.push_back(dir / name);
    for (const auto& [n, t] : shards[i]) wm[n] = name;
  }
  json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", wm}};
  write_file_atomic(dir / "model.safetensors.index.json", idx.dump(2) + "\n");
  written.push_back(dir / "model.safetensors.index.json");
  // A stale single-file checkpoint would shadow the index.
  std::error_code ec;
  fs::remove(dir / "model.safetensors", ec);
  return written;
}

}  // namespace metamath::model
