#include "model/decode.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/BFloat16.h>
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
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

inline float round_bf16(float f) { return static_cast<float>(c10::BFloat16(f)); }
inline uint16_t bf16_bits(float f) { return c10::BFloat16(f).x; }

// A model-dtype vector read as floats (norm weights).
struct Vec {
  const void* p = nullptr;
  bool bf16 = false;
  float operator[](int64_t i) const {
    return bf16 ? static_cast<float>(static_cast<const c10::BFloat16*>(p)[i])
                : static_cast<const float*>(p)[i];
  }
};

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
void run_side_by_side(std::atomic<int64_t>& next, const Job* jobs, int n, int64_t M, int threads) {
  std::vector<int64_t> bounds[3];
  int64_t count[3], total = 0;
  for (int j = 0; j < n; ++j) {
    bounds[j] = kernels::column_bounds(jobs[j].p.N, M, jobs[j].p.K, threads);
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
void run_together(std::atomic<int64_t>& next, const Job* jobs, int n, int64_t M, int threads,
                  Done&& done) {
  const std::vector<int64_t> bounds =
      kernels::column_bounds(jobs[0].p.N, M, jobs[0].p.K * n, threads);
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

// Everything one step shares. Buffers hold values of the model dtype as floats (bf16 models:
// every value already rounded to bf16), plus bf16 copies where the bf16-dot tiles read them.
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
  std::vector<float> x, qkv, attn_f, y, act_f, cos, sin;
  std::vector<uint16_t> attn_h, act_h;
  std::unique_ptr<bool[]> no_hidden;                 // max L entries, all false
  std::vector<std::unique_ptr<bool[]>> window;       // per row: keys outside the sliding window
  std::unique_ptr<std::atomic<int64_t>[]> counters;  // one per phase
  std::optional<Barrier> barrier;                    // for the parallel region's team
  float* logits = nullptr;                           // [B, V]
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
void norm_rows(const Step& s, const float* x, Vec w, Private& p) {
  for (int64_t b = 0; b < s.B; ++b) {
    const float* xr = x + b * s.H;
    double sum = 0;
    for (int64_t i = 0; i < s.H; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float r = 1.0f / std::sqrt(static_cast<float>(sum / s.H) + s.eps);
    float* o = p.xn_f.data() + b * s.H;
    for (int64_t i = 0; i < s.H; ++i) {
      o[i] = s.bf16 ? round_bf16(w[i] * round_bf16(xr[i] * r)) : w[i] * (xr[i] * r);
      if (s.bf16) p.xn_h[b * s.H + i] = bf16_bits(o[i]);
    }
  }
}

// RoPE (rotate-half) of one head's d values in place, at row b's position.
void rope(const Step& s, int64_t b, float* v) {
  const int64_t half = s.d / 2;
  const float* c = s.cos.data() + b * s.d;
  const float* sn = s.sin.data() + b * s.d;
  float tmp[512];  // head_dim <= 512 (checked before the step)
  for (int64_t i = 0; i < s.d; ++i) {
    const float rot = i < half ? -v[i + half] : v[i - half];
    tmp[i] = s.bf16 ? round_bf16(round_bf16(v[i] * c[i]) + round_bf16(rot * sn[i]))
                    : v[i] * c[i] + rot * sn[i];
  }
  std::memcpy(v, tmp, s.d * sizeof(float));
}

// Appends row b's key and value for KV head h to the cache of layer l, rotates the query heads of
// the group and attends: attn rows (b, heads h*g ... h*g+g-1).
void attend_group(Step& s, int64_t l, int64_t b, int64_t h, Private& p, KVCache& cache) {
  const int64_t d = s.d, qkv_ld = (s.nh + 2 * s.nkv) * d, L = s.past[b] + 1;
  float* row = s.qkv.data() + b * qkv_ld;
  float* k = row + (s.nh + h) * d;
  float* v = row + (s.nh + s.nkv + h) * d;
  if (s.bf16)  // the projections' outputs in the dtype (the kernels summed in f32)
    for (int64_t i = 0; i < d; ++i) {
      k[i] = round_bf16(k[i]);
      v[i] = round_bf16(v[i]);
    }
  rope(s, b, k);
  const int64_t at = ((s.slots[b] * s.nkv + h) * s.max_len + s.past[b]) * d;
  const int64_t base = (s.slots[b] * s.nkv + h) * s.max_len * d;
  void *kc = cache.k(l).data_ptr(), *vc = cache.v(l).data_ptr();
  for (int64_t i = 0; i < d; ++i) {
    if (s.bf16) {
      static_cast<uint16_t*>(kc)[at + i] = bf16_bits(k[i]);
      static_cast<uint16_t*>(vc)[at + i] = bf16_bits(v[i]);
    } else {
      static_cast<float*>(kc)[at + i] = k[i];
      static_cast<float*>(vc)[at + i] = v[i];
    }
  }
  for (int64_t j = 0; j < s.g; ++j) {
    float* q = row + (h * s.g + j) * d;
    if (s.bf16)
      for (int64_t i = 0; i < d; ++i) q[i] = round_bf16(q[i]);
    rope(s, b, q);
    for (int64_t i = 0; i < d; ++i) {
      if (s.bf16)
        p.q_h[j * d + i] = bf16_bits(q[i]);
      else
        p.q_f[j * d + i] = q[i];
    }
  }
  const int64_t head0 = (b * s.nh + h * s.g) * d;
  AttendRows a;
  a.q = s.bf16 ? static_cast<const void*>(p.q_h.data()) : p.q_f.data();
  const size_t esize = s.bf16 ? 2 : 4;
  a.k = static_cast<const char*>(kc) + base * esize;
  a.v = static_cast<const char*>(vc) + base * esize;
  a.ldk = a.ldv = d;
  a.hidden = s.c->layer_uses_sliding_window(l) ? s.window[b].get() : s.no_hidden.get();
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
  if (s.bf16)
    for (int64_t i = 0; i < s.g * d; ++i)
      out_f[i] = static_cast<float>(c10::BFloat16(out_h[i], c10::BFloat16::from_bits()));
}

// The residual sum x + y over columns [n0, n1) of every row (bf16: y and the sum each rounded).
void add_residual(Step& s, int64_t n0, int64_t n1) {
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t n = n0; n < n1; ++n) {
      float& x = s.x[b * s.H + n];
      x = s.bf16 ? round_bf16(x + round_bf16(s.y[b * s.H + n])) : x + s.y[b * s.H + n];
    }
}

// act = silu(gate) * up over columns [n0, n1) of every row (bf16: rounded where libtorch rounds).
void gated(Step& s, const float* gate, const float* up, int64_t n0, int64_t n1) {
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t i = b * s.inter + n;
      float a;
      if (s.bf16) {
        const float gq = round_bf16(gate[i]), uq = round_bf16(up[i]);
        a = round_bf16(round_bf16(gq / (1.0f + std::exp(-gq))) * uq);
        s.act_h[i] = bf16_bits(a);
      } else {
        a = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
      }
      s.act_f[i] = a;
    }
}

// One thread's share of the whole step. Nothing here throws (everything was checked before the
// parallel region, and a throw past a barrier would hang the other threads): noexcept makes a bug
// terminate instead.
void run_thread(Step& s, KVCache& cache, std::vector<float>& gate,
                std::vector<float>& up) noexcept {
  const Model& m = *s.m;
  Private p;
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
    norm_rows(s, s.x.data(), Vec{W.input_norm.data_ptr(), s.bf16}, p);
    const Act xn = quantized_for(s, xn_plain, s.H, {s.t_q, s.t_k, s.t_v}, p);
    const Job qkv[3] = {
        {product_of(W.q_w, W.q_b, W.q_s, s.t_q), xn, s.qkv.data(), qkv_ld},
        {product_of(W.k_w, W.k_b, W.k_s, s.t_k), xn, s.qkv.data() + s.nh * s.d, qkv_ld},
        {product_of(W.v_w, W.v_b, W.v_s, s.t_v), xn, s.qkv.data() + (s.nh + s.nkv) * s.d, qkv_ld}};
    run_side_by_side(s.counters[phase++], qkv, 3, s.B, s.threads);
    s.barrier->wait();
    std::atomic<int64_t>& heads = s.counters[phase++];
    for (int64_t t = heads++; t < s.B * s.nkv; t = heads++)
      attend_group(s, l, t / s.nkv, t % s.nkv, p, cache);
    s.barrier->wait();
    const Act attn = quantized_for(s, attn_plain, s.nh * s.d, {s.t_o}, p);
    const Job o{product_of(W.o_w, W.o_b, W.o_s, s.t_o), attn, s.y.data(), s.H};
    run_together(s.counters[phase++], &o, 1, s.B, s.threads,
                 [&](int64_t n0, int64_t n1) { add_residual(s, n0, n1); });
    s.barrier->wait();
    norm_rows(s, s.x.data(), Vec{W.post_norm.data_ptr(), s.bf16}, p);
    const Act xn2 = quantized_for(s, xn_plain, s.H, {s.t_gate, s.t_up}, p);
    const Job gu[2] = {
        {product_of(W.gate_w, W.gate_b, W.gate_s, s.t_gate), xn2, gate.data(), s.inter},
        {product_of(W.up_w, W.up_b, W.up_s, s.t_up), xn2, up.data(), s.inter}};
    run_together(s.counters[phase++], gu, 2, s.B, s.threads,
                 [&](int64_t n0, int64_t n1) { gated(s, gate.data(), up.data(), n0, n1); });
    s.barrier->wait();
    const Act act = quantized_for(s, act_plain, s.inter, {s.t_down}, p);
    const Job down{product_of(W.down_w, W.down_b, W.down_s, s.t_down), act, s.y.data(), s.H};
    run_together(s.counters[phase++], &down, 1, s.B, s.threads,
                 [&](int64_t n0, int64_t n1) { add_residual(s, n0, n1); });
    s.barrier->wait();
  }
  norm_rows(s, s.x.data(), Vec{m.final_norm.data_ptr(), s.bf16}, p);
  const Act xn = quantized_for(s, xn_plain, s.H, {s.t_head}, p);
  const Job head{product_of(m.lm_head, at::Tensor(), m.lm_head_scale, s.t_head), xn, s.logits, s.V};
  run_together(s.counters[phase++], &head, 1, s.B, s.threads, [&](int64_t n0, int64_t n1) {
    if (s.bf16)
      for (int64_t b = 0; b < s.B; ++b)
        for (int64_t n = n0; n < n1; ++n) s.logits[b * s.V + n] = round_bf16(s.logits[b * s.V + n]);
  });
}

}  // namespace

bool set_fused_decode(bool on) { return enabled_flag().exchange(on); }
bool fused_decode_enabled() { return enabled_flag().load(); }
int64_t fused_decode_steps() { return steps_run.load(); }

namespace {

// The rows of a regular decode step (see decode.h), or nullopt for anything else.
struct Rows {
  std::vector<int64_t> ids, slots, past;
};
std::optional<Rows> regular_rows(const Model& m, const ForwardInput& in, const KVCache& cache) {
  const at::Tensor& ids = in.input_ids;
  if (!ids.defined() || ids.dim() != 2 || ids.size(1) != 1 || ids.size(0) < 1 ||
      ids.size(0) > kFusedMaxRows || !ids.is_cpu() || at::isFloatingType(ids.scalar_type()) ||
      ids.scalar_type() == at::kBool || in.position_ids.defined() || in.segment_ids.defined())
    return std::nullopt;
  const int64_t B = ids.size(0);
  if (in.attention_mask.defined() &&
      (!in.attention_mask.is_cpu() || in.attention_mask.sizes() != ids.sizes() ||
       !in.attention_mask.ne(0).all().item<bool>()))
    return std::nullopt;
  if (!in.slots.empty() && static_cast<int64_t>(in.slots.size()) != B) return std::nullopt;
  Rows r;
  const at::Tensor ids64 = ids.to(at::kLong).contiguous();
  r.ids.assign(ids64.data_ptr<int64_t>(), ids64.data_ptr<int64_t>() + B);
  std::vector<bool> seen(cache.num_slots(), false);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t slot = in.slots.empty() ? b : in.slots[b];
    if (r.ids[b] < 0 || r.ids[b] >= m.config().vocab_size || slot < 0 ||
        slot >= cache.num_slots() || seen[slot] || cache.length(slot) + 1 > cache.max_len())
      return std::nullopt;
    seen[slot] = true;
    r.slots.push_back(slot);
    r.past.push_back(cache.length(slot));
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

// The planner's tile set for a product of B rows with weight w, or nullopt when it picks an
// implementation that is not one of our tiles (the layered pass runs it then).
std::optional<Tiles> planned_tiles(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                                   const at::Tensor& scale, bool int8_activations) {
  if (!w.is_contiguous() || (b.defined() && !b.is_contiguous())) return std::nullopt;
  return candidate_tiles(linear_choice(x, w, b, scale, int8_activations));
}

bool plan_tiles(const Model& m, int64_t B, Step& s) {
  const LayerWeights& W = m.layers[0];
  const at::ScalarType xt = m.dtype();
  const at::Tensor xh = at::zeros({B, s.H}, xt), xa = at::zeros({B, s.nh * s.d}, xt),
                   xi = at::zeros({B, s.inter}, xt);
  const bool q = m.int8_activations();
  std::optional<Tiles> t[8] = {planned_tiles(xh, W.q_w, W.q_b, W.q_s, q),
                               planned_tiles(xh, W.k_w, W.k_b, W.k_s, q),
                               planned_tiles(xh, W.v_w, W.v_b, W.v_s, q),
                               planned_tiles(xa, W.o_w, W.o_b, W.o_s, q),
                               planned_tiles(xh, W.gate_w, W.gate_b, W.gate_s, q),
                               planned_tiles(xh, W.up_w, W.up_b, W.up_s, q),
                               planned_tiles(xi, W.down_w, W.down_b, W.down_s, q),
                               planned_tiles(xh, m.lm_head, at::Tensor(), m.lm_head_scale, q)};
  for (const auto& x : t)
    if (!x) return false;
  s.t_q = *t[0];
  s.t_k = *t[1];
  s.t_v = *t[2];
  s.t_o = *t[3];
  s.t_gate = *t[4];
  s.t_up = *t[5];
  s.t_down = *t[6];
  s.t_head = *t[7];
  return true;
}

// cos and sin of each row's position [B, d], the layered pass's tables (model.h rope_cos_sin).
void rope_tables(Step& s, const at::Tensor& inv_freq) {
  auto [cos, sin] =
      rope_cos_sin(at::tensor(s.past, at::kLong), inv_freq, s.bf16 ? at::kBFloat16 : at::kFloat);
  const at::Tensor c = cos.to(at::kFloat).contiguous(), sn = sin.to(at::kFloat).contiguous();
  s.cos.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  s.sin.assign(sn.data_ptr<float>(), sn.data_ptr<float>() + sn.numel());
}

}  // namespace

at::Tensor fused_decode(const Model& m, const ForwardInput& in, KVCache& cache, LogitsMode mode,
                        const at::Tensor& inv_freq) {
  if (!model_applies(m, cache, mode)) return {};
  std::optional<Rows> rows = regular_rows(m, in, cache);
  if (!rows) return {};
  const ModelConfig& c = m.config();
  Step s;
  s.m = &m;
  s.c = &c;
  s.B = static_cast<int64_t>(rows->ids.size());
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
  if (!plan_tiles(m, s.B, s)) return {};
  s.threads = at::in_parallel_region() ? 1 : std::max(1, at::get_num_threads());
  s.attention_isa = attend_rows_isa(s.g);
  s.slots = rows->slots;
  s.past = rows->past;
  rope_tables(s, inv_freq);

  // The residual stream starts as each row's token embedding.
  s.x.resize(s.B * s.H);
  const at::Tensor emb = m.embed_tokens.index_select(0, at::tensor(rows->ids, at::kLong));
  const at::Tensor embf = emb.to(at::kFloat).contiguous();
  std::copy(embf.data_ptr<float>(), embf.data_ptr<float>() + s.B * s.H, s.x.begin());
  s.qkv.resize(s.B * (s.nh + 2 * s.nkv) * s.d);
  s.attn_f.resize(s.B * s.nh * s.d);
  s.attn_h.resize(s.bf16 ? s.B * s.nh * s.d : 0);
  s.y.resize(s.B * s.H);
  s.act_f.resize(s.B * s.inter);
  s.act_h.resize(s.bf16 ? s.B * s.inter : 0);
  std::vector<float> gate(s.B * s.inter), up(s.B * s.inter);
  int64_t max_l = 1;
  for (int64_t p : s.past) max_l = std::max(max_l, p + 1);
  s.no_hidden = std::make_unique<bool[]>(max_l);  // value-initialised: false
  if (c.sliding_window)
    for (int64_t b = 0; b < s.B; ++b) {
      // The query sits at cache index past[b]; key j is hidden when past[b] - j >= window.
      s.window.push_back(std::make_unique<bool[]>(max_l));
      for (int64_t j = 0; j <= s.past[b]; ++j) s.window[b][j] = s.past[b] - j >= *c.sliding_window;
    }
  const int64_t phases = 5 * static_cast<int64_t>(m.layers.size()) + 1;
  s.counters = std::make_unique<std::atomic<int64_t>[]>(phases);
  for (int64_t i = 0; i < phases; ++i) s.counters[i] = 0;
  at::Tensor logits = at::empty({s.B, 1, s.V}, at::kFloat);
  s.logits = logits.data_ptr<float>();

#ifdef _OPENMP
#pragma omp parallel num_threads(s.threads)
  {
#pragma omp single
    s.barrier.emplace(omp_get_num_threads());  // OpenMP may give fewer threads than asked
    run_thread(s, cache, gate, up);
  }
#else
  s.barrier.emplace(1);
  run_thread(s, cache, gate, up);
#endif

  for (int64_t b = 0; b < s.B; ++b) cache.set_length(s.slots[b], s.past[b] + 1);
  ++steps_run;
  return logits;
}

}  // namespace metamath::model
