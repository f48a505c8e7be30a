#include "model/model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "model/attention.h"
#include "model/checkpoint.h"
#include "model/linear.h"
#include "model/matmul.h"

namespace metamath::model {

namespace fs = std::filesystem;

at::ScalarType parse_dtype(const std::string& s) {
  if (s == "f32" || s == "float32" || s == "fp32" || s == "float") return at::kFloat;
  if (s == "bf16" || s == "bfloat16") return at::kBFloat16;
  if (s == "f16" || s == "fp16" || s == "float16" || s == "half") return at::kHalf;
  fail("unknown dtype '{}': expected f32, bf16 or f16", s);
}

c10::Device parse_device(const std::string& s) {
  c10::Device d(c10::kCPU);
  try {
    d = c10::Device(s);
  } catch (const std::exception&) {
    fail("unknown device '{}': expected cpu, cuda or cuda:N", s);
  }
  if (d.is_cuda() && !at::hasCUDA())
    fail("device '{}' requested but this libtorch has no CUDA support (or no GPU is visible)", s);
  if (!d.is_cpu() && !d.is_cuda()) fail("device '{}' is not supported (cpu or cuda)", s);
  return d;
}

namespace {

std::string dtype_config_name(at::ScalarType t) {
  if (t == at::kBFloat16) return "bfloat16";
  if (t == at::kHalf) return "float16";
  return "float32";
}

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

double dtype_lowest(at::ScalarType t) {
  if (t == at::kHalf) return -65504.0;
  if (t == at::kBFloat16) return -3.3895313892515355e38;
  return static_cast<double>(std::numeric_limits<float>::lowest());
}

// Expected parameter shapes, in HF naming.
struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool required;
};

std::vector<ParamSpec> param_specs(const ModelConfig& c) {
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim, I = c.intermediate_size;
  const bool qkv_bias = c.attention_bias || c.arch == Arch::Qwen2;
  const bool o_bias = c.attention_bias && c.arch != Arch::Qwen2;
  std::vector<ParamSpec> s;
  s.push_back({"model.embed_tokens.weight", {c.vocab_size, h}, true});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    s.push_back({p + "input_layernorm.weight", {h}, true});
    s.push_back({p + "self_attn.q_proj.weight", {q, h}, true});
    s.push_back({p + "self_attn.k_proj.weight", {kv, h}, true});
    s.push_back({p + "self_attn.v_proj.weight", {kv, h}, true});
    s.push_back({p + "self_attn.o_proj.weight", {h, q}, true});
    if (qkv_bias) {
      s.push_back({p + "self_attn.q_proj.bias", {q}, true});
      s.push_back({p + "self_attn.k_proj.bias", {kv}, true});
      s.push_back({p + "self_attn.v_proj.bias", {kv}, true});
    }
    if (o_bias) s.push_back({p + "self_attn.o_proj.bias", {h}, true});
    s.push_back({p + "post_attention_layernorm.weight", {h}, true});
    s.push_back({p + "mlp.gate_proj.weight", {I, h}, true});
    s.push_back({p + "mlp.up_proj.weight", {I, h}, true});
    s.push_back({p + "mlp.down_proj.weight", {h, I}, true});
    if (c.mlp_bias) {
      s.push_back({p + "mlp.gate_proj.bias", {I}, true});
      s.push_back({p + "mlp.up_proj.bias", {I}, true});
      s.push_back({p + "mlp.down_proj.bias", {h}, true});
    }
  }
  s.push_back({"model.norm.weight", {h}, true});
  if (!c.tie_word_embeddings) s.push_back({"lm_head.weight", {c.vocab_size, h}, true});
  return s;
}

// Binds HF names to the model's tensor slots.
template <typename M, typename F>
void for_each_param(M& m, F&& f) {
  f("model.embed_tokens.weight", m.embed_tokens);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    auto& L = m.layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    f(p + "input_layernorm.weight", L.input_norm);
    f(p + "self_attn.q_proj.weight", L.q_w);
    f(p + "self_attn.k_proj.weight", L.k_w);
    f(p + "self_attn.v_proj.weight", L.v_w);
    f(p + "self_attn.o_proj.weight", L.o_w);
    f(p + "self_attn.q_proj.bias", L.q_b);
    f(p + "self_attn.k_proj.bias", L.k_b);
    f(p + "self_attn.v_proj.bias", L.v_b);
    f(p + "self_attn.o_proj.bias", L.o_b);
    f(p + "post_attention_layernorm.weight", L.post_norm);
    f(p + "mlp.gate_proj.weight", L.gate_w);
    f(p + "mlp.up_proj.weight", L.up_w);
    f(p + "mlp.down_proj.weight", L.down_w);
    f(p + "mlp.gate_proj.bias", L.gate_b);
    f(p + "mlp.up_proj.bias", L.up_b);
    f(p + "mlp.down_proj.bias", L.down_b);
  }
  f("model.norm.weight", m.final_norm);
  f("lm_head.weight", m.lm_head);
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);
  xf = xf * at::rsqrt(var + eps);
  return w * xf.to(x.scalar_type());
}

// Whether autograd records a product of x and w (training): such products keep libtorch's
// differentiable ops (model/matmul.h) instead of the inference kernels of model/linear.h.
bool recorded(const at::Tensor& x, const at::Tensor& w) {
  return at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad());
}

// Up to this many query rows per KV head (g * T) attention runs in model/attention.h's in-place
// kernel when not recording autograd: it beat the batched-matmul path at every size measured, up
// to 512 rows (bench/attention_bench; bench/README.md). Longer inputs keep the matmul path.
constexpr int64_t kInPlaceMaxRows = 512;

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

at::Tensor rope_inv_freq(const ModelConfig& c) {
  const int64_t dim = c.head_dim;
  at::Tensor exps = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(dim);
  at::Tensor inv = at::reciprocal(at::pow(c.rope_theta, exps));
  const RopeScaling& rs = c.rope_scaling;
  if (rs.type == "linear") {
    inv = inv / rs.factor;
  } else if (rs.type == "llama3") {
    // LLaMA-3.1: wavelengths longer than original_ctx / low_freq_factor are slowed by `factor`,
    // shorter than original_ctx / high_freq_factor are kept, and the band between is blended.
    const double old_ctx = static_cast<double>(rs.original_max_position_embeddings);
    const double low_wavelen = old_ctx / rs.low_freq_factor;
    const double high_wavelen = old_ctx / rs.high_freq_factor;
    at::Tensor wavelen = at::reciprocal(inv) * (2.0 * std::numbers::pi);
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv / rs.factor, inv);
    at::Tensor smooth = (at::reciprocal(wavelen) * old_ctx - rs.low_freq_factor) /
                        (rs.high_freq_factor - rs.low_freq_factor);
    at::Tensor blended = (1.0 - smooth) * scaled / rs.factor + smooth * scaled;
    at::Tensor medium = at::logical_and(wavelen >= high_wavelen, wavelen <= low_wavelen);
    inv = at::where(medium, blended, scaled);
  }
  return inv;
}

// ---------------------------------------------------------------------------------------------
// KVCache

KVCache::KVCache(const ModelConfig& c, int64_t num_slots, int64_t max_len, at::ScalarType dtype,
                 c10::Device device)
    : num_slots_(num_slots), max_len_(max_len), len_(num_slots, 0), used_(num_slots, false) {
  if (num_slots <= 0 || max_len <= 0)
    fail("KV cache needs at least one slot and a positive max length (got {} slots, max_len {})",
         num_slots, max_len);
  auto opts = at::TensorOptions().dtype(dtype).device(device);
  // Zero-filled: positions past a slot's length are read (then masked) by the batched matmul, and
  // masked weights are exact zeros only when the values there are finite.
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    k_.push_back(at::zeros({num_slots, c.num_key_value_heads, max_len, c.head_dim}, opts));
    v_.push_back(at::zeros({num_slots, c.num_key_value_heads, max_len, c.head_dim}, opts));
  }
}

void KVCache::check_slot(int64_t slot) const {
  if (slot < 0 || slot >= num_slots_)
    fail("KV cache slot {} out of range (0..{})", slot, num_slots_ - 1);
}

int64_t KVCache::length(int64_t slot) const {
  check_slot(slot);
  return len_[slot];
}

int64_t KVCache::bytes() const {
  int64_t b = 0;
  for (const auto& t : k_) b += t.numel() * t.element_size();
  for (const auto& t : v_) b += t.numel() * t.element_size();
  return b;
}

void KVCache::reset() {
  std::fill(len_.begin(), len_.end(), 0);
  std::fill(used_.begin(), used_.end(), false);
}

void KVCache::clear(int64_t slot) {
  check_slot(slot);
  len_[slot] = 0;
}

void KVCache::truncate(int64_t slot, int64_t new_len) {
  check_slot(slot);
  if (new_len < 0 || new_len > len_[slot])
    fail("KV cache slot {}: cannot truncate to {} (length {})", slot, new_len, len_[slot]);
  len_[slot] = new_len;
}

void KVCache::set_length(int64_t slot, int64_t len) {
  check_slot(slot);
  if (len < 0 || len > max_len_)
    fail("KV cache slot {}: length {} out of range (max {})", slot, len, max_len_);
  len_[slot] = len;
}

std::optional<int64_t> KVCache::acquire() {
  for (int64_t s = 0; s < num_slots_; ++s) {
    if (!used_[s]) {
      used_[s] = true;
      len_[s] = 0;
      return s;
    }
  }
  return std::nullopt;
}

void KVCache::release(int64_t slot) {
  check_slot(slot);
  used_[slot] = false;
  len_[slot] = 0;
}

int64_t KVCache::free_slots() const { return std::count(used_.begin(), used_.end(), false); }

// ---------------------------------------------------------------------------------------------
// Model

Model::Model(ModelConfig config, at::ScalarType dtype, c10::Device device)
    : config_(std::move(config)), dtype_(dtype), device_(device) {
  if (dtype != at::kFloat && dtype != at::kBFloat16 && dtype != at::kHalf)
    fail("model dtype must be float32, bfloat16 or float16");
  layers.resize(config_.num_hidden_layers);
  inv_freq_ = rope_inv_freq(config_).to(device_);
}

Model Model::load(const fs::path& dir, at::ScalarType dtype, c10::Device device) {
  if (!fs::is_directory(dir)) fail("{}: not a model folder (no such directory)", dir.string());
  ModelConfig c = load_config(dir);
  Checkpoint ck = Checkpoint::open(dir);
  return from_checkpoint(c, ck, dtype, device);
}

Model Model::from_checkpoint(const ModelConfig& config, const Checkpoint& ck, at::ScalarType dtype,
                             c10::Device device) {
  // No InferenceMode here: the weights must stay usable by autograd (training, LoRA).
  Model m(config, dtype, device);
  std::map<std::string, ParamSpec> specs;
  for (auto& s : param_specs(config)) specs.emplace(s.name, s);
  for_each_param(m, [&](const std::string& name, at::Tensor& slot) {
    auto it = specs.find(name);
    if (it == specs.end()) return;  // not part of this configuration
    const ParamSpec& spec = it->second;
    if (!ck.contains(name))
      fail("{}: missing tensor '{}' (expected shape {} for this {} config)", ck.source(), name,
           shape_str(spec.shape), arch_architecture(config.arch));
    const TensorEntry& e = ck.entry(name);
    if (e.shape != spec.shape)
      fail("{}: tensor '{}' has shape {}, expected {} from config.json", ck.file_of(name), name,
           shape_str(e.shape), shape_str(spec.shape));
    if (e.dtype != "F32" && e.dtype != "BF16" && e.dtype != "F16" && e.dtype != "F64")
      fail("{}: tensor '{}' has dtype {}, expected a float type (F32, BF16, F16)", ck.file_of(name),
           name, e.dtype);
    at::Tensor t = ck.get(name);
    if (t.scalar_type() != dtype || !device.is_cpu()) t = t.to(device, dtype);
    slot = t;
  });
  if (config.tie_word_embeddings) m.lm_head = m.embed_tokens;
  return m;
}

Model Model::init_random(const ModelConfig& config, uint64_t seed, at::ScalarType dtype,
                         c10::Device device) {
  config.validate("init_random");
  Model m(config, dtype, device);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const double std = config.initializer_range;
  std::vector<ParamSpec> specs = param_specs(config);
  std::map<std::string, at::Tensor> made;
  for (const auto& s : specs) {
    at::Tensor t;
    const bool is_norm = s.name.find("norm.weight") != std::string::npos;
    const bool is_bias = s.name.size() > 5 && s.name.compare(s.name.size() - 5, 5, ".bias") == 0;
    if (is_norm)
      t = at::ones(s.shape, at::kFloat);
    else if (is_bias)
      t = at::zeros(s.shape, at::kFloat);
    else
      t = at::empty(s.shape, at::kFloat).normal_(0.0, std, gen);
    made[s.name] = t.to(device, dtype);
  }
  for_each_param(m, [&](const std::string& name, at::Tensor& slot) {
    auto it = made.find(name);
    if (it != made.end()) slot = it->second;
  });
  if (config.tie_word_embeddings) m.lm_head = m.embed_tokens;
  return m;
}

NamedTensors Model::named_parameters() const {
  NamedTensors out;
  std::map<std::string, bool> wanted;
  for (auto& s : param_specs(config_)) wanted[s.name] = true;
  for_each_param(*this, [&](const std::string& name, const at::Tensor& t) {
    if (wanted.count(name) && t.defined()) out.emplace_back(name, t);
  });
  return out;
}

void Model::save(const fs::path& dir, const fs::path& tokenizer_dir,
                 uint64_t max_shard_bytes) const {
  fs::create_directories(dir);
  ModelConfig c = config_;
  c.torch_dtype = dtype_config_name(dtype_);
  save_checkpoint(dir, named_parameters(), max_shard_bytes);
  write_file_atomic(dir / "config.json", to_json(c).dump(2) + "\n");
  write_file_atomic(dir / "generation_config.json", generation_config_json(c).dump(2) + "\n");
  if (!tokenizer_dir.empty()) {
    if (!fs::is_directory(tokenizer_dir))
      fail("{}: tokenizer folder does not exist", tokenizer_dir.string());
    int copied = 0;
    for (const char* f :
         {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
          "vocab.json", "merges.txt", "added_tokens.json"}) {
      fs::path src = tokenizer_dir / f;
      if (fs::exists(src)) {
        write_file_atomic(dir / f, read_file(src));
        ++copied;
      }
    }
    if (copied == 0)
      fail("{}: no tokenizer files (tokenizer.model or tokenizer.json) to copy",
           tokenizer_dir.string());
  }
}

KVCache Model::make_cache(int64_t num_slots, int64_t max_len) const {
  return KVCache(config_, num_slots, max_len, dtype_, device_);
}

at::Tensor Model::forward(const ForwardInput& in, KVCache* cache, LogitsMode mode) const {
  return run(in, cache, mode);
}

at::Tensor Model::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                          const at::Tensor& position_ids, KVCache* cache) const {
  ForwardInput in;
  in.input_ids = input_ids;
  in.attention_mask = attention_mask;
  in.position_ids = position_ids;
  return run(in, cache, LogitsMode::All);
}

at::Tensor Model::forward_hidden(const ForwardInput& in, KVCache* cache) const {
  return run(in, cache, LogitsMode::None);
}

at::Tensor Model::run(const ForwardInput& in, KVCache* cache, LogitsMode mode) const {
  const ModelConfig& c = config_;
  if (!in.input_ids.defined() || in.input_ids.dim() != 2)
    fail("forward: input_ids must be a [batch, seq] tensor");
  if (at::isFloatingType(in.input_ids.scalar_type()) || in.input_ids.scalar_type() == at::kBool)
    fail("forward: input_ids must hold integer token ids");
  const int64_t B = in.input_ids.size(0), T = in.input_ids.size(1);
  if (B == 0 || T == 0) fail("forward: empty batch ([{}, {}])", B, T);

  // Padding structure (host side, small).
  at::Tensor mask_cpu;
  if (in.attention_mask.defined()) {
    if (in.attention_mask.sizes() != in.input_ids.sizes())
      fail("forward: attention_mask has shape {}, expected {} like input_ids",
           shape_str(in.attention_mask.sizes()), shape_str(in.input_ids.sizes()));
    mask_cpu = in.attention_mask.to(at::kCPU).ne(0).contiguous();
  } else {
    mask_cpu = at::ones({B, T}, at::kBool);
  }
  // Packed rows: the mask follows from the segment ids; positions restart per sequence.
  at::Tensor seg_cpu, seg_pos;
  if (in.segment_ids.defined()) {
    if (cache) fail("forward: segment_ids (packed rows) cannot be used with a KV cache");
    if (in.attention_mask.defined())
      fail("forward: give segment_ids or attention_mask, not both (segment 0 is padding)");
    if (in.segment_ids.sizes() != in.input_ids.sizes())
      fail("forward: segment_ids has shape {}, expected {} like input_ids",
           shape_str(in.segment_ids.sizes()), shape_str(in.input_ids.sizes()));
    seg_cpu = in.segment_ids.to(at::kCPU).to(at::kLong).contiguous();
    mask_cpu = seg_cpu.ne(0);
    seg_pos = at::zeros({B, T}, at::kLong);
    auto sg = seg_cpu.accessor<int64_t, 2>();
    auto sp = seg_pos.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> done;
      int64_t start = 0;
      for (int64_t t = 0; t < T; ++t) {
        if (sg[b][t] < 0) fail("forward: segment_ids row {} holds {} (must be >= 0)", b, sg[b][t]);
        if (t > 0 && sg[b][t] != sg[b][t - 1]) {
          done.push_back(sg[b][t - 1]);
          start = t;
          if (sg[b][t] != 0 && std::find(done.begin(), done.end(), sg[b][t]) != done.end())
            fail("forward: segment_ids row {}: sequence {} is not contiguous", b, sg[b][t]);
        }
        sp[b][t] = t - start;
      }
    }
  }
  if (in.position_ids.defined() && in.position_ids.sizes() != in.input_ids.sizes())
    fail("forward: position_ids has shape {}, expected {} like input_ids",
         shape_str(in.position_ids.sizes()), shape_str(in.input_ids.sizes()));
  std::vector<int64_t> first(B, 0), count(B, 0), past(B, 0), slots(B, 0);
  {
    auto m = mask_cpu.accessor<bool, 2>();
    for (int64_t b = 0; b < B; ++b) {
      int64_t f = -1, last = -1, n = 0;
      for (int64_t t = 0; t < T; ++t)
        if (m[b][t]) {
          if (f < 0) f = t;
          last = t;
          ++n;
        }
      if (n > 0 && last - f + 1 != n)
        fail(
            "forward: attention_mask row {} has padding between real tokens (use left or right "
            "padding)",
            b);
      first[b] = f < 0 ? 0 : f;
      count[b] = n;
    }
  }
  if (cache) {
    if (!in.slots.empty() && static_cast<int64_t>(in.slots.size()) != B)
      fail("forward: {} slots given for a batch of {}", in.slots.size(), B);
    std::vector<bool> seen(cache->num_slots(), false);
    for (int64_t b = 0; b < B; ++b) {
      slots[b] = in.slots.empty() ? b : in.slots[b];
      if (slots[b] < 0 || slots[b] >= cache->num_slots())
        fail("forward: slot {} out of range (cache has {} slots)", slots[b], cache->num_slots());
      if (seen[slots[b]]) fail("forward: slot {} used by two rows of one batch", slots[b]);
      seen[slots[b]] = true;
      past[b] = cache->length(slots[b]);
      if (past[b] + count[b] > cache->max_len())
        fail("forward: slot {} would hold {} tokens, more than the cache's max length {}", slots[b],
             past[b] + count[b], cache->max_len());
    }
    if (cache->k(0).scalar_type() != dtype_ || cache->k(0).device() != device_)
      fail("forward: KV cache dtype/device differ from the model's");
  }

  // Query indices (position in the row's sequence), key indices and validity.
  at::Tensor qidx = at::empty({B, T}, at::kLong);
  int64_t L = T;
  if (cache) {
    L = 0;
    for (int64_t b = 0; b < B; ++b) L = std::max(L, past[b] + count[b]);
    L = std::max<int64_t>(L, 1);
  }
  at::Tensor kidx = at::empty({B, L}, at::kLong);
  at::Tensor kvalid = at::empty({B, L}, at::kBool);
  {
    auto q = qidx.accessor<int64_t, 2>();
    auto k = kidx.accessor<int64_t, 2>();
    auto kv = kvalid.accessor<bool, 2>();
    auto m = mask_cpu.accessor<bool, 2>();
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < T; ++t) q[b][t] = past[b] + (t - first[b]);
      for (int64_t j = 0; j < L; ++j) {
        if (cache) {
          k[b][j] = j;
          kv[b][j] = j < past[b] + count[b];
        } else {
          k[b][j] = j - first[b];
          kv[b][j] = m[b][j];
        }
      }
    }
  }
  // allowed[b, t, j]: causal over sequence indices, only valid keys; padding queries see every
  // valid key (their outputs are unspecified but finite).
  at::Tensor qi = qidx.unsqueeze(2), ki = kidx.unsqueeze(1);
  at::Tensor real_q = mask_cpu.unsqueeze(2);
  at::Tensor valid_k = kvalid.unsqueeze(1);
  at::Tensor see = ki <= qi;
  if (seg_cpu.defined()) see = at::logical_and(see, seg_cpu.unsqueeze(2).eq(seg_cpu.unsqueeze(1)));
  at::Tensor causal = at::logical_and(valid_k, at::logical_or(see, real_q.logical_not()));
  // The attention masks proper: true where a key is hidden from a query, [B,1,1,T,L].
  const at::Tensor masked_full = causal.logical_not().unsqueeze(1).unsqueeze(1).to(device_);
  at::Tensor masked_window;
  bool any_window = false;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    any_window = any_window || c.layer_uses_sliding_window(l);
  if (any_window) {
    at::Tensor win = at::logical_and(
        causal, at::logical_or((qi - ki) < *c.sliding_window, real_q.logical_not()));
    masked_window = win.logical_not().unsqueeze(1).unsqueeze(1).to(device_);
  }
  // ATen's fused masked softmax (one pass forward, one backward, instead of masked_fill + softmax)
  // returns NaN for a row with no allowed key; such rows exist only when a batch row has no token
  // at all, and then the masked_fill path (finite, uniform) is kept.
  bool fused_softmax = true;
  for (int64_t b = 0; b < B; ++b) fused_softmax = fused_softmax && past[b] + count[b] > 0;

  at::Tensor pos = in.position_ids.defined() ? in.position_ids.to(at::kLong).to(device_)
                   : seg_pos.defined()        ? seg_pos.to(device_)
                                              : qidx.clamp_min(0).to(device_);
  at::Tensor ids_cpu =
      in.input_ids.to(at::kCPU).to(at::kLong).masked_fill(mask_cpu.logical_not(), 0);
  {
    const int64_t lo = ids_cpu.min().item<int64_t>(), hi = ids_cpu.max().item<int64_t>();
    if (lo < 0 || hi >= c.vocab_size)
      fail("forward: token id {} is outside the vocabulary [0, {})", lo < 0 ? lo : hi,
           c.vocab_size);
  }
  at::Tensor ids = ids_cpu.to(device_);

  // RoPE tables [B, 1, T, head_dim] in the model dtype.
  at::Tensor freqs = pos.to(at::kFloat).unsqueeze(-1) * inv_freq_.view({1, 1, -1});
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  at::Tensor cos = emb.cos().to(dtype_).unsqueeze(1);
  at::Tensor sin = emb.sin().to(dtype_).unsqueeze(1);

  const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads, d = c.head_dim;
  const int64_t g = nh / nkv;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const bool scale_is_pow2 = std::exp2(std::round(std::log2(scale))) == scale;
  const double lowest = dtype_lowest(dtype_);

  bool slots_contiguous = true;
  for (int64_t b = 1; b < B; ++b) slots_contiguous = slots_contiguous && slots[b] == slots[0] + b;
  at::Tensor slot_index;
  if (cache && !slots_contiguous) slot_index = at::tensor(slots, at::kLong).to(device_);
  // Every row appends its whole input (no padding) at the same position of consecutive slots
  // (a uniform prefill, every decode step of a fixed batch): one copy per layer and tensor
  // instead of one per row (each copy_ is its own parallel region).
  bool uniform_append = cache != nullptr && slots_contiguous;
  for (int64_t b = 0; b < B && uniform_append; ++b)
    uniform_append = first[b] == 0 && count[b] == T && past[b] == past[0];

  // A projection, plus the adapter's delta when one is attached.
  auto proj = [this](int64_t layer, Proj p, const at::Tensor& in, const at::Tensor& w,
                     const at::Tensor& b) {
    at::Tensor y = recorded(in, w) ? linear_recorded(in, w, b) : linear(in, w, b);
    if (adapter) {
      at::Tensor extra = adapter->delta(layer, p, in);
      if (extra.defined()) y = y + extra;
    }
    return y;
  };
  // One decoder layer. Captures by value: with activation checkpointing it runs again during the
  // backward pass, after this function has returned.
  auto layer = [=, this](int64_t l, at::Tensor x) -> at::Tensor {
    const LayerWeights& W = layers[l];
    at::Tensor h = rms_norm(x, W.input_norm, c.rms_norm_eps);
    at::Tensor q = proj(l, Proj::Q, h, W.q_w, W.q_b).view({B, T, nh, d}).transpose(1, 2);
    at::Tensor k = proj(l, Proj::K, h, W.k_w, W.k_b).view({B, T, nkv, d}).transpose(1, 2);
    at::Tensor v = proj(l, Proj::V, h, W.v_w, W.v_b).view({B, T, nkv, d}).transpose(1, 2);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;

    const bool in_place = g * T <= kInPlaceMaxRows && attend_in_place_applies(q, k, v);
    at::Tensor K = k, V = v;
    if (cache) {
      at::Tensor& ck = cache->k(l);
      at::Tensor& cv = cache->v(l);
      if (uniform_append) {
        ck.narrow(0, slots[0], B).narrow(2, past[0], T).copy_(k);
        cv.narrow(0, slots[0], B).narrow(2, past[0], T).copy_(v);
      } else {
        for (int64_t b = 0; b < B; ++b) {
          if (count[b] == 0) continue;
          ck.select(0, slots[b])
              .narrow(1, past[b], count[b])
              .copy_(k.select(0, b).narrow(1, first[b], count[b]));
          cv.select(0, slots[b])
              .narrow(1, past[b], count[b])
              .copy_(v.select(0, b).narrow(1, first[b], count[b]));
        }
      }
      if (slots_contiguous) {
        K = ck.narrow(0, slots[0], B).narrow(2, 0, L);
        V = cv.narrow(0, slots[0], B).narrow(2, 0, L);
      } else if (in_place) {
        K = ck.narrow(2, 0, L);  // row b reads slot slots[b] in place
        V = cv.narrow(2, 0, L);
      } else {
        K = ck.narrow(2, 0, L).index_select(0, slot_index);
        V = cv.narrow(2, 0, L).index_select(0, slot_index);
      }
    }
    // Grouped-query attention without repeating K/V: the g query heads sharing a KV head are
    // folded into the query-length dimension.
    const at::Tensor& masked = c.layer_uses_sliding_window(l) ? masked_window : masked_full;
    at::Tensor o;  // [B, nkv, g*T, d]
    if (in_place) {
      // Decode steps: scores, softmax and the sum over V in one pass over the cache views.
      o = attend_in_place(q.reshape({B, nkv, g * T, d}), K, V, masked.view({B, T, L}), T, scale,
                          cache && !slots_contiguous ? slots : std::vector<int64_t>{});
    } else {
      // A power-of-two scale (head_dim 4, 16, 64, 256) goes onto q, a T x d tensor instead of
      // the T x L scores: exact, so the same numbers as HF's scaling of the scores.
      const bool scale_q = scale_is_pow2;
      if (scale_q) q = q * scale;
      at::Tensor qg = q.reshape({B, nkv, g * T, d});
      at::Tensor scores = batched_matmul(qg, K.transpose(-1, -2));  // [B, nkv, g*T, L]
      if (!scale_q) scores = scores * scale;
      scores = scores.view({B, nkv, g, T, L});
      at::Tensor probs =
          fused_softmax
              ? at::_masked_softmax(scores.to(at::kFloat), masked.expand(scores.sizes()), 4, 2)
              : at::softmax(scores.masked_fill(masked, lowest), -1, at::kFloat);
      probs = probs.to(dtype_).view({B, nkv, g * T, L});
      o = batched_matmul(probs, V);
    }
    o = o.view({B, nh, T, d}).transpose(1, 2).reshape({B, T, nh * d});
    x = x + proj(l, Proj::O, o, W.o_w, W.o_b);

    h = rms_norm(x, W.post_norm, c.rms_norm_eps);
    at::Tensor act = at::silu(proj(l, Proj::Gate, h, W.gate_w, W.gate_b)) *
                     proj(l, Proj::Up, h, W.up_w, W.up_b);
    return x + proj(l, Proj::Down, act, W.down_w, W.down_b);
  };
  at::Tensor x = at::embedding(embed_tokens, ids);
  const bool ckpt = checkpoint_layers && !cache && at::GradMode::is_enabled();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (ckpt)
      x = checkpointed([layer, l](const at::Tensor& in) { return layer(l, in); }, x, device_);
    else
      x = layer(l, x);
  }
  if (cache)
    for (int64_t b = 0; b < B; ++b) cache->set_length(slots[b], past[b] + count[b]);

  if (mode == LogitsMode::Last) {
    std::vector<int64_t> last(B);
    for (int64_t b = 0; b < B; ++b) last[b] = count[b] > 0 ? first[b] + count[b] - 1 : T - 1;
    at::Tensor idx =
        at::tensor(last, at::kLong).to(device_).view({B, 1, 1}).expand({B, 1, x.size(2)});
    x = x.gather(1, idx);
  }
  x = rms_norm(x, final_norm, c.rms_norm_eps);
  if (mode == LogitsMode::None) return x;
  at::Tensor logits =
      recorded(x, lm_head) ? linear_recorded(x, lm_head, {}) : linear(x, lm_head, at::Tensor());
  return logits.to(at::kFloat);
}

// ---------------------------------------------------------------------------------------------
// Greedy generation

std::vector<std::vector<int64_t>> greedy_generate(const Model& model,
                                                  const std::vector<std::vector<int64_t>>& prompts,
                                                  const GreedyOptions& opts) {
  c10::InferenceMode guard;
  const int64_t N = static_cast<int64_t>(prompts.size());
  std::vector<std::vector<int64_t>> out(N);
  if (N == 0 || opts.max_new_tokens <= 0) return out;
  int64_t tmax = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (prompts[i].empty())
      fail("greedy_generate: prompt {} is empty (need at least one token)", i);
    tmax = std::max<int64_t>(tmax, prompts[i].size());
  }
  std::vector<int64_t> stops = opts.stop_ids;
  if (opts.stop_at_eos)
    stops.insert(stops.end(), model.config().eos_token_ids.begin(),
                 model.config().eos_token_ids.end());
  KVCache cache = model.make_cache(N, tmax + opts.max_new_tokens);

  // Prefill, left padded.
  at::Tensor ids = at::zeros({N, tmax}, at::kLong), mask = at::zeros({N, tmax}, at::kLong);
  for (int64_t i = 0; i < N; ++i) {
    const int64_t n = prompts[i].size(), off = tmax - n;
    for (int64_t t = 0; t < n; ++t) {
      ids[i][off + t] = prompts[i][t];
      mask[i][off + t] = 1;
    }
  }
  ForwardInput in;
  in.input_ids = ids;
  in.attention_mask = mask;
  at::Tensor next = model.forward(in, &cache, LogitsMode::Last).argmax(-1).view({-1}).to(at::kCPU);
  std::vector<int64_t> active;
  std::vector<int64_t> last(N);
  for (int64_t i = 0; i < N; ++i) {
    int64_t tok = next[i].item<int64_t>();
    out[i].push_back(tok);
    last[i] = tok;
    bool stop = std::find(stops.begin(), stops.end(), tok) != stops.end();
    if (!stop && opts.max_new_tokens > 1) active.push_back(i);
  }
  while (!active.empty()) {
    const int64_t A = active.size();
    at::Tensor step = at::empty({A, 1}, at::kLong);
    for (int64_t a = 0; a < A; ++a) step[a][0] = last[active[a]];
    ForwardInput s;
    s.input_ids = step;
    s.slots = active;  // sequence i lives in slot i
    at::Tensor nx = model.forward(s, &cache, LogitsMode::Last).argmax(-1).view({-1}).to(at::kCPU);
    std::vector<int64_t> still;
    for (int64_t a = 0; a < A; ++a) {
      const int64_t i = active[a];
      int64_t tok = nx[a].item<int64_t>();
      out[i].push_back(tok);
      last[i] = tok;
      bool stop = std::find(stops.begin(), stops.end(), tok) != stops.end();
      if (!stop && static_cast<int64_t>(out[i].size()) < opts.max_new_tokens) still.push_back(i);
    }
    active = std::move(still);
  }
  return out;
}

}  // namespace metamath::model
