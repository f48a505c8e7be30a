// The fused decode step's row operations (src/model/row_kernel.h) at each kernel level, against
// libtorch's own ops on the same values and c10::BFloat16's conversion:
//   - bf16 rounding and widening: bit for bit, with ties, NaN, infinities, subnormals, overflow;
//   - the residual sum, the SiLU gate and RoPE in bf16: bit for bit against libtorch's bf16 ops
//     (each rounds its float result to nearest even, where the kernels round); the SiLU as
//     PyTorch 2 computes it in bf16 (in float, rounded once);
//   - the SiLU gate in f32: bit for bit at the vector levels, which call the SLEEF exp libtorch's
//     vectorized kernels call; within 4 ULP at scalar (std::exp);
//   - RMSNorm: bit for bit across levels, and within the f32 (or one bf16 step) of libtorch's;
//   - the attention softmax: within its f32 summation bound (or one bf16 step) of libtorch's
//     float64 softmax.
// Lengths cover a partial last vector of 8 and of 16 lanes and the model's widths.
#include "model/row_kernel.h"

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "core/cpu.h"
#include "isa_test.h"

namespace kn = metamath::model::kernels;
using metamath::Isa;

namespace {

class RowKernel : public metamath::testing::IsaTest {};

const std::vector<int64_t> kLengths = {1, 5, 8, 15, 16, 17, 33, 768, 2053};

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<float> to_vector(const at::Tensor& t) {
  const at::Tensor f = t.to(at::kFloat).contiguous();
  return std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
}
at::Tensor to_tensor(const std::vector<float>& v) {
  return at::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())}, at::kFloat)
      .clone();
}

// n random floats of spread `scale`, rounded to bf16 where `bf16`.
std::vector<float> random_row(int64_t n, double scale, bool bf16) {
  at::Tensor t = at::randn({n}) * scale;
  if (bf16) t = t.to(at::kBFloat16);
  return to_vector(t);
}

// libtorch's result on a copy padded to a multiple of 64 elements, so that every element takes
// its vectorized loop (its scalar tail loop calls std::exp instead of SLEEF's).
at::Tensor padded(const std::vector<float>& v, at::ScalarType dtype) {
  const int64_t n = static_cast<int64_t>(v.size()), m = (n + 63) / 64 * 64;
  at::Tensor t = at::zeros({m}, at::kFloat);
  std::memcpy(t.data_ptr<float>(), v.data(), n * sizeof(float));
  return t.to(dtype);
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want,
                      const char* what) {
  ASSERT_EQ(got.size(), want.size());
  int64_t wrong = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (bits_of(got[i]) != bits_of(want[i]) && wrong++ < 5)
      ADD_FAILURE() << what << " n=" << got.size() << " [" << i << "]: " << got[i] << " (0x"
                    << std::hex << bits_of(got[i]) << ") vs " << want[i] << " (0x"
                    << bits_of(want[i]) << std::dec << ")";
  EXPECT_EQ(wrong, 0) << what << " n=" << got.size();
}

// The values rounding must get right: ties to even (kept bit 0 and 1), just off a tie, the
// largest float (rounds to infinity), infinities, NaNs (any payload becomes 0x7FC0), signed
// zeros, subnormals, then random values of every magnitude.
std::vector<float> rounding_cases() {
  std::vector<float> v;
  for (uint32_t hi : {0x3F80u, 0x3F81u, 0xBF80u, 0xBF81u, 0x0001u, 0x7F7Fu, 0x4B7Fu})
    for (uint32_t lo : {0x8000u, 0x7FFFu, 0x8001u, 0x0000u, 0xFFFFu})
      v.push_back(from_bits(hi << 16 | lo));
  for (uint32_t u : {0x7F800000u, 0xFF800000u, 0x7FC00000u, 0x7F800001u, 0xFFC12345u, 0x00000000u,
                     0x80000000u, 0x00000001u, 0x807FFFFFu, 0x7F7FFFFFu})
    v.push_back(from_bits(u));
  const at::Tensor r = at::randint(0, 1 << 30, {300}, at::kLong);
  for (int64_t i = 0; i < r.numel(); ++i) {
    const uint32_t u = static_cast<uint32_t>(r[i].item<int64_t>()) * 4u + (i & 3);
    if (!std::isnan(from_bits(u))) v.push_back(from_bits(u));
  }
  return v;
}

TEST_P(RowKernel, RoundBf16IsC10sConversion) {
  const std::vector<float> cases = rounding_cases();
  for (int64_t n : kLengths) {
    std::vector<float> in(n), want(n);
    for (int64_t i = 0; i < n; ++i) in[i] = cases[(i * 7) % cases.size()];
    std::vector<uint16_t> want_h(n), got_h(n, 0xABCD);
    for (int64_t i = 0; i < n; ++i) {
      want_h[i] = c10::BFloat16(in[i]).x;
      want[i] = from_bits(static_cast<uint32_t>(want_h[i]) << 16);
    }
    std::vector<float> got = in;
    kn::round_bf16_row(got.data(), n, got_h.data());
    expect_same_bits(got, want, "round_bf16_row");
    EXPECT_EQ(got_h, want_h) << "n=" << n;
    std::vector<float> again = in;  // without bits
    kn::round_bf16_row(again.data(), n, nullptr);
    expect_same_bits(again, want, "round_bf16_row (no bits)");
  }
  // The whole set once, in one row.
  std::vector<float> all = cases, want(cases.size());
  for (size_t i = 0; i < cases.size(); ++i)
    want[i] = from_bits(static_cast<uint32_t>(c10::BFloat16(cases[i]).x) << 16);
  kn::round_bf16_row(all.data(), static_cast<int64_t>(all.size()), nullptr);
  expect_same_bits(all, want, "round_bf16_row (all cases)");
}

TEST_P(RowKernel, WidenIsExactForEveryBf16Pattern) {
  std::vector<uint16_t> h(65536 + 3);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(i);
  std::vector<float> got(h.size()), want(h.size());
  for (size_t i = 0; i < h.size(); ++i) want[i] = from_bits(static_cast<uint32_t>(h[i]) << 16);
  kn::widen_bf16_row(h.data(), static_cast<int64_t>(h.size()), got.data());
  expect_same_bits(got, want, "widen_bf16_row");
}

TEST_P(RowKernel, AddIsLibtorchsSum) {
  for (int64_t n : kLengths) {
    const std::vector<float> x32 = random_row(n, 3.0, false), y = random_row(n, 0.5, false);
    std::vector<float> got = x32;
    kn::add_row(got.data(), y.data(), n, false);
    expect_same_bits(got, to_vector(to_tensor(x32) + to_tensor(y)), "add_row f32");

    const std::vector<float> x16 = random_row(n, 3.0, true);
    got = x16;
    kn::add_row(got.data(), y.data(), n, true);
    const at::Tensor want = to_tensor(x16).to(at::kBFloat16) + to_tensor(y).to(at::kBFloat16);
    expect_same_bits(got, to_vector(want), "add_row bf16");
  }
}

TEST_P(RowKernel, SiluMulIsLibtorchsSiluTimesUp) {
  for (int64_t n : kLengths) {
    // Gate values from -30 to 30 (exp's range in a model), plus zero and tiny ones.
    std::vector<float> g = random_row(n, 6.0, false), u = random_row(n, 1.0, false);
    g[0] = 0.0f;
    if (n > 4) g[1] = -30.5f, g[2] = 30.5f, g[3] = 1e-30f;
    const at::Tensor want32 = at::silu(padded(g, at::kFloat)) * padded(u, at::kFloat);
    std::vector<float> got(n);
    std::vector<uint16_t> h(n);
    kn::silu_mul_row(g.data(), u.data(), n, false, got.data(), nullptr);
    std::vector<float> want = to_vector(want32.slice(0, 0, n));
    if (GetParam() != Isa::scalar) {
      expect_same_bits(got, want, "silu_mul_row f32");
    } else {
      // std::exp: it and SLEEF are each within 1 ULP of exp, so 2 ULP apart at most; 1 + e does
      // not magnify that, and the quotient and the product may each round the other way: 4 ULP.
      for (int64_t i = 0; i < n; ++i)
        EXPECT_LE(std::abs(got[i] - want[i]),
                  4 * std::abs(want[i]) * std::numeric_limits<float>::epsilon())
            << "n=" << n << " i=" << i;
    }

    // bf16 as PyTorch 2's bf16 silu computes it (in float, one rounding): libtorch 1.13's here
    // rounds after each of its ops (the exp, the sum, the quotient), so its f32 silu is rounded.
    const at::ScalarType bf = at::kBFloat16;
    const at::Tensor g16 = padded(g, bf).to(at::kFloat);
    const at::Tensor want16 = at::silu(g16).to(bf) * padded(u, bf);
    kn::silu_mul_row(g.data(), u.data(), n, true, got.data(), h.data());
    want = to_vector(want16.slice(0, 0, n));
    if (GetParam() != Isa::scalar) {
      expect_same_bits(got, want, "silu_mul_row bf16");
    } else {  // a last-bit exp difference can move the rounded silu one bf16 step
      for (int64_t i = 0; i < n; ++i)
        EXPECT_LE(std::abs(got[i] - want[i]), std::abs(want[i]) / 64) << "n=" << n << " i=" << i;
    }
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(h[i], c10::BFloat16(got[i]).x) << "bits, n=" << n << " i=" << i;
  }
}

TEST_P(RowKernel, RopeIsLibtorchsRotateHalf) {
  for (int64_t d : {2, 6, 16, 34, 64, 80, 128, 256, 1030}) {
    for (bool bf16 : {false, true}) {
      const std::vector<float> v = random_row(d, 2.0, bf16);
      const at::Tensor angle = at::rand({d / 2}) * 50;
      const at::Tensor a2 = at::cat({angle, angle});
      const at::ScalarType dt = bf16 ? at::kBFloat16 : at::kFloat;
      const at::Tensor cos = a2.cos().to(dt), sin = a2.sin().to(dt);
      const std::vector<float> c = to_vector(cos), s = to_vector(sin);
      const at::Tensor q = to_tensor(v).to(dt);
      const at::Tensor rotated = at::cat({-q.slice(0, d / 2), q.slice(0, 0, d / 2)});
      const std::vector<float> want = to_vector(q * cos + rotated * sin);
      std::vector<float> got = v;
      kn::rope_row(got.data(), d, c.data(), s.data(), bf16);
      if (bf16) {
        expect_same_bits(got, want, "rope_row bf16");
      } else {  // the compiler may fuse the sum into an FMA: one rounding fewer than libtorch's
        for (int64_t i = 0; i < d; ++i)
          EXPECT_LE(std::abs(got[i] - want[i]),
                    (std::abs(v[i] * c[i]) + std::abs(v[(i + d / 2) % d] * s[i])) * 2e-7)
              << "d=" << d << " i=" << i;
      }
    }
  }
}

// The attention probabilities of one query row against libtorch's float64 softmax of the same
// scaled scores with the hidden keys at -inf (rounded once for bf16, as Hugging Face's
// softmax(..., dtype=float32).to(bf16)). Hidden keys hold a huge score that must not be read.
TEST_P(RowKernel, SoftmaxIsLibtorchsOverTheVisibleKeys) {
  const float scale = 0.125f;
  for (int64_t L : kLengths) {
    for (bool bf16 : {false, true}) {
      const std::vector<float> raw = random_row(L, 8.0, bf16);
      std::unique_ptr<bool[]> hidden(new bool[L]);
      for (int64_t c = 0; c < L; ++c) hidden[c] = L > 1 && (c * 5 + L) % 7 == 3;
      std::vector<float> got = raw;
      for (int64_t c = 0; c < L; ++c)
        if (hidden[c]) got[c] = 1e30f;
      kn::softmax_row(got.data(), hidden.get(), L, scale, bf16);
      at::Tensor x = to_tensor(raw);
      if (bf16)
        x = (x.to(at::kBFloat16) * scale).to(at::kFloat);  // libtorch's bf16 product
      else
        x = x * scale;
      at::Tensor mask = at::zeros({L}, at::kBool);
      for (int64_t c = 0; c < L; ++c) mask[c] = static_cast<bool>(hidden[c]);
      // The softmax in float64, then rounded once for bf16.
      at::Tensor p = at::softmax(x.to(at::kDouble).masked_fill(mask, -INFINITY), 0);
      if (bf16) p = p.to(at::kBFloat16);
      const std::vector<double> want64 = [&] {
        const at::Tensor d = p.to(at::kDouble).contiguous();
        return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + L);
      }();
      for (int64_t c = 0; c < L; ++c) {
        if (hidden[c]) {
          EXPECT_EQ(bits_of(got[c]), 0u) << "hidden key, L=" << L << " c=" << c;
          continue;
        }
        // f32: a sum of L floats in any order is within (L - 1) ULP of the true sum (relative),
        // and exp, the max's subtraction and the division add a few; bf16: that can move a
        // rounding one step.
        const double bound =
            bf16 ? std::abs(want64[c]) / 128
                 : (L + 4) * std::abs(want64[c]) * std::numeric_limits<float>::epsilon();
        EXPECT_LE(std::abs(got[c] - want64[c]), bound)
            << "L=" << L << " c=" << c << " bf16=" << bf16;
        if (bf16) {
          EXPECT_EQ(bits_of(got[c]) & 0xFFFF, 0u) << "not a bf16 value";
        }
      }
    }
  }
  // Every key hidden: each gets 1 / L (rounded for bf16), the header's rule (no NaN row).
  for (bool bf16 : {false, true}) {
    const int64_t L = 37;
    std::unique_ptr<bool[]> hidden(new bool[L]);
    std::fill(hidden.get(), hidden.get() + L, true);
    std::vector<float> got(L, 3.0f);
    kn::softmax_row(got.data(), hidden.get(), L, scale, bf16);
    const float u = bf16 ? static_cast<float>(c10::BFloat16(1.0f / L)) : 1.0f / L;
    for (int64_t c = 0; c < L; ++c) EXPECT_EQ(got[c], u) << "c=" << c;
  }
}

TEST_P(RowKernel, RmsNormIsTheSameAtEveryLevelAndLibtorchs) {
  const float eps = 1e-5f;
  for (int64_t n : kLengths) {
    for (bool bf16 : {false, true}) {
      const std::vector<float> x = random_row(n, 4.0, bf16);
      const at::ScalarType dt = bf16 ? at::kBFloat16 : at::kFloat;
      const at::Tensor w = (at::rand({n}) + 0.5).to(dt);
      std::vector<float> got(n), plain(n);
      std::vector<uint16_t> h(n);
      kn::rms_norm_row(x.data(), n, w.data_ptr(), bf16, eps, got.data(), h.data());
      {
        metamath::ScopedIsaLimit scalar(Isa::scalar);
        kn::rms_norm_row(x.data(), n, w.data_ptr(), bf16, eps, plain.data(), nullptr);
      }
      expect_same_bits(got, plain, bf16 ? "rms_norm_row bf16" : "rms_norm_row f32");
      for (int64_t i = 0; bf16 && i < n; ++i)
        ASSERT_EQ(h[i], c10::BFloat16(got[i]).x) << "bits, n=" << n << " i=" << i;
      // libtorch's form (the layered pass): the mean of squares in float.
      const at::Tensor xt = to_tensor(x);
      const at::Tensor normed = xt * at::rsqrt(xt.pow(2).mean() + eps);
      const std::vector<float> want = to_vector(bf16 ? w * normed.to(at::kBFloat16) : w * normed);
      for (int64_t i = 0; i < n; ++i) {
        // f32: the two means differ in their last bits; bf16: that can move a rounding a step.
        const double bound = std::abs(want[i]) * (bf16 ? 1.0 / 64 : 4e-7);
        EXPECT_LE(std::abs(got[i] - want[i]), bound) << "n=" << n << " i=" << i;
      }
    }
  }
}

METAMATH_EACH_ISA(RowKernel);

}  // namespace
