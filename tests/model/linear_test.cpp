// model::linear (src/model/linear.cpp: the AVX2 small-M kernel, the widened-bf16 path for many
// rows, at::linear otherwise) against at::linear computed in float64 from the same inputs, over
// row counts on both sides of the kernel's limit, ragged K and N, bias or none, f32 and bf16, and
// non-contiguous activations; bf16 rounding on hand-checked ties; and autograd through it.
#include "model/linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace mm = metamath::model;

namespace {

std::string describe(at::ScalarType t, int64_t M, int64_t K, int64_t N, bool bias,
                     const std::string& layout) {
  return std::string(t == at::kFloat ? "f32" : "bf16") + " M=" + std::to_string(M) +
         " K=" + std::to_string(K) + " N=" + std::to_string(N) + (bias ? " bias" : " no-bias") +
         " " + layout;
}

// y (any float dtype, [..., N]) against the float64 product of the same (already-rounded) inputs.
// f32: |y - ref| <= 1e-5 * sum_k |x_k w_k| + |b| (f32 accumulation over K terms).
// bf16: y within one bf16 ulp of ref rounded to bf16, plus the same f32-accumulation allowance
// (which matters only where the sum nearly cancels).
void expect_matches(const at::Tensor& y, const at::Tensor& x, const at::Tensor& w,
                    const at::Tensor& b, const std::string& what) {
  ASSERT_EQ(y.scalar_type(), x.scalar_type()) << what;
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = w.size(0);
  ASSERT_EQ(y.sizes(), at::IntArrayRef(shape)) << what;
  at::Tensor xd = x.to(at::kDouble), wd = w.to(at::kDouble);
  at::Tensor bd = b.defined() ? b.to(at::kDouble) : at::Tensor();
  at::Tensor ref = bd.defined() ? at::linear(xd, wd, bd) : at::linear(xd, wd);
  at::Tensor mag =
      bd.defined() ? at::linear(xd.abs(), wd.abs(), bd.abs()) : at::linear(xd.abs(), wd.abs());
  at::Tensor allow = mag * 1e-5 + 1e-30;
  at::Tensor err = (y.to(at::kDouble) - ref).abs();
  at::Tensor tol = allow;
  if (y.scalar_type() == at::kBFloat16) {
    // ulp of the bf16 value r: 2^(exponent(r) - 7) for |r| = 1.m * 2^exponent(r).
    at::Tensor r = ref.to(at::kBFloat16).to(at::kDouble).abs();
    at::Tensor ulp = at::exp2(at::floor(at::log2(r.clamp_min(1e-30))) - 7);
    err = (y.to(at::kDouble) - ref.to(at::kBFloat16).to(at::kDouble)).abs();
    tol = ulp + allow;
  }
  at::Tensor bad = err > tol;
  const int64_t nbad = bad.sum().item<int64_t>();
  if (nbad > 0) {
    const int64_t i = bad.reshape({-1}).nonzero()[0][0].item<int64_t>();
    ADD_FAILURE() << what << ": " << nbad << " of " << y.numel() << " outputs off; first at flat "
                  << i << ": got " << y.to(at::kDouble).reshape({-1})[i].item<double>()
                  << ", float64 " << ref.reshape({-1})[i].item<double>() << ", tolerance "
                  << tol.reshape({-1})[i].item<double>();
  }
}

at::Tensor randn(std::vector<int64_t> shape, at::ScalarType t) {
  return at::randn(shape, at::kFloat).to(t);
}

void sweep(at::ScalarType t, const std::vector<int64_t>& Ms, const std::vector<int64_t>& Ks,
           const std::vector<int64_t>& Ns) {
  at::manual_seed(20261123);
  for (int64_t K : Ks)
    for (int64_t N : Ns) {
      at::Tensor w = randn({N, K}, t);
      at::Tensor b = randn({N}, t);
      for (int64_t M : Ms)
        for (bool bias : {false, true}) {
          at::Tensor x = randn({M, K}, t);
          at::Tensor bb = bias ? b : at::Tensor();
          expect_matches(mm::linear(x, w, bb), x, w, bb, describe(t, M, K, N, bias, "contiguous"));
        }
    }
}

const std::vector<int64_t> kRows = {1, 2, 3, 7, 31, 32, 33, 64, 65, 300};
const std::vector<int64_t> kIn = {1, 7, 64, 768, 2048 + 5};
const std::vector<int64_t> kOut = {1, 5, 64, 2048 + 3};

}  // namespace

TEST(Linear, MatchesFloat64F32) { sweep(at::kFloat, kRows, kIn, kOut); }

TEST(Linear, MatchesFloat64BF16) { sweep(at::kBFloat16, kRows, kIn, kOut); }

TEST(Linear, NonContiguousActivations) {
  at::manual_seed(7);
  for (at::ScalarType t : {at::kFloat, at::kBFloat16})
    for (int64_t M : {1, 3, 32, 65})
      for (int64_t K : {7, 768}) {
        const int64_t N = 67;
        at::Tensor w = randn({N, K}, t), b = randn({N}, t);
        // Rows longer than K (row stride K + 5, unit stride along K).
        at::Tensor wide = randn({M, K + 5}, t).narrow(1, 2, K);
        expect_matches(mm::linear(wide, w, b), wide, w, b,
                       describe(t, M, K, N, true, "row-strided"));
        // Stride 2 along K.
        at::Tensor every2 = randn({M, 2 * K}, t).slice(1, 0, 2 * K, 2);
        expect_matches(mm::linear(every2, w, b), every2, w, b,
                       describe(t, M, K, N, true, "k-strided"));
        // Transposed storage.
        at::Tensor tr = randn({K, M}, t).t();
        expect_matches(mm::linear(tr, w, at::Tensor()), tr, w, at::Tensor(),
                       describe(t, M, K, N, false, "transposed"));
        // Batched [2, M, K] made by a transpose of [M, 2, K] (leading dims kept in the output).
        at::Tensor b3 = randn({M, 2, K}, t).transpose(0, 1);
        expect_matches(mm::linear(b3, w, b), b3, w, b, describe(t, M, K, N, true, "3-d"));
      }
}

TEST(Linear, InferenceModeAndOneThread) {
  c10::InferenceMode guard;
  const int threads = at::get_num_threads();
  at::manual_seed(11);
  for (int nt : {1, threads}) {
    at::set_num_threads(nt);
    for (at::ScalarType t : {at::kFloat, at::kBFloat16}) {
      at::Tensor w = randn({2048 + 3, 768}, t), b = randn({2048 + 3}, t);
      for (int64_t M : {1, 32, 100}) {
        at::Tensor x = randn({1, M, 768}, t);
        expect_matches(mm::linear(x, w, b), x, w, b,
                       describe(t, M, 768, 2048 + 3, true, std::to_string(nt) + " thread(s)"));
      }
    }
  }
  at::set_num_threads(threads);
}

// bf16 output rounding, by hand: 1 + 2^-8 lies halfway between the bf16 values 1 and 1 + 2^-7
// and rounds to the even one (1); 1 + 2^-7 + 2^-8 lies halfway between 1 + 2^-7 (odd) and
// 1 + 2^-6 and rounds up. Truncation would give 1 and 1 + 2^-7. Each operand is a bf16 value and
// each sum is exact in f32, so only the final rounding is tested.
TEST(Linear, BF16RoundsToNearestEven) {
  const double e7 = std::ldexp(1.0, -7), e8 = std::ldexp(1.0, -8);
  for (int64_t M : {1, 5, 100})
    for (bool bias : {false, true}) {
      // y[m, 0] = 1 * 1 + 2^-8, y[m, 1] = 1 * (1 + 2^-7) + 2^-8, y[m, 2] = -(1 + 2^-7) - 2^-8.
      at::Tensor x = at::ones({M, 2}, at::kBFloat16);
      at::Tensor w =
          at::tensor({1.0, bias ? 0.0 : e8, 1.0 + e7, bias ? 0.0 : e8, -1.0 - e7, bias ? 0.0 : -e8},
                     at::kDouble)
              .view({3, 2})
              .to(at::kBFloat16);
      at::Tensor b = at::tensor({e8, e8, -e8}, at::kDouble).to(at::kBFloat16);
      at::Tensor y = mm::linear(x, w, bias ? b : at::Tensor()).to(at::kDouble);
      for (int64_t m = 0; m < M; ++m) {
        EXPECT_EQ(y[m][0].item<double>(), 1.0) << "M=" << M << " bias " << bias;
        EXPECT_EQ(y[m][1].item<double>(), 1.0 + 2 * e7) << "M=" << M << " bias " << bias;
        EXPECT_EQ(y[m][2].item<double>(), -1.0 - 2 * e7) << "M=" << M << " bias " << bias;
      }
    }
}

TEST(Linear, EmptyRows) {
  at::Tensor w = at::randn({5, 4}), x = at::randn({0, 4});
  EXPECT_EQ(mm::linear(x, w, at::Tensor()).sizes(), (at::IntArrayRef{0, 5}));
}

// With autograd recording, the result carries a graph and its gradients are at::linear's.
TEST(Linear, BackpropagatesWhenRecording) {
  at::manual_seed(3);
  for (int64_t M : {1, 32}) {
    at::Tensor x0 = at::randn({M, 64}), w0 = at::randn({48, 64}), b0 = at::randn({48});
    at::Tensor g = at::randn({M, 48});
    auto grads = [&](bool ours) {
      at::Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true),
                 b = b0.clone().requires_grad_(true);
      at::Tensor y = ours ? mm::linear(x, w, b) : at::linear(x, w, b);
      EXPECT_TRUE(y.requires_grad());
      (y * g).sum().backward();
      return std::vector<at::Tensor>{y.detach(), x.grad(), w.grad(), b.grad()};
    };
    std::vector<at::Tensor> ours = grads(true), theirs = grads(false);
    // Independent check of the weight gradient: dL/dW = g^T x.
    EXPECT_TRUE(at::allclose(theirs[2], at::mm(g.t(), x0), 1e-4, 1e-4));
    const char* names[] = {"y", "x.grad", "w.grad", "b.grad"};
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(ours[i].defined()) << names[i] << " M=" << M;
      EXPECT_TRUE(at::allclose(ours[i], theirs[i], 1e-5, 1e-5)) << names[i] << " M=" << M;
    }
    // Only the weight trainable (LoRA-style frozen input is the reverse; both must record).
    at::Tensor w = w0.clone().requires_grad_(true);
    at::Tensor y = mm::linear(x0, w, at::Tensor());
    ASSERT_TRUE(y.requires_grad()) << "M=" << M;
    y.sum().backward();
    EXPECT_TRUE(at::allclose(w.grad(), x0.sum(0).expand({48, 64}), 1e-4, 1e-4)) << "M=" << M;
  }
}
