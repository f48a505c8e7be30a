#pragma once
// LoRA adapters (Hu et al. 2021) on the decoder's linear projections, in PEFT's layout:
//   y = W x + b + (alpha / r) * B A dropout(x)
// with A [r, in] initialised like PEFT (kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(in),
// 1/sqrt(in))) and B [out, r] zero, so a fresh adapter leaves the model unchanged. Saved as a PEFT
// folder: adapter_config.json + adapter_model.safetensors with tensors named
// "base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight" (lora_B likewise; mlp.*_proj
// for gate/up/down), which PEFT's PeftModel.from_pretrained loads.
#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/safetensors.h"

namespace metamath::model {

struct LoraConfig {
  int64_t r = 8;
  double alpha = 16.0;
  double dropout = 0.05;
  // PEFT module names: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj.
  std::vector<std::string> target_modules = {"q_proj", "v_proj"};
  double scale() const { return alpha / static_cast<double>(r); }
};

// "q,v" / "q_proj,v_proj" / "all" (every projection) -> PEFT module names. Unknown names throw.
std::vector<std::string> parse_lora_targets(const std::string& spec);
// PEFT module name of a projection ("q_proj", ..., "down_proj").
std::string proj_module_name(Proj p);

class LoraAdapter : public LinearAdapter {
 public:
  // Fresh adapters for `model`'s shapes (float32, on the model's device), deterministic in seed.
  static LoraAdapter init(const Model& model, const LoraConfig& cfg, uint64_t seed);
  // Reads a PEFT folder written by save() (or by PEFT for a LLaMA-family model). Errors name the
  // file and the tensor.
  static LoraAdapter load(const std::filesystem::path& dir, const Model& model);
  // Writes adapter_config.json and adapter_model.safetensors (atomically) into dir.
  void save(const std::filesystem::path& dir, const std::string& base_model = "") const;

  at::Tensor delta(int64_t layer, Proj p, const at::Tensor& x) const override;
  // PEFT-named adapter tensors (A then B per targeted projection, by layer).
  NamedTensors named_parameters() const;
  // Dropout is applied only while training (default off). It draws from the default CPU generator.
  void set_training(bool on) { training_ = on; }
  // Adds scale * B A to the targeted weights of `model` (same shapes as at init/load).
  void merge_into(Model& model) const;
  const LoraConfig& config() const { return cfg_; }

 private:
  struct Pair {
    at::Tensor a, b;  // [r, in], [out, r]; undefined when the projection is not targeted
  };
  LoraConfig cfg_;
  std::vector<std::array<Pair, 7>> w_;
  bool training_ = false;
};

// `metamath merge-lora`: loads the f32 base model and the PEFT adapter, merges, and writes an HF
// folder to `out` with the tokenizer files of `tokenizer` (default: the base's). bf16 stores the
// merged f32 weights rounded once to bf16. Returns the adapter's configuration.
struct MergeLoraOptions {
  std::filesystem::path base, adapter, out, tokenizer;
  bool bf16 = false;
};
LoraConfig merge_lora(const MergeLoraOptions& o);

}  // namespace metamath::model
