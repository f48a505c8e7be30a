#pragma once
// GGUF, llama.cpp's model file (version 3), written and read by our own code (Debian packages no
// GGUF library). The layout, all little-endian:
//
//   "GGUF", u32 version (3), u64 tensor count, u64 metadata count
//   metadata:     key (u64 length + bytes), u32 value type, value; an array is u32 element type,
//                 u64 count, elements; a string is u64 length + bytes
//   tensor infos: name, u32 n_dims, u64 dims (innermost first: a [rows, cols] row-major matrix
//                 is {cols, rows}), u32 ggml type, u64 offset from the start of the data section
//   padding to general.alignment (32 unless the file says otherwise), then the tensor data, each
//   tensor starting at a multiple of the alignment.
//
// Tensor types written: F32, F16, BF16 and Q8_0 (blocks of 32 values: one f16 scale d = max|x| /
// 127, then 32 int8 q = round(x / d); x ~ d * q).
//
// export_gguf turns a Hugging Face LLaMA-family folder (LLaMA-2/3, Mistral, Qwen2: config.json,
// safetensors, tokenizer files) into a GGUF that llama.cpp (and Ollama, LM Studio) runs, with
// llama.cpp's tensor names and metadata keys:
//   * LLaMA and Mistral become architecture "llama", whose RoPE rotates interleaved pairs
//     (x[2i], x[2i+1]) while Hugging Face rotates halves (x[i], x[i + d/2]); the rows of q_proj and
//     k_proj (and their biases) are permuted per head so that both compute the same attention.
//     Qwen2 becomes "qwen2" (rotate-half RoPE in llama.cpp too: no permutation).
//   * LLaMA-3's "llama3" rope scaling becomes the rope_freqs tensor (one divisor per frequency);
//     "linear" becomes rope.scaling.type/factor.
//   * Mistral's sliding_window is not written: llama.cpp's llama graph attends to the whole
//     context, so outputs agree only while a sequence fits in the window.
//   * Tokenizer: a SentencePiece tokenizer.model becomes tokenizer.ggml.model "llama" (pieces,
//     scores, types); a byte-level BPE tokenizer.json becomes "gpt2" with its merges and the
//     pre-tokenizer type llama.cpp knows by name ("llama-bpe" for LLaMA-3's split regex, "qwen2"
//     for Qwen2's, "gpt-2" for plain ByteLevel). Token ids the checkpoint's vocab_size has beyond
//     the tokenizer become unused "[PAD<id>]" tokens.
//   * Norm weights, biases and rope_freqs stay F32 whatever the dtype; with q8_0 a matrix whose
//     rows are not a multiple of 32 long is stored F16 instead (as llama.cpp's converter does).
// Errors name the file, the tensor or the field.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace metamath::model {

enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12
};

// ggml tensor types (the numbers are ggml's).
enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q8_0 = 8, BF16 = 30 };

std::string ggml_type_name(GgmlType t);  // "f32", "f16", "q8_0", "bf16"
// "f32" / "f16" / "bf16" / "q8_0" -> GgmlType; throws for anything else.
GgmlType parse_ggml_type(std::string_view name);
// Bytes of `n` values of type t; throws when n is not a whole number of blocks.
uint64_t ggml_nbytes(GgmlType t, uint64_t n);

// One metadata value: a scalar, or an array of scalars of one type.
struct GgufValue {
  using Scalar = std::variant<uint64_t, int64_t, double, bool, std::string>;
  GgufValueType type = GgufValueType::U32;
  GgufValueType elem_type = GgufValueType::U32;  // arrays only
  Scalar scalar;
  std::vector<Scalar> array;

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string v);
  static GgufValue strings(std::vector<std::string> v);
  static GgufValue f32s(std::span<const float> v);
  static GgufValue i32s(std::span<const int32_t> v);

  // Typed reads; each throws naming `key` when the value is not of a matching kind.
  uint64_t as_uint(const std::string& key) const;
  int64_t as_int(const std::string& key) const;
  double as_float(const std::string& key) const;
  bool as_bool(const std::string& key) const;
  const std::string& as_string(const std::string& key) const;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // innermost first
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t numel() const;
  uint64_t nbytes() const { return ggml_nbytes(type, numel()); }
};

// Collects metadata and tensors, then streams the file out atomically (temp file + rename).
// Tensor data is produced by a callback at write time, so a model never sits in memory twice.
class GgufWriter {
 public:
  using Producer = std::function<std::string()>;  // returns exactly info.nbytes() bytes
  // Keys keep their first insertion position; setting a key again replaces its value.
  void set(const std::string& key, GgufValue value);
  void add_tensor(std::string name, std::vector<uint64_t> dims, GgmlType type, Producer data);
  // Alignment of the data section and of every tensor (general.alignment is written when not 32).
  void set_alignment(uint64_t alignment);
  std::size_t tensor_count() const { return tensors_.size(); }
  // Returns the number of bytes written.
  uint64_t write(const std::filesystem::path& path) const;

 private:
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::vector<Producer> producers_;
  uint64_t alignment_ = 32;
};

// A GGUF file's header, metadata and tensor table, checked against the file size (every tensor
// inside the file, offsets aligned, types known). Errors name the file.
struct GgufFile {
  std::filesystem::path path;
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // absolute offset of the data section
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::vector<GgufTensorInfo> tensors;

  static GgufFile read(const std::filesystem::path& path);
  bool has(const std::string& key) const;
  const GgufValue& get(const std::string& key) const;  // throws naming the file and the key
  const GgufTensorInfo& tensor(const std::string& name) const;
  // The tensor's values as float32 (F16, BF16 and Q8_0 decoded), innermost dimension fastest.
  std::vector<float> tensor_f32(const std::string& name) const;
};

// Q8_0 blocks (34 bytes per 32 values) of x; x.size() must be a multiple of 32.
std::string quantize_q8_0(std::span<const float> x);
std::vector<float> dequantize_q8_0(std::string_view blocks);
// IEEE half and bfloat16 with round-to-nearest-even (as ggml and torch convert).
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t h);

// ---- `metamath export --format gguf` --------------------------------------------------------

struct GgufExportOptions {
  std::filesystem::path model_dir;  // config.json, safetensors, tokenizer files
  std::filesystem::path out;        // the .gguf file
  std::string dtype = "f16";        // f32, f16, bf16, q8_0
  std::string name;                 // general.name; default: the folder's name
};

struct GgufExportResult {
  std::string architecture;  // "llama" or "qwen2"
  std::string tokenizer;     // "llama" (SentencePiece) or "gpt2" (byte-level BPE)
  std::string pre;           // BPE pre-tokenizer type; "" for SentencePiece
  uint64_t tensors = 0, bytes = 0;
  int64_t vocab_size = 0, tokenizer_tokens = 0;  // checkpoint rows vs. tokenizer's own tokens
  std::vector<std::string> f16_fallbacks;        // q8_0 matrices stored as F16 (rows not /32)
};

GgufExportResult export_gguf(const GgufExportOptions& options);

// Row permutation llama.cpp's "llama" architecture needs for q_proj/k_proj: for each of n_heads
// heads of head_dim rows, GGUF row 2i+j holds Hugging Face row j*head_dim/2 + i. Returns, for each
// GGUF row, the source row.
std::vector<int64_t> rope_interleave_rows(int64_t n_heads, int64_t head_dim);

}  // namespace metamath::model
