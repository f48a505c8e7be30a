#include "model/sampling.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <utility>

#include "core/error.h"

namespace metamath::model {

struct Sampler::Impl {
  at::Generator gen;
};

Sampler::Sampler(const SamplingParams& p) : params_(p) {
  if (!(p.temperature >= 0.0f)) fail("sampling: temperature must be >= 0, got {}", p.temperature);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail("sampling: top_p must be in (0, 1], got {}", p.top_p);
  if (p.top_k < 0) fail("sampling: top_k must be >= 0, got {}", p.top_k);
  impl_ = new Impl{at::detail::createCPUGenerator(p.seed)};
}

Sampler::~Sampler() { delete impl_; }
Sampler::Sampler(Sampler&& o) noexcept : params_(o.params_), impl_(std::exchange(o.impl_, nullptr)) {}
Sampler& Sampler::operator=(Sampler&& o) noexcept {
  if (this != &o) {
    delete impl_;
    params_ = o.params_;
    impl_ = std::exchange(o.impl_, nullptr);
  }
  return *this;
}

std::int64_t Sampler::next(const at::Tensor& logits) {
  at::Tensor l = logits.detach().to(at::kCPU, at::kFloat).reshape({-1});
  if (greedy()) return l.argmax().item<std::int64_t>();
  at::Tensor probs = at::softmax(l / params_.temperature, 0);
  at::Tensor sorted, idx;
  std::tie(sorted, idx) = probs.sort(/*dim=*/0, /*descending=*/true);
  std::int64_t keep = sorted.size(0);
  if (params_.top_k > 0) keep = std::min<std::int64_t>(keep, params_.top_k);
  if (params_.top_p < 1.0f) {
    // Smallest prefix whose mass reaches top_p (the token that crosses it is kept).
    at::Tensor cum = sorted.cumsum(0);
    std::int64_t below = (cum < params_.top_p).sum().item<std::int64_t>();
    keep = std::min<std::int64_t>(keep, below + 1);
  }
  at::Tensor kept = sorted.slice(0, 0, keep);
  at::Tensor choice = at::multinomial(kept / kept.sum(), 1, /*replacement=*/false, impl_->gen);
  return idx[choice.item<std::int64_t>()].item<std::int64_t>();
}

}  // namespace metamath::model
