#include "train/optim.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>

#include "core/cpu.h"
#include "core/error.h"

namespace metamath::train {

namespace {

// Fused AdamW and grad-norm kernels. Hand-written: libtorch 1.13 has no fused (or foreach) CPU
// AdamW, so its single-tensor path makes ~8 memory passes per parameter; these make one.
//
// Per element, in float32, the same operations in the same order as the ATen ops of the fallback
// path (PyTorch 1.13's _single_tensor_adamw): p * decay; m * b1 + (1 - b1) * g (add_ with alpha);
// v * b2 + ((1 - b2) * g) * g (addcmul_); sqrt(v) / bc2_sqrt + eps; p + (-step_size * m) / denom
// (addcdiv_). The only difference is that ATen's vectorised add_/addcmul_ may fuse a multiply-add
// (one rounding instead of two). The AVX2 kernel uses no FMA, so it matches the scalar loop bit
// for bit (and so results depend neither on kernel_isa() nor on where chunks or vector tails fall).
// Which kernel runs is kernel_isa()'s choice (core/cpu.h), read once per step.
//
// Why AVX2 intrinsics rather than a plain loop left to the vectoriser: with the project's default
// flags (-fmath-errno) GCC keeps sqrtf as a libm call with an errno branch, which stops the loop
// from vectorising (measured 4x slower than the vectorised loop on 2 threads), and
// __attribute__((optimize("no-math-errno"))) does not lift that in GCC 12.
struct AdamWCoef {
  float decay, b1, omb1, b2, omb2, bc2_sqrt, eps, neg_step, scale;
};

// Contiguous float32 pieces of the parameters, at most kChunk elements each; the parallel loop
// runs over these (the same chunking whatever the thread count, so grad_norm's sum is
// deterministic).
struct Chunk {
  float* p;
  const float* g;
  float* m;
  float* v;
  int64_t n;
};
constexpr int64_t kChunk = int64_t{1} << 16;

void add_chunks(std::vector<Chunk>& out, float* p, const float* g, float* m, float* v, int64_t n) {
  for (int64_t o = 0; o < n; o += kChunk)
    out.push_back({p ? p + o : nullptr, g + o, m ? m + o : nullptr, v ? v + o : nullptr,
                   std::min(kChunk, n - o)});
}

void adamw_scalar(const Chunk& c, int64_t begin, const AdamWCoef& k) {
  float* __restrict p = c.p;
  const float* __restrict g = c.g;
  float* __restrict m = c.m;
  float* __restrict v = c.v;
  for (int64_t i = begin; i < c.n; ++i) {
    const float gi = g[i] * k.scale;
    const float mi = m[i] * k.b1 + k.omb1 * gi;
    const float vi = v[i] * k.b2 + k.omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / k.bc2_sqrt + k.eps;
    p[i] = p[i] * k.decay + k.neg_step * mi / denom;
  }
}

double sumsq_scalar(const float* g, int64_t begin, int64_t n) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t i = begin;
  for (; i + 4 <= n; i += 4) {
    const double x0 = g[i], x1 = g[i + 1], x2 = g[i + 2], x3 = g[i + 3];
    a0 += x0 * x0;
    a1 += x1 * x1;
    a2 += x2 * x2;
    a3 += x3 * x3;
  }
  for (; i < n; ++i) a0 += static_cast<double>(g[i]) * g[i];
  return (a0 + a1) + (a2 + a3);
}

// "avx2" without "fma": GCC's _mm256_mul_ps/_mm256_add_ps are plain vector operators, which
// -ffp-contract=fast (GCC's default for C++) would fuse if the target had FMA.
#define OPTIM_AVX2 __attribute__((target("avx2")))

OPTIM_AVX2 void adamw_avx2(const Chunk& c, const AdamWCoef& k) {
  const __m256 decay = _mm256_set1_ps(k.decay), b1 = _mm256_set1_ps(k.b1),
               omb1 = _mm256_set1_ps(k.omb1), b2 = _mm256_set1_ps(k.b2),
               omb2 = _mm256_set1_ps(k.omb2), bc2 = _mm256_set1_ps(k.bc2_sqrt),
               eps = _mm256_set1_ps(k.eps), ns = _mm256_set1_ps(k.neg_step),
               sc = _mm256_set1_ps(k.scale);
  int64_t i = 0;
  for (; i + 8 <= c.n; i += 8) {
    const __m256 g = _mm256_mul_ps(_mm256_loadu_ps(c.g + i), sc);
    const __m256 m =
        _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(c.m + i), b1), _mm256_mul_ps(omb1, g));
    const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(c.v + i), b2),
                                   _mm256_mul_ps(_mm256_mul_ps(omb2, g), g));
    _mm256_storeu_ps(c.m + i, m);
    _mm256_storeu_ps(c.v + i, v);
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), bc2), eps);
    const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(c.p + i), decay);
    _mm256_storeu_ps(c.p + i, _mm256_add_ps(p, _mm256_div_ps(_mm256_mul_ps(ns, m), denom)));
  }
  adamw_scalar(c, i, k);
}

OPTIM_AVX2 double sumsq_avx2(const float* g, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), a2 = _mm256_setzero_pd(),
          a3 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256d x0 = _mm256_cvtps_pd(_mm_loadu_ps(g + i));
    const __m256d x1 = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 4));
    const __m256d x2 = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 8));
    const __m256d x3 = _mm256_cvtps_pd(_mm_loadu_ps(g + i + 12));
    a0 = _mm256_add_pd(a0, _mm256_mul_pd(x0, x0));
    a1 = _mm256_add_pd(a1, _mm256_mul_pd(x1, x1));
    a2 = _mm256_add_pd(a2, _mm256_mul_pd(x2, x2));
    a3 = _mm256_add_pd(a3, _mm256_mul_pd(x3, x3));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + sumsq_scalar(g, i, n);
}

// No AVX-512 versions: both kernels are bound by memory bandwidth, and 16-lane versions measured
// no faster (AdamW 0.96x, sum of squares 1.00x at 8M parameters; bench/README.md, "AVX-512
// kernel paths"), so Isa::avx512 takes the AVX2 code.
void adamw_chunk(const Chunk& c, const AdamWCoef& k, Isa isa) {
  if (isa == Isa::scalar)
    adamw_scalar(c, 0, k);
  else
    adamw_avx2(c, k);
}

double sumsq_chunk(const float* g, int64_t n, Isa isa) {
  return isa == Isa::scalar ? sumsq_scalar(g, 0, n) : sumsq_avx2(g, n);
}

bool fusable(const at::Tensor& t) {
  return t.defined() && t.device().is_cpu() && t.layout() == at::kStrided &&
         t.scalar_type() == at::kFloat && t.is_contiguous();
}

}  // namespace

AdamW::AdamW(model::NamedTensors params, AdamWOptions opts)
    : params_(std::move(params)), opts_(opts) {
  for (auto& [name, p] : params_) {
    if (!p.requires_grad()) fail("optimizer: parameter '{}' does not require grad", name);
    m_.push_back(at::zeros_like(p, at::MemoryFormat::Contiguous));
    v_.push_back(at::zeros_like(p, at::MemoryFormat::Contiguous));
  }
}

void AdamW::step(double lr, double grad_scale) {
  at::NoGradGuard no_grad;
  ++step_;
  const double b1 = opts_.beta1, b2 = opts_.beta2;
  const double bc1 = 1.0 - std::pow(b1, static_cast<double>(step_));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(b2, static_cast<double>(step_)));
  const double step_size = lr / bc1;
  const bool decay = opts_.weight_decay != 0.0;
  std::vector<Chunk> chunks;
  last_fused_ = 0;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i].second;
    const at::Tensor& grad = p.grad();
    if (!grad.defined()) continue;
    if (opts_.fused && fusable(p) && fusable(grad) && fusable(m_[i]) && fusable(v_[i]) &&
        grad.numel() == p.numel() && m_[i].numel() == p.numel() && v_[i].numel() == p.numel()) {
      add_chunks(chunks, p.data_ptr<float>(), grad.data_ptr<float>(), m_[i].data_ptr<float>(),
                 v_[i].data_ptr<float>(), p.numel());
      // Written through raw pointers: keep autograd's in-place bookkeeping as an ATen op would.
      for (at::Tensor* t : {&p, &m_[i], &v_[i]})
        if (!t->is_inference()) t->unsafeGetTensorImpl()->bump_version();
      ++last_fused_;
      continue;
    }
    // PyTorch 1.13's _single_tensor_adamw, op for op (CUDA, other dtypes, strided tensors).
    const at::Tensor g = grad_scale == 1.0 ? grad : grad * grad_scale;
    if (decay) p.mul_(1.0 - lr * opts_.weight_decay);
    m_[i].mul_(b1).add_(g, 1.0 - b1);
    v_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    at::Tensor denom = (v_[i].sqrt() / bc2_sqrt).add_(opts_.eps);
    p.addcdiv_(m_[i], denom, -step_size);
  }
  if (chunks.empty()) return;
  // The scalars are rounded to float as ATen rounds a double Scalar for a float tensor.
  const AdamWCoef k{decay ? static_cast<float>(1.0 - lr * opts_.weight_decay) : 1.0f,
                    static_cast<float>(b1),
                    static_cast<float>(1.0 - b1),
                    static_cast<float>(b2),
                    static_cast<float>(1.0 - b2),
                    static_cast<float>(bc2_sqrt),
                    static_cast<float>(opts_.eps),
                    static_cast<float>(-step_size),
                    static_cast<float>(grad_scale)};
  const Isa isa = kernel_isa();
  at::parallel_for(0, static_cast<int64_t>(chunks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) adamw_chunk(chunks[c], k, isa);
  });
}

model::NamedTensors AdamW::state() const {
  model::NamedTensors s;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    s.emplace_back("exp_avg." + params_[i].first, m_[i]);
    s.emplace_back("exp_avg_sq." + params_[i].first, v_[i]);
  }
  s.emplace_back("step", at::tensor({step_}, at::kLong));
  return s;
}

void AdamW::load_state(const model::NamedTensors& state, const std::string& where) {
  std::map<std::string, at::Tensor> by;
  for (auto& [n, t] : state) by[n] = t;
  auto get = [&](const std::string& n, const at::Tensor& like) {
    auto it = by.find(n);
    if (it == by.end()) fail("{}: optimizer state '{}' is missing", where, n);
    if (it->second.sizes() != like.sizes())
      fail("{}: optimizer state '{}' has the wrong shape for its parameter", where, n);
    return it->second;
  };
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    m_[i].copy_(get("exp_avg." + params_[i].first, m_[i]));
    v_[i].copy_(get("exp_avg_sq." + params_[i].first, v_[i]));
  }
  auto it = by.find("step");
  if (it == by.end() || it->second.numel() != 1)
    fail("{}: optimizer state 'step' is missing", where);
  step_ = it->second.to(at::kLong).item<int64_t>();
}

int64_t warmup_steps(int64_t total_steps, double warmup_ratio) {
  if (warmup_ratio < 0 || warmup_ratio > 1) fail("--warmup-ratio must be in [0, 1]");
  return static_cast<int64_t>(std::ceil(static_cast<double>(total_steps) * warmup_ratio));
}

double cosine_lr(double base_lr, int64_t step, int64_t total, int64_t warmup) {
  if (step < warmup) return base_lr * static_cast<double>(step) / static_cast<double>(warmup);
  const double progress = static_cast<double>(step - warmup) /
                          static_cast<double>(std::max<int64_t>(1, total - warmup));
  return base_lr * std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
}

double grad_norm(const model::NamedTensors& params) {
  at::NoGradGuard no_grad;
  std::vector<Chunk> chunks;
  double other = 0;  // grads the kernel does not take (CUDA, other dtypes, strided)
  for (auto& [n, p] : params) {
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (fusable(g))
      add_chunks(chunks, nullptr, g.data_ptr<float>(), nullptr, nullptr, g.numel());
    else
      other += g.to(at::kDouble).square().sum().item<double>();
  }
  std::vector<double> partial(chunks.size(), 0.0);
  const Isa isa = kernel_isa();
  at::parallel_for(0, static_cast<int64_t>(chunks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) partial[c] = sumsq_chunk(chunks[c].g, chunks[c].n, isa);
  });
  double total = other;
  for (double x : partial) total += x;
  return std::sqrt(total);
}

double clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  const double c = max_norm / (norm + 1e-6);
  return std::isnan(c) ? c : std::min(1.0, c);  // a NaN norm poisons the update, as in PyTorch
}

double clip_grad_norm(const model::NamedTensors& params, double max_norm) {
  const double norm = grad_norm(params);
  const double coef = clip_coefficient(norm, max_norm);
  if (!(coef == 1.0)) {
    at::NoGradGuard no_grad;
    for (auto& [n, p] : params)
      if (p.grad().defined()) p.mutable_grad().mul_(coef);
  }
  return norm;
}

}  // namespace metamath::train
