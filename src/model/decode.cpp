#include "model/decode.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/BFloat16.h>
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "model/attention.h"
#include "model/linear.h"
#include "model/linear_kernel.h"
#include "model/model.h"
#include "model/plan.h"
#include "model/rope_table.h"
#include "model/row_kernel.h"

namespace metamath::model {

namespace {

using kernels::GemmNT;
using kernels::Tiles;
using kernels::WeightType;

std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> on{[] {
    const char* e = std::getenv("METAMATH_FUSED_DECODE");
    return !(e && std::string(e) == "0");
  }()};
  return on;
}

std::atomic<int64_t> steps_run{0};
std::atomic<int64_t> total_ns{0}, region_ns{0};  // fused_decode_times()

// One weight of a product y = x W^T (+ b), and the tile set the planner chose for it.
struct Product {
  const void* w = nullptr;
  const float* scale = nullptr;  // int8 weights
  const void* b = nullptr;
  bool b_bf16 = false;
  int64_t N = 0, K = 0;
  WeightType type = WeightType::f32;
  Tiles tiles = Tiles::avx2;
};

// Activations in the forms the tiles read: float, bf16 bits (bf16 models), and int8 blocks
// (kernels::quantize_rows_q8, for the int8-dot tiles of q8-dot models; a thread's own copy).
struct Act {
  float* f = nullptr;
  uint16_t* h = nullptr;
  int64_t ld = 0;  // elements per row
  int8_t* q = nullptr;
  float* qs = nullptr;
  int64_t ldq = 0, ldqs = 0;
};

// One product of a phase: its output row m goes to y + m * ldy.
struct Job {
  Product p;
  Act x;
  float* y = nullptr;
  int64_t ldy = 0;
};

Product product_of(const at::Tensor& w, const at::Tensor& b, const at::Tensor& scale, Tiles t) {
  Product p;
  p.w = w.data_ptr();
  p.N = w.size(0);
  p.K = w.size(1);
  p.type = w.scalar_type() == at::kChar       ? WeightType::i8
           : w.scalar_type() == at::kBFloat16 ? WeightType::bf16
                                              : WeightType::f32;
  p.scale = scale.defined() ? scale.data_ptr<float>() : nullptr;
  p.b = b.defined() ? b.data_ptr() : nullptr;
  p.b_bf16 = b.defined() && b.scalar_type() == at::kBFloat16;
  p.tiles = t;
  return p;
}

void multiply(const Job& j, int64_t M, int64_t n0, int64_t n1) {
  GemmNT a;
  a.x = j.p.tiles == Tiles::avx512_bf16 ? static_cast<const void*>(j.x.h) : j.x.f;
  a.ldx = j.x.ld;
  if (kernels::quantizes_activations(j.p.tiles)) {
    a.xq = j.x.q;
    a.ldxq = j.x.ldq;
    a.xq_scale = j.x.qs;
    a.ldxq_scale = j.x.ldqs;
  }
  a.M = M;
  a.K = j.p.K;
  a.N = j.p.N;
  a.w = j.p.w;
  a.w_type = j.p.type;
  a.w_scale = j.p.scale;
  a.b = j.p.b;
  a.b_bf16 = j.p.b_bf16;
  a.y = j.y;
  a.ldy = j.ldy;
  kernels::gemm_nt_columns(a, j.p.tiles, n0, n1);
}

// The products' output columns in chunks claimed one at a time from `next`, so a thread that
// starts late (a busy core) takes fewer. Side by side: each chunk is one product's columns (q, k
// and v); together: the same columns of every product, then done(n0, n1) (gate and up, whose
// outputs combine column by column).
// bounds[j]: job j's chunks (kernels::column_bounds), the same for every layer, so Step keeps
// them for the whole step (chunk_bounds).
void run_side_by_side(std::atomic<int64_t>& next, const Job* jobs, int n, int64_t M,
                      const std::vector<int64_t>* bounds) {
  int64_t count[3], total = 0;
  for (int j = 0; j < n; ++j) {
    count[j] = static_cast<int64_t>(bounds[j].size()) - 1;
    total += count[j];
  }
  for (int64_t t = next++; t < total; t = next++) {
    int j = 0;
    int64_t c = t;
    while (c >= count[j]) c -= count[j++];
    multiply(jobs[j], M, bounds[j][c], bounds[j][c + 1]);
  }
}

template <typename Done>
void run_together(std::atomic<int64_t>& next, const Job* jobs, int n, int64_t M,
                  const std::vector<int64_t>& bounds, Done&& done) {
  const int64_t total = static_cast<int64_t>(bounds.size()) - 1;
  for (int64_t t = next++; t < total; t = next++) {
    for (int j = 0; j < n; ++j) multiply(jobs[j], M, bounds[t], bounds[t + 1]);
    done(bounds[t], bounds[t + 1]);
  }
}

// The step's barrier between phases. Hand-written because libgomp's spins ~300,000 pauses
// (milliseconds) before it sleeps, which collapses on a busy machine: a waiting thread burns the
// core its partner needs. Measured with two compiler jobs beside a 2-thread q8 decode (load ~5):
// 17.7 tok/s with OpenMP's barrier, 28.5-30.8 with this one, 51.0 with OMP_WAIT_POLICY=passive
// (which also quiets libgomp's own waits) and 54.0 on one thread. This one spins ~20 us (a quiet
// machine's phases end within that of each other), then sleeps on the generation word
// (std::atomic::wait: a futex on Linux).
class Barrier {
 public:
  explicit Barrier(int threads) : threads_(threads) {}

  void wait() {
    const uint32_t gen = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == threads_ - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.store(gen + 1, std::memory_order_release);
      generation_.notify_all();
      return;
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
    for (int i = 1; generation_.load(std::memory_order_acquire) == gen; ++i) {
      _mm_pause();
      if (i % 64 == 0 && std::chrono::steady_clock::now() > until) {
        while (generation_.load(std::memory_order_acquire) == gen) generation_.wait(gen);
        return;
      }
    }
  }

 private:
  const int threads_;
  std::atomic<int> arrived_{0};
  std::atomic<uint32_t> generation_{0};
};

// A run of flags, all false until written, kept from step to step (grown when too short).
class Flags {
 public:
  bool* at_least(int64_t n) {
    if (n > size_) {
      flags_ = std::make_unique<bool[]>(n);  // value-initialised: false
      size_ = n;
    }
    return flags_.get();
  }

 private:
  std::unique_ptr<bool[]> flags_;
  int64_t size_ = 0;
};

// Everything one step shares. Buffers hold values of the model dtype as floats (bf16 models:
// every value already rounded to bf16), plus bf16 copies where the bf16-dot tiles read them.
// Each thread keeps one Step (fused_decode's thread_local), so its buffers are allocated once
// and only grown: every value a step reads it has written first (the residual stream from the
// embedding, each product's and the attention's outputs before their use, the RoPE rows).
struct Step {
  const Model* m = nullptr;
  const ModelConfig* c = nullptr;
  int64_t B = 0, H = 0, nh = 0, nkv = 0, d = 0, g = 0, inter = 0, V = 0, max_len = 0;
  bool bf16 = false;
  float eps = 0, scale = 1;
  int threads = 1;
  Isa attention_isa = Isa::avx2;
  std::vector<int64_t> slots, past;
  Tiles t_q{}, t_k{}, t_v{}, t_o{}, t_gate{}, t_up{}, t_down{}, t_head{};
  // Each phase's column chunks (kernels::column_bounds): q, k and v side by side, then o,
  // gate and up together, down, and the lm_head.
  std::vector<int64_t> cols_qkv[3], cols_o, cols_gate_up, cols_down, cols_head;
  std::vector<float> x, qkv, attn_f, y, act_f, gate, up, cos, sin;
  std::vector<uint16_t> attn_h, act_h;
  Flags no_hidden_flags;                             // never written: all false
  const bool* no_hidden = nullptr;                   // max L entries
  Flags window_flags;                                // row b's at b * max L
  std::vector<const bool*> window;                   // per row: keys outside the sliding window
  std::unique_ptr<std::atomic<int64_t>[]> counters;  // one per phase (zeroed each step)
  int64_t counters_size = 0;
  std::optional<Barrier> barrier;  // for the parallel region's team
  float* logits = nullptr;         // [B, V]
};

// Per-thread buffers: the normed rows (float and bf16), one KV head's rotated queries, and the
// attention kernel's scratch.
struct Private {
  std::vector<float> xn_f, attn_scratch;
  std::vector<uint16_t> xn_h;
  std::vector<float> q_f;
  std::vector<uint16_t> q_h;
  std::vector<int8_t> xq;  // the int8 form of the input of the phase at hand
  std::vector<float> xqs;
};

// a with its int8 form in p (rows quantized here) when any of the tiles reads one.
Act quantized_for(const Step& s, Act a, int64_t K, std::initializer_list<Tiles> tiles, Private& p) {
  bool needed = false;
  for (Tiles t : tiles) needed = needed || kernels::quantizes_activations(t);
  if (!needed) return a;
  a.ldq = kernels::q8_row_bytes(K);
  a.ldqs = kernels::q8_row_blocks(K);
  p.xq.resize(s.B * a.ldq);
  p.xqs.resize(s.B * a.ldqs);
  kernels::quantize_rows_q8(a.f, false, a.ld, s.B, K, p.xq.data(), a.ldq, p.xqs.data(), a.ldqs);
  a.q = p.xq.data();
  a.qs = p.xqs.data();
  return a;
}

// RMSNorm of the step's rows into p: f32 math, rounded to the dtype, times the weight in the
// dtype (the layered pass's rms_norm).
void norm_rows(const Step& s, const float* x, const void* w, Private& p) {
  for (int64_t b = 0; b < s.B; ++b)
    kernels::rms_norm_row(x + b * s.H, s.H, w, s.bf16, s.eps, p.xn_f.data() + b * s.H,
                          s.bf16 ? p.xn_h.data() + b * s.H : nullptr);
}

// Appends row b's key and value for KV head h to the cache of layer l, rotates the query heads of
// the group and attends: attn rows (b, heads h*g ... h*g+g-1).
void attend_group(Step& s, int64_t l, int64_t b, int64_t h, Private& p, KVCache& cache) {
  const int64_t d = s.d, qkv_ld = (s.nh + 2 * s.nkv) * d, L = s.past[b] + 1;
  float* row = s.qkv.data() + b * qkv_ld;
  float* k = row + (s.nh + h) * d;
  float* v = row + (s.nh + s.nkv + h) * d;
  const float* cos = s.cos.data() + b * d;
  const float* sin = s.sin.data() + b * d;
  const int64_t at = ((s.slots[b] * s.nkv + h) * s.max_len + s.past[b]) * d;
  const int64_t base = (s.slots[b] * s.nkv + h) * s.max_len * d;
  void *kc = cache.k(l).data_ptr(), *vc = cache.v(l).data_ptr();
  // The projections' outputs in the dtype (the kernels summed in f32), k rotated, both appended.
  if (s.bf16) {
    kernels::round_bf16_row(k, d, nullptr);
    kernels::rope_row(k, d, cos, sin, true);
    kernels::round_bf16_row(k, d, static_cast<uint16_t*>(kc) + at);  // already bf16: the bits
    kernels::round_bf16_row(v, d, static_cast<uint16_t*>(vc) + at);
  } else {
    kernels::rope_row(k, d, cos, sin, false);
    std::memcpy(static_cast<float*>(kc) + at, k, d * sizeof(float));
    std::memcpy(static_cast<float*>(vc) + at, v, d * sizeof(float));
  }
  for (int64_t j = 0; j < s.g; ++j) {
    float* q = row + (h * s.g + j) * d;
    if (s.bf16) {
      kernels::round_bf16_row(q, d, nullptr);
      kernels::rope_row(q, d, cos, sin, true);
      kernels::round_bf16_row(q, d, p.q_h.data() + j * d);
    } else {
      kernels::rope_row(q, d, cos, sin, false);
      std::memcpy(p.q_f.data() + j * d, q, d * sizeof(float));
    }
  }
  const int64_t head0 = (b * s.nh + h * s.g) * d;
  AttendRows a;
  a.q = s.bf16 ? static_cast<const void*>(p.q_h.data()) : p.q_f.data();
  const size_t esize = s.bf16 ? 2 : 4;
  a.k = static_cast<const char*>(kc) + base * esize;
  a.v = static_cast<const char*>(vc) + base * esize;
  a.ldk = a.ldv = d;
  a.hidden = s.c->layer_uses_sliding_window(l) ? s.window[b] : s.no_hidden;
  a.g = s.g;
  a.L = L;
  a.d = d;
  a.scale = s.scale;
  a.bf16 = s.bf16;
  a.isa = s.attention_isa;
  float* out_f = s.attn_f.data() + head0;
  uint16_t* out_h = s.bf16 ? s.attn_h.data() + head0 : nullptr;
  a.out = s.bf16 ? static_cast<void*>(out_h) : out_f;
  attend_rows(a, p.attn_scratch.data());
  if (s.bf16) kernels::widen_bf16_row(out_h, s.g * d, out_f);
}

// The residual sum x + y over columns [n0, n1) of every row (bf16: y and the sum each rounded).
void add_residual(Step& s, int64_t n0, int64_t n1) {
  for (int64_t b = 0; b < s.B; ++b)
    kernels::add_row(s.x.data() + b * s.H + n0, s.y.data() + b * s.H + n0, n1 - n0, s.bf16);
}

// act = silu(gate) * up over columns [n0, n1) of every row (bf16: rounded where libtorch rounds).
void gated(Step& s, const float* gate, const float* up, int64_t n0, int64_t n1) {
  for (int64_t b = 0; b < s.B; ++b) {
    const int64_t i = b * s.inter + n0;
    kernels::silu_mul_row(gate + i, up + i, n1 - n0, s.bf16, s.act_f.data() + i,
                          s.bf16 ? s.act_h.data() + i : nullptr);
  }
}

// One thread's share of the whole step. Nothing here throws (everything was checked before the
// parallel region, and a throw past a barrier would hang the other threads): noexcept makes a bug
// terminate instead.
void run_thread(Step& s, KVCache& cache) noexcept {
  const Model& m = *s.m;
  thread_local Private p;  // kept from step to step: only grown
  p.xn_f.resize(s.B * s.H);
  if (s.bf16) p.xn_h.resize(s.B * s.H);
  p.q_f.resize(s.g * s.d);
  if (s.bf16) p.q_h.resize(s.g * s.d);
  int64_t max_l = 1;
  for (int64_t b = 0; b < s.B; ++b) max_l = std::max(max_l, s.past[b] + 1);
  p.attn_scratch.resize(attend_rows_scratch(s.g, max_l, s.d));
  const Act xn_plain{p.xn_f.data(), p.xn_h.data(), s.H};
  const Act attn_plain{s.attn_f.data(), s.attn_h.data(), s.nh * s.d};
  const Act act_plain{s.act_f.data(), s.act_h.data(), s.inter};
  const int64_t qkv_ld = (s.nh + 2 * s.nkv) * s.d;
  int phase = 0;
  for (int64_t l = 0; l < static_cast<int64_t>(m.layers.size()); ++l) {
    const LayerWeights& W = m.layers[l];
    norm_rows(s, s.x.data(), W.input_norm.data_ptr(), p);
    const Act xn = quantized_for(s, xn_plain, s.H, {s.t_q, s.t_k, s.t_v}, p);
    const Job qkv[3] = {
        {product_of(W.q_w, W.q_b, W.q_s, s.t_q), xn, s.qkv.data(), qkv_ld},
        {product_of(W.k_w, W.k_b, W.k_s, s.t_k), xn, s.qkv.data() + s.nh * s.d, qkv_ld},
        {product_of(W.v_w, W.v_b, W.v_s, s.t_v), xn, s.qkv.data() + (s.nh + s.nkv) * s.d, qkv_ld}};
    run_side_by_side(s.counters[phase++], qkv, 3, s.B, s.cols_qkv);
    s.barrier->wait();
    std::atomic<int64_t>& heads = s.counters[phase++];
    for (int64_t t = heads++; t < s.B * s.nkv; t = heads++)
      attend_group(s, l, t / s.nkv, t % s.nkv, p, cache);
    s.barrier->wait();
    const Act attn = quantized_for(s, attn_plain, s.nh * s.d, {s.t_o}, p);
    const Job o{product_of(W.o_w, W.o_b, W.o_s, s.t_o), attn, s.y.data(), s.H};
    run_together(s.counters[phase++], &o, 1, s.B, s.cols_o,
                 [&](int64_t n0, int64_t n1) { add_residual(s, n0, n1); });
    s.barrier->wait();
    norm_rows(s, s.x.data(), W.post_norm.data_ptr(), p);
    const Act xn2 = quantized_for(s, xn_plain, s.H, {s.t_gate, s.t_up}, p);
    const Job gu[2] = {
        {product_of(W.gate_w, W.gate_b, W.gate_s, s.t_gate), xn2, s.gate.data(), s.inter},
        {product_of(W.up_w, W.up_b, W.up_s, s.t_up), xn2, s.up.data(), s.inter}};
    run_together(s.counters[phase++], gu, 2, s.B, s.cols_gate_up,
                 [&](int64_t n0, int64_t n1) { gated(s, s.gate.data(), s.up.data(), n0, n1); });
    s.barrier->wait();
    const Act act = quantized_for(s, act_plain, s.inter, {s.t_down}, p);
    const Job down{product_of(W.down_w, W.down_b, W.down_s, s.t_down), act, s.y.data(), s.H};
    run_together(s.counters[phase++], &down, 1, s.B, s.cols_down,
                 [&](int64_t n0, int64_t n1) { add_residual(s, n0, n1); });
    s.barrier->wait();
  }
  norm_rows(s, s.x.data(), m.final_norm.data_ptr(), p);
  const Act xn = quantized_for(s, xn_plain, s.H, {s.t_head}, p);
  const Job head{product_of(m.lm_head, at::Tensor(), m.lm_head_scale, s.t_head), xn, s.logits, s.V};
  run_together(s.counters[phase++], &head, 1, s.B, s.cols_head, [&](int64_t n0, int64_t n1) {
    if (s.bf16)
      for (int64_t b = 0; b < s.B; ++b)
        kernels::round_bf16_row(s.logits + b * s.V + n0, n1 - n0, nullptr);
  });
}

}  // namespace

bool set_fused_decode(bool on) { return enabled_flag().exchange(on); }
bool fused_decode_enabled() { return enabled_flag().load(); }
int64_t fused_decode_steps() { return steps_run.load(); }
FusedDecodeTimes fused_decode_times() {
  return {steps_run.load(), total_ns.load() * 1e-9, region_ns.load() * 1e-9};
}

namespace {

// The rows of a regular decode step (see decode.h).
struct Rows {
  int64_t B = 0;
  int64_t ids[kFusedMaxRows] = {}, slots[kFusedMaxRows] = {}, past[kFusedMaxRows] = {};
};

// mask.ne(0).all(), read in place where the mask is a contiguous CPU tensor of a usual dtype
// (a float NaN counts as nonzero, as ne(0) has it).
template <typename T>
bool none_zero(const at::Tensor& mask) {
  const T* p = mask.data_ptr<T>();
  return std::all_of(p, p + mask.numel(), [](T v) { return v != T(0); });
}
bool all_nonzero(const at::Tensor& mask) {
  if (mask.is_contiguous() && mask.layout() == at::kStrided) switch (mask.scalar_type()) {
      case at::kLong:
        return none_zero<int64_t>(mask);
      case at::kInt:
        return none_zero<int32_t>(mask);
      case at::kBool:
        return none_zero<bool>(mask);
      case at::kFloat:
        return none_zero<float>(mask);
      default:
        break;
    }
  return mask.ne(0).all().item<bool>();
}

// The ids [B, 1] as int64 (read in place for int64 and int32 ids, else converted).
void read_ids(const at::Tensor& ids, int64_t B, int64_t* out) {
  const int64_t stride = ids.stride(0);
  if (ids.scalar_type() == at::kLong) {
    for (int64_t b = 0; b < B; ++b) out[b] = ids.data_ptr<int64_t>()[b * stride];
  } else if (ids.scalar_type() == at::kInt) {
    for (int64_t b = 0; b < B; ++b) out[b] = ids.data_ptr<int32_t>()[b * stride];
  } else {
    const at::Tensor ids64 = ids.to(at::kLong).contiguous();
    std::copy_n(ids64.data_ptr<int64_t>(), B, out);
  }
}

// The rows of a regular decode step, or nullopt for anything else.
std::optional<Rows> regular_rows(const Model& m, const ForwardInput& in, const KVCache& cache) {
  const at::Tensor& ids = in.input_ids;
  if (!ids.defined() || ids.dim() != 2 || ids.size(1) != 1 || ids.size(0) < 1 ||
      ids.size(0) > kFusedMaxRows || !ids.is_cpu() || at::isFloatingType(ids.scalar_type()) ||
      ids.scalar_type() == at::kBool || in.position_ids.defined() || in.segment_ids.defined())
    return std::nullopt;
  Rows r;
  r.B = ids.size(0);
  if (in.attention_mask.defined() &&
      (!in.attention_mask.is_cpu() || in.attention_mask.sizes() != ids.sizes() ||
       !all_nonzero(in.attention_mask)))
    return std::nullopt;
  if (!in.slots.empty() && static_cast<int64_t>(in.slots.size()) != r.B) return std::nullopt;
  read_ids(ids, r.B, r.ids);
  for (int64_t b = 0; b < r.B; ++b) {
    const int64_t slot = in.slots.empty() ? b : in.slots[b];
    if (r.ids[b] < 0 || r.ids[b] >= m.config().vocab_size || slot < 0 ||
        slot >= cache.num_slots() || std::find(r.slots, r.slots + b, slot) != r.slots + b ||
        cache.length(slot) + 1 > cache.max_len())
      return std::nullopt;
    r.slots[b] = slot;
    r.past[b] = cache.length(slot);
  }
  return r;
}

// Whether the model and cache suit the fused step at all (before looking at the rows).
bool model_applies(const Model& m, KVCache& cache, LogitsMode mode) {
  const ModelConfig& c = m.config();
  const at::ScalarType t = m.dtype();
  if (!fused_decode_enabled() || !m.device().is_cpu() || m.adapter() != nullptr ||
      (t != at::kFloat && t != at::kBFloat16) || kernel_isa() == Isa::scalar ||
      mode == LogitsMode::None || c.head_dim > 512 || c.head_dim % 2 != 0 || m.layers.empty())
    return false;
  if (at::GradMode::is_enabled() && (m.embed_tokens.requires_grad() || m.lm_head.requires_grad() ||
                                     m.layers[0].q_w.requires_grad()))
    return false;
  for (int64_t l = 0; l < static_cast<int64_t>(m.layers.size()); ++l)
    for (const at::Tensor* kv : {&cache.k(l), &cache.v(l)})
      if (!kv->is_cpu() || kv->scalar_type() != t || !kv->is_contiguous()) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Tile sets. The planner (model/plan.h, through linear_choice) answers each of the step's eight
// products; asking costs ~60 us a step (a key string formatted and looked up per product, plus
// the three example inputs it is asked with), so the answers are kept per thread under
// everything they depend on: the planner's generation (mode, forced candidate, entries), the
// kernel level, the thread count, autograd, and each product's tensors as linear_choice reads
// them (dtype, shape, layout, contiguity). A new model with other weights, quantize_q8, a
// forced candidate or a re-measured plan therefore asks again.

constexpr int kProducts = 8;  // q, k, v, o, gate, up, down, lm_head

// A product's weight, bias and scales, and which activation it reads (0: hidden, 1: attention
// output, 2: intermediate).
struct ProductTensors {
  const at::Tensor *w, *b, *scale;
  int x;
};
std::array<ProductTensors, kProducts> products_of(const Model& m) {
  static const at::Tensor none;
  const LayerWeights& W = m.layers[0];
  return {{{&W.q_w, &W.q_b, &W.q_s, 0},
           {&W.k_w, &W.k_b, &W.k_s, 0},
           {&W.v_w, &W.v_b, &W.v_s, 0},
           {&W.o_w, &W.o_b, &W.o_s, 1},
           {&W.gate_w, &W.gate_b, &W.gate_s, 0},
           {&W.up_w, &W.up_b, &W.up_s, 0},
           {&W.down_w, &W.down_b, &W.down_s, 2},
           {&m.lm_head, &none, &m.lm_head_scale, 0}}};
}

// What linear_choice reads of a tensor (linear.cpp fast_call, candidates_for, plan_key; a
// dimension past the second makes it decline whatever the sizes).
struct TensorTraits {
  bool defined = false, cpu = false, strided = false, contiguous = false, requires_grad = false;
  at::ScalarType dtype = at::ScalarType::Undefined;
  int64_t dim = 0, size0 = 0, size1 = 0;
  bool operator==(const TensorTraits&) const = default;
};
TensorTraits traits_of(const at::Tensor& t) {
  TensorTraits r;
  if (!t.defined()) return r;
  r.defined = true;
  r.cpu = t.is_cpu();
  r.strided = t.layout() == at::kStrided;
  r.contiguous = t.is_contiguous();
  r.requires_grad = t.requires_grad();
  r.dtype = t.scalar_type();
  r.dim = t.dim();
  r.size0 = r.dim > 0 ? t.size(0) : 0;
  r.size1 = r.dim > 1 ? t.size(1) : 0;
  return r;
}

// Everything the eight answers depend on.
struct TileKey {
  uint64_t generation = 0;
  Isa isa = Isa::scalar;
  int threads = 0;
  bool in_parallel_region = false, grad_mode = false, int8_activations = false;
  at::ScalarType x_dtype = at::ScalarType::Undefined;
  int64_t B = 0, x_width[3] = {};
  TensorTraits tensors[kProducts][3];
  bool operator==(const TileKey&) const = default;
};
TileKey tile_key(const Model& m, const Step& s) {
  TileKey k;
  k.generation = plan_generation();  // first: a change after this read is seen next step
  k.isa = kernel_isa();
  k.threads = at::get_num_threads();
  k.in_parallel_region = at::in_parallel_region();
  k.grad_mode = at::GradMode::is_enabled();
  k.int8_activations = m.int8_activations();
  k.x_dtype = m.dtype();
  k.B = s.B;
  k.x_width[0] = s.H;
  k.x_width[1] = s.nh * s.d;
  k.x_width[2] = s.inter;
  const std::array<ProductTensors, kProducts> p = products_of(m);
  for (int i = 0; i < kProducts; ++i) {
    k.tensors[i][0] = traits_of(*p[i].w);
    k.tensors[i][1] = traits_of(*p[i].b);
    k.tensors[i][2] = traits_of(*p[i].scale);
  }
  return k;
}

using TileSets = std::optional<std::array<Tiles, kProducts>>;

// The planner's tile sets for the step's products, or nullopt when it picks an implementation
// that is not one of our tiles for any of them (the layered pass runs it then).
TileSets ask_planner(const Model& m, const Step& s) {
  const at::ScalarType xt = m.dtype();
  const at::Tensor x[3] = {at::zeros({s.B, s.H}, xt), at::zeros({s.B, s.nh * s.d}, xt),
                           at::zeros({s.B, s.inter}, xt)};
  std::array<Tiles, kProducts> tiles{};
  const std::array<ProductTensors, kProducts> p = products_of(m);
  for (int i = 0; i < kProducts; ++i) {
    if (!p[i].w->is_contiguous() || (p[i].b->defined() && !p[i].b->is_contiguous()))
      return std::nullopt;
    const std::optional<Tiles> t = candidate_tiles(
        linear_choice(x[p[i].x], *p[i].w, *p[i].b, *p[i].scale, m.int8_activations()));
    if (!t) return std::nullopt;
    tiles[i] = *t;
  }
  return tiles;
}

// The last few keys met on this thread and their answers.
class TileCache {
 public:
  const TileSets* find(const TileKey& key) const {
    for (int i = 0; i < used_; ++i)
      if (entries_[i].first == key) return &entries_[i].second;
    return nullptr;
  }
  void put(const TileKey& key, const TileSets& tiles) {
    entries_[next_] = {key, tiles};
    next_ = (next_ + 1) % kSize;
    used_ = std::min(used_ + 1, kSize);
  }

 private:
  static constexpr int kSize = 8;
  std::array<std::pair<TileKey, TileSets>, kSize> entries_;
  int used_ = 0, next_ = 0;
};

bool plan_tiles(const Model& m, Step& s) {
  thread_local TileCache cache;
  const TileKey key = tile_key(m, s);
  const TileSets* kept = cache.find(key);
  const TileSets tiles = kept ? *kept : ask_planner(m, s);
  if (!kept) cache.put(key, tiles);
  if (!tiles) return false;
  const std::array<Tiles, kProducts>& t = *tiles;
  s.t_q = t[0];
  s.t_k = t[1];
  s.t_v = t[2];
  s.t_o = t[3];
  s.t_gate = t[4];
  s.t_up = t[5];
  s.t_down = t[6];
  s.t_head = t[7];
  return true;
}

// ---------------------------------------------------------------------------------------------
// The step's other inputs.

// cos and sin of each row's position [B, d], the layered pass's tables (model.h rope_cos_sin):
// copied from the kept table where it reproduces them (model/rope_table.h), else computed.
void rope_tables(Step& s, const at::Tensor& inv_freq) {
  s.cos.resize(s.B * s.d);
  s.sin.resize(s.B * s.d);
  const at::ScalarType dtype = s.bf16 ? at::kBFloat16 : at::kFloat;
  if (const std::shared_ptr<RopeTable> table = rope_table(inv_freq, dtype);
      table && table->head_dim() == s.d && table->rows_exact(s.B)) {
    table->rows(s.past.data(), s.B, s.cos.data(), s.sin.data());
    return;
  }
  auto [cos, sin] = rope_cos_sin(at::tensor(s.past, at::kLong), inv_freq, dtype);
  const at::Tensor c = cos.to(at::kFloat).contiguous(), sn = sin.to(at::kFloat).contiguous();
  std::copy_n(c.data_ptr<float>(), s.B * s.d, s.cos.begin());
  std::copy_n(sn.data_ptr<float>(), s.B * s.d, s.sin.begin());
}

// The residual stream starts as each row's token embedding, widened to float (exact), read in
// place from a float or bf16 table.
void embed_rows(const Model& m, const Rows& r, Step& s) {
  const at::Tensor& e = m.embed_tokens;
  s.x.resize(s.B * s.H);
  const bool in_place = e.is_cpu() && e.layout() == at::kStrided && e.dim() == 2 &&
                        e.size(0) >= s.V && e.size(1) == s.H && (e.stride(1) == 1 || s.H == 1) &&
                        (e.scalar_type() == at::kFloat || e.scalar_type() == at::kBFloat16);
  if (!in_place) {
    const at::Tensor emb = e.index_select(0, at::tensor(at::IntArrayRef(r.ids, r.B), at::kLong));
    const at::Tensor embf = emb.to(at::kFloat).contiguous();
    std::copy_n(embf.data_ptr<float>(), s.B * s.H, s.x.begin());
    return;
  }
  for (int64_t b = 0; b < s.B; ++b) {
    float* x = s.x.data() + b * s.H;
    if (e.scalar_type() == at::kFloat) {
      std::copy_n(e.data_ptr<float>() + r.ids[b] * e.stride(0), s.H, x);
    } else {
      kernels::widen_bf16_row(static_cast<const uint16_t*>(e.data_ptr()) + r.ids[b] * e.stride(0),
                              s.H, x);
    }
  }
}

// Each phase's column chunks for this step's rows and threads: computed once here instead of by
// every thread in every layer (the layers' shapes are the same).
void chunk_bounds(Step& s) {
  const int64_t kv = s.nkv * s.d;
  s.cols_qkv[0] = kernels::column_bounds(s.nh * s.d, s.B, s.H, s.threads);
  s.cols_qkv[1] = kernels::column_bounds(kv, s.B, s.H, s.threads);
  s.cols_qkv[2] = s.cols_qkv[1];
  s.cols_o = kernels::column_bounds(s.H, s.B, s.nh * s.d, s.threads);
  s.cols_gate_up = kernels::column_bounds(s.inter, s.B, 2 * s.H, s.threads);
  s.cols_down = kernels::column_bounds(s.H, s.B, s.inter, s.threads);
  s.cols_head = kernels::column_bounds(s.V, s.B, s.H, s.threads);
}

// The step's buffers sized for its rows (reallocated only when they grow past what an earlier
// step had), the rows' attention masks, and the phase counters zeroed.
void size_buffers(const Model& m, Step& s) {
  s.qkv.resize(s.B * (s.nh + 2 * s.nkv) * s.d);
  s.attn_f.resize(s.B * s.nh * s.d);
  s.attn_h.resize(s.bf16 ? s.B * s.nh * s.d : 0);
  s.y.resize(s.B * s.H);
  s.act_f.resize(s.B * s.inter);
  s.act_h.resize(s.bf16 ? s.B * s.inter : 0);
  s.gate.resize(s.B * s.inter);
  s.up.resize(s.B * s.inter);
  int64_t max_l = 1;
  for (int64_t p : s.past) max_l = std::max(max_l, p + 1);
  s.no_hidden = s.no_hidden_flags.at_least(max_l);
  s.window.clear();
  if (const std::optional<int64_t>& w = s.c->sliding_window) {
    bool* flags = s.window_flags.at_least(s.B * max_l);
    for (int64_t b = 0; b < s.B; ++b) {
      // The query sits at cache index past[b]; key j is hidden when past[b] - j >= window.
      bool* row = flags + b * max_l;
      for (int64_t j = 0; j <= s.past[b]; ++j) row[j] = s.past[b] - j >= *w;
      s.window.push_back(row);
    }
  }
  const int64_t phases = 5 * static_cast<int64_t>(m.layers.size()) + 1;
  if (phases > s.counters_size) {
    s.counters = std::make_unique<std::atomic<int64_t>[]>(phases);
    s.counters_size = phases;
  }
  for (int64_t i = 0; i < phases; ++i) s.counters[i] = 0;
}

// The step's logits [B, 1, V]: this thread's previous step's tensor again when nothing else
// holds it any more (a decode loop that has read its tokens), else a new one. Saves the
// allocation, which in a loop that makes no other libtorch call is the first one after the
// layers and finds the dispatcher's code and data evicted by the streamed weights (~20 us).
at::Tensor logits_tensor(int64_t B, int64_t V) {
  thread_local at::Tensor kept;
  if (kept.defined() && kept.use_count() == 1 && kept.weak_use_count() == 1 &&
      kept.storage().use_count() == 1 && kept.size(0) == B && kept.size(2) == V &&
      kept.is_inference() == c10::InferenceMode::is_enabled())
    return kept;
  kept = at::empty({B, 1, V}, at::kFloat);
  return kept;
}

using Clock = std::chrono::steady_clock;
int64_t ns_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
}

}  // namespace

at::Tensor fused_decode(const Model& m, const ForwardInput& in, KVCache& cache, LogitsMode mode,
                        const at::Tensor& inv_freq) {
  const Clock::time_point start = Clock::now();
  if (!model_applies(m, cache, mode)) return {};
  const std::optional<Rows> rows = regular_rows(m, in, cache);
  if (!rows) return {};
  const ModelConfig& c = m.config();
  thread_local Step step;  // its buffers kept from step to step
  Step& s = step;
  s.m = &m;
  s.c = &c;
  s.B = rows->B;
  s.H = c.hidden_size;
  s.nh = c.num_attention_heads;
  s.nkv = c.num_key_value_heads;
  s.d = c.head_dim;
  s.g = s.nh / s.nkv;
  s.inter = c.intermediate_size;
  s.V = c.vocab_size;
  s.max_len = cache.max_len();
  s.bf16 = m.dtype() == at::kBFloat16;
  s.eps = static_cast<float>(c.rms_norm_eps);
  s.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.d)));
  if (!plan_tiles(m, s)) return {};
  s.threads = at::in_parallel_region() ? 1 : std::max(1, at::get_num_threads());
  chunk_bounds(s);
  s.attention_isa = attend_rows_isa(s.g);
  s.slots.assign(rows->slots, rows->slots + s.B);
  s.past.assign(rows->past, rows->past + s.B);
  rope_tables(s, inv_freq);
  embed_rows(m, *rows, s);
  size_buffers(m, s);
  at::Tensor logits = logits_tensor(s.B, s.V);
  s.logits = logits.data_ptr<float>();

  const Clock::time_point region = Clock::now();
#ifdef _OPENMP
#pragma omp parallel num_threads(s.threads)
  {
#pragma omp single
    s.barrier.emplace(omp_get_num_threads());  // OpenMP may give fewer threads than asked
    run_thread(s, cache);
  }
#else
  s.barrier.emplace(1);
  run_thread(s, cache);
#endif
  region_ns += ns_since(region);

  for (int64_t b = 0; b < s.B; ++b) cache.set_length(s.slots[b], s.past[b] + 1);
  ++steps_run;
  total_ns += ns_since(start);
  return logits;
}

}  // namespace metamath::model
