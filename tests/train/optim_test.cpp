// The fused AdamW step and the one-pass grad norm (train/optim.h): against an independent float64
// computation of the AdamW formulas, against the per-op ATen path they replace, and the
// grad_scale / clip-coefficient folding of gradient clipping. The *Isa tests run once per kernel
// level (core/cpu.h: scalar, avx2, avx512), each level this CPU lacks skipped with a message; the
// vector AdamW kernel must match the scalar loop bit for bit. (There is no AVX-512 AdamW or grad
// norm kernel: the avx512 level runs the AVX2 code, and the tests check that it still works.)
#include "train/optim.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "isa_test.h"

namespace mm = metamath::model;
namespace mt = metamath::train;
using metamath::Isa;

namespace {

// Each test runs with kernels limited to one level (tests/isa_test.h).
class FusedAdamWIsa : public metamath::testing::IsaTest {};
class GradNormIsa : public metamath::testing::IsaTest {};

// One float32 rounding: at most this much of the value rounded.
const double kU = std::ldexp(1.0, -24);

// Sizes around the kernel's edges: a single element, a vector tail, a chunk (65536) boundary, a
// large odd size spanning many chunks, and a 2-D tensor.
const std::vector<std::vector<int64_t>> kShapes = {{1}, {7}, {65536 + 9}, {1000003}, {33, 17}};

mm::NamedTensors make_params(uint64_t seed) {
  at::manual_seed(seed);
  mm::NamedTensors ps;
  for (std::size_t i = 0; i < kShapes.size(); ++i)
    ps.emplace_back("p" + std::to_string(i), at::randn(kShapes[i]).requires_grad_(true));
  return ps;
}

mm::NamedTensors clone_params(const mm::NamedTensors& ps) {
  mm::NamedTensors out;
  for (auto& [n, p] : ps) out.emplace_back(n, p.detach().clone().requires_grad_(true));
  return out;
}

// Fresh random grads for every param (same values for every param list given the same seed).
void set_grads(const mm::NamedTensors& ps, uint64_t seed, double scale = 1.0) {
  at::manual_seed(seed);
  for (auto& [n, p] : ps) {
    at::Tensor g = at::randn(p.sizes(), p.options()) * 0.5;
    // A few tiny grads so that v is small and eps matters.
    g.view(-1).slice(0, 0, g.numel() / 3).mul_(1e-4);
    p.mutable_grad() = scale == 1.0 ? g : g * scale;
  }
}

// max |a - b| / max(max |b|, floor) over the tensor, in float64. The floor keeps a tensor whose
// values all happen to be near 0 (a 1-element moment after cancellation) from demanding more than
// float32 can give.
double rel_err(const at::Tensor& a, const at::Tensor& b, double floor) {
  at::Tensor bd = b.detach().to(at::kDouble);
  const double denom = std::max(bd.abs().max().item<double>(), floor);
  return (a.detach().to(at::kDouble) - bd).abs().max().item<double>() / denom;
}
double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.detach().to(at::kDouble) - b.detach().to(at::kDouble)).abs().max().item<double>();
}
// Floors for rel_err: weights are ~N(0, 1), first moments ~0.05, second moments ~1e-3.
constexpr double kPFloor = 1.0, kMFloor = 1e-2, kVFloor = 1e-4;
// rel_err bound for p, m, v after <= 5 float32 steps: each step rounds a new term 3-5 times and the
// running value once or twice (each <= 2^-24 of it); with beta2 ~ 1 the errors add, worst case
// ~25 * 2^-24 = 1.5e-6 of max|v|, ~5 * 2^-24 = 3e-7 for random-sign roundings: 1e-6.
constexpr double kRelTol = 1e-6;

bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && at::equal(a.detach(), b.detach());
}

at::Tensor state_of(const mt::AdamW& opt, const std::string& key) {
  for (auto& [n, t] : opt.state())
    if (n == key) return t;
  ADD_FAILURE() << "no optimizer state " << key;
  return {};
}

// The AdamW formulas in float64, written out independently of the optimizer.
struct Reference {
  mt::AdamWOptions o;
  std::vector<at::Tensor> p, m, v;
  int64_t t = 0;

  Reference(const mm::NamedTensors& ps, mt::AdamWOptions opts) : o(opts) {
    for (auto& [n, x] : ps) {
      p.push_back(x.detach().to(at::kDouble));
      m.push_back(at::zeros_like(p.back()));
      v.push_back(at::zeros_like(p.back()));
    }
  }
  void step(const mm::NamedTensors& ps, double lr, double scale) {
    ++t;
    const double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
    for (std::size_t i = 0; i < p.size(); ++i) {
      at::Tensor g = ps[i].second.grad().to(at::kDouble) * scale;
      p[i] = p[i] * (1 - lr * o.weight_decay);
      m[i] = m[i] * o.beta1 + g * (1 - o.beta1);
      v[i] = v[i] * o.beta2 + g * g * (1 - o.beta2);
      at::Tensor denom = v[i].sqrt() / std::sqrt(bc2) + o.eps;
      p[i] = p[i] - (lr / bc1) * m[i] / denom;
    }
  }
};

struct Config {
  mt::AdamWOptions opts;
  double scale;
};

std::vector<Config> configs() {
  std::vector<Config> cs;
  mt::AdamWOptions plain;  // PyTorch's defaults, no weight decay
  cs.push_back({plain, 1.0});
  mt::AdamWOptions wd;
  wd.weight_decay = 0.1;
  cs.push_back({wd, 1.0});
  // Unusual betas and a large eps (so that where eps enters shows), decay and a clip scale.
  mt::AdamWOptions odd;
  odd.beta1 = 0.8;
  odd.beta2 = 0.95;
  odd.eps = 1e-3;
  odd.weight_decay = 0.05;
  cs.push_back({odd, 0.37});
  return cs;
}

const double kLrs[] = {1e-2, 3e-2, 5e-3, 2e-2, 1e-2};

TEST_P(FusedAdamWIsa, MatchesFloat64Formulas) {
  for (const Config& c : configs()) {
    SCOPED_TRACE("wd " + std::to_string(c.opts.weight_decay) + " scale " + std::to_string(c.scale));
    mm::NamedTensors ps = make_params(1);
    const mm::NamedTensors initial = clone_params(ps);
    mt::AdamW opt(ps, c.opts);
    Reference ref(ps, c.opts);
    for (int s = 0; s < 5; ++s) {
      set_grads(ps, 100 + s);
      opt.step(kLrs[s], c.scale);
      ASSERT_EQ(opt.last_fused(), ps.size());
      ref.step(ps, kLrs[s], c.scale);
    }
    for (std::size_t i = 0; i < ps.size(); ++i) {
      const std::string& name = ps[i].first;
      EXPECT_LT(rel_err(ps[i].second, ref.p[i], kPFloor), kRelTol) << name;
      EXPECT_LT(rel_err(state_of(opt, "exp_avg." + name), ref.m[i], kMFloor), kRelTol) << name;
      EXPECT_LT(rel_err(state_of(opt, "exp_avg_sq." + name), ref.v[i], kVFloor), kRelTol) << name;
      // The updates themselves (p - p0, up to ~0.1): p is rounded twice per step (decay, update),
      // each <= 2^-24 |p|, over 5 steps <= 10 * 2^-24 * max|p|; 16 leaves room for the update's
      // own (relatively tiny) error.
      at::Tensor p0 = initial[i].second.detach().to(at::kDouble);
      const double update_tol = 16 * kU * std::max(1.0, p0.abs().max().item<double>());
      EXPECT_LT(max_abs_diff(ps[i].second.detach().to(at::kDouble) - p0, ref.p[i] - p0), update_tol)
          << name;
      // Not vacuous: the weights moved far beyond the tolerances.
      EXPECT_GT(max_abs_diff(ps[i].second, initial[i].second), 1e-3) << name;
    }
  }
}

TEST_P(FusedAdamWIsa, MatchesAtenPath) {
  for (const Config& c : configs()) {
    SCOPED_TRACE("wd " + std::to_string(c.opts.weight_decay) + " scale " + std::to_string(c.scale));
    mm::NamedTensors fused_ps = make_params(2), aten_ps = clone_params(fused_ps);
    mt::AdamWOptions ao = c.opts;
    ao.fused = false;
    mt::AdamW fused(fused_ps, c.opts), aten(aten_ps, ao);
    for (int s = 0; s < 5; ++s) {
      set_grads(fused_ps, 200 + s);
      set_grads(aten_ps, 200 + s);
      fused.step(kLrs[s], c.scale);
      aten.step(kLrs[s], c.scale);
      ASSERT_EQ(fused.last_fused(), fused_ps.size());
      ASSERT_EQ(aten.last_fused(), 0u);
    }
    for (std::size_t i = 0; i < fused_ps.size(); ++i) {
      const std::string& name = fused_ps[i].first;
      EXPECT_LT(rel_err(fused_ps[i].second, aten_ps[i].second, kPFloor), kRelTol) << name;
      EXPECT_LT(
          rel_err(state_of(fused, "exp_avg." + name), state_of(aten, "exp_avg." + name), kMFloor),
          kRelTol)
          << name;
      EXPECT_LT(rel_err(state_of(fused, "exp_avg_sq." + name), state_of(aten, "exp_avg_sq." + name),
                        kVFloor),
                kRelTol)
          << name;
    }
    EXPECT_EQ(fused.steps(), 5);
  }
}

TEST_P(FusedAdamWIsa, GradScaleEqualsPrescaledGrads) {
  for (bool use_fused : {true, false}) {
    SCOPED_TRACE(use_fused ? "fused" : "aten");
    mt::AdamWOptions o;
    o.weight_decay = 0.1;
    o.fused = use_fused;
    mm::NamedTensors a_ps = make_params(3), b_ps = clone_params(a_ps);
    mt::AdamW a(a_ps, o), b(b_ps, o);
    const double scale = 0.123456789;
    for (int s = 0; s < 3; ++s) {
      set_grads(a_ps, 300 + s);
      // b's grads pre-multiplied as clip_grad_norm_ does (float32 grad times the coefficient).
      set_grads(b_ps, 300 + s, scale);
      std::vector<at::Tensor> a_grads;
      for (auto& [n, p] : a_ps) a_grads.push_back(p.grad().clone());
      a.step(kLrs[s], scale);
      b.step(kLrs[s]);
      // The step leaves the grads as they were (unscaled).
      for (std::size_t i = 0; i < a_ps.size(); ++i)
        EXPECT_TRUE(bit_equal(a_ps[i].second.grad(), a_grads[i])) << a_ps[i].first;
    }
    for (std::size_t i = 0; i < a_ps.size(); ++i) {
      EXPECT_TRUE(bit_equal(a_ps[i].second, b_ps[i].second)) << a_ps[i].first;
      EXPECT_TRUE(bit_equal(state_of(a, "exp_avg_sq." + a_ps[i].first),
                            state_of(b, "exp_avg_sq." + a_ps[i].first)))
          << a_ps[i].first;
    }
  }
}

TEST_P(FusedAdamWIsa, FoldedClippingEqualsClipThenStep) {
  mt::AdamWOptions o;
  o.weight_decay = 0.01;
  mm::NamedTensors a_ps = make_params(4), b_ps = clone_params(a_ps);
  mt::AdamW a(a_ps, o), b(b_ps, o);
  const double max_norm = 1.0;
  for (int s = 0; s < 3; ++s) {
    set_grads(a_ps, 400 + s);
    set_grads(b_ps, 400 + s);
    std::vector<at::Tensor> grads_before;
    for (auto& [n, p] : a_ps) grads_before.push_back(p.grad().clone());
    const double norm = mt::grad_norm(a_ps);
    const double coef = mt::clip_coefficient(norm, max_norm);
    ASSERT_LT(coef, 0.1);  // the grads are large: clipping is active
    a.step(kLrs[s], coef);
    for (std::size_t i = 0; i < a_ps.size(); ++i)
      EXPECT_TRUE(bit_equal(a_ps[i].second.grad(), grads_before[i])) << "grads untouched";
    const double clip_norm = mt::clip_grad_norm(b_ps, max_norm);
    EXPECT_EQ(clip_norm, norm);
    // clip_grad_norm still scales the grads, to max_norm * norm / (norm + 1e-6): each grad is off
    // by <= 2 roundings (the coefficient to float32, the product), so the norm by <= 2 * 2^-24.
    EXPECT_NEAR(mt::grad_norm(b_ps), max_norm * norm / (norm + 1e-6), 3 * kU * max_norm);
    b.step(kLrs[s]);
  }
  for (std::size_t i = 0; i < a_ps.size(); ++i)
    EXPECT_TRUE(bit_equal(a_ps[i].second, b_ps[i].second)) << a_ps[i].first;
}

TEST_P(GradNormIsa, MatchesAtenNormInDouble) {
  mm::NamedTensors ps = make_params(5);
  set_grads(ps, 500);
  // The fallbacks: a float64 parameter, a bfloat16 one, a transposed (non-contiguous) grad, and a
  // parameter without a grad (skipped).
  ps.emplace_back("f64", at::randn({129}, at::kDouble).requires_grad_(true));
  ps.back().second.mutable_grad() = at::randn({129}, at::kDouble);
  ps.emplace_back("bf16", at::randn({77}).to(at::kBFloat16).requires_grad_(true));
  ps.back().second.mutable_grad() = at::randn({77}).to(at::kBFloat16);
  ps.emplace_back("strided", at::randn({31, 45}).requires_grad_(true));
  ps.back().second.mutable_grad() = at::randn({45, 31}).t();
  ASSERT_FALSE(ps.back().second.grad().is_contiguous());
  ps.emplace_back("nograd", at::randn({10}).requires_grad_(true));
  std::vector<at::Tensor> before;
  double want_sq = 0;
  for (auto& [n, p] : ps) {
    if (!p.grad().defined()) continue;
    before.push_back(p.grad().clone());
    want_sq += std::pow(at::norm(p.grad().to(at::kDouble), 2).item<double>(), 2);
  }
  const double got = mt::grad_norm(ps);
  // Squares of floats are exact in float64 and all positive: the sum errs by at most 2^-53 per
  // addition on its path (<= 65536/4 terms per scalar accumulator, fewer in the vector kernels, and
  // ~20 chunk partials): <= 1.8e-12 of the sum, halved by the square root; ATen's cascade sum far
  // less. 1e-12 of the norm.
  EXPECT_NEAR(got, std::sqrt(want_sq), 1e-12 * std::sqrt(want_sq));
  // Read only.
  std::size_t k = 0;
  for (auto& [n, p] : ps) {
    if (p.grad().defined()) {
      EXPECT_TRUE(bit_equal(p.grad(), before[k])) << n;
      ++k;
    }
  }
  // No grads at all: 0.
  mm::NamedTensors none{{"x", at::zeros({3}).requires_grad_(true)}};
  EXPECT_EQ(mt::grad_norm(none), 0.0);
}

TEST_P(GradNormIsa, ClipGradNormStillClips) {
  mm::NamedTensors ps = make_params(6);
  set_grads(ps, 600);
  const double norm = mt::grad_norm(ps);
  ASSERT_GT(norm, 2.0);
  // Measuring only.
  EXPECT_EQ(mt::clip_grad_norm(ps, 0.0), norm);
  EXPECT_EQ(mt::grad_norm(ps), norm);
  // A max above the norm leaves the grads alone.
  EXPECT_EQ(mt::clip_grad_norm(ps, 2 * norm), norm);
  EXPECT_EQ(mt::grad_norm(ps), norm);
  // Clipping scales the grads to max_norm (up to PyTorch's 1e-6 in the denominator); each grad is
  // off by <= 2 roundings (coefficient to float32, product), so the norm by <= 2 * 2^-24 of it.
  EXPECT_EQ(mt::clip_grad_norm(ps, 2.0), norm);
  EXPECT_NEAR(mt::grad_norm(ps), 2.0 * norm / (norm + 1e-6), 3 * kU * 2.0);
}

TEST(GradNorm, ClipCoefficient) {
  EXPECT_DOUBLE_EQ(mt::clip_coefficient(10.0, 1.0), 1.0 / (10.0 + 1e-6));
  EXPECT_EQ(mt::clip_coefficient(0.5, 1.0), 1.0);
  EXPECT_EQ(mt::clip_coefficient(0.0, 1.0), 1.0);
  EXPECT_EQ(mt::clip_coefficient(10.0, 0.0), 1.0);  // max_norm <= 0: no clipping
  EXPECT_EQ(mt::clip_coefficient(10.0, -1.0), 1.0);
  EXPECT_TRUE(std::isnan(mt::clip_coefficient(std::numeric_limits<double>::quiet_NaN(), 1.0)));
  EXPECT_EQ(mt::clip_coefficient(std::numeric_limits<double>::infinity(), 1.0), 0.0);
}

TEST_P(FusedAdamWIsa, FallbackParamsTakeTheAtenPath) {
  // A mix: fusable float32 params and ones the kernel does not take (float64, non-contiguous).
  auto build = [] {
    mm::NamedTensors ps = make_params(7);
    ps.emplace_back("f64", at::randn({129}, at::kDouble).requires_grad_(true));
    ps.emplace_back("strided", at::randn({45, 31}).t().requires_grad_(true));
    return ps;
  };
  mm::NamedTensors a_ps = build(), b_ps = clone_params(a_ps);
  // clone_params makes b's strided param contiguous; give it a strided one with the same values.
  b_ps.back().second = a_ps.back().second.detach().t().clone().t().requires_grad_(true);
  ASSERT_FALSE(b_ps.back().second.is_contiguous());
  mt::AdamWOptions fo, ao;
  fo.weight_decay = ao.weight_decay = 0.1;
  ao.fused = false;
  mt::AdamW a(a_ps, fo), b(b_ps, ao);
  for (int s = 0; s < 3; ++s) {
    set_grads(a_ps, 700 + s);
    set_grads(b_ps, 700 + s);
    a.step(kLrs[s], 0.5);
    b.step(kLrs[s], 0.5);
    EXPECT_EQ(a.last_fused(), a_ps.size() - 2);
  }
  for (std::size_t i = 0; i < a_ps.size(); ++i) {
    if (i + 2 >= a_ps.size()) {  // the fallback params took the very same ops
      EXPECT_TRUE(bit_equal(a_ps[i].second, b_ps[i].second)) << a_ps[i].first;
    } else {
      EXPECT_LT(rel_err(a_ps[i].second, b_ps[i].second, kPFloor), kRelTol) << a_ps[i].first;
    }
  }
}

TEST_P(FusedAdamWIsa, ThreadCountDoesNotChangeResults) {
  const int saved = at::get_num_threads();
  std::vector<mm::NamedTensors> results;
  std::vector<double> norms;
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    mm::NamedTensors ps = make_params(8);
    mt::AdamWOptions o;
    o.weight_decay = 0.1;
    mt::AdamW opt(ps, o);
    for (int s = 0; s < 2; ++s) {
      set_grads(ps, 800 + s);
      norms.push_back(mt::grad_norm(ps));
      opt.step(kLrs[s], 0.7);
    }
    results.push_back(ps);
  }
  at::set_num_threads(saved);
  for (std::size_t r = 1; r < results.size(); ++r) {
    for (std::size_t i = 0; i < results[0].size(); ++i)
      EXPECT_TRUE(bit_equal(results[r][i].second, results[0][i].second)) << r << " " << i;
    EXPECT_EQ(norms[2 * r], norms[0]);
    EXPECT_EQ(norms[2 * r + 1], norms[1]);
  }
}

TEST_P(FusedAdamWIsa, StateRoundTripsAndResumes) {
  mt::AdamWOptions o;
  o.weight_decay = 0.1;
  mm::NamedTensors a_ps = make_params(9), b_ps = clone_params(a_ps);
  mt::AdamW a(a_ps, o);
  for (int s = 0; s < 2; ++s) {
    set_grads(a_ps, 900 + s);
    a.step(kLrs[s]);
  }
  // b: the same weights and a's saved state, then one more step each.
  for (std::size_t i = 0; i < a_ps.size(); ++i) {
    at::NoGradGuard ng;
    b_ps[i].second.copy_(a_ps[i].second);
  }
  mt::AdamW b(b_ps, o);
  b.load_state(a.state(), "test");
  EXPECT_EQ(b.steps(), 2);
  set_grads(a_ps, 950);
  set_grads(b_ps, 950);
  a.step(kLrs[2]);
  b.step(kLrs[2]);
  for (std::size_t i = 0; i < a_ps.size(); ++i)
    EXPECT_TRUE(bit_equal(a_ps[i].second, b_ps[i].second)) << a_ps[i].first;
}

// The vector kernels use no FMA and the scalar loop's operations in its order: bit-identical
// p, m and v (at the scalar level this compares the loop with itself).
TEST_P(FusedAdamWIsa, BitIdenticalToScalarLoop) {
  for (const Config& c : configs()) {
    SCOPED_TRACE("wd " + std::to_string(c.opts.weight_decay) + " scale " + std::to_string(c.scale));
    mm::NamedTensors ps = make_params(10), scalar_ps = clone_params(ps);
    mt::AdamW opt(ps, c.opts), scalar(scalar_ps, c.opts);
    for (int s = 0; s < 3; ++s) {
      set_grads(ps, 1000 + s);
      set_grads(scalar_ps, 1000 + s);
      opt.step(kLrs[s], c.scale);
      metamath::ScopedIsaLimit limit(Isa::scalar);
      scalar.step(kLrs[s], c.scale);
    }
    for (std::size_t i = 0; i < ps.size(); ++i) {
      const std::string& name = ps[i].first;
      EXPECT_TRUE(bit_equal(ps[i].second, scalar_ps[i].second)) << name;
      for (const char* key : {"exp_avg.", "exp_avg_sq."})
        EXPECT_TRUE(bit_equal(state_of(opt, key + name), state_of(scalar, key + name)))
            << key << name;
    }
  }
}

METAMATH_EACH_ISA(FusedAdamWIsa);
METAMATH_EACH_ISA(GradNormIsa);

}  // namespace
