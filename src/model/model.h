#pragma once
// The LLaMA-family decoder (LLaMA-2/3, Mistral, Qwen2) on libtorch, following Hugging Face's
// modeling semantics: token embedding; per layer RMSNorm (in fp32) -> attention with rotate-half
// RoPE (rope_theta, optional linear/llama3 scaling), grouped-query attention and Qwen2's q/k/v
// bias -> residual -> RMSNorm -> SiLU-gated MLP -> residual; final RMSNorm; lm_head (tied to the
// embedding when tie_word_embeddings). Weights are plain tensors (no torch::nn modules), loaded
// from safetensors without copies when the requested dtype and device match the file.
//
// Attention follows HF's eager path: scores = (q k^T) * head_dim^-0.5 in the model dtype, masked,
// softmax in fp32, cast back, times v.
//
// Batching and padding. A forward pass takes input_ids [B, T] with an optional attention_mask
// [B, T] (1 = real token, 0 = padding). The real tokens of each row must be contiguous (left or
// right padding). Positions default to each row's count of earlier real tokens (plus the cached
// length), i.e. they start at 0 at the row's first real token; explicit position_ids [B, T] may be
// given instead. Outputs at padding positions are unspecified.
//
// Packing (training, no cache). segment_ids [B, T] puts several sequences in one row: 0 marks
// padding, k >= 1 the row's k-th sequence, each sequence contiguous. A token attends only to the
// earlier tokens of its own sequence, and positions restart at 0 with each sequence, so a packed
// row computes exactly what its sequences would compute in rows of their own.
//
// KV cache (continuous batching). KVCache holds, per layer, K and V tensors of shape
// [num_slots, num_kv_heads, max_len, head_dim] preallocated at construction, plus a current length
// per slot. A forward pass with a cache maps row b of the batch to slot slots[b] (default: slot b):
// the row's real tokens are appended to that slot (padding is never stored, so a slot is dense),
// and the row attends to everything the slot holds. A slot is reused by clearing it (length 0);
// acquire()/release() keep a free list so a generation engine can let sequences join and leave the
// batch between steps: prefill a new sequence in a free slot, then decode steps run over any subset
// of slots in any order (T = 1 per row), each slot at its own length.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/safetensors.h"

namespace metamath::model {

// "f32"/"float32"/"fp32" -> kFloat, "bf16"/"bfloat16" -> kBFloat16, "f16"/"float16"/"fp16" ->
// kHalf.
at::ScalarType parse_dtype(const std::string& s);
// "cpu", "cuda", "cuda:N". Throws when CUDA is asked for and libtorch has none.
c10::Device parse_device(const std::string& s);

struct LayerWeights {
  at::Tensor input_norm, post_norm;  // [hidden]
  at::Tensor q_w, k_w, v_w, o_w;     // [out, in]
  at::Tensor q_b, k_b, v_b, o_b;     // undefined when absent
  at::Tensor gate_w, up_w, down_w;
  at::Tensor gate_b, up_b, down_b;  // undefined unless mlp_bias
};

class KVCache {
 public:
  KVCache(const ModelConfig& config, int64_t num_slots, int64_t max_len, at::ScalarType dtype,
          c10::Device device);
  int64_t num_slots() const { return num_slots_; }
  int64_t max_len() const { return max_len_; }
  int64_t length(int64_t slot) const;
  // Bytes held by the K and V tensors.
  int64_t bytes() const;

  // All slots back to length 0 and free.
  void reset();
  // Slot back to length 0 (keeps it acquired).
  void clear(int64_t slot);
  // Drops cached tokens past new_len (new_len <= length).
  void truncate(int64_t slot, int64_t new_len);
  // Free-list management for continuous batching: acquire() returns a free slot (cleared) or
  // nullopt when all are in use; release() returns it to the pool.
  std::optional<int64_t> acquire();
  void release(int64_t slot);
  int64_t free_slots() const;

  // Layer tensors [num_slots, kv_heads, max_len, head_dim].
  at::Tensor& k(int64_t layer) { return k_[layer]; }
  at::Tensor& v(int64_t layer) { return v_[layer]; }
  void set_length(int64_t slot, int64_t len);

 private:
  void check_slot(int64_t slot) const;
  int64_t num_slots_, max_len_;
  std::vector<at::Tensor> k_, v_;
  std::vector<int64_t> len_;
  std::vector<bool> used_;
};

struct ForwardInput {
  at::Tensor input_ids;        // [B, T] integer
  at::Tensor attention_mask;   // [B, T] 0/1; undefined = every token real
  at::Tensor position_ids;     // [B, T]; undefined = derived (see above)
  std::vector<int64_t> slots;  // with a cache: slot of each row; empty = 0..B-1
  at::Tensor segment_ids;      // [B, T] packed sequences (see above); undefined = one per row
};

// Optional extra outputs on the decoder's linear projections (LoRA adapters, model/lora.h).
enum class Proj : int { Q = 0, K, V, O, Gate, Up, Down };
class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  // Added to the output of projection `p` of layer `layer` for its input x ([..., in]); an
  // undefined tensor adds nothing.
  virtual at::Tensor delta(int64_t layer, Proj p, const at::Tensor& x) const = 0;
};

enum class LogitsMode {
  All,   // [B, T, V]
  Last,  // [B, 1, V]: the last real token of each row
  None,  // no lm_head (forward_hidden)
};

class Model {
 public:
  // Loads DIR (config.json [+ generation_config.json] + safetensors weights) in `dtype` on
  // `device`. Errors name the file, the tensor and the expected shape.
  static Model load(const std::filesystem::path& dir, at::ScalarType dtype = at::kFloat,
                    c10::Device device = c10::Device(c10::kCPU));
  // Builds from an open checkpoint (weights converted to dtype/device as needed).
  static Model from_checkpoint(const ModelConfig& config, const Checkpoint& ckpt,
                               at::ScalarType dtype, c10::Device device);
  // Random weights like HF's init: normal(0, initializer_range) for linear and embedding weights,
  // zeros for biases, ones for norms. Deterministic for a seed.
  static Model init_random(const ModelConfig& config, uint64_t seed,
                           at::ScalarType dtype = at::kFloat,
                           c10::Device device = c10::Device(c10::kCPU));

  // Writes an HF-format folder: config.json, generation_config.json, model.safetensors (or shards
  // when max_shard_bytes > 0 and exceeded) and, when tokenizer_dir is non-empty, copies of its
  // tokenizer files (tokenizer.model, tokenizer.json, tokenizer_config.json,
  // special_tokens_map.json, vocab.json, merges.txt, added_tokens.json).
  void save(const std::filesystem::path& dir, const std::filesystem::path& tokenizer_dir = {},
            uint64_t max_shard_bytes = 0) const;

  // Logits (float32) per LogitsMode. With a cache, new tokens are appended to the rows' slots.
  // Autograd records the pass when weights require grad; wrap inference in c10::InferenceMode.
  at::Tensor forward(const ForwardInput& in, KVCache* cache = nullptr,
                     LogitsMode mode = LogitsMode::All) const;
  // Convenience: forward(input_ids, attention_mask, position_ids, cache).
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                     const at::Tensor& position_ids = {}, KVCache* cache = nullptr) const;
  // Final-norm hidden states [B, T, hidden] in the model dtype (e.g. for embeddings).
  at::Tensor forward_hidden(const ForwardInput& in, KVCache* cache = nullptr) const;

  // A KV cache for this model (dtype/device of the model).
  KVCache make_cache(int64_t num_slots, int64_t max_len) const;

  // HF names -> tensors (lm_head.weight omitted when tied).
  NamedTensors named_parameters() const;

  const ModelConfig& config() const { return config_; }
  at::ScalarType dtype() const { return dtype_; }
  c10::Device device() const { return device_; }

  at::Tensor embed_tokens, final_norm, lm_head;  // lm_head aliases embed_tokens when tied
  std::vector<LayerWeights> layers;
  // Not owned; when set, forward adds adapter->delta(...) to every projection's output.
  const LinearAdapter* adapter = nullptr;
  // Activation checkpointing per decoder layer while autograd records (no cache): each layer
  // keeps only its input and is recomputed in the backward pass (model/checkpoint.h). Same
  // results, less memory, about one more forward pass of compute.
  bool checkpoint_layers = false;

 private:
  Model(ModelConfig config, at::ScalarType dtype, c10::Device device);
  at::Tensor run(const ForwardInput& in, KVCache* cache, LogitsMode mode) const;
  ModelConfig config_;
  at::ScalarType dtype_;
  c10::Device device_;
  at::Tensor inv_freq_;  // [head_dim/2] float32 on device
};

// RoPE inverse frequencies (float32, CPU) for a config, with linear/llama3 scaling applied.
at::Tensor rope_inv_freq(const ModelConfig& config);

struct GreedyOptions {
  int64_t max_new_tokens = 64;
  bool stop_at_eos = false;  // stop a sequence at any of config().eos_token_ids (kept in output)
  std::vector<int64_t> stop_ids;  // extra stop ids
};

// Greedy decoding of a batch of prompts (token ids) with a KV cache: prompts are prefilled
// together (left padding), then decoded one token per step; finished sequences leave the batch.
// Returns the generated ids per prompt (without the prompt).
std::vector<std::vector<int64_t>> greedy_generate(const Model& model,
                                                  const std::vector<std::vector<int64_t>>& prompts,
                                                  const GreedyOptions& opts = {});

// Vocabulary size and bos/eos ids of a tokenizer folder (through Tokenizer::load).
struct TokenizerInfo {
  int64_t vocab_size = 0;
  std::optional<int64_t> bos_id, eos_id;
};
TokenizerInfo tokenizer_info(const std::filesystem::path& dir);

struct InitModelOptions {
  std::string config = "tiny";      // "tiny", "small" or a config.json path
  std::filesystem::path tokenizer;  // tokenizer folder (vocab size, bos/eos, files copied)
  std::filesystem::path out;
  uint64_t seed = 0;
  std::string arch;           // "" = llama for presets, the file's own for a config.json
  std::string dtype = "f32";  // stored dtype: f32 or bf16
};
struct InitModelResult {
  ModelConfig config;
  int64_t num_parameters = 0;
  std::vector<std::filesystem::path> files;
};
// `metamath init-model`: random HF-format model folder.
InitModelResult init_model(const InitModelOptions& opts);

}  // namespace metamath::model
