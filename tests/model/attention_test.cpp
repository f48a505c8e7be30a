// model::attend_in_place (src/model/attention.cpp) against attention computed in float64 from the
// same inputs: f32 within accumulation error; bf16 against a float64 emulation of Hugging Face's
// bf16 roundings (scores rounded, scaled and rounded again, probabilities rounded, output rounded)
// within two bf16 ulps. Covers grouped heads (g > 1), several query positions (T > 1), ragged
// head_dim and key counts, K/V read through narrowed cache views, masks with holes, rows with
// every key hidden, one thread, and the conditions under which it declines. The AttendInPlaceIsa
// tests run once per kernel level (core/cpu.h: scalar, avx2, avx512), each level this CPU lacks
// skipped with a message.
#include "model/attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "isa_test.h"

namespace mm = metamath::model;
using metamath::Isa;

namespace {

// Runs each test with kernels limited to one level (tests/isa_test.h).
class AttendInPlaceIsa : public metamath::testing::IsaTest {};

// f32 tolerance, relative to max|V|: the output is a convex combination of V rows summed over
// L <= 130 keys in f32 (random-sign roundings of 2^-24 of a partial sum <= max|V|: ~sqrt(130) *
// 6e-8 = 7e-7, worst case 7.7e-6), and each weight moves relatively by the error of its score
// (f32 q.k over d <= 128 terms, |q.k| * scale <= ~15 here: ~sqrt(d) * 2^-24 * 15 = 1e-5, which
// cancels across keys to a fraction of that in the output). 2e-5 bounds the sum with margin.
constexpr double kF32RelTol = 2e-5;

at::Tensor round_bf16(const at::Tensor& x) { return x.to(at::kBFloat16).to(at::kDouble); }

// Float64 attention: q [B,H,R,d], K/V [B,H,L,d], hidden [B,T,L]; bf16 emulates the roundings.
at::Tensor reference(const at::Tensor& q, const at::Tensor& K, const at::Tensor& V,
                     const at::Tensor& hidden, int64_t T, double scale, bool bf16) {
  const int64_t B = q.size(0), H = q.size(1), R = q.size(2), L = K.size(2);
  at::Tensor s = at::matmul(q.to(at::kDouble), K.to(at::kDouble).transpose(-1, -2));
  if (bf16)
    s = round_bf16(round_bf16(s) * scale);
  else
    s = s * scale;
  // Row r of a head is query position r % T.
  at::Tensor hid =
      hidden.unsqueeze(1).unsqueeze(1).expand({B, H, R / T, T, L}).reshape({B, H, R, L});
  at::Tensor p = at::softmax(s.masked_fill(hid, -1e300), -1);
  at::Tensor all_hidden = hid.all(-1, true);
  p = at::where(all_hidden, at::full_like(p, 1.0 / static_cast<double>(L)), p);
  if (bf16) p = round_bf16(p);
  at::Tensor o = at::matmul(p, V.to(at::kDouble));
  return bf16 ? round_bf16(o) : o;
}

struct Case {
  int64_t B, H, g, T, L, d;
};

std::string describe(const Case& c, at::ScalarType t, bool views) {
  return std::string(t == at::kFloat ? "f32" : "bf16") + " B=" + std::to_string(c.B) +
         " H=" + std::to_string(c.H) + " g=" + std::to_string(c.g) + " T=" + std::to_string(c.T) +
         " L=" + std::to_string(c.L) + " d=" + std::to_string(c.d) + (views ? " cache-views" : "");
}

void check(const Case& c, at::ScalarType dtype, bool views, double scale, uint64_t seed) {
  at::manual_seed(seed);
  const int64_t R = c.g * c.T;
  // Peaky scores (q scaled up) so that a wrong mask or a wrong scale moves the output by O(|V|).
  at::Tensor q = (at::randn({c.B, c.H, R, c.d}, at::kDouble) * 2.0).to(dtype);
  at::Tensor K, V;
  if (views) {
    // The KV cache's layout: [slots, H, max_len, d], rows narrowed to the live slots and length.
    at::Tensor ck = at::randn({c.B + 2, c.H, c.L + 5, c.d}, at::kDouble).to(dtype);
    at::Tensor cv = at::randn({c.B + 2, c.H, c.L + 5, c.d}, at::kDouble).to(dtype);
    K = ck.narrow(0, 1, c.B).narrow(2, 0, c.L);
    V = cv.narrow(0, 1, c.B).narrow(2, 0, c.L);
    if (c.L > 1) {
      ASSERT_FALSE(K.is_contiguous());
    }
  } else {
    K = at::randn({c.B, c.H, c.L, c.d}, at::kDouble).to(dtype);
    V = at::randn({c.B, c.H, c.L, c.d}, at::kDouble).to(dtype);
  }
  at::Tensor hidden = at::rand({c.B, c.T, c.L}, at::kDouble) < 0.3;
  // Causal-like structure on batch row 0 and a fully hidden query position on the last row.
  if (c.L > 1) hidden[0][0].narrow(0, c.L - 1, 1).fill_(true);
  if (c.B > 1) hidden[c.B - 1][c.T - 1].fill_(true);
  const std::string what = describe(c, dtype, views);
  at::Tensor o = mm::attend_in_place(q, K, V, hidden, c.T, scale);
  ASSERT_EQ(o.scalar_type(), dtype) << what;
  ASSERT_EQ(o.sizes(), q.sizes()) << what;
  const bool bf16 = dtype == at::kBFloat16;
  at::Tensor ref = reference(q, K, V, hidden, c.T, scale, bf16);
  const double vmax = V.abs().max().to(at::kDouble).item<double>();
  // f32: kF32RelTol of max|V| (above); bf16: two ulps (2 * 2^-7 relative) at the largest output
  // magnitude, as a bf16 rounding of a score or weight may flip against the float64 emulation's.
  const double tol = bf16 ? std::ldexp(vmax, -6) : kF32RelTol * vmax;
  const double err = (o.to(at::kDouble) - ref).abs().max().item<double>();
  EXPECT_LE(err, tol) << what;
  EXPECT_FALSE(o.isnan().any().item<bool>()) << what;
}

TEST_P(AttendInPlaceIsa, MatchesFloat64AcrossShapes) {
  c10::InferenceMode guard;
  const std::vector<Case> cases = {
      {1, 1, 1, 1, 1, 4},
      {1, 12, 1, 1, 37, 64},
      {3, 2, 4, 1, 70, 64},
      {2, 2, 1, 3, 9, 7},
      {4, 3, 2, 2, 33, 67},
      {2, 1, 8, 1, 5, 128},
      {2, 3, 1, 1, 45, 128},  // one row per head at d = 128 (and 64 above): sums in registers
      {5, 4, 1, 1, 130, 16},
      {2, 2, 3, 4, 12, 8},
      // More query rows than one block of the kernel (16): prefill-like shapes.
      {2, 2, 1, 40, 40, 64},
      {1, 3, 2, 20, 57, 32},
      {2, 1, 1, 17, 17, 9},
  };
  uint64_t seed = 1;
  for (const auto& c : cases)
    for (auto dtype : {at::kFloat, at::kBFloat16})
      for (bool views : {false, true}) {
        check(c, dtype, views, 1.0 / std::sqrt(static_cast<double>(c.d)), seed++);
        check(c, dtype, views, 0.125, seed++);  // a power of two
      }
}

TEST_P(AttendInPlaceIsa, OneThreadGivesTheSameResult) {
  c10::InferenceMode guard;
  const int threads = at::get_num_threads();
  at::manual_seed(7);
  at::Tensor q = at::randn({4, 6, 2, 64}), K = at::randn({4, 6, 90, 64}),
             V = at::randn({4, 6, 90, 64});
  at::Tensor hidden = at::rand({4, 1, 90}) < 0.2;
  at::Tensor many = mm::attend_in_place(q, K, V, hidden, 1, 0.125);
  at::set_num_threads(1);
  at::Tensor one = mm::attend_in_place(q, K, V, hidden, 1, 0.125);
  at::set_num_threads(threads);
  // Each (batch, head) pair is computed by one thread in a fixed order: bit-identical.
  EXPECT_TRUE(at::equal(many, one));
}

TEST_P(AttendInPlaceIsa, ReadsTheSlotOfEachRowInPlace) {
  c10::InferenceMode guard;
  at::manual_seed(11);
  // A cache of 6 slots; batch rows 0..2 live in slots 4, 0 and 3 (a continuous batch).
  at::Tensor ck = at::randn({6, 2, 40, 16}), cv = at::randn({6, 2, 40, 16});
  const std::vector<int64_t> rows = {4, 0, 3};
  at::Tensor K = ck.narrow(2, 0, 25), V = cv.narrow(2, 0, 25);
  at::Tensor q = at::randn({3, 2, 2, 16}) * 2.0;
  at::Tensor hidden = at::rand({3, 1, 25}) < 0.3;
  at::Tensor o = mm::attend_in_place(q, K, V, hidden, 1, 0.25, rows);
  at::Tensor idx = at::tensor(rows, at::kLong);
  at::Tensor Kg = K.index_select(0, idx), Vg = V.index_select(0, idx);
  EXPECT_TRUE(at::equal(o, mm::attend_in_place(q, Kg, Vg, hidden, 1, 0.25)));
  at::Tensor ref = reference(q, Kg, Vg, hidden, 1, 0.25, false);
  EXPECT_LE((o.to(at::kDouble) - ref).abs().max().item<double>(),
            kF32RelTol * Vg.abs().max().item<double>());
  EXPECT_THROW(mm::attend_in_place(q, K, V, hidden, 1, 0.25, {4, 0, 6}), std::exception);
  EXPECT_THROW(mm::attend_in_place(q, K, V, hidden, 1, 0.25, {4, 0}), std::exception);
}

TEST_P(AttendInPlaceIsa, HandCheckedTwoKeys) {
  c10::InferenceMode guard;
  // One query (1, 0), keys (ln 3, 0) and (0, 0) at scale 1: weights 3/4 and 1/4.
  at::Tensor q = at::tensor({1.0f, 0.0f}).view({1, 1, 1, 2});
  at::Tensor K = at::tensor({std::log(3.0f), 0.0f, 0.0f, 0.0f}).view({1, 1, 2, 2});
  at::Tensor V = at::tensor({4.0f, 8.0f, 0.0f, -8.0f}).view({1, 1, 2, 2});
  at::Tensor none = at::zeros({1, 1, 2}, at::kBool);
  at::Tensor o = mm::attend_in_place(q, K, V, none, 1, 1.0);
  // Relative to max|V| = 8: ln 3 and exp, the sum, the division and two axpy steps each round by
  // at most 2^-24 of a value <= 8 (weights and scores near 1): 8 roundings, 8 * 2^-24 * 8.
  const float tol = 8 * std::ldexp(8.0f, -24);
  EXPECT_NEAR(o[0][0][0][0].item<float>(), 3.0f, tol);  // 3/4 * 4 + 1/4 * 0
  EXPECT_NEAR(o[0][0][0][1].item<float>(), 4.0f, tol);  // 3/4 * 8 - 1/4 * 8
  // Hiding the first key leaves the second alone.
  at::Tensor first = at::tensor({1, 0}).to(at::kBool).view({1, 1, 2});
  o = mm::attend_in_place(q, K, V, first, 1, 1.0);
  EXPECT_EQ(o[0][0][0][0].item<float>(), 0.0f);
  EXPECT_EQ(o[0][0][0][1].item<float>(), -8.0f);
  // Hiding both: uniform over the two keys.
  at::Tensor both = at::ones({1, 1, 2}, at::kBool);
  o = mm::attend_in_place(q, K, V, both, 1, 1.0);
  EXPECT_EQ(o[0][0][0][0].item<float>(), 2.0f);
  EXPECT_EQ(o[0][0][0][1].item<float>(), 0.0f);
}

METAMATH_EACH_ISA(AttendInPlaceIsa);

TEST(AttendInPlace, DeclinesWhatItCannotTake) {
  at::Tensor q = at::randn({1, 1, 1, 8}), K = at::randn({1, 1, 3, 8}), V = at::randn({1, 1, 3, 8});
  EXPECT_TRUE(mm::attend_in_place_applies(q, K, V));
  EXPECT_FALSE(
      mm::attend_in_place_applies(q.to(at::kDouble), K.to(at::kDouble), V.to(at::kDouble)));
  EXPECT_FALSE(mm::attend_in_place_applies(q, K.to(at::kBFloat16), V));
  // head_dim not of unit stride
  at::Tensor Kt = at::randn({1, 1, 8, 3}).transpose(-1, -2);
  EXPECT_FALSE(mm::attend_in_place_applies(q, Kt, V));
  // autograd recording keeps libtorch's differentiable ops
  at::Tensor qg = q.clone().requires_grad_(true);
  EXPECT_FALSE(mm::attend_in_place_applies(qg, K, V));
  {
    at::NoGradGuard no_grad;
    EXPECT_TRUE(mm::attend_in_place_applies(qg, K, V));
  }
  EXPECT_THROW(mm::attend_in_place(q, K, V, at::zeros({1, 2, 3}, at::kBool), 1, 1.0),
               std::exception);
}

}  // namespace
