#include "model/matmul.h"

#include <ATen/ATen.h>

namespace metamath::model {

namespace {

bool cpu_has_onednn_bf16() {
  static const bool yes = __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return yes;
}

}  // namespace

bool bf16_gemm_via_f32(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 && t.is_cpu() && !cpu_has_onednn_bf16();
}

at::Tensor batched_matmul(const at::Tensor& a, const at::Tensor& b) {
  if (!bf16_gemm_via_f32(a)) return at::matmul(a, b);
  return at::matmul(a.to(at::kFloat), b.to(at::kFloat)).to(at::kBFloat16);
}

at::Tensor linear_recorded(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (!bf16_gemm_via_f32(x)) return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
  at::Tensor y = b.defined() ? at::linear(x.to(at::kFloat), w.to(at::kFloat), b.to(at::kFloat))
                             : at::linear(x.to(at::kFloat), w.to(at::kFloat));
  return y.to(at::kBFloat16);
}

}  // namespace metamath::model
