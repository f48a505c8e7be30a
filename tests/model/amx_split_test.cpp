// The "amx-bf16x3" candidate (src/model/amx_split_kernel.h): weight-only int8 products on AMX bf16
// tiles with each f32 activation split into three bf16 terms. The split is checked to be exact
// (hi + mid + lo, times the row's power of two, gives x back bit for bit within 2^100 of the
// row's largest |x|), the tiles against a
// float64 product with the f32 tolerance of linear_test.cpp (1e-5 * sum |x w| + |b|) on K tails
// around the 32-deep tile step, row counts around 16-row tiles, ragged N, with and without bias,
// and rows of very large and very small magnitudes; a thread's share writes only its columns;
// NaN and infinity stay in their rows; and the planner lists the candidate only where it applies.
// Tests that need AMX-BF16 skip without it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "model/amx_split_kernel.h"
#include "model/linear.h"
#include "model/linear_kernel.h"

namespace mm = metamath::model;
namespace kn = metamath::model::kernels;
using metamath::Isa;

namespace {

bool amx_available() { return metamath::cpu_isa() >= Isa::avx512 && kn::amx_bf16_permitted(); }

#define SKIP_WITHOUT_AMX()                                                 \
  if (!amx_available())                                                    \
  GTEST_SKIP() << "this CPU (or kernel) offers no AMX-BF16 tiles (flags: " \
               << metamath::cpu_flags_line() << ")"

// For the tests that go through model::linear, which offers the tiles only at kernel level
// avx512 (METAMATH_ISA may set it lower).
#define SKIP_WITHOUT_AMX_CANDIDATE()                                                  \
  SKIP_WITHOUT_AMX();                                                                 \
  if (metamath::kernel_isa() < Isa::avx512)                                           \
  GTEST_SKIP() << "model::linear offers amx-bf16x3 only at kernel level avx512 (now " \
               << metamath::isa_name(metamath::kernel_isa()) << ")"

float bf16_value(uint16_t bits) { return std::bit_cast<float>(uint32_t{bits} << 16); }

// Rows of x: row r % 4 == 0 normal(0, 1); 1: normal times 1e20; 2: normal times 1e-20; 3: each
// element times 1e20 or 1e-20 at random (both magnitudes in one row); every 5th row times 1e-35
// (where a lo term would be denormal without the row's power-of-two scaling).
at::Tensor wide_rows(int64_t M, int64_t K) {
  at::Tensor x = at::randn({M, K});
  for (int64_t r = 0; r < M; ++r) {
    at::Tensor row = x[r];
    if (r % 4 == 1) row.mul_(1e20);
    if (r % 4 == 2) row.mul_(1e-20);
    if (r % 4 == 3)
      row.mul_(at::where(at::rand({K}) < 0.5, at::full({K}, 1e20f), at::full({K}, 1e-20f)));
    if (r % 5 == 4) row.mul_(1e-35);
  }
  return x;
}

// y against the float64 product of x and the dequantized weight: |y - ref| <= 1e-5 * (sum_k
// |x_k w_k| + |b|) (linear_test.cpp's f32 tolerance and its argument).
void expect_matches_float64(const at::Tensor& y, const at::Tensor& x, const at::Tensor& q,
                            const at::Tensor& scale, const at::Tensor& b, const std::string& what) {
  at::Tensor xd = x.to(at::kDouble);
  at::Tensor wd = q.to(at::kDouble) * scale.to(at::kDouble).unsqueeze(1);
  at::Tensor ref = at::matmul(xd, wd.t()), mag = at::matmul(xd.abs(), wd.abs().t());
  if (b.defined()) {
    ref = ref + b.to(at::kDouble);
    mag = mag + b.to(at::kDouble).abs();
  }
  at::Tensor err = (y.to(at::kDouble) - ref).abs(), tol = mag * 1e-5 + 1e-300;
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

// The split on its own: the terms sum back to x exactly for every element within 2^100 of its
// row's largest, hi holds x's (scaled) top 16 bits, smaller ones lose at most themselves, and the
// padding (K past its end, rows past M) is zero.
TEST(AmxSplit, TermsSumBackToXExactly) {
  if (metamath::cpu_isa() < Isa::avx512) GTEST_SKIP() << "the split needs AVX-512";
  at::manual_seed(11);
  int64_t tiny = 0;  // elements more than 2^100 below their row's largest (rows of 1e20 and 1e-20)
  for (int64_t K : {1, 31, 33, 95})
    for (int64_t M : {1, 16, 17, 33}) {
      at::Tensor x = wide_rows(M, K);
      // Odd bit patterns: all 24 significand bits set, the smallest normal's neighbours.
      x[0][0] = std::bit_cast<float>(0x3fffffffu);
      if (M > 4) x[4][K - 1] = -std::bit_cast<float>(0x00800001u);
      std::vector<uint8_t> split(kn::amx_split_bytes(M, K));
      kn::amx_split_rows(x.data_ptr<float>(), K, M, K, 0, (M + 15) / 16, split.data());
      const int64_t Mp = (M + 15) / 16 * 16, Kp = (K + 31) / 32 * 32;
      const float* xs = x.data_ptr<float>();
      const std::vector<double> row_max = [&] {
        at::Tensor amax = x.abs().amax(1).to(at::kDouble).contiguous();
        return std::vector<double>(amax.data_ptr<double>(), amax.data_ptr<double>() + M);
      }();
      for (int64_t m = 0; m < Mp; ++m) {
        const double factor = kn::amx_split_row_factor(split.data(), M, K, m);
        for (int64_t k = 0; k < Kp; ++k) {
          const uint16_t hi = kn::amx_split_term(split.data(), M, K, 0, m, k);
          const uint16_t mid = kn::amx_split_term(split.data(), M, K, 1, m, k);
          const uint16_t lo = kn::amx_split_term(split.data(), M, K, 2, m, k);
          if (m >= M || k >= K) {
            ASSERT_EQ(hi | mid | lo, 0)
                << "padding M=" << M << " K=" << K << " m=" << m << " k=" << k;
            continue;
          }
          const double v = xs[m * K + k];
          const double sum = (double{bf16_value(hi)} + bf16_value(mid) + bf16_value(lo)) * factor;
          const std::string at = "M=" + std::to_string(M) + " K=" + std::to_string(K) +
                                 " m=" + std::to_string(m) + " k=" + std::to_string(k);
          if (std::abs(v) >= row_max[m] * 0x1p-100) {
            ASSERT_EQ(sum, v) << at;
            ASSERT_EQ(hi, std::bit_cast<uint32_t>(static_cast<float>(v / factor)) >> 16) << at;
          } else {
            // Scaled into the denormal range (flushed there under FTZ, and by the tiles anyway):
            // the terms hold at most x itself, with its sign.
            ASSERT_LE(std::abs(sum - v), std::abs(v)) << at;
            ++tiny;
          }
        }
      }
    }
  EXPECT_GT(tiny, 0);
}

// The tiles through model::linear's candidate on the shapes the task names.
TEST(AmxSplit, TilesMatchFloat64OnTailsAndWideMagnitudes) {
  SKIP_WITHOUT_AMX_CANDIDATE();
  at::manual_seed(20261129);
  for (int64_t K : {1, 31, 33, 95})
    for (int64_t N : {13, 40}) {
      const mm::QuantizedWeight q = mm::quantize_q8(at::randn({N, K}));
      at::Tensor b = at::randn({N});
      for (int64_t M : {16, 17, 33})
        for (bool bias : {false, true}) {
          at::Tensor x = wide_rows(M, K), bb = bias ? b : at::Tensor();
          const std::string what = "M=" + std::to_string(M) + " K=" + std::to_string(K) +
                                   " N=" + std::to_string(N) + (bias ? " bias" : "");
          expect_matches_float64(mm::linear_using("amx-bf16x3", x, q.q, bb, q.scale), x, q.q,
                                 q.scale, bb, what);
        }
    }
}

// One thread's share (columns [n0, n1), not on a 16-column edge) writes exactly those columns;
// row-strided activations.
TEST(AmxSplit, ColumnShareWritesOnlyItsColumns) {
  SKIP_WITHOUT_AMX();
  at::manual_seed(3);
  const int64_t M = 20, K = 70, N = 53, n0 = 5, n1 = 41;
  const mm::QuantizedWeight q = mm::quantize_q8(at::randn({N, K}));
  at::Tensor xwide = at::randn({M, K + 6}), x = xwide.narrow(1, 2, K), b = at::randn({N});
  std::vector<uint8_t> split(kn::amx_split_bytes(M, K));
  kn::amx_split_rows(xwide.data_ptr<float>() + 2, K + 6, M, K, 0, 2, split.data());
  at::Tensor y = at::full({M, N}, 12345.0f);
  kn::GemmNT a;
  a.x = split.data();
  a.M = M;
  a.K = K;
  a.N = N;
  a.w = q.q.data_ptr();
  a.w_type = kn::WeightType::i8;
  a.w_scale = q.scale.data_ptr<float>();
  a.b = b.data_ptr<float>();
  a.y = y.data_ptr<float>();
  a.ldy = N;
  kn::gemm_nt_columns(a, kn::Tiles::amx_bf16x3, n0, n1);
  EXPECT_TRUE(y.narrow(1, 0, n0).eq(12345.0f).all().item<bool>());
  EXPECT_TRUE(y.narrow(1, n1, N - n1).eq(12345.0f).all().item<bool>());
  expect_matches_float64(y.narrow(1, n0, n1 - n0), x, q.q.narrow(0, n0, n1 - n0),
                         q.scale.narrow(0, n0, n1 - n0), b.narrow(0, n0, n1 - n0), "share");
}

// A NaN or an infinity in one row makes that row's outputs NaN (amx_split_kernel.h) and leaves
// the other rows as they were.
TEST(AmxSplit, NaNAndInfinityStayInTheirRows) {
  SKIP_WITHOUT_AMX_CANDIDATE();
  at::manual_seed(4);
  const int64_t M = 20, K = 40, N = 24;
  const mm::QuantizedWeight q = mm::quantize_q8(at::randn({N, K}));
  at::Tensor x = at::randn({M, K});
  x[3][7] = std::numeric_limits<float>::quiet_NaN();
  x[17][39] = std::numeric_limits<float>::infinity();
  at::Tensor y = mm::linear_using("amx-bf16x3", x, q.q, {}, q.scale);
  EXPECT_TRUE(y[3].isnan().all().item<bool>());
  EXPECT_TRUE(y[17].isnan().all().item<bool>());
  const at::Tensor finite = at::tensor({0, 1, 2, 4, 5, 16, 18, 19}, at::kLong);
  expect_matches_float64(y.index_select(0, finite), x.index_select(0, finite), q.q, q.scale, {},
                         "finite rows");
}

// Listed for weight-only int8 with f32 activations from 9 rows (row class 16: the fused decode
// step's <= 8 rows never see it), at the avx512 level only; never for int8 activations (q8-dot),
// bf16 activations, f32 or bf16 weights.
TEST(AmxSplit, ListedOnlyForWeightOnlyInt8F32From9Rows) {
  SKIP_WITHOUT_AMX_CANDIDATE();
  const int64_t K = 64, N = 32;
  const mm::QuantizedWeight q = mm::quantize_q8(at::randn({N, K}));
  auto lists = [](const std::vector<std::string>& names) {
    return std::find(names.begin(), names.end(), "amx-bf16x3") != names.end();
  };
  for (int64_t M : {1, 8, 9, 16, 512}) {
    at::Tensor x = at::randn({M, K});
    const std::string what = "M=" + std::to_string(M);
    EXPECT_EQ(lists(mm::linear_candidates(x, q.q, {}, q.scale)), M >= 9) << what;
    EXPECT_FALSE(lists(mm::linear_candidates(x, q.q, {}, q.scale, true))) << what;
    EXPECT_FALSE(lists(mm::linear_candidates(x.to(at::kBFloat16), q.q, {}, q.scale))) << what;
    EXPECT_FALSE(lists(mm::linear_candidates(x, at::randn({N, K}), {}))) << what;
    EXPECT_FALSE(
        lists(mm::linear_candidates(x.to(at::kBFloat16), at::randn({N, K}).to(at::kBFloat16), {})))
        << what;
    for (const std::string& name : mm::linear_candidates(x, q.q, {}, q.scale))
      EXPECT_FALSE(mm::quantizes_activations(name)) << what << " " << name;
    metamath::ScopedIsaLimit avx2(Isa::avx2);
    EXPECT_FALSE(lists(mm::linear_candidates(x, q.q, {}, q.scale))) << what;
  }
  EXPECT_EQ(mm::candidate_tiles("amx-bf16x3"), kn::Tiles::amx_bf16x3);
  EXPECT_FALSE(mm::quantizes_activations("amx-bf16x3"));
}

}  // namespace
