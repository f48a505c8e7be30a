#include "model/model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numbers>
#include <tuple>
#include <utility>

#include "core/atomic_file.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/log.h"
#include "model/attention.h"
#include "model/decode.h"
#include "model/huge_pages.h"
#include "model/linear.h"
#include "model/matmul.h"
#include "model/plan.h"
#include "model/recompute.h"

namespace metamath::model {

namespace fs = std::filesystem;

at::ScalarType parse_dtype(const std::string& s) {
  if (s == "f32" || s == "float32" || s == "fp32" || s == "float") return at::kFloat;
  if (s == "bf16" || s == "bfloat16") return at::kBFloat16;
  if (s == "f16" || s == "fp16" || s == "float16" || s == "half") return at::kHalf;
  if (s == "q8" || s == "int8") return at::kChar;
  if (s == "q8-dot") return at::kQInt8;
  fail("unknown dtype '{}': expected f32, bf16, f16, q8 or q8-dot", s);
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

using Shape = std::vector<int64_t>;

// The model's one list of weights (Model::for_each_weight): f(HF name, expected shape, slot) for
// every weight the configuration has, in checkpoint order.
template <typename M, typename F>
void visit_weights(M& m, F&& f) {
  const ModelConfig& c = m.config();
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim,
                kv = c.num_key_value_heads * c.head_dim, inter = c.intermediate_size;
  const bool qkv_bias = c.attention_bias || c.arch == Arch::Qwen2;
  const bool o_bias = c.attention_bias && c.arch != Arch::Qwen2;
  f("model.embed_tokens.weight", Shape{c.vocab_size, h}, m.embed_tokens);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    auto& L = m.layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    f(p + "input_layernorm.weight", Shape{h}, L.input_norm);
    f(p + "self_attn.q_proj.weight", Shape{q, h}, L.q_w);
    f(p + "self_attn.k_proj.weight", Shape{kv, h}, L.k_w);
    f(p + "self_attn.v_proj.weight", Shape{kv, h}, L.v_w);
    f(p + "self_attn.o_proj.weight", Shape{h, q}, L.o_w);
    if (qkv_bias) {
      f(p + "self_attn.q_proj.bias", Shape{q}, L.q_b);
      f(p + "self_attn.k_proj.bias", Shape{kv}, L.k_b);
      f(p + "self_attn.v_proj.bias", Shape{kv}, L.v_b);
    }
    if (o_bias) f(p + "self_attn.o_proj.bias", Shape{h}, L.o_b);
    f(p + "post_attention_layernorm.weight", Shape{h}, L.post_norm);
    f(p + "mlp.gate_proj.weight", Shape{inter, h}, L.gate_w);
    f(p + "mlp.up_proj.weight", Shape{inter, h}, L.up_w);
    f(p + "mlp.down_proj.weight", Shape{h, inter}, L.down_w);
    if (c.mlp_bias) {
      f(p + "mlp.gate_proj.bias", Shape{inter}, L.gate_b);
      f(p + "mlp.up_proj.bias", Shape{inter}, L.up_b);
      f(p + "mlp.down_proj.bias", Shape{h}, L.down_b);
    }
  }
  f("model.norm.weight", Shape{h}, m.final_norm);
  if (!c.tie_word_embeddings) f("lm_head.weight", Shape{c.vocab_size, h}, m.lm_head);
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
// to 512 rows (bench/attention_bench; bench/README.md). Longer inputs keep the matmul path. This
// is the fixed rule of the planner's "attention" operation (model/plan.h), which measures both
// where they read the same K and V views.
constexpr int64_t kInPlaceMaxRows = 512;
constexpr const char* kAttentionInPlace = "attention-in-place";
constexpr const char* kAttentionBatched = "attention-batched";

// The planner's key of an attention call: dtype, query rows per KV head and keys (both rounded up
// to powers of two), head size, threads and kernel level.
std::string attention_key(at::ScalarType dtype, int64_t rows, int64_t keys, int64_t d) {
  int64_t key_class = 1;
  while (key_class < keys) key_class *= 2;
  const int threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  return fmt::format("attention {} r{} l{} d{} t{} {}", dtype == at::kBFloat16 ? "bf16" : "f32",
                     row_class(rows), key_class, d, threads, isa_name(kernel_isa()));
}

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

std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& pos, const at::Tensor& inv_freq,
                                               at::ScalarType dtype) {
  at::Tensor freqs = pos.to(at::kFloat).unsqueeze(-1) * inv_freq;
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

// ---------------------------------------------------------------------------------------------
// Model: construction, weights, saving

Model::Model(ModelConfig config, at::ScalarType dtype, c10::Device device)
    : config_(std::move(config)), dtype_(dtype), device_(device) {
  if (dtype != at::kFloat && dtype != at::kBFloat16 && dtype != at::kHalf)
    fail("model dtype must be float32, bfloat16 or float16");
  layers.resize(config_.num_hidden_layers);
  inv_freq_ = rope_inv_freq(config_).to(device_);
}

namespace {

// The matrices quantize_q8 turns to int8, each with the slot of its row scales: every layer's
// projections, then the lm_head (a tied one too: it becomes a tensor of its own).
std::vector<std::pair<at::Tensor*, at::Tensor*>> q8_slots(Model& m) {
  std::vector<std::pair<at::Tensor*, at::Tensor*>> out;
  for (LayerWeights& L : m.layers)
    for (auto [w, s] : {std::pair{&L.q_w, &L.q_s},
                        {&L.k_w, &L.k_s},
                        {&L.v_w, &L.v_s},
                        {&L.o_w, &L.o_s},
                        {&L.gate_w, &L.gate_s},
                        {&L.up_w, &L.up_s},
                        {&L.down_w, &L.down_s}})
      out.emplace_back(w, s);
  out.emplace_back(&m.lm_head, &m.lm_head_scale);
  return out;
}

// w (any float dtype, on the CPU or `device`) as int8 with its scales into the slots, on
// `device`; on the CPU the int8 matrix comes from `arena`.
void put_q8(const at::Tensor& w, c10::Device device, HugePageArena& arena, at::Tensor& q_slot,
            at::Tensor& scale_slot) {
  QuantizedWeight q = model::quantize_q8(w, device.is_cpu() ? &arena : nullptr);
  q_slot = q.q.to(device);
  scale_slot = q.scale.to(device);
}

}  // namespace

void Model::quantize_q8(bool int8_activations) {
  if (dtype_ != at::kFloat || quantized())
    fail("quantize_q8: the model must be float32 and not yet quantized");
  HugePageArena arena;  // the int8 weights, streamed by every decode step
  for (auto [w, scale] : q8_slots(*this)) put_q8(*w, w->device(), arena, *w, *scale);
  // The weights left float32 (embeddings, norms, biases) move too, so that the blocks they shared
  // with the float32 matrices are freed (model/huge_pages.h).
  for_each_weight([&](const std::string&, at::Tensor& t) {
    if (t.scalar_type() == at::kFloat && t.device().is_cpu()) t = arena.copy(t);
  });
  int8_activations_ = int8_activations;
}

Model Model::load(const fs::path& dir, at::ScalarType dtype, c10::Device device) {
  if (!fs::is_directory(dir)) fail("{}: not a model folder (no such directory)", dir.string());
  ModelConfig c = load_config(dir);
  ShardedWeights w = ShardedWeights::open(dir);
  return from_weights(c, w, dtype, device);
}

Model Model::from_weights(const ModelConfig& config, const ShardedWeights& w, at::ScalarType dtype,
                          c10::Device device) {
  // q8 / q8-dot: a float32 model whose matrices are quantized as they are read, so that no
  // float32 copy of them all is ever held (a 7B checkpoint would need 27 GB for one); the same
  // weights as loading float32 and calling quantize_q8() after.
  const bool q8 = dtype == at::kChar || dtype == at::kQInt8;
  // No InferenceMode here: the weights must stay usable by autograd (training, LoRA).
  Model m(config, q8 ? at::kFloat : dtype, device);
  HugePageArena arena;  // the weights a decode step streams (model/huge_pages.h)
  std::vector<std::pair<at::Tensor*, at::Tensor*>> to_quantize;
  if (q8) to_quantize = q8_slots(m);
  visit_weights(m, [&](const std::string& name, const Shape& shape, at::Tensor& slot) {
    if (!w.contains(name))
      fail("{}: missing tensor '{}' (expected shape {} for this {} config)", w.source(), name,
           shape_str(shape), arch_architecture(config.arch));
    const TensorEntry& e = w.entry(name);
    if (e.shape != shape)
      fail("{}: tensor '{}' has shape {}, expected {} from config.json", w.file_of(name), name,
           shape_str(e.shape), shape_str(shape));
    if (e.dtype != "F32" && e.dtype != "BF16" && e.dtype != "F16" && e.dtype != "F64")
      fail("{}: tensor '{}' has dtype {}, expected a float type (F32, BF16, F16)", w.file_of(name),
           name, e.dtype);
    const at::Tensor t = w.get(name);
    const auto q = std::find_if(to_quantize.begin(), to_quantize.end(),
                                [&](const auto& pair) { return pair.first == &slot; });
    if (q != to_quantize.end())
      put_q8(t, device, arena, slot, *q->second);
    else
      slot = device.is_cpu() ? arena.copy(t, m.dtype_) : t.to(device, m.dtype_);
    // Copied: the file's pages need not stay in memory too (the peak stays one copy).
    if (slot.data_ptr() != t.data_ptr()) w.drop_pages(name);
  });
  if (config.tie_word_embeddings && q8)  // the int8 head becomes a tensor of its own
    put_q8(m.embed_tokens, device, arena, m.lm_head, m.lm_head_scale);
  else if (config.tie_word_embeddings)
    m.lm_head = m.embed_tokens;
  m.int8_activations_ = dtype == at::kQInt8;
  return m;
}

Model Model::init_random(const ModelConfig& config, uint64_t seed, at::ScalarType dtype,
                         c10::Device device) {
  config.validate("init_random");
  Model m(config, dtype, device);
  HugePageArena arena;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const double init_std = config.initializer_range;
  visit_weights(m, [&](const std::string& name, const Shape& shape, at::Tensor& slot) {
    at::Tensor t;
    const bool is_norm = name.find("norm.weight") != std::string::npos;
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (is_norm)
      t = at::ones(shape, at::kFloat);
    else if (is_bias)
      t = at::zeros(shape, at::kFloat);
    else
      t = at::empty(shape, at::kFloat).normal_(0.0, init_std, gen);
    slot = device.is_cpu() ? arena.copy(t, dtype) : t.to(device, dtype);
  });
  if (config.tie_word_embeddings) m.lm_head = m.embed_tokens;
  return m;
}

Model Model::cast_of(const Model& source, at::ScalarType dtype) {
  Model m(source.config_, dtype, source.device_);
  m.recast_from(source);
  return m;
}

void Model::recast_from(const Model& source) {
  const NamedTensors from = source.named_parameters();
  std::size_t i = 0;
  for_each_weight([&](const std::string& name, at::Tensor& slot) {
    if (i >= from.size() || from[i].first != name)
      fail("recast_from: the source model has no weight '{}' where this model has it", name);
    // libtorch's allocator, not huge pages: training re-casts once per micro-batch, through
    // autograd, and glibc reuses the freed blocks (core/memory.h).
    slot = from[i++].second.to(dtype_);
  });
  if (i != from.size()) fail("recast_from: the source model has more weights than this model");
  if (config_.tie_word_embeddings) lm_head = embed_tokens;
  adapter_ = source.adapter_;
  recompute_layers_ = source.recompute_layers_;
}

void Model::for_each_weight(const std::function<void(const std::string&, at::Tensor&)>& f) {
  visit_weights(*this, [&](const std::string& name, const Shape&, at::Tensor& t) { f(name, t); });
}

void Model::for_each_weight(
    const std::function<void(const std::string&, const at::Tensor&)>& f) const {
  visit_weights(*this,
                [&](const std::string& name, const Shape&, const at::Tensor& t) { f(name, t); });
}

NamedTensors Model::named_parameters() const {
  NamedTensors out;
  for_each_weight([&](const std::string& name, const at::Tensor& t) {
    if (t.defined()) out.emplace_back(name, t);
  });
  return out;
}

void Model::save(const fs::path& dir, const fs::path& tokenizer_dir,
                 uint64_t max_shard_bytes) const {
  if (quantized()) fail("{}: a q8 (int8-quantized) model cannot be saved", dir.string());
  fs::create_directories(dir);
  ModelConfig c = config_;
  c.torch_dtype = dtype_config_name(dtype_);
  save_sharded_weights(dir, named_parameters(), max_shard_bytes);
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

// ---------------------------------------------------------------------------------------------
// Forward pass: plan (rows, cache slots, masks, RoPE), then embedding -> layers -> head

// Everything the layers of one forward pass share, derived from its input before the first layer.
// With recompute_layers the layers read it again in the backward pass, after run() has returned,
// so run() keeps it alive through a shared pointer.
struct ForwardPlan {
  int64_t B = 0, T = 0;  // rows, tokens per row (padding included)
  int64_t L = 0;         // keys per row: T without a cache, else the longest slot after this pass
  at::Tensor mask;       // [B, T] bool, CPU: real tokens
  at::Tensor segments, segment_pos;   // packed rows: [B, T] int64, CPU; else undefined
  std::vector<int64_t> first, count;  // per row: its first real token, its number of real tokens
  KVCache* cache = nullptr;
  std::vector<int64_t> past, slots;       // per row: tokens already in its slot, its slot
  bool slots_contiguous = true;           // slots[b] == slots[0] + b
  bool uniform_append = false;            // every row appends all T tokens at one position
  at::Tensor slot_index;                  // [B] on device: the slots, when not contiguous
  at::Tensor qidx;                        // [B, T] int64, CPU: each query's index in its sequence
  at::Tensor masked_full, masked_window;  // [B, 1, 1, T, L] on device: true where a key is hidden
  bool fused_softmax = true;
  at::Tensor ids;       // [B, T] int64 on device (padding ids set to 0)
  at::Tensor cos, sin;  // [B, 1, T, head_dim] RoPE tables in the model dtype
};

namespace {

void check_input_ids(const ForwardInput& in) {
  if (!in.input_ids.defined() || in.input_ids.dim() != 2)
    fail("forward: input_ids must be a [batch, seq] tensor");
  if (at::isFloatingType(in.input_ids.scalar_type()) || in.input_ids.scalar_type() == at::kBool)
    fail("forward: input_ids must hold integer token ids");
  const int64_t B = in.input_ids.size(0), T = in.input_ids.size(1);
  if (B == 0 || T == 0) fail("forward: empty batch ([{}, {}])", B, T);
}

// Real tokens per the attention mask (all when there is none), [B, T] bool on the CPU.
at::Tensor real_token_mask(const ForwardInput& in, int64_t B, int64_t T) {
  if (!in.attention_mask.defined()) return at::ones({B, T}, at::kBool);
  if (in.attention_mask.sizes() != in.input_ids.sizes())
    fail("forward: attention_mask has shape {}, expected {} like input_ids",
         shape_str(in.attention_mask.sizes()), shape_str(in.input_ids.sizes()));
  return in.attention_mask.to(at::kCPU).ne(0).contiguous();
}

// Packed rows: the mask follows from the segment ids; positions restart per sequence.
void read_segments(const ForwardInput& in, bool with_cache, ForwardPlan& p) {
  if (with_cache) fail("forward: segment_ids (packed rows) cannot be used with a KV cache");
  if (in.attention_mask.defined())
    fail("forward: give segment_ids or attention_mask, not both (segment 0 is padding)");
  if (in.segment_ids.sizes() != in.input_ids.sizes())
    fail("forward: segment_ids has shape {}, expected {} like input_ids",
         shape_str(in.segment_ids.sizes()), shape_str(in.input_ids.sizes()));
  p.segments = in.segment_ids.to(at::kCPU).to(at::kLong).contiguous();
  p.mask = p.segments.ne(0);
  p.segment_pos = at::zeros({p.B, p.T}, at::kLong);
  auto sg = p.segments.accessor<int64_t, 2>();
  auto sp = p.segment_pos.accessor<int64_t, 2>();
  for (int64_t b = 0; b < p.B; ++b) {
    std::vector<int64_t> done;
    int64_t start = 0;
    for (int64_t t = 0; t < p.T; ++t) {
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

// Each row's first real token and number of real tokens; the real tokens must be contiguous.
void find_real_tokens(ForwardPlan& p) {
  p.first.assign(p.B, 0);
  p.count.assign(p.B, 0);
  auto m = p.mask.accessor<bool, 2>();
  for (int64_t b = 0; b < p.B; ++b) {
    int64_t f = -1, last = -1, n = 0;
    for (int64_t t = 0; t < p.T; ++t)
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
    p.first[b] = f < 0 ? 0 : f;
    p.count[b] = n;
  }
}

// Each row's slot and the tokens its slot already holds; the new tokens must fit.
void place_rows_in_cache(const ForwardInput& in, at::ScalarType dtype, c10::Device device,
                         ForwardPlan& p) {
  const KVCache& cache = *p.cache;
  if (!in.slots.empty() && static_cast<int64_t>(in.slots.size()) != p.B)
    fail("forward: {} slots given for a batch of {}", in.slots.size(), p.B);
  std::vector<bool> seen(cache.num_slots(), false);
  for (int64_t b = 0; b < p.B; ++b) {
    const int64_t s = in.slots.empty() ? b : in.slots[b];
    p.slots[b] = s;
    if (s < 0 || s >= cache.num_slots())
      fail("forward: slot {} out of range (cache has {} slots)", s, cache.num_slots());
    if (seen[s]) fail("forward: slot {} used by two rows of one batch", s);
    seen[s] = true;
    p.past[b] = cache.length(s);
    if (p.past[b] + p.count[b] > cache.max_len())
      fail("forward: slot {} would hold {} tokens, more than the cache's max length {}", s,
           p.past[b] + p.count[b], cache.max_len());
  }
  if (p.cache->k(0).scalar_type() != dtype || p.cache->k(0).device() != device)
    fail("forward: KV cache dtype/device differ from the model's");
}

// Query indices (position in the row's sequence) into p.qidx, and the keys' indices and validity
// ([B, L] each).
std::pair<at::Tensor, at::Tensor> index_queries_and_keys(ForwardPlan& p) {
  const int64_t B = p.B, T = p.T;
  p.qidx = at::empty({B, T}, at::kLong);
  p.L = T;
  if (p.cache) {
    p.L = 0;
    for (int64_t b = 0; b < B; ++b) p.L = std::max(p.L, p.past[b] + p.count[b]);
    p.L = std::max<int64_t>(p.L, 1);
  }
  at::Tensor kidx = at::empty({B, p.L}, at::kLong);
  at::Tensor kvalid = at::empty({B, p.L}, at::kBool);
  auto q = p.qidx.accessor<int64_t, 2>();
  auto k = kidx.accessor<int64_t, 2>();
  auto kv = kvalid.accessor<bool, 2>();
  auto m = p.mask.accessor<bool, 2>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) q[b][t] = p.past[b] + (t - p.first[b]);
    for (int64_t j = 0; j < p.L; ++j) {
      if (p.cache) {
        k[b][j] = j;
        kv[b][j] = j < p.past[b] + p.count[b];
      } else {
        k[b][j] = j - p.first[b];
        kv[b][j] = m[b][j];
      }
    }
  }
  return {kidx, kvalid};
}

// The attention masks proper (true where a key is hidden from a query, [B, 1, 1, T, L]): causal
// over sequence indices, only valid keys, within a packed row only the query's own sequence;
// the sliding-window variant when a layer uses one. Padding queries see every valid key (their
// outputs are unspecified but finite).
void build_attention_masks(const ModelConfig& c, c10::Device device, ForwardPlan& p) {
  auto [kidx, kvalid] = index_queries_and_keys(p);
  at::Tensor qi = p.qidx.unsqueeze(2), ki = kidx.unsqueeze(1);
  at::Tensor real_q = p.mask.unsqueeze(2);
  at::Tensor valid_k = kvalid.unsqueeze(1);
  at::Tensor see = ki <= qi;
  if (p.segments.defined())
    see = at::logical_and(see, p.segments.unsqueeze(2).eq(p.segments.unsqueeze(1)));
  at::Tensor causal = at::logical_and(valid_k, at::logical_or(see, real_q.logical_not()));
  p.masked_full = causal.logical_not().unsqueeze(1).unsqueeze(1).to(device);
  bool any_window = false;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    any_window = any_window || c.layer_uses_sliding_window(l);
  if (any_window) {
    at::Tensor win = at::logical_and(
        causal, at::logical_or((qi - ki) < *c.sliding_window, real_q.logical_not()));
    p.masked_window = win.logical_not().unsqueeze(1).unsqueeze(1).to(device);
  }
  // ATen's fused masked softmax (one pass forward, one backward, instead of masked_fill + softmax)
  // returns NaN for a row with no allowed key; such rows exist only when a batch row has no token
  // at all, and then the masked_fill path (finite, uniform) is kept.
  for (int64_t b = 0; b < p.B; ++b) p.fused_softmax = p.fused_softmax && p.past[b] + p.count[b] > 0;
}

// Position ids: explicit, or per packed sequence, or each token's index in its row's sequence.
at::Tensor positions(const ForwardInput& in, const ForwardPlan& p, c10::Device device) {
  return in.position_ids.defined() ? in.position_ids.to(at::kLong).to(device)
         : p.segment_pos.defined() ? p.segment_pos.to(device)
                                   : p.qidx.clamp_min(0).to(device);
}

// Token ids on the device, padding set to 0; every real id must be in the vocabulary.
at::Tensor token_ids(const ForwardInput& in, const at::Tensor& mask, int64_t vocab_size,
                     c10::Device device) {
  at::Tensor ids_cpu = in.input_ids.to(at::kCPU).to(at::kLong).masked_fill(mask.logical_not(), 0);
  const int64_t lo = ids_cpu.min().item<int64_t>(), hi = ids_cpu.max().item<int64_t>();
  if (lo < 0 || hi >= vocab_size)
    fail("forward: token id {} is outside the vocabulary [0, {})", lo < 0 ? lo : hi, vocab_size);
  return ids_cpu.to(device);
}

// RoPE tables [B, 1, T, head_dim] in the model dtype.
void rope_tables(const at::Tensor& pos, const at::Tensor& inv_freq, at::ScalarType dtype,
                 ForwardPlan& p) {
  auto [cos, sin] = rope_cos_sin(pos, inv_freq, dtype);
  p.cos = cos.unsqueeze(1);
  p.sin = sin.unsqueeze(1);
}

// How the layers write the cache: rows in consecutive slots are read as one slice; when every row
// appends its whole input (no padding) at the same position of consecutive slots (a uniform
// prefill, every decode step of a fixed batch), one copy per layer and tensor instead of one per
// row (each copy_ is its own parallel region).
void plan_cache_writes(c10::Device device, ForwardPlan& p) {
  for (int64_t b = 1; b < p.B; ++b)
    p.slots_contiguous = p.slots_contiguous && p.slots[b] == p.slots[0] + b;
  if (p.cache && !p.slots_contiguous) p.slot_index = at::tensor(p.slots, at::kLong).to(device);
  p.uniform_append = p.cache != nullptr && p.slots_contiguous;
  for (int64_t b = 0; b < p.B && p.uniform_append; ++b)
    p.uniform_append = p.first[b] == 0 && p.count[b] == p.T && p.past[b] == p.past[0];
}

// Appends the rows' new keys and values ([B, nkv, T, d]) to their slots of layer `layer`, and
// returns the keys and values the rows attend to: [B, nkv, L, d], or with the in-place kernel and
// scattered slots the whole cache (row b reads slot slots[b] in place).
std::pair<at::Tensor, at::Tensor> append_to_cache(int64_t layer, const at::Tensor& k,
                                                  const at::Tensor& v, bool in_place,
                                                  const ForwardPlan& p) {
  const int64_t B = p.B, T = p.T, L = p.L;
  at::Tensor& ck = p.cache->k(layer);
  at::Tensor& cv = p.cache->v(layer);
  if (p.uniform_append) {
    ck.narrow(0, p.slots[0], B).narrow(2, p.past[0], T).copy_(k);
    cv.narrow(0, p.slots[0], B).narrow(2, p.past[0], T).copy_(v);
  } else {
    for (int64_t b = 0; b < B; ++b) {
      if (p.count[b] == 0) continue;
      ck.select(0, p.slots[b])
          .narrow(1, p.past[b], p.count[b])
          .copy_(k.select(0, b).narrow(1, p.first[b], p.count[b]));
      cv.select(0, p.slots[b])
          .narrow(1, p.past[b], p.count[b])
          .copy_(v.select(0, b).narrow(1, p.first[b], p.count[b]));
    }
  }
  if (p.slots_contiguous)
    return {ck.narrow(0, p.slots[0], B).narrow(2, 0, L),
            cv.narrow(0, p.slots[0], B).narrow(2, 0, L)};
  if (in_place) return {ck.narrow(2, 0, L), cv.narrow(2, 0, L)};
  return {ck.narrow(2, 0, L).index_select(0, p.slot_index),
          cv.narrow(2, 0, L).index_select(0, p.slot_index)};
}

// HF's eager attention as batched matmuls: q [B, nh, T, d] against K, V [B, nkv, L, d] with the
// g = nh / nkv query heads of a KV head folded into the query length; returns [B, nkv, g*T, d].
at::Tensor attend_batched(at::Tensor q, const at::Tensor& K, const at::Tensor& V,
                          const at::Tensor& masked, int64_t nkv, double scale, at::ScalarType dtype,
                          const ForwardPlan& p) {
  const int64_t B = p.B, T = p.T, L = p.L, d = q.size(-1), g = q.size(1) / nkv;
  // A power-of-two scale (head_dim 4, 16, 64, 256) goes onto q, a T x d tensor instead of the
  // T x L scores: exact, so the same numbers as HF's scaling of the scores.
  const bool scale_q = std::exp2(std::round(std::log2(scale))) == scale;
  if (scale_q) q = q * scale;
  at::Tensor qg = q.reshape({B, nkv, g * T, d});
  at::Tensor scores = batched_matmul(qg, K.transpose(-1, -2));  // [B, nkv, g*T, L]
  if (!scale_q) scores = scores * scale;
  scores = scores.view({B, nkv, g, T, L});
  at::Tensor probs =
      p.fused_softmax
          ? at::_masked_softmax(scores.to(at::kFloat), masked.expand(scores.sizes()), 4, 2)
          : at::softmax(scores.masked_fill(masked, dtype_lowest(dtype)), -1, at::kFloat);
  probs = probs.to(dtype).view({B, nkv, g * T, L});
  return batched_matmul(probs, V);
}

}  // namespace

ForwardPlan Model::plan_pass(const ForwardInput& in, KVCache* cache) const {
  check_input_ids(in);
  ForwardPlan p;
  p.B = in.input_ids.size(0);
  p.T = in.input_ids.size(1);
  p.cache = cache;
  p.mask = real_token_mask(in, p.B, p.T);
  if (in.segment_ids.defined()) read_segments(in, cache != nullptr, p);
  if (in.position_ids.defined() && in.position_ids.sizes() != in.input_ids.sizes())
    fail("forward: position_ids has shape {}, expected {} like input_ids",
         shape_str(in.position_ids.sizes()), shape_str(in.input_ids.sizes()));
  find_real_tokens(p);
  p.past.assign(p.B, 0);
  p.slots.assign(p.B, 0);
  if (cache) place_rows_in_cache(in, dtype_, device_, p);
  build_attention_masks(config_, device_, p);
  at::Tensor pos = positions(in, p, device_);
  p.ids = token_ids(in, p.mask, config_.vocab_size, device_);
  rope_tables(pos, inv_freq_, dtype_, p);
  plan_cache_writes(device_, p);
  return p;
}

at::Tensor Model::run(const ForwardInput& in, KVCache* cache, LogitsMode mode) const {
  if (cache) {  // a regular decode step takes the fused path (model/decode.h)
    at::Tensor logits = fused_decode(*this, in, *cache, mode, inv_freq_);
    if (logits.defined()) return logits;
  }
  auto plan = std::make_shared<const ForwardPlan>(plan_pass(in, cache));
  at::Tensor x = at::embedding(embed_tokens, plan->ids);
  const bool recompute = recompute_layers_ && !cache && at::GradMode::is_enabled();
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    if (recompute)
      x = recomputed([this, l, plan](const at::Tensor& h) { return decoder_layer(l, h, *plan); }, x,
                     device_);
    else
      x = decoder_layer(l, x, *plan);
  }
  if (cache)
    for (int64_t b = 0; b < plan->B; ++b)
      cache->set_length(plan->slots[b], plan->past[b] + plan->count[b]);
  return output_head(x, *plan, mode);
}

// One decoder layer. With recompute_layers it runs again in the backward pass: it reads only the
// model and the plan.
at::Tensor Model::decoder_layer(int64_t l, at::Tensor x, const ForwardPlan& p) const {
  const LayerWeights& W = layers[l];
  x = x + self_attention(l, rms_norm(x, W.input_norm, config_.rms_norm_eps), p);
  return x + mlp(l, rms_norm(x, W.post_norm, config_.rms_norm_eps));
}

at::Tensor Model::self_attention(int64_t l, const at::Tensor& h, const ForwardPlan& p) const {
  const ModelConfig& c = config_;
  const LayerWeights& W = layers[l];
  const int64_t B = p.B, T = p.T, nh = c.num_attention_heads, nkv = c.num_key_value_heads;
  const int64_t d = c.head_dim, g = nh / nkv;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  at::Tensor q = project(l, Proj::Q, h, W.q_w, W.q_b, W.q_s).view({B, T, nh, d}).transpose(1, 2);
  at::Tensor k = project(l, Proj::K, h, W.k_w, W.k_b, W.k_s).view({B, T, nkv, d}).transpose(1, 2);
  at::Tensor v = project(l, Proj::V, h, W.v_w, W.v_b, W.v_s).view({B, T, nkv, d}).transpose(1, 2);
  q = q * p.cos + rotate_half(q) * p.sin;
  k = k * p.cos + rotate_half(k) * p.sin;

  const bool applies = attend_in_place_applies(q, k, v);
  bool in_place = applies && g * T <= kInPlaceMaxRows;
  at::Tensor K = k, V = v;
  if (p.cache) std::tie(K, V) = append_to_cache(l, k, v, in_place, p);
  // Grouped-query attention without repeating K/V: the g query heads sharing a KV head are
  // folded into the query-length dimension. Both return [B, nkv, g*T, d].
  const at::Tensor& masked = c.layer_uses_sliding_window(l) ? p.masked_window : p.masked_full;
  auto in_place_pass = [&] {  // scores, softmax and the sum over V in one pass over the views
    return attend_in_place(q.reshape({B, nkv, g * T, d}), K, V, masked.view({B, T, p.L}), T, scale,
                           p.cache && !p.slots_contiguous ? p.slots : std::vector<int64_t>{});
  };
  auto batched_pass = [&] { return attend_batched(q, K, V, masked, nkv, scale, dtype_, p); };
  if (applies && (!p.cache || p.slots_contiguous)) {  // both read the same K and V: measurable
    const std::vector<std::string> names =
        in_place ? std::vector<std::string>{kAttentionInPlace, kAttentionBatched}
                 : std::vector<std::string>{kAttentionBatched, kAttentionInPlace};
    const PlanEntry e =
        choose_candidate(attention_key(dtype_, g * T, p.L, d), names, [&](size_t i) {
          if (names[i] == kAttentionInPlace)
            in_place_pass();
          else
            batched_pass();
        });
    in_place = e.chosen == kAttentionInPlace;
  }
  at::Tensor o = in_place ? in_place_pass() : batched_pass();
  o = o.view({B, nh, T, d}).transpose(1, 2).reshape({B, T, nh * d});
  return project(l, Proj::O, o, W.o_w, W.o_b, W.o_s);
}

at::Tensor Model::mlp(int64_t l, const at::Tensor& h) const {
  const LayerWeights& W = layers[l];
  at::Tensor act = at::silu(project(l, Proj::Gate, h, W.gate_w, W.gate_b, W.gate_s)) *
                   project(l, Proj::Up, h, W.up_w, W.up_b, W.up_s);
  return project(l, Proj::Down, act, W.down_w, W.down_b, W.down_s);
}

// A projection, plus the adapter's delta when one is attached.
at::Tensor Model::project(int64_t layer, Proj p, const at::Tensor& x, const at::Tensor& w,
                          const at::Tensor& b, const at::Tensor& w_scale) const {
  at::Tensor y =
      recorded(x, w) ? linear_recorded(x, w, b) : linear(x, w, b, w_scale, int8_activations_);
  if (adapter_) {
    at::Tensor extra = adapter_->delta(layer, p, x);
    if (extra.defined()) y = y + extra;
  }
  return y;
}

// The last real token of each row (LogitsMode::Last), the final norm, then the lm_head.
at::Tensor Model::output_head(at::Tensor x, const ForwardPlan& p, LogitsMode mode) const {
  const int64_t B = p.B;
  if (mode == LogitsMode::Last) {
    std::vector<int64_t> last(B);
    for (int64_t b = 0; b < B; ++b)
      last[b] = p.count[b] > 0 ? p.first[b] + p.count[b] - 1 : p.T - 1;
    at::Tensor idx =
        at::tensor(last, at::kLong).to(device_).view({B, 1, 1}).expand({B, 1, x.size(2)});
    x = x.gather(1, idx);
  }
  x = rms_norm(x, final_norm, config_.rms_norm_eps);
  if (mode == LogitsMode::None) return x;
  at::Tensor logits = recorded(x, lm_head)
                          ? linear_recorded(x, lm_head, {})
                          : linear(x, lm_head, at::Tensor(), lm_head_scale, int8_activations_);
  return logits.to(at::kFloat);
}

}  // namespace metamath::model
