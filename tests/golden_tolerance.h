#pragma once
// The tolerance of a float32 result against a golden file made by the PyTorch reference
// (tests/reference/), which stores each float32 golden with a float64 twin computed from the
// same start. |f64 - f32| is what float32 rounding did to the golden on the machine that made it;
// another correct float32 implementation (ours, or the reference on a CPU whose BLAS sums in
// another order) is about as far from exact, so at most ~2x that from the golden (the largest
// ratio seen between references made on an AVX2 and on an AVX-512 CPU: 4.2x). Allowed:
// kEnvelope times that envelope, over the whole tensor, plus 4 float32 roundings of the largest
// value (for results the f64 run matches nearly exactly).
#include <ATen/ATen.h>

#include <cmath>

namespace metamath::testing {

inline constexpr double kEnvelope = 8.0;
inline constexpr double kRound = 1.0 / (1 << 24);  // float32 unit roundoff

inline double golden_tolerance(const at::Tensor& want, const at::Tensor& want_f64) {
  const at::Tensor w = want.to(at::kDouble);
  return kEnvelope * (w - want_f64.to(at::kDouble)).abs().max().item<double>() +
         4 * kRound * w.abs().max().item<double>();
}

inline double golden_tolerance(double want, double want_f64) {
  return kEnvelope * std::abs(want - want_f64) + 4 * kRound * std::abs(want);
}

}  // namespace metamath::testing
