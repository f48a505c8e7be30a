// GGUF writer, reader and the Hugging Face -> llama.cpp export (model/gguf.h), written here: Debian
// packages no GGUF library.
#include "model/gguf.h"

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numbers>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "model/tokenizer_internal.h"

namespace metamath::model {

// ---- types -------------------------------------------------------------------------------------

std::string ggml_type_name(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return "f32";
    case GgmlType::F16:
      return "f16";
    case GgmlType::Q8_0:
      return "q8_0";
    case GgmlType::BF16:
      return "bf16";
  }
  return "ggml type " + std::to_string(static_cast<uint32_t>(t));
}

GgmlType parse_ggml_type(std::string_view name) {
  if (name == "f32") return GgmlType::F32;
  if (name == "f16") return GgmlType::F16;
  if (name == "bf16") return GgmlType::BF16;
  if (name == "q8_0") return GgmlType::Q8_0;
  fail("gguf: unknown dtype \"{}\" (expected f32, f16, bf16 or q8_0)", name);
}

namespace {

constexpr uint64_t kQ8Block = 32;
constexpr uint64_t kQ8BlockBytes = 2 + kQ8Block;  // f16 scale + 32 int8

bool known_type(uint32_t t) { return t == 0 || t == 1 || t == 8 || t == 30; }

}  // namespace

uint64_t ggml_nbytes(GgmlType t, uint64_t n) {
  switch (t) {
    case GgmlType::F32:
      return 4 * n;
    case GgmlType::F16:
    case GgmlType::BF16:
      return 2 * n;
    case GgmlType::Q8_0:
      if (n % kQ8Block != 0) fail("gguf: q8_0 needs a multiple of 32 values, got {}", n);
      return n / kQ8Block * kQ8BlockBytes;
  }
  fail("gguf: unknown ggml type {}", static_cast<uint32_t>(t));
}

uint64_t GgufTensorInfo::numel() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

uint16_t f32_to_f16(float x) { return c10::Half(x).x; }
float f16_to_f32(uint16_t h) { return static_cast<float>(c10::Half(h, c10::Half::from_bits())); }
uint16_t f32_to_bf16(float x) { return c10::BFloat16(x).x; }
float bf16_to_f32(uint16_t h) {
  return static_cast<float>(c10::BFloat16(h, c10::BFloat16::from_bits()));
}

std::string quantize_q8_0(std::span<const float> x) {
  if (x.size() % kQ8Block != 0) fail("gguf: q8_0 needs a multiple of 32 values, got {}", x.size());
  std::string out(x.size() / kQ8Block * kQ8BlockBytes, '\0');
  for (std::size_t b = 0; b < x.size() / kQ8Block; ++b) {
    const float* v = x.data() + b * kQ8Block;
    float amax = 0;
    for (uint64_t j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    char* block = out.data() + b * kQ8BlockBytes;
    const uint16_t dh = f32_to_f16(d);
    std::memcpy(block, &dh, 2);
    for (uint64_t j = 0; j < kQ8Block; ++j)
      block[2 + j] = static_cast<char>(static_cast<int8_t>(std::roundf(v[j] * id)));
  }
  return out;
}

std::vector<float> dequantize_q8_0(std::string_view blocks) {
  if (blocks.size() % kQ8BlockBytes != 0)
    fail("gguf: q8_0 data of {} bytes is not whole blocks of 34", blocks.size());
  std::vector<float> out;
  out.reserve(blocks.size() / kQ8BlockBytes * kQ8Block);
  for (std::size_t b = 0; b < blocks.size(); b += kQ8BlockBytes) {
    uint16_t dh;
    std::memcpy(&dh, blocks.data() + b, 2);
    const float d = f16_to_f32(dh);
    for (uint64_t j = 0; j < kQ8Block; ++j)
      out.push_back(d * static_cast<float>(static_cast<int8_t>(blocks[b + 2 + j])));
  }
  return out;
}

// ---- values ------------------------------------------------------------------------------------

GgufValue GgufValue::u32(uint32_t v) { return {GgufValueType::U32, {}, uint64_t{v}, {}}; }
GgufValue GgufValue::i32(int32_t v) { return {GgufValueType::I32, {}, int64_t{v}, {}}; }
GgufValue GgufValue::f32(float v) { return {GgufValueType::F32, {}, double{v}, {}}; }
GgufValue GgufValue::boolean(bool v) { return {GgufValueType::Bool, {}, v, {}}; }
GgufValue GgufValue::string(std::string v) { return {GgufValueType::String, {}, std::move(v), {}}; }
GgufValue GgufValue::strings(std::vector<std::string> v) {
  GgufValue g{GgufValueType::Array, GgufValueType::String, {}, {}};
  g.array.reserve(v.size());
  for (auto& s : v) g.array.emplace_back(std::move(s));
  return g;
}
GgufValue GgufValue::f32s(std::span<const float> v) {
  GgufValue g{GgufValueType::Array, GgufValueType::F32, {}, {}};
  for (float f : v) g.array.emplace_back(double{f});
  return g;
}
GgufValue GgufValue::i32s(std::span<const int32_t> v) {
  GgufValue g{GgufValueType::Array, GgufValueType::I32, {}, {}};
  for (int32_t i : v) g.array.emplace_back(int64_t{i});
  return g;
}

uint64_t GgufValue::as_uint(const std::string& key) const {
  if (const auto* u = std::get_if<uint64_t>(&scalar); u && type != GgufValueType::Array) return *u;
  if (const auto* i = std::get_if<int64_t>(&scalar); i && *i >= 0 && type != GgufValueType::Array)
    return static_cast<uint64_t>(*i);
  fail("gguf: {} is not an unsigned integer", key);
}
int64_t GgufValue::as_int(const std::string& key) const {
  if (const auto* i = std::get_if<int64_t>(&scalar); i && type != GgufValueType::Array) return *i;
  if (const auto* u = std::get_if<uint64_t>(&scalar); u && type != GgufValueType::Array)
    return static_cast<int64_t>(*u);
  fail("gguf: {} is not an integer", key);
}
double GgufValue::as_float(const std::string& key) const {
  if (const auto* f = std::get_if<double>(&scalar); f && type != GgufValueType::Array) return *f;
  fail("gguf: {} is not a float", key);
}
bool GgufValue::as_bool(const std::string& key) const {
  if (const auto* b = std::get_if<bool>(&scalar); b && type == GgufValueType::Bool) return *b;
  fail("gguf: {} is not a bool", key);
}
const std::string& GgufValue::as_string(const std::string& key) const {
  if (const auto* s = std::get_if<std::string>(&scalar); s && type == GgufValueType::String)
    return *s;
  fail("gguf: {} is not a string", key);
}

// ---- writer ------------------------------------------------------------------------------------

namespace {

class ByteSink {
 public:
  template <typename T>
  void pod(T v) {
    out_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void str(std::string_view s) {
    pod<uint64_t>(s.size());
    out_.append(s);
  }
  void scalar(GgufValueType t, const GgufValue::Scalar& s) {
    switch (t) {
      case GgufValueType::U8:
        return pod(static_cast<uint8_t>(std::get<uint64_t>(s)));
      case GgufValueType::I8:
        return pod(static_cast<int8_t>(std::get<int64_t>(s)));
      case GgufValueType::U16:
        return pod(static_cast<uint16_t>(std::get<uint64_t>(s)));
      case GgufValueType::I16:
        return pod(static_cast<int16_t>(std::get<int64_t>(s)));
      case GgufValueType::U32:
        return pod(static_cast<uint32_t>(std::get<uint64_t>(s)));
      case GgufValueType::I32:
        return pod(static_cast<int32_t>(std::get<int64_t>(s)));
      case GgufValueType::F32:
        return pod(static_cast<float>(std::get<double>(s)));
      case GgufValueType::Bool:
        return pod(static_cast<uint8_t>(std::get<bool>(s) ? 1 : 0));
      case GgufValueType::String:
        return str(std::get<std::string>(s));
      case GgufValueType::U64:
        return pod(std::get<uint64_t>(s));
      case GgufValueType::I64:
        return pod(std::get<int64_t>(s));
      case GgufValueType::F64:
        return pod(std::get<double>(s));
      case GgufValueType::Array:
        break;
    }
    fail("gguf: nested arrays are not supported");
  }
  void value(const GgufValue& v) {
    pod(static_cast<uint32_t>(v.type));
    if (v.type != GgufValueType::Array) return scalar(v.type, v.scalar);
    pod(static_cast<uint32_t>(v.elem_type));
    pod<uint64_t>(v.array.size());
    for (const auto& e : v.array) scalar(v.elem_type, e);
  }
  void pad_to(uint64_t alignment, uint64_t base = 0) {
    while ((base + out_.size()) % alignment != 0) out_ += '\0';
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : metadata_)
    if (k == key) {
      v = std::move(value);
      return;
    }
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(std::string name, std::vector<uint64_t> dims, GgmlType type,
                            Producer data) {
  for (const auto& t : tensors_)
    if (t.name == name) fail("gguf: tensor {} added twice", name);
  GgufTensorInfo info{std::move(name), std::move(dims), type, 0};
  info.nbytes();  // validates the block size
  tensors_.push_back(std::move(info));
  producers_.push_back(std::move(data));
}

void GgufWriter::set_alignment(uint64_t alignment) {
  if (alignment == 0 || alignment % 8 != 0)
    fail("gguf: alignment {} is not a multiple of 8", alignment);
  alignment_ = alignment;
  set("general.alignment", GgufValue::u32(static_cast<uint32_t>(alignment)));
}

uint64_t GgufWriter::write(const std::filesystem::path& path) const {
  ByteSink head;
  head.bytes() = "GGUF";
  head.pod<uint32_t>(3);
  head.pod<uint64_t>(tensors_.size());
  head.pod<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    head.str(key);
    head.value(value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    head.str(t.name);
    head.pod<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) head.pod(d);
    head.pod(static_cast<uint32_t>(t.type));
    head.pod(offset);
    offset = align_up(offset + t.nbytes(), alignment_);
  }
  head.pad_to(alignment_);

  AtomicFile file(path);
  file.write(head.bytes());
  uint64_t written = head.bytes().size();
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    const std::string data = producers_[i]();
    if (data.size() != tensors_[i].nbytes())
      fail("gguf: tensor {} produced {} bytes, expected {}", tensors_[i].name, data.size(),
           tensors_[i].nbytes());
    file.write(data);
    const uint64_t padded = align_up(data.size(), alignment_);  // the last one too, as ggml does
    file.write(std::string(padded - data.size(), '\0'));
    written += padded;
  }
  if (!file.stream()) fail("gguf: cannot write {}", path.string());
  file.commit();
  return written;
}

// ---- reader ------------------------------------------------------------------------------------

namespace {

class FileReader {
 public:
  explicit FileReader(const std::filesystem::path& path)
      : in_(path, std::ios::binary), path_(path) {
    if (!in_) fail("gguf: cannot open {}", path.string());
    size_ = std::filesystem::file_size(path);
  }
  template <typename T>
  T pod(const char* what) {
    T v;
    if (!in_.read(reinterpret_cast<char*>(&v), sizeof v)) truncated(what);
    pos_ += sizeof v;
    return v;
  }
  std::string str(const char* what) {
    const auto n = pod<uint64_t>(what);
    if (n > size_ - pos_) truncated(what);
    std::string s(n, '\0');
    if (!in_.read(s.data(), static_cast<std::streamsize>(n))) truncated(what);
    pos_ += n;
    return s;
  }
  GgufValue::Scalar scalar(GgufValueType t, const std::string& key) {
    switch (t) {
      case GgufValueType::U8:
        return uint64_t{pod<uint8_t>("a value")};
      case GgufValueType::I8:
        return int64_t{pod<int8_t>("a value")};
      case GgufValueType::U16:
        return uint64_t{pod<uint16_t>("a value")};
      case GgufValueType::I16:
        return int64_t{pod<int16_t>("a value")};
      case GgufValueType::U32:
        return uint64_t{pod<uint32_t>("a value")};
      case GgufValueType::I32:
        return int64_t{pod<int32_t>("a value")};
      case GgufValueType::F32:
        return double{pod<float>("a value")};
      case GgufValueType::Bool:
        return pod<uint8_t>("a value") != 0;
      case GgufValueType::String:
        return str("a string");
      case GgufValueType::U64:
        return pod<uint64_t>("a value");
      case GgufValueType::I64:
        return pod<int64_t>("a value");
      case GgufValueType::F64:
        return pod<double>("a value");
      case GgufValueType::Array:
        break;
    }
    fail("gguf: {}: key {} has value type {}, which is not a GGUF type", path_.string(), key,
         static_cast<uint32_t>(t));
  }
  GgufValue value(const std::string& key) {
    GgufValue v;
    v.type = static_cast<GgufValueType>(pod<uint32_t>("a value type"));
    if (v.type != GgufValueType::Array) {
      v.scalar = scalar(v.type, key);
      return v;
    }
    v.elem_type = static_cast<GgufValueType>(pod<uint32_t>("an array type"));
    const auto n = pod<uint64_t>("an array length");
    if (v.elem_type == GgufValueType::Array || n > size_ - pos_)
      fail("gguf: {}: key {} has a malformed array", path_.string(), key);
    v.array.reserve(n);
    for (uint64_t i = 0; i < n; ++i) v.array.push_back(scalar(v.elem_type, key));
    return v;
  }
  uint64_t pos() const { return pos_; }
  uint64_t size() const { return size_; }
  [[noreturn]] void truncated(const char* what) const {
    fail("gguf: {} ends inside {} (byte {}, file size {})", path_.string(), what, pos_, size_);
  }

 private:
  std::ifstream in_;
  std::filesystem::path path_;
  uint64_t pos_ = 0, size_ = 0;
};

}  // namespace

GgufFile GgufFile::read(const std::filesystem::path& path) {
  GgufFile g;
  g.path = path;
  FileReader r(path);
  if (r.pod<uint32_t>("the magic") != 0x46554747u)  // "GGUF"
    fail("gguf: {} does not start with \"GGUF\"", path.string());
  g.version = r.pod<uint32_t>("the version");
  if (g.version != 3)
    fail("gguf: {} is GGUF version {}; only version 3 is read", path.string(), g.version);
  const auto n_tensors = r.pod<uint64_t>("the tensor count");
  const auto n_kv = r.pod<uint64_t>("the metadata count");
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.str("a metadata key");
    GgufValue v = r.value(key);
    if (key == "general.alignment") g.alignment = v.as_uint(key);
    g.metadata.emplace_back(std::move(key), std::move(v));
  }
  if (g.alignment == 0 || g.alignment % 8 != 0)
    fail("gguf: {}: general.alignment {} is not a multiple of 8", path.string(), g.alignment);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = r.str("a tensor name");
    const auto n_dims = r.pod<uint32_t>("a tensor rank");
    if (n_dims == 0 || n_dims > 4)
      fail("gguf: {}: tensor {} has rank {}", path.string(), t.name, n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) t.dims.push_back(r.pod<uint64_t>("tensor dims"));
    const auto type = r.pod<uint32_t>("a tensor type");
    if (!known_type(type))
      fail("gguf: {}: tensor {} has ggml type {} (read: f32, f16, bf16, q8_0)", path.string(),
           t.name, type);
    t.type = static_cast<GgmlType>(type);
    t.offset = r.pod<uint64_t>("a tensor offset");
    if (t.offset % g.alignment != 0)
      fail("gguf: {}: tensor {} at offset {} is not aligned to {}", path.string(), t.name, t.offset,
           g.alignment);
    g.tensors.push_back(std::move(t));
  }
  g.data_offset = align_up(r.pos(), g.alignment);
  for (const auto& t : g.tensors)
    if (g.data_offset + t.offset + t.nbytes() > r.size())
      fail("gguf: {}: tensor {} ends at byte {}, past the end of the file ({} bytes)",
           path.string(), t.name, g.data_offset + t.offset + t.nbytes(), r.size());
  return g;
}

bool GgufFile::has(const std::string& key) const {
  return std::any_of(metadata.begin(), metadata.end(),
                     [&](const auto& kv) { return kv.first == key; });
}

const GgufValue& GgufFile::get(const std::string& key) const {
  for (const auto& [k, v] : metadata)
    if (k == key) return v;
  fail("gguf: {} has no metadata key {}", path.string(), key);
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return t;
  fail("gguf: {} has no tensor {}", path.string(), name);
}

std::vector<float> GgufFile::tensor_f32(const std::string& name) const {
  const GgufTensorInfo& t = tensor(name);
  std::ifstream in(path, std::ios::binary);
  std::string bytes(t.nbytes(), '\0');
  in.seekg(static_cast<std::streamoff>(data_offset + t.offset));
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
    fail("gguf: cannot read tensor {} from {}", name, path.string());
  const uint64_t n = t.numel();
  std::vector<float> out(n);
  switch (t.type) {
    case GgmlType::F32:
      std::memcpy(out.data(), bytes.data(), 4 * n);
      break;
    case GgmlType::F16:
    case GgmlType::BF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes.data() + 2 * i, 2);
        out[i] = t.type == GgmlType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      break;
    case GgmlType::Q8_0:
      out = dequantize_q8_0(bytes);
      break;
  }
  return out;
}

// ---- export: tokenizer -------------------------------------------------------------------------

namespace {

namespace fs = std::filesystem;

// llama.cpp's token types (llama_token_type): the same numbers as SentencePiece's piece types.
constexpr int32_t kNormal = 1, kUnused = 5, kControl = 3, kUserDefined = 4;

struct Vocab {
  std::string model, pre;  // tokenizer.ggml.model / .pre
  std::vector<std::string> tokens, merges;
  std::vector<float> scores;  // SentencePiece only
  std::vector<int32_t> types;
  bool add_space_prefix = false;  // SentencePiece's dummy prefix
};

// llama.cpp names the byte-level pre-tokenizers it implements; ours are recognised by the split
// regex of tokenizer.json.
std::string bpe_pre_type(const json& tok, const std::string& where) {
  const json& pre = tok.contains("pre_tokenizer") ? tok["pre_tokenizer"] : json();
  std::string regex;
  bool byte_level_regex = false;
  const json steps = pre.is_object() && pre.value("type", "") == "Sequence"
                         ? pre.value("pretokenizers", json::array())
                         : json::array({pre});
  for (const auto& s : steps) {
    if (!s.is_object()) continue;
    if (s.value("type", "") == "Split" && s.contains("pattern") && s["pattern"].contains("Regex"))
      regex = s["pattern"]["Regex"].get<std::string>();
    if (s.value("type", "") == "ByteLevel" && s.value("use_regex", true)) byte_level_regex = true;
  }
  const std::string common = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|";
  const std::string tail = "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  if (regex == common + "\\p{N}{1,3}" + tail) return "llama-bpe";
  if (regex == common + "\\p{N}" + tail) return "qwen2";
  if (regex.empty() && byte_level_regex) return "gpt-2";
  fail(
      "gguf: {}: pre-tokenizer not recognised (split regex \"{}\"); llama.cpp's types written "
      "here: LLaMA-3's (llama-bpe), Qwen2's (qwen2), plain ByteLevel (gpt-2)",
      where, regex);
}

bool is_byte_level(const json& tok) {
  const std::string s =
      tok.value("pre_tokenizer", json()).dump() + tok.value("decoder", json()).dump();
  return s.find("\"ByteLevel\"") != std::string::npos;
}

Vocab bpe_vocab(const fs::path& file, const json& tok, const Tokenizer& t) {
  Vocab v;
  v.model = "gpt2";
  v.pre = bpe_pre_type(tok, file.string());
  for (std::size_t id = 0; id < t.vocab_size(); ++id) {
    const auto i = static_cast<int32_t>(id);
    std::string token;
    try {
      token = t.id_to_token(i);
    } catch (const Error&) {  // an id neither the vocabulary nor the added tokens use
      v.tokens.push_back("[PAD" + std::to_string(id) + "]");
      v.types.push_back(kUnused);
      continue;
    }
    v.tokens.push_back(std::move(token));
    v.types.push_back(kNormal);
  }
  for (const auto& a : t.added_tokens())
    v.types[static_cast<std::size_t>(a.id)] = a.special ? kControl : kUserDefined;
  for (const auto& m : tok.at("model").at("merges")) {
    if (m.is_string()) {
      v.merges.push_back(m.get<std::string>());
    } else {
      v.merges.push_back(m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
    }
  }
  return v;
}

Vocab sentencepiece_vocab(const fs::path& file) {
  const SentencePieceModel m = read_sentencepiece_model(file);
  Vocab v;
  v.model = "llama";
  v.add_space_prefix = m.add_dummy_prefix;
  for (const auto& p : m.pieces) {
    v.tokens.push_back(p.piece);
    v.scores.push_back(p.score);
    v.types.push_back(p.type);
  }
  return v;
}

// The tokenizer of `dir` as llama.cpp stores it, padded to the checkpoint's vocab_size.
Vocab load_vocab(const fs::path& dir, const Tokenizer& t, int64_t vocab_size) {
  Vocab v;
  const fs::path json_file = dir / "tokenizer.json";
  std::optional<json> tok;
  if (fs::exists(json_file)) tok = read_json_file(json_file);
  if (tok && is_byte_level(*tok)) {
    v = bpe_vocab(json_file, *tok, t);
  } else if (fs::exists(dir / "tokenizer.model")) {
    v = sentencepiece_vocab(dir / "tokenizer.model");
  } else {
    fail(
        "gguf: {} has neither a byte-level BPE tokenizer.json nor a SentencePiece "
        "tokenizer.model",
        dir.string());
  }
  const auto n = static_cast<int64_t>(v.tokens.size());
  if (n > vocab_size)
    fail("gguf: {}: the tokenizer has {} tokens but config.json's vocab_size is {}", dir.string(),
         n, vocab_size);
  for (int64_t id = n; id < vocab_size; ++id) {
    v.tokens.push_back("[PAD" + std::to_string(id) + "]");
    v.types.push_back(kUnused);
    if (!v.scores.empty()) v.scores.push_back(-1000.0f);
  }
  return v;
}

void write_vocab(GgufWriter& w, const Vocab& v, const Tokenizer& t, const ModelConfig& c) {
  w.set("tokenizer.ggml.model", GgufValue::string(v.model));
  if (!v.pre.empty()) w.set("tokenizer.ggml.pre", GgufValue::string(v.pre));
  w.set("tokenizer.ggml.tokens", GgufValue::strings(v.tokens));
  if (!v.scores.empty()) w.set("tokenizer.ggml.scores", GgufValue::f32s(v.scores));
  w.set("tokenizer.ggml.token_type", GgufValue::i32s(v.types));
  if (!v.merges.empty()) w.set("tokenizer.ggml.merges", GgufValue::strings(v.merges));
  const auto bos = t.bos_id() ? std::optional<int64_t>(*t.bos_id()) : c.bos_token_id;
  const auto eos = t.eos_id()                ? std::optional<int64_t>(*t.eos_id())
                   : c.eos_token_ids.empty() ? std::nullopt
                                             : std::optional<int64_t>(c.eos_token_ids[0]);
  if (bos) w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(*bos)));
  if (eos) w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(*eos)));
  if (v.model == "llama") {
    for (std::size_t id = 0; id < v.types.size(); ++id)
      if (v.types[id] == 2) {
        w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(static_cast<uint32_t>(id)));
        break;
      }
    w.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(v.add_space_prefix));
  }
  if (c.pad_token_id)
    w.set("tokenizer.ggml.padding_token_id",
          GgufValue::u32(static_cast<uint32_t>(*c.pad_token_id)));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(t.add_bos_token() && bos.has_value()));
  w.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(false));
  if (!t.chat_template().empty())
    w.set("tokenizer.chat_template", GgufValue::string(t.chat_template()));
}

// ---- export: hyperparameters -------------------------------------------------------------------

std::string gguf_arch(const ModelConfig& c) { return c.arch == Arch::Qwen2 ? "qwen2" : "llama"; }

uint32_t file_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return 1;
    case GgmlType::Q8_0:
      return 7;
    case GgmlType::BF16:
      return 32;
  }
  return 0;
}

void write_hparams(GgufWriter& w, const ModelConfig& c, const std::string& name, GgmlType dtype) {
  const std::string a = gguf_arch(c);
  auto u32 = [](int64_t v) { return GgufValue::u32(static_cast<uint32_t>(v)); };
  w.set("general.architecture", GgufValue::string(a));
  w.set("general.name", GgufValue::string(name));
  w.set("general.file_type", GgufValue::u32(file_type(dtype)));
  if (dtype == GgmlType::Q8_0) w.set("general.quantization_version", GgufValue::u32(2));
  w.set(a + ".vocab_size", u32(c.vocab_size));
  w.set(a + ".context_length", u32(c.max_position_embeddings));
  w.set(a + ".embedding_length", u32(c.hidden_size));
  w.set(a + ".block_count", u32(c.num_hidden_layers));
  w.set(a + ".feed_forward_length", u32(c.intermediate_size));
  w.set(a + ".attention.head_count", u32(c.num_attention_heads));
  w.set(a + ".attention.head_count_kv", u32(c.num_key_value_heads));
  w.set(a + ".attention.key_length", u32(c.head_dim));
  w.set(a + ".attention.value_length", u32(c.head_dim));
  w.set(a + ".attention.layer_norm_rms_epsilon",
        GgufValue::f32(static_cast<float>(c.rms_norm_eps)));
  w.set(a + ".rope.dimension_count", u32(c.head_dim));
  w.set(a + ".rope.freq_base", GgufValue::f32(static_cast<float>(c.rope_theta)));
  if (c.rope_scaling.type == "linear") {
    w.set(a + ".rope.scaling.type", GgufValue::string("linear"));
    w.set(a + ".rope.scaling.factor", GgufValue::f32(static_cast<float>(c.rope_scaling.factor)));
  }
}

// LLaMA-3's frequency-dependent scaling as llama.cpp takes it: a divisor per rotary frequency
// (Hugging Face's inv_freq_llama = inv_freq / divisor).
std::vector<float> llama3_rope_divisors(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const double low_wavelen =
      static_cast<double>(s.original_max_position_embeddings) / s.low_freq_factor;
  const double high_wavelen =
      static_cast<double>(s.original_max_position_embeddings) / s.high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    const double inv_freq = 1.0 / std::pow(c.rope_theta, static_cast<double>(i) / c.head_dim);
    const double wavelen = 2 * std::numbers::pi / inv_freq;
    double divisor = 1;
    if (wavelen > low_wavelen) {
      divisor = s.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) /
                            (s.high_freq_factor - s.low_freq_factor);
      divisor = 1 / ((1 - smooth) / s.factor + smooth);
    }
    out.push_back(static_cast<float>(divisor));
  }
  return out;
}

// ---- export: tensors ---------------------------------------------------------------------------

struct TensorPlan {
  std::string hf, gguf;
  int64_t permute_heads = 0;  // > 0: rows permuted for llama.cpp's interleaved RoPE
};

std::vector<TensorPlan> tensor_plan(const ModelConfig& c, const ShardedWeights& w) {
  std::vector<TensorPlan> plan;
  plan.push_back({"model.embed_tokens.weight", "token_embd.weight"});
  const bool interleave = gguf_arch(c) == "llama";
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string hf = "model.layers." + std::to_string(i) + ".";
    const std::string g = "blk." + std::to_string(i) + ".";
    plan.push_back({hf + "input_layernorm.weight", g + "attn_norm.weight"});
    const std::pair<const char*, const char*> attn[] = {{"q_proj", "attn_q"},
                                                        {"k_proj", "attn_k"},
                                                        {"v_proj", "attn_v"},
                                                        {"o_proj", "attn_output"}};
    for (const auto& [from, to] : attn)
      for (const char* kind : {"weight", "bias"}) {
        const std::string name = hf + "self_attn." + from + "." + kind;
        if (std::string_view(kind) == "bias" && !w.contains(name)) continue;
        int64_t heads = 0;
        if (interleave && std::string_view(from) == "q_proj") heads = c.num_attention_heads;
        if (interleave && std::string_view(from) == "k_proj") heads = c.num_key_value_heads;
        plan.push_back({name, g + to + "." + kind, heads});
      }
    plan.push_back({hf + "post_attention_layernorm.weight", g + "ffn_norm.weight"});
    const std::pair<const char*, const char*> mlp[] = {
        {"gate_proj", "ffn_gate"}, {"up_proj", "ffn_up"}, {"down_proj", "ffn_down"}};
    for (const auto& [from, to] : mlp)
      for (const char* kind : {"weight", "bias"}) {
        const std::string name = hf + "mlp." + from + "." + kind;
        if (std::string_view(kind) == "bias" && !w.contains(name)) continue;
        plan.push_back({name, g + to + "." + kind});
      }
  }
  plan.push_back({"model.norm.weight", "output_norm.weight"});
  if (!c.tie_word_embeddings || w.contains("lm_head.weight"))
    plan.push_back({"lm_head.weight", "output.weight"});
  // Everything in the checkpoint must have a place: a tensor left out would change the model.
  std::vector<std::string> known;
  for (const auto& p : plan) known.push_back(p.hf);
  for (const auto& name : w.names())
    if (std::find(known.begin(), known.end(), name) == known.end() &&
        !name.ends_with("rotary_emb.inv_freq"))
      fail("gguf: {}: tensor {} has no llama.cpp counterpart", w.file_of(name), name);
  return plan;
}

std::vector<int64_t> checked_shape(const ShardedWeights& w, const std::string& name) {
  if (!w.contains(name)) fail("gguf: {} has no tensor {}", w.source(), name);
  const auto& shape = w.entry(name).shape;
  if (shape.empty() || shape.size() > 2)
    fail("gguf: {}: tensor {} has rank {} (expected 1 or 2)", w.file_of(name), name, shape.size());
  return shape;
}

std::string encode(const at::Tensor& f32, GgmlType type) {
  const float* p = f32.data_ptr<float>();
  const auto n = static_cast<std::size_t>(f32.numel());
  std::string out;
  switch (type) {
    case GgmlType::F32:
      out.assign(reinterpret_cast<const char*>(p), 4 * n);
      break;
    case GgmlType::F16:
    case GgmlType::BF16:
      out.resize(2 * n);
      for (std::size_t i = 0; i < n; ++i) {
        const uint16_t h = type == GgmlType::F16 ? f32_to_f16(p[i]) : f32_to_bf16(p[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      break;
    case GgmlType::Q8_0:
      out = quantize_q8_0(std::span<const float>(p, n));
      break;
  }
  return out;
}

}  // namespace

std::vector<int64_t> rope_interleave_rows(int64_t n_heads, int64_t head_dim) {
  std::vector<int64_t> rows;
  rows.reserve(static_cast<std::size_t>(n_heads * head_dim));
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < head_dim / 2; ++i)
      for (int64_t j = 0; j < 2; ++j) rows.push_back(h * head_dim + j * (head_dim / 2) + i);
  return rows;
}

GgufExportResult export_gguf(const GgufExportOptions& o) {
  const ModelConfig c = load_config(o.model_dir);
  if (!c.rope_scaling.type.empty() && c.rope_scaling.type != "linear" &&
      c.rope_scaling.type != "llama3")
    fail("gguf: {}: rope_scaling type \"{}\" is not exported", o.model_dir.string(),
         c.rope_scaling.type);
  const GgmlType dtype = parse_ggml_type(o.dtype);
  const auto tokenizer = Tokenizer::load(o.model_dir);
  const Vocab vocab = load_vocab(o.model_dir, *tokenizer, c.vocab_size);
  const ShardedWeights weights = ShardedWeights::open(o.model_dir);

  GgufExportResult r;
  r.architecture = gguf_arch(c);
  r.tokenizer = vocab.model;
  r.pre = vocab.pre;
  r.vocab_size = c.vocab_size;
  r.tokenizer_tokens = static_cast<int64_t>(tokenizer->vocab_size());

  GgufWriter w;
  std::string name =
      o.name.empty() ? fs::absolute(o.model_dir).lexically_normal().filename().string() : o.name;
  if (name.empty())
    name = fs::absolute(o.model_dir).lexically_normal().parent_path().filename().string();
  write_hparams(w, c, name, dtype);
  write_vocab(w, vocab, *tokenizer, c);

  if (c.rope_scaling.type == "llama3") {
    const std::vector<float> divisors = llama3_rope_divisors(c);
    w.add_tensor("rope_freqs.weight", {divisors.size()}, GgmlType::F32, [divisors] {
      return std::string(reinterpret_cast<const char*>(divisors.data()), 4 * divisors.size());
    });
  }
  for (const TensorPlan& p : tensor_plan(c, weights)) {
    const std::vector<int64_t> shape = checked_shape(weights, p.hf);
    GgmlType type = shape.size() == 1 ? GgmlType::F32 : dtype;
    if (type == GgmlType::Q8_0 && shape.back() % 32 != 0) {
      type = GgmlType::F16;
      r.f16_fallbacks.push_back(p.gguf);
    }
    std::vector<uint64_t> dims(shape.rbegin(), shape.rend());
    const int64_t head_dim = c.head_dim;
    w.add_tensor(p.gguf, dims, type, [&weights, p, type, head_dim] {
      at::Tensor t = weights.get(p.hf).to(at::kFloat).contiguous();
      if (p.permute_heads > 0) {
        if (t.size(0) != p.permute_heads * head_dim)
          fail("gguf: {}: tensor {} has {} rows, expected {} heads x {}", weights.file_of(p.hf),
               p.hf, t.size(0), p.permute_heads, head_dim);
        const auto rows = rope_interleave_rows(p.permute_heads, head_dim);
        t = t.index_select(0, at::tensor(rows, at::kLong)).contiguous();
      }
      return encode(t, type);
    });
  }
  r.tensors = w.tensor_count();
  r.bytes = w.write(o.out);
  return r;
}

}  // namespace metamath::model
