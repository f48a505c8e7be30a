#pragma once
// Hugging Face model configuration (config.json + generation_config.json) for the LLaMA family:
// LlamaForCausalLM (LLaMA-2, LLaMA-3 with "llama3" rope scaling), MistralForCausalLM and
// Qwen2ForCausalLM. Torch-free.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/jsonl.h"

namespace metamath::model {

enum class Arch { Llama, Mistral, Qwen2 };

// "llama" / "mistral" / "qwen2" <-> Arch. parse_arch throws metamath::Error on anything else.
Arch parse_arch(std::string_view name);
std::string arch_name(Arch a);          // "llama", "mistral", "qwen2" (the HF model_type)
std::string arch_architecture(Arch a);  // "LlamaForCausalLM", ...

// rope_scaling. type "" = none; "linear" divides inv_freq by factor; "llama3" is LLaMA-3.1's
// frequency-dependent scaling. Other types ("dynamic", "yarn", ...) are rejected at parse time.
struct RopeScaling {
  std::string type;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;  // GQA when < num_attention_heads
  int64_t head_dim = 128;            // config "head_dim" when present, else hidden/heads
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool attention_bias = false;  // Llama: bias on q,k,v,o. Qwen2: always bias on q,k,v (never o).
  bool mlp_bias = false;
  bool tie_word_embeddings = false;
  std::string hidden_act = "silu";
  // Sliding-window attention: a query at cache index i sees keys j with i - j < sliding_window.
  // Mistral applies it on every layer when set; Qwen2 only when use_sliding_window, on layers
  // >= max_window_layers.
  std::optional<int64_t> sliding_window;
  int64_t max_window_layers = 0;
  std::string torch_dtype = "float32";  // "float32", "bfloat16", "float16"
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config eos may be a single id or a list
  std::optional<int64_t> pad_token_id;
  double initializer_range = 0.02;  // std of the normal init (init_random)

  // True when layer `layer` uses the sliding window (see above).
  bool layer_uses_sliding_window(int64_t layer) const;
  // Checks internal consistency (heads divide, head_dim > 0, ...); throws naming `where`.
  void validate(const std::string& where) const;
  // Parameter count of the model this config describes.
  int64_t num_parameters() const;
};

// Parses a config.json object. `where` (usually the file path) prefixes every error message.
ModelConfig parse_config(const json& j, const std::string& where);
// Reads DIR/config.json (or the given .json file) and, when present beside it,
// generation_config.json (its bos/eos/pad ids take precedence).
ModelConfig load_config(const std::filesystem::path& dir_or_file);
// HF-style config.json for the config (architectures, model_type, all fields above).
json to_json(const ModelConfig& c);
// generation_config.json: bos/eos/pad ids.
json generation_config_json(const ModelConfig& c);

// Built-in presets for init-model: "tiny" (hidden 64, 2 layers, 4 heads, 2 kv heads,
// intermediate 172) and "small" (hidden 768, 12 layers, 12 heads, 4 kv heads, intermediate 1536;
// about 110M parameters with a 32k vocabulary).
// Throws for other names.
ModelConfig preset_config(std::string_view name, Arch arch, int64_t vocab_size);

}  // namespace metamath::model
