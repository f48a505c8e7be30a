#include "model/sampling.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "core/error.h"

namespace metamath::model {

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
  if (greedy()) return l.argmax().item<std::int64_t>();
  const float* x = l.data_ptr<float>();
  const auto n = static_cast<std::size_t>(l.numel());
  if (n == 0) fail("sampling: empty logits");
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
