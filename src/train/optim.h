#pragma once
// AdamW with decoupled weight decay (PyTorch's torch.optim.AdamW, single-tensor path), the cosine
// schedule with linear warmup (Hugging Face's get_cosine_schedule_with_warmup) and global-norm
// gradient clipping (torch.nn.utils.clip_grad_norm_).
#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/safetensors.h"

namespace metamath::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  // Use the fused one-pass CPU kernel for parameters where param, grad and moments are all
  // contiguous float32 CPU tensors (the others always take the per-op ATen path). false forces the
  // ATen path everywhere (tests, debugging).
  bool fused = true;
};

class AdamW {
 public:
  // `params`: named leaf tensors that require grad (names key the saved state).
  AdamW(model::NamedTensors params, AdamWOptions opts);
  // One update with learning rate `lr` from the params' .grad() (params without a grad are
  // skipped, as in PyTorch), each grad taken as g = grad_scale * p.grad(). Per parameter:
  //   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
  //   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
  // grad_scale folds gradient clipping into the update: step(lr, clip_coefficient(grad_norm(ps),
  // max_norm)) equals clip_grad_norm(ps, max_norm) followed by step(lr), except that p.grad() is
  // left unscaled. Float32 contiguous CPU parameters take a fused kernel (one parallel pass over
  // p, g, m, v); the rest take the ATen ops of PyTorch 1.13's single-tensor AdamW.
  void step(double lr, double grad_scale = 1.0);
  int64_t steps() const { return step_; }
  // How many parameters the last step() updated with the fused kernel (the rest took ATen ops).
  std::size_t last_fused() const { return last_fused_; }
  const model::NamedTensors& params() const { return params_; }

  // State as named tensors ("exp_avg.<name>", "exp_avg_sq.<name>", "step") and back. Loading
  // checks that every parameter's state is present with the right shape.
  model::NamedTensors state() const;
  void load_state(const model::NamedTensors& state, const std::string& where);

 private:
  model::NamedTensors params_;
  AdamWOptions opts_;
  std::vector<at::Tensor> m_, v_;
  int64_t step_ = 0;
  std::size_t last_fused_ = 0;
};

// ceil(total_steps * warmup_ratio), as Hugging Face's TrainingArguments.get_warmup_steps.
int64_t warmup_steps(int64_t total_steps, double warmup_ratio);
// Learning rate for update number `step` (0-based): base * step / warmup during warmup, then
// base * 0.5 * (1 + cos(pi * progress)), progress = (step - warmup) / (total - warmup).
double cosine_lr(double base_lr, int64_t step, int64_t total_steps, int64_t warmup);

// Global L2 norm of the params' grads (those without a grad are skipped), accumulated in double
// in one parallel read pass; the grads are not modified.
double grad_norm(const model::NamedTensors& params);
// torch.nn.utils.clip_grad_norm_'s coefficient for a global grad norm `norm`:
// min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0 (no clipping). Pass it to
// AdamW::step as grad_scale.
double clip_coefficient(double norm, double max_norm);

// Scales the grads in place so that their global L2 norm is at most max_norm (coefficient
// clip_coefficient(norm, max_norm)) and returns the norm before clipping. max_norm <= 0 only
// measures. Same result as grad_norm + AdamW::step(lr, clip_coefficient(...)), which saves the
// scaling pass over the grads.
double clip_grad_norm(const model::NamedTensors& params, double max_norm);

}  // namespace metamath::train
