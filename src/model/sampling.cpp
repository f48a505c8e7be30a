#include "model/sampling.h"

#include <ATen/ATen.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"

namespace metamath::model {

namespace {

// argmax: one pass for the largest value (and whether any value is NaN), then one for its first
// index. Vector max/compare cannot see ties' order, the second pass restores it.

int64_t first_nan(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (std::isnan(x[i])) return i;
  return -1;
}

int64_t first_equal(const float* x, int64_t n, int64_t from, float m) {
  for (int64_t i = from; i < n; ++i)
    if (x[i] == m) return i;
  return 0;  // not reached: m is one of the values
}

int64_t argmax_scalar(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(x[i])) return i;
    if (x[i] > x[best]) best = i;
  }
  return best;
}

#define ARGMAX_AVX2 __attribute__((target("avx2,fma")))
#define ARGMAX_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

ARGMAX_AVX2 int64_t argmax_avx2(const float* x, int64_t n) {
  __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
  __m256 unordered = _mm256_setzero_ps();  // lanes that met a NaN
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    unordered = _mm256_or_ps(unordered, _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
    m0 = _mm256_max_ps(m0, a);
    m1 = _mm256_max_ps(m1, b);
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, _mm256_max_ps(m0, m1));
  bool nan = _mm256_movemask_ps(unordered) != 0;
  float m = -INFINITY;
  for (float v : lanes) m = std::max(m, v);
  for (int64_t j = i; j < n; ++j) {
    nan = nan || std::isnan(x[j]);
    m = std::max(m, x[j]);
  }
  if (nan) return first_nan(x, n);
  const __m256 mv = _mm256_set1_ps(m);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    if (const int eq = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j), mv, _CMP_EQ_OQ)))
      return j + __builtin_ctz(eq);
  return first_equal(x, n, j, m);
}

// Masked forms where a plain intrinsic would do: GCC 12's unmasked AVX-512 intrinsics start from
// an "undefined" vector that -Werror=uninitialized rejects (as in linear_kernel.cpp).
ARGMAX_AVX512 int64_t argmax_avx512(const float* x, int64_t n) {
  constexpr __mmask16 kAll = 0xFFFF;
  __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
  __mmask16 unordered = 0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_maskz_loadu_ps(kAll, x + i),
                 b = _mm512_maskz_loadu_ps(kAll, x + i + 16);
    unordered |= _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q);
    m0 = _mm512_maskz_max_ps(kAll, m0, a);
    m1 = _mm512_maskz_max_ps(kAll, m1, b);
  }
  for (; i < n; i += 16) {  // the tail, the lanes past n read as -inf
    const __mmask16 k = n - i >= 16 ? kAll : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 a = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + i);
    unordered |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
    m0 = _mm512_maskz_max_ps(kAll, m0, a);
  }
  if (unordered) return first_nan(x, n);
  float lanes[16];
  _mm512_mask_storeu_ps(lanes, kAll, _mm512_maskz_max_ps(kAll, m0, m1));
  float m = -INFINITY;
  for (float v : lanes) m = std::max(m, v);
  const __m512 mv = _mm512_set1_ps(m);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    if (const __mmask16 eq = _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(kAll, x + j), mv, _CMP_EQ_OQ))
      return j + __builtin_ctz(eq);
  return first_equal(x, n, j, m);
}

}  // namespace

int64_t argmax(const float* x, int64_t n) {
  if (n < 1) fail("argmax: no values");
  switch (kernel_isa()) {
    case Isa::avx512:
      return argmax_avx512(x, n);
    case Isa::avx2:
      return argmax_avx2(x, n);
    case Isa::scalar:
      break;
  }
  return argmax_scalar(x, n);
}

std::vector<int64_t> greedy_tokens(const at::Tensor& logits) {
  if (!logits.defined() || !logits.is_cpu() || logits.scalar_type() != at::kFloat ||
      logits.dim() < 1 || logits.size(-1) < 1 || !logits.is_contiguous() ||
      logits.layout() != at::kStrided) {
    const at::Tensor t = logits.argmax(-1).reshape({-1}).to(at::kCPU).contiguous();
    return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  }
  const int64_t n = logits.size(-1), rows = logits.numel() / n;
  const float* x = logits.data_ptr<float>();
  std::vector<int64_t> out(rows);
  for (int64_t r = 0; r < rows; ++r) out[r] = argmax(x + r * n, n);
  return out;
}

struct Sampler::Impl {
  std::mt19937_64 rng;
  std::vector<double> w;       // unnormalised probabilities
  std::vector<int32_t> order;  // token ids by descending probability (top-k/top-p only)
};

Sampler::Sampler(const SamplingParams& p) : params_(p) {
  if (!(p.temperature >= 0.0f)) fail("sampling: temperature must be >= 0, got {}", p.temperature);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    fail("sampling: top_p must be in (0, 1], got {}", p.top_p);
  if (p.top_k < 0) fail("sampling: top_k must be >= 0, got {}", p.top_k);
  impl_ = new Impl{std::mt19937_64(p.seed), {}, {}};
}

Sampler::~Sampler() { delete impl_; }
Sampler::Sampler(Sampler&& o) noexcept
    : params_(o.params_), impl_(std::exchange(o.impl_, nullptr)) {}
Sampler& Sampler::operator=(Sampler&& o) noexcept {
  if (this != &o) {
    delete impl_;
    params_ = o.params_;
    impl_ = std::exchange(o.impl_, nullptr);
  }
  return *this;
}

// One categorical draw by inverse CDF over exp((x - max) / T) in double: O(V), and O(V log V) only
// when top-k/top-p need the tokens in probability order (a whole-vocabulary tensor sort and
// multinomial cost ~3 ms per token at V = 32000; this costs well under 1 ms).
std::int64_t Sampler::next(const at::Tensor& logits) {
  at::Tensor l = logits.detach().to(at::kCPU, at::kFloat).reshape({-1}).contiguous();
  if (l.numel() == 0 && greedy()) return l.argmax().item<std::int64_t>();  // libtorch's error
  return next(l.data_ptr<float>(), static_cast<std::size_t>(l.numel()));
}

std::int64_t Sampler::next(const float* x, std::size_t n) {
  if (n == 0) fail("sampling: empty logits");
  if (greedy()) return argmax(x, static_cast<int64_t>(n));
  const float mx = *std::max_element(x, x + n);
  auto& w = impl_->w;
  w.resize(n);
  const double inv_t = 1.0 / params_.temperature;
  double total = 0;
  for (std::size_t i = 0; i < n; ++i)
    total += (w[i] = std::exp((static_cast<double>(x[i]) - mx) * inv_t));
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  if (params_.top_k == 0 && params_.top_p >= 1.0f) {
    const double u = uni(impl_->rng) * total;
    double c = 0;
    for (std::size_t i = 0; i < n; ++i) {
      c += w[i];
      if (u < c && w[i] > 0) return static_cast<std::int64_t>(i);
    }
    for (std::size_t i = n; i-- > 0;)  // rounding left u at the very end
      if (w[i] > 0) return static_cast<std::int64_t>(i);
  }
  auto& order = impl_->order;
  order.resize(n);
  std::iota(order.begin(), order.end(), 0);
  auto by_prob = [&](int32_t a, int32_t b) { return w[a] != w[b] ? w[a] > w[b] : a < b; };
  std::size_t keep = n;
  if (params_.top_k > 0 && static_cast<std::size_t>(params_.top_k) < n) {
    keep = static_cast<std::size_t>(params_.top_k);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(),
                      by_prob);
  } else {
    std::sort(order.begin(), order.end(), by_prob);
  }
  if (params_.top_p < 1.0f) {
    // Smallest prefix whose mass reaches top_p (the token that crosses it is kept); a mass within
    // rounding (1e-6) of top_p counts as reaching it, so 0.5 + 0.3 reaches 0.8.
    const double target = static_cast<double>(params_.top_p) - 1e-6;
    double c = 0;
    std::size_t below = 0;
    while (below < keep && (c + w[order[below]]) / total < target) c += w[order[below++]];
    keep = std::min(keep, below + 1);
  }
  double kept = 0;
  for (std::size_t i = 0; i < keep; ++i) kept += w[order[i]];
  const double u = uni(impl_->rng) * kept;
  double c = 0;
  for (std::size_t i = 0; i < keep; ++i) {
    c += w[order[i]];
    if (u < c) return order[i];
  }
  return order[keep - 1];
}

}  // namespace metamath::model
