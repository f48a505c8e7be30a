// model::linear (src/model/linear.cpp: the AVX2 / AVX-512 small-M kernel, the widened-bf16 path
// for many rows, libtorch otherwise) against at::linear computed in float64 from the same inputs,
// over row counts on both sides of the kernel's limit, ragged K and N, bias or none, f32 and bf16,
// and non-contiguous activations; bf16 rounding on hand-checked ties; and autograd through it.
// The LinearIsa tests run once per kernel level (core/cpu.h: scalar, avx2, avx512), each level
// this CPU lacks skipped with a message; EveryCandidate* run each planner candidate the level
// offers (model::linear_using: our tiles, AVX512_BF16 dot products, libtorch, the widened path),
// including the weight-only int8 (q8) weights against float64 products of the dequantized weight.
#include "model/linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "isa_test.h"
#include "model/huge_pages.h"
#include "model/linear_kernel.h"
#include "test_util.h"

namespace mm = metamath::model;
using metamath::Isa;

namespace {

// Runs each test with kernels limited to one level (tests/isa_test.h).
class LinearIsa : public metamath::testing::IsaTest {};

std::string describe(at::ScalarType t, int64_t M, int64_t K, int64_t N, bool bias,
                     const std::string& layout) {
  return std::string(t == at::kFloat ? "f32" : "bf16") + " M=" + std::to_string(M) +
         " K=" + std::to_string(K) + " N=" + std::to_string(N) + (bias ? " bias" : " no-bias") +
         " " + layout;
}

// y (any float dtype, [..., N]) against the float64 product of the same (already-rounded) inputs.
// f32: |y - ref| <= 1e-5 * (sum_k |x_k w_k| + |b|). Rounding argument: each f32 accumulator (a
// vector lane, or BLAS's blocked sum) adds at most K/8 + 4 terms, each addition off by at most
// 2^-24 of the running |sum| <= sum|x w|, so the worst case is (K/8 + 4) * 2^-24 = 1.6e-5 at
// K = 2053 (7.9e-6 with 16 lanes); rounding errors of random sign grow like the square root of
// that count, so 1e-5 holds with a wide margin and is still ~1/20 of one dropped product's share
// (1/K of the sum) at K = 2053.
// bf16: y within one bf16 ulp of ref rounded to bf16 (the f32 sum may land on the other side of a
// rounding boundary), plus the same f32-accumulation allowance (where the sum nearly cancels).
struct Reference {
  std::vector<int64_t> shape;
  at::Tensor ref;     // float64 product
  at::Tensor target;  // what y is compared with: ref, or ref rounded to bf16
  at::Tensor tol;
};

Reference reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  Reference r;
  r.shape.assign(x.sizes().begin(), x.sizes().end());
  r.shape.back() = w.size(0);
  at::Tensor xd = x.to(at::kDouble), wd = w.to(at::kDouble);
  at::Tensor bd = b.defined() ? b.to(at::kDouble) : at::Tensor();
  r.ref = bd.defined() ? at::linear(xd, wd, bd) : at::linear(xd, wd);
  at::Tensor mag =
      bd.defined() ? at::linear(xd.abs(), wd.abs(), bd.abs()) : at::linear(xd.abs(), wd.abs());
  at::Tensor allow = mag * 1e-5 + 1e-30;
  r.target = r.ref;
  r.tol = allow;
  if (x.scalar_type() == at::kBFloat16) {
    // ulp of the bf16 value r: 2^(exponent(r) - 7) for |r| = 1.m * 2^exponent(r).
    r.target = r.ref.to(at::kBFloat16).to(at::kDouble);
    at::Tensor ulp = at::exp2(at::floor(at::log2(r.target.abs().clamp_min(1e-30))) - 7);
    r.tol = ulp + allow;
  }
  return r;
}

void expect_matches(const at::Tensor& y, const at::Tensor& x, const Reference& r,
                    const std::string& what) {
  ASSERT_EQ(y.scalar_type(), x.scalar_type()) << what;
  ASSERT_EQ(y.sizes(), at::IntArrayRef(r.shape)) << what;
  at::Tensor err = (y.to(at::kDouble) - r.target).abs();
  at::Tensor bad = err > r.tol;
  const int64_t nbad = bad.sum().item<int64_t>();
  if (nbad > 0) {
    const int64_t i = bad.reshape({-1}).nonzero()[0][0].item<int64_t>();
    ADD_FAILURE() << what << ": " << nbad << " of " << y.numel() << " outputs off; first at flat "
                  << i << ": got " << y.to(at::kDouble).reshape({-1})[i].item<double>()
                  << ", float64 " << r.ref.reshape({-1})[i].item<double>() << ", tolerance "
                  << r.tol.reshape({-1})[i].item<double>();
  }
}

void expect_matches(const at::Tensor& y, const at::Tensor& x, const at::Tensor& w,
                    const at::Tensor& b, const std::string& what) {
  expect_matches(y, x, reference(x, w, b), what);
}

// |a - b| <= 2 n 2^-24 mag elementwise, for two f32 sums of the same n products whose absolute
// values sum to mag: in any order, each side's product roundings and n - 1 additions each err by
// at most 2^-24 of a partial sum bounded by mag (first order), so each side is within n 2^-24 mag.
void expect_within_sum_rounding(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mag,
                                int64_t n, const std::string& what) {
  at::Tensor err = (a.to(at::kDouble) - b.to(at::kDouble)).abs();
  at::Tensor tol = mag.to(at::kDouble) * (2.0 * static_cast<double>(n) * std::ldexp(1.0, -24));
  EXPECT_TRUE((err <= tol).all().item<bool>()) << what << ": max error " << err.max().item<double>()
                                               << " against tolerance " << tol.max().item<double>();
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

TEST_P(LinearIsa, MatchesFloat64F32) { sweep(at::kFloat, kRows, kIn, kOut); }

TEST_P(LinearIsa, MatchesFloat64BF16) { sweep(at::kBFloat16, kRows, kIn, kOut); }

TEST_P(LinearIsa, NonContiguousActivations) {
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

TEST_P(LinearIsa, InferenceModeAndOneThread) {
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
TEST_P(LinearIsa, BF16RoundsToNearestEven) {
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

// Every candidate this level offers, for f32 and bf16 weights and int8 weights with f32 or bf16
// activations (the reference for q8 is the float64 product with the dequantized weight, so the
// f32 / bf16 tolerances above apply unchanged: the scale multiplies the f32 sum once). The
// candidates that also quantize the activations are checked in q8_kernel_test.cpp.
TEST_P(LinearIsa, EveryCandidateMatchesFloat64) {
  at::manual_seed(20261129);
  const std::vector<int64_t> rows = {1, 3, 32, 65}, ins = {7, 768, 2048 + 5}, outs = {5, 768 + 3};
  int64_t covered = 0;
  for (const char* kind : {"f32", "bf16", "q8-f32", "q8-bf16"}) {
    const std::string k = kind;
    const at::ScalarType xt = k == "f32" || k == "q8-f32" ? at::kFloat : at::kBFloat16;
    for (int64_t K : ins)
      for (int64_t N : outs) {
        at::Tensor wf = randn({N, K}, xt), b = randn({N}, xt);
        at::Tensor w = wf, scale, wref = wf;
        if (k.rfind("q8", 0) == 0) {
          const mm::QuantizedWeight q = mm::quantize_q8(wf);
          w = q.q;
          scale = q.scale;
          wref = q.q.to(at::kDouble) * q.scale.to(at::kDouble).unsqueeze(1);
        }
        for (int64_t M : rows)
          for (bool bias : {false, true}) {
            at::Tensor x = randn({M, K}, xt);
            at::Tensor bb = bias ? b : at::Tensor();
            const std::vector<std::string> names = mm::linear_candidates(x, w, bb, scale);
            ASSERT_FALSE(names.empty()) << k;
            const Reference ref = reference(x, wref, bb);
            for (const std::string& name : names) {
              // Those that quantize the activations too have their own bounds (q8_kernel_test).
              if (mm::quantizes_activations(name)) continue;
              expect_matches(mm::linear_using(name, x, w, bb, scale), x, ref,
                             k + " " + name + " " + describe(xt, M, K, N, bias, "contiguous"));
              ++covered;
            }
          }
      }
  }
  EXPECT_GT(covered, 0);
}

// The native bf16 tiles on ragged K around their 32-element step and tile edges, row-strided.
TEST_P(LinearIsa, Bf16DotTailsAndStrides) {
  at::manual_seed(5);
  for (int64_t K : {1, 31, 32, 33, 63, 64, 65, 100})
    for (int64_t M : {1, 4, 5, 9}) {
      const int64_t N = 13;
      at::Tensor w = randn({N, K}, at::kBFloat16), b = randn({N}, at::kBFloat16);
      at::Tensor x = randn({M, K + 3}, at::kBFloat16).narrow(1, 1, K);
      for (const std::string& name : mm::linear_candidates(x, w, b))
        expect_matches(mm::linear_using(name, x, w, b), x, w, b,
                       name + " " + describe(at::kBFloat16, M, K, N, true, "row-strided"));
    }
}

METAMATH_EACH_ISA(LinearIsa);

// The candidates each level offers on this CPU: AVX512_BF16 only with it, our tiles only above
// scalar, libtorch's bf16 only where oneDNN has its AVX-512 kernels.
TEST(LinearCandidates, FollowTheCpuAndTheLevel) {
  at::Tensor x = at::randn({1, 16}).to(at::kBFloat16), w = at::randn({8, 16}).to(at::kBFloat16);
  for (metamath::Isa level : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (level > metamath::cpu_isa()) continue;
    metamath::ScopedIsaLimit limit(level);
    const std::vector<std::string> names = mm::linear_candidates(x, w, at::Tensor());
    auto has = [&](const char* n) {
      return std::find(names.begin(), names.end(), n) != names.end();
    };
    EXPECT_EQ(has("avx512-bf16dot"), level == Isa::avx512 && metamath::cpu_has_avx512_bf16());
    EXPECT_EQ(has("avx2"), level >= Isa::avx2);
    EXPECT_EQ(has("avx512"), level == Isa::avx512);
    EXPECT_TRUE(has("widened"));
    EXPECT_EQ(names[0], level == Isa::scalar ? "widened" : metamath::isa_name(level));
    EXPECT_NE(metamath::testing::error_of([&] {
                mm::linear_using("nope", x, w, at::Tensor());
              }).find("'nope' is not available"),
              std::string::npos);
  }
  // Recorded calls have no candidates (at::linear keeps the graph).
  at::Tensor wg = at::randn({8, 16}).requires_grad_(true);
  EXPECT_TRUE(mm::linear_candidates(at::randn({1, 16}), wg, at::Tensor()).empty());
}

// quantize_q8 by hand: each row's largest magnitude maps to +-127, every weight is within half a
// step (scale / 2) of its dequantized value, an all-zero row has scale 1 and zeros.
TEST(QuantizeQ8, PerRowScalesAndHalfStepError) {
  at::Tensor w =
      at::tensor({1.27f, -0.5f, 0.0f, 0.3f, 0.0f, 0.0f, 0.0f, 0.0f, -2.54f, 1.0f, 0.01f, 2.54f},
                 at::kFloat)
          .view({3, 4});
  const mm::QuantizedWeight q = mm::quantize_q8(w);
  ASSERT_EQ(q.q.scalar_type(), at::kChar);
  EXPECT_FLOAT_EQ(q.scale[0].item<float>(), 0.01f);
  EXPECT_FLOAT_EQ(q.scale[1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(q.scale[2].item<float>(), 0.02f);
  EXPECT_EQ(q.q[0][0].item<int>(), 127);
  EXPECT_EQ(q.q[0][1].item<int>(), -50);
  EXPECT_EQ(q.q[2][0].item<int>(), -127);
  EXPECT_EQ(q.q[2][1].item<int>(), 50);
  EXPECT_EQ(q.q[2][3].item<int>(), 127);
  EXPECT_EQ(q.q[1].abs().sum().item<int>(), 0);
  at::manual_seed(9);
  at::Tensor big = at::randn({64, 300});
  const mm::QuantizedWeight qb = mm::quantize_q8(big);
  at::Tensor deq = qb.q.to(at::kFloat) * qb.scale.unsqueeze(1);
  EXPECT_TRUE(((deq - big).abs() <= qb.scale.unsqueeze(1) * (0.5 + 1e-6)).all().item<bool>());
  EXPECT_EQ(qb.q.abs().amax(1).min().item<int>(), 127);
}

// The hand-written quantizer against libtorch's expression of the same rule (what it replaced):
// the same scales and int8 values, bit for bit, on random rows of several magnitudes, rows with
// exact half steps, zero rows, and rows with inf and NaN; bf16 weights too; from an arena.
TEST(QuantizeQ8, SameAsLibtorchsExpression) {
  auto reference = [](const at::Tensor& w) {
    const at::Tensor wf = w.to(at::kFloat);
    const at::Tensor amax = wf.abs().amax(1);
    const at::Tensor scale = at::where(amax > 0, amax / 127.0, at::ones_like(amax));
    return std::make_pair(scale, at::round(wf / scale.unsqueeze(1)).clamp(-127, 127).to(at::kChar));
  };
  at::manual_seed(21);
  at::Tensor w = at::randn({40, 333}) * at::pow(10.0, at::randint(-6, 4, {40, 1}).to(at::kFloat));
  w[3].zero_();
  for (int64_t k = 0; k < 333; ++k) w[5][k] = 0.5f * static_cast<float>(k % 255 - 127);  // ties
  w[5][0] = 127.0f;  // scale 1: the odd multiples of 0.5 are exact ties
  w[7][11] = std::numeric_limits<float>::infinity();
  w[8][2] = -std::numeric_limits<float>::infinity();
  w[9][4] = std::numeric_limits<float>::quiet_NaN();
  // Row-strided views (rows read in place, 400 apart) and column-strided ones (converted first).
  at::Tensor wide = at::zeros({40, 400});
  wide.narrow(1, 30, 333).copy_(w);
  for (const at::Tensor& x :
       {w, w.to(at::kBFloat16), w.to(at::kHalf), w.to(at::kDouble), w.t().contiguous().t(),
        wide.narrow(1, 30, 333), wide.to(at::kBFloat16).narrow(1, 30, 333),
        wide.to(at::kHalf).narrow(1, 30, 333)}) {
    SCOPED_TRACE(::testing::Message()
                 << x.scalar_type() << " strides " << x.stride(0) << "," << x.stride(1));
    const auto [scale, q] = reference(x);
    const mm::QuantizedWeight got = mm::quantize_q8(x);
    // NaN rows: libtorch's scale is 1 too (NaN > 0 is false); compare NaN-free values exactly.
    EXPECT_TRUE(at::equal(got.scale, scale)) << (got.scale - scale).abs().max();
    EXPECT_TRUE(at::equal(got.q, q)) << (got.q.to(at::kInt) - q.to(at::kInt)).abs().max();
  }
  mm::HugePageArena arena;
  const mm::QuantizedWeight in_arena = mm::quantize_q8(w, &arena);
  EXPECT_TRUE(at::equal(in_arena.q, reference(w).second));
  EXPECT_FALSE(in_arena.q.storage().resizable());  // cut from the arena's block
}

// The chunks threads claim: every column once, widest first, tile-aligned, none too small to pay
// for its claim, and the last ones narrow enough that two equal threads claiming in turn finish
// within one last chunk of each other.
TEST(ColumnBounds, CoverEveryColumnWidestFirstAndEndNarrow) {
  for (const auto& [N, M, K, T] : std::vector<std::array<int64_t, 4>>{{2048, 1, 1536, 2},
                                                                      {768, 1, 768, 2},
                                                                      {32000, 1, 768, 2},
                                                                      {2048, 8, 768, 16},
                                                                      {100, 1, 64, 4},
                                                                      {5, 32, 4096, 2},
                                                                      {11008, 1, 4096, 1}}) {
    SCOPED_TRACE(::testing::Message() << "N " << N << " M " << M << " K " << K << " T " << T);
    const std::vector<int64_t> b = mm::kernels::column_bounds(N, M, K, T);
    const int64_t least = (int64_t{1} << 16) / (M * K) + 1;
    ASSERT_GE(b.size(), 2u);
    EXPECT_EQ(b.front(), 0);
    EXPECT_EQ(b.back(), N);
    for (std::size_t i = 1; i < b.size(); ++i) {
      const int64_t w = b[i] - b[i - 1];
      EXPECT_GT(w, 0);
      if (i + 1 < b.size()) {
        EXPECT_EQ(b[i] % 24, 0);
        EXPECT_GE(w, std::min(N, least));
      }
      if (i >= 2 && i + 1 < b.size()) {
        EXPECT_LE(w, b[i - 1] - b[i - 2]);  // never wider again
      }
    }
    // Two threads of equal speed, each claiming the next chunk when done with its own: they end
    // within one of the narrow last chunks of each other.
    int64_t done[2] = {0, 0};
    for (std::size_t i = 1; i < b.size(); ++i) *std::min_element(done, done + 2) += b[i] - b[i - 1];
    const std::size_t n = b.size() - 1;  // chunks
    const int64_t narrow = n >= 2 ? b[n - 1] - b[n - 2] : N;
    EXPECT_LE(std::abs(done[0] - done[1]), narrow);
    if (N >= 2048 && M * K <= 2048) {  // big products: the end is narrow next to the start
      EXPECT_LE(8 * narrow, b[1] - b[0]);
    }
  }
}

// Rows per one-row tile: the most of 8, 4, 2, 1 within 8 KiB of f32 / bf16 weights (int8: 8).
// EveryCandidateMatchesFloat64's K of 7, 768 and 2053 then run every one-row product of ours
// through tiles of 8, 4 (bf16), 2 (f32) and 1 rows against float64 (checked here, so that they
// keep doing so), with ragged last tiles (N = 5, 771).
TEST(GemvRows, MostRowsWithinEightKiBAndInt8KeepsEight) {
  using mm::kernels::gemv_rows;
  using mm::kernels::WeightType;
  EXPECT_EQ(gemv_rows(64, WeightType::f32), 8);   // 2 KiB
  EXPECT_EQ(gemv_rows(256, WeightType::f32), 8);  // exactly 8 KiB
  EXPECT_EQ(gemv_rows(257, WeightType::f32), 4);
  EXPECT_EQ(gemv_rows(768, WeightType::f32), 2);    // 8 rows: 24 KiB; 2: 6 KiB
  EXPECT_EQ(gemv_rows(2053, WeightType::f32), 1);   // one row is 8212 bytes: still 1
  EXPECT_EQ(gemv_rows(768, WeightType::bf16), 4);   // 6 KiB
  EXPECT_EQ(gemv_rows(512, WeightType::bf16), 8);   // 8 KiB
  EXPECT_EQ(gemv_rows(2048, WeightType::bf16), 2);  // 8 KiB
  EXPECT_EQ(gemv_rows(2053, WeightType::bf16), 1);
  EXPECT_EQ(gemv_rows(1, WeightType::bf16), 8);
  EXPECT_EQ(gemv_rows(4096, WeightType::i8), 8);
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
    // Independent check of the weight gradient: dL/dW = g^T x, a sum of M products per entry.
    expect_within_sum_rounding(theirs[2], at::mm(g.t(), x0), at::mm(g.t().abs(), x0.abs()), M,
                               "w.grad, M=" + std::to_string(M));
    // A recorded call is at::linear itself (same op, same inputs, same threads): bit-identical.
    const char* names[] = {"y", "x.grad", "w.grad", "b.grad"};
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(ours[i].defined()) << names[i] << " M=" << M;
      EXPECT_TRUE(at::equal(ours[i], theirs[i])) << names[i] << " M=" << M;
    }
    // Only the weight trainable (LoRA-style frozen input is the reverse; both must record).
    at::Tensor w = w0.clone().requires_grad_(true);
    at::Tensor y = mm::linear(x0, w, at::Tensor());
    ASSERT_TRUE(y.requires_grad()) << "M=" << M;
    y.sum().backward();
    expect_within_sum_rounding(w.grad(), x0.sum(0).expand({48, 64}),
                               x0.abs().sum(0).expand({48, 64}), M,
                               "w.grad of sum, M=" + std::to_string(M));
  }
}
