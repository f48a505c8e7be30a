#pragma once
// `metamath init-model`: a new HF-format model folder with random weights, sized for a tokenizer.
// The configuration is a preset ("tiny", "small"; model/config.h's preset_config) or a config.json;
// its vocabulary size comes from the tokenizer (a config.json's must be at least the tokenizer's),
// and bos/eos ids from the tokenizer when it has them. Weights follow Model::init_random
// (deterministic for a seed) and are stored in f32 or bf16 with copies of the tokenizer's files.
// Errors name the flag or the file that must change.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace metamath::model {

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
// Writes the folder opts.out (config.json, generation_config.json, model.safetensors, tokenizer
// files) and returns what it wrote.
InitModelResult init_model(const InitModelOptions& opts);

}  // namespace metamath::model
