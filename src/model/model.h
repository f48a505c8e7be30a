#pragma once
// The LLaMA-family decoder (LLaMA-2/3, Mistral, Qwen2) on libtorch, following Hugging Face's
// modeling semantics: token embedding; per layer RMSNorm (in fp32) -> attention with rotate-half
// RoPE (rope_theta, optional linear/llama3 scaling), grouped-query attention and Qwen2's q/k/v
// bias -> residual -> RMSNorm -> SiLU-gated MLP -> residual; final RMSNorm; lm_head (tied to the
// embedding when tie_word_embeddings). Weights are plain tensors (no torch::nn modules). On the
// CPU they are loaded from safetensors into huge-page blocks (model/huge_pages.h: a decode step
// streams them); with METAMATH_HUGE_PAGES=off, without copies when the requested dtype matches
// the file.
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
// KV cache (continuous batching, model/kv_cache.h). A forward pass with a cache maps row b of the
// batch to slot slots[b] (default: slot b): the row's real tokens are appended to that slot and the
// row attends to everything the slot holds.
//
// Weights. Model::for_each_weight is the one list of the weights, by Hugging Face name: loading,
// saving, random init and training (trainable parameters, a bf16 copy over float32 master weights
// through cast_of/recast_from) all go through it. An attached LinearAdapter (model/adapter.h: LoRA)
// adds its delta to every projection; with recompute_layers each decoder layer is recomputed in
// the backward pass instead of keeping its activations (model/recompute.h).
//
// Related headers: model/kv_cache.h (the cache), model/generate.h (the generation engine and
// greedy_generate), model/init.h (`metamath init-model`), model/lora.h (LoRA adapters).
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "model/adapter.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/safetensors.h"

namespace metamath::model {

// "f32"/"float32"/"fp32" -> kFloat, "bf16"/"bfloat16" -> kBFloat16, "f16"/"float16"/"fp16" ->
// kHalf; "q8"/"int8" -> kChar, which Model::load and from_weights read as float32 activations
// with weight-only int8 projections (Model::quantize_q8); "q8-dot" -> kQInt8 (a marker, no
// quantized tensors): the same int8 weights, and the projections may also quantize their
// activations to int8 blocks for integer dot products (llama.cpp q8_0's arithmetic; faster, and
// ~2-3x q8's distance from the f32 logits, see tests/model/model_test.cpp Q8CloseToF32).
at::ScalarType parse_dtype(const std::string& s);
// "cpu", "cuda", "cuda:N". Throws when CUDA is asked for and libtorch has none.
c10::Device parse_device(const std::string& s);

struct LayerWeights {
  at::Tensor input_norm, post_norm;  // [hidden]
  at::Tensor q_w, k_w, v_w, o_w;     // [out, in]
  at::Tensor q_b, k_b, v_b, o_b;     // undefined when absent
  at::Tensor gate_w, up_w, down_w;
  at::Tensor gate_b, up_b, down_b;  // undefined unless mlp_bias
  // After Model::quantize_q8: the per-row scales of the int8 projection weights above (model
  // /linear.h quantize_q8); undefined otherwise.
  at::Tensor q_s, k_s, v_s, o_s, gate_s, up_s, down_s;
};

struct ForwardInput {
  at::Tensor input_ids;        // [B, T] integer
  at::Tensor attention_mask;   // [B, T] 0/1; undefined = every token real
  at::Tensor position_ids;     // [B, T]; undefined = derived (see above)
  std::vector<int64_t> slots;  // with a cache: slot of each row; empty = 0..B-1
  at::Tensor segment_ids;      // [B, T] packed sequences (see above); undefined = one per row
};

// What the layers of one forward pass share (model.cpp).
struct ForwardPlan;

enum class LogitsMode {
  All,   // [B, T, V]
  Last,  // [B, 1, V]: the last real token of each row
  None,  // no lm_head (forward_hidden)
};

class Model {
 public:
  // Loads DIR (config.json [+ generation_config.json] + safetensors weights) in `dtype` on
  // `device` (kChar: what float32 and then quantize_q8() give, each matrix quantized as it is
  // read; kQInt8: the same as quantize_q8(true)). Errors name the file, the tensor and the
  // expected shape.
  static Model load(const std::filesystem::path& dir, at::ScalarType dtype = at::kFloat,
                    c10::Device device = c10::Device(c10::kCPU));
  // Builds from open safetensors weights (converted to dtype/device as needed).
  static Model from_weights(const ModelConfig& config, const ShardedWeights& weights,
                            at::ScalarType dtype, c10::Device device);
  // Random weights like HF's init: normal(0, initializer_range) for linear and embedding weights,
  // zeros for biases, ones for norms. Deterministic for a seed.
  static Model init_random(const ModelConfig& config, uint64_t seed,
                           at::ScalarType dtype = at::kFloat,
                           c10::Device device = c10::Device(c10::kCPU));
  // A model of `source`'s configuration on its device in `dtype`, whose weights are source's cast
  // to dtype by casts autograd records (gradients flow back to source's weights), with source's
  // adapter and recompute setting: e.g. a bf16 forward over float32 master weights.
  static Model cast_of(const Model& source, at::ScalarType dtype);
  // cast_of again, into this model: every weight becomes source's weight of the same name cast to
  // this model's dtype; adapter and recompute setting follow source's. Throws when source's
  // weights are not this model's (another configuration).
  void recast_from(const Model& source);

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

  // Every weight this configuration has, with its HF name, in checkpoint order:
  // model.embed_tokens.weight; per layer model.layers.{i}.input_layernorm, self_attn.{q,k,v,o}_proj
  // weights then biases (those the config has), post_attention_layernorm, mlp.{gate,up,down}_proj
  // weights then biases (with mlp_bias); model.norm.weight; lm_head.weight unless tied. Absent
  // weights (a bias the config lacks, a tied lm_head) are not visited. The mutable form may
  // reassign a weight; a tied lm_head then still points at the old embedding until re-tied.
  void for_each_weight(const std::function<void(const std::string&, at::Tensor&)>& f);
  void for_each_weight(const std::function<void(const std::string&, const at::Tensor&)>& f) const;
  // HF names -> tensors (for_each_weight's order; lm_head.weight omitted when tied).
  NamedTensors named_parameters() const;

  const ModelConfig& config() const { return config_; }
  at::ScalarType dtype() const { return dtype_; }
  c10::Device device() const { return device_; }

  // Not owned; when set, forward adds adapter->delta(...) to every projection's output
  // (model/adapter.h). nullptr detaches it.
  void set_adapter(const LinearAdapter* adapter) { adapter_ = adapter; }
  const LinearAdapter* adapter() const { return adapter_; }
  // Recomputation per decoder layer while autograd records (no cache): each layer keeps only its
  // input and is recomputed in the backward pass (model/recompute.h). Same results, less memory,
  // about one more forward pass of compute.
  void set_recompute_layers(bool on) { recompute_layers_ = on; }
  bool recompute_layers() const { return recompute_layers_; }

  // Weight-only int8 quantization of a loaded float32 model, the weights a --dtype q8 load gives
  // (which quantizes each matrix as it reads it instead): every projection weight and the lm_head
  // become int8 with per-row scales (model/linear.h quantize_q8); embeddings, norms and biases
  // stay float32, and so do activations and the KV cache. For inference only: a quantized
  // model cannot be saved or trained. Throws unless the model is float32. int8_activations
  // (--dtype q8-dot): the projections may also quantize their inputs (model/linear.h).
  void quantize_q8(bool int8_activations = false);
  bool quantized() const { return lm_head_scale.defined(); }
  bool int8_activations() const { return int8_activations_; }

  at::Tensor embed_tokens, final_norm, lm_head;  // lm_head aliases embed_tokens when tied
  at::Tensor lm_head_scale;                      // after quantize_q8 (lm_head is then int8)
  std::vector<LayerWeights> layers;

 private:
  Model(ModelConfig config, at::ScalarType dtype, c10::Device device);
  at::Tensor run(const ForwardInput& in, KVCache* cache, LogitsMode mode) const;
  ForwardPlan plan_pass(const ForwardInput& in, KVCache* cache) const;
  at::Tensor decoder_layer(int64_t layer, at::Tensor x, const ForwardPlan& pass) const;
  at::Tensor self_attention(int64_t layer, const at::Tensor& h, const ForwardPlan& pass) const;
  at::Tensor mlp(int64_t layer, const at::Tensor& h) const;
  at::Tensor project(int64_t layer, Proj p, const at::Tensor& x, const at::Tensor& w,
                     const at::Tensor& b, const at::Tensor& w_scale) const;
  at::Tensor output_head(at::Tensor x, const ForwardPlan& pass, LogitsMode mode) const;
  ModelConfig config_;
  at::ScalarType dtype_;
  c10::Device device_;
  at::Tensor inv_freq_;  // [head_dim/2] float32 on device
  const LinearAdapter* adapter_ = nullptr;
  bool recompute_layers_ = false;
  bool int8_activations_ = false;
};

// RoPE inverse frequencies (float32, CPU) for a config, with linear/llama3 scaling applied.
at::Tensor rope_inv_freq(const ModelConfig& config);
// RoPE's cos and sin tables (rotate-half layout) at positions pos (integer, any shape): [...,
// head_dim] in dtype, from float32 angles pos * inv_freq (rope_inv_freq's) rounded once.
std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& pos, const at::Tensor& inv_freq,
                                               at::ScalarType dtype);

}  // namespace metamath::model
