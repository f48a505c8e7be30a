#include "train/optim.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <numbers>

#include "core/error.h"

namespace metamath::train {

AdamW::AdamW(model::NamedTensors params, AdamWOptions opts)
    : params_(std::move(params)), opts_(opts) {
  for (auto& [name, p] : params_) {
    if (!p.requires_grad()) fail("optimizer: parameter '{}' does not require grad", name);
    m_.push_back(at::zeros_like(p, at::MemoryFormat::Contiguous));
    v_.push_back(at::zeros_like(p, at::MemoryFormat::Contiguous));
  }
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++step_;
  const double b1 = opts_.beta1, b2 = opts_.beta2;
  const double bc1 = 1.0 - std::pow(b1, static_cast<double>(step_));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(b2, static_cast<double>(step_)));
  const double step_size = lr / bc1;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i].second;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (opts_.weight_decay != 0.0) p.mul_(1.0 - lr * opts_.weight_decay);
    m_[i].mul_(b1).add_(g, 1.0 - b1);
    v_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    at::Tensor denom = (v_[i].sqrt() / bc2_sqrt).add_(opts_.eps);
    p.addcdiv_(m_[i], denom, -step_size);
  }
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

double clip_grad_norm(const model::NamedTensors& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (auto& [n, p] : params)
    if (p.grad().defined()) norms.push_back(at::norm(p.grad(), 2));
  if (norms.empty()) return 0.0;
  at::Tensor total = at::norm(at::stack(norms), 2);
  if (max_norm > 0) {
    at::Tensor coef = at::clamp_max(max_norm / (total + 1e-6), 1.0);
    for (auto& [n, p] : params)
      if (p.grad().defined()) p.mutable_grad().mul_(coef);
  }
  return total.item<double>();
}

}  // namespace metamath::train
