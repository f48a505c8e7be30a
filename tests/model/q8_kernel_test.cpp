// The int8-dot candidates of model::linear (src/model/linear_kernel.h: avx512-vnni, avx2-i8dot;
// src/model/amx_kernel.h: amx-int8),
// which quantize the activations to int8 blocks of 32 along K before multiplying them by int8
// weights. Checked three ways:
//   - kernels::quantize_rows_q8 against an independent at:: quantizer written from the header's
//     contract (bit for bit, scalar and AVX2 paths), plus hand-checked ties and edge cases;
//   - each candidate against the float64 product of the SAME quantized activations and weights
//     (only f32 rounding may separate them: a tight bound derived below);
//   - each candidate against the float64 product of the unquantized activations and the
//     dequantized weight, within the error the activation quantization may add (derived below).
// Over ragged K (a partial last block, and for AVX-512 a partial 64-byte step), several row counts
// (the multi-row tiles and their edges), bias or none, f32 and bf16 activations, strided rows.
// Each test runs once per kernel level (tests/isa_test.h); a level offers the candidates its CPU
// has, and the test checks that the expected ones are there.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "isa_test.h"
#include "model/amx_kernel.h"
#include "model/linear.h"
#include "model/linear_kernel.h"

namespace mm = metamath::model;
namespace kn = metamath::model::kernels;
using metamath::Isa;

namespace {

// An activation's quantization error, in steps (its block's scale): half a step from rounding,
// plus f32 rounding of x * (1 / scale): 1 / scale and the product each err by at most 2^-24
// relative, so x * (1 / scale), at most 127 in size, is off by at most 127 * 2^-23 < 2e-5 steps;
// then the test's own f32 dequantization q * scale (127 * 2^-24 steps). 1e-4 covers both.
constexpr double kMaxStepError = 0.5 + 1e-4;

class Q8Kernel : public metamath::testing::IsaTest {};

// The header's contract in at:: operations (all f32, as the kernels compute): blocks of 32 along
// K (zero-padded), scale = max|x| / 127, q = round_half_even(x * (1 / scale)) clamped to +-127; a
// block with max|x| < 2^-96 is zeros with scale 0. Returns q [M, blocks * 32] and scales
// [M, blocks].
struct QuantizedRows {
  at::Tensor q, scale;
};

QuantizedRows reference_quantize(const at::Tensor& x) {
  const int64_t M = x.size(0), K = x.size(1), blocks = (K + 31) / 32;
  at::Tensor xf = at::zeros({M, blocks * 32}, at::kFloat);
  xf.narrow(1, 0, K).copy_(x.to(at::kFloat));
  at::Tensor b = xf.view({M, blocks, 32});
  at::Tensor amax = b.abs().amax(-1);
  at::Tensor tiny = amax < std::ldexp(1.0f, -96);
  // Tensor divisions (true f32 divisions, as the kernel's).
  at::Tensor scale = at::where(tiny, at::zeros_like(amax), amax / at::full_like(amax, 127.0f));
  at::Tensor inv = at::where(tiny, at::zeros_like(amax), at::ones_like(scale) / scale);
  at::Tensor q = at::round(b * inv.unsqueeze(-1)).clamp(-127, 127).to(at::kChar);
  return {q.view({M, blocks * 32}), scale};
}

// kernels::quantize_rows_q8 on x [M, K] (any strides along M; unit stride along K).
QuantizedRows kernel_quantize(const at::Tensor& x) {
  const int64_t M = x.size(0), K = x.size(1);
  at::Tensor xq = at::full({M, kn::q8_row_bytes(K)}, 99, at::kChar);  // 99: "not written"
  at::Tensor xs = at::full({M, kn::q8_row_blocks(K)}, 99.0f, at::kFloat);
  kn::quantize_rows_q8(x.data_ptr(), x.scalar_type() == at::kBFloat16, x.stride(0), M, K,
                       xq.data_ptr<int8_t>(), xq.size(1), xs.data_ptr<float>(), xs.size(1));
  return {xq, xs};
}

std::string describe(at::ScalarType t, int64_t M, int64_t K, int64_t N, bool bias) {
  return std::string(t == at::kFloat ? "f32" : "bf16") + " M=" + std::to_string(M) +
         " K=" + std::to_string(K) + " N=" + std::to_string(N) + (bias ? " bias" : " no-bias");
}

// |y - target| <= tol elementwise, reporting the first failure.
void expect_within(const at::Tensor& y, const at::Tensor& target, const at::Tensor& tol,
                   const std::string& what) {
  at::Tensor err = (y.to(at::kDouble) - target).abs();
  at::Tensor bad = (err > tol).logical_or(err.isnan());
  const int64_t nbad = bad.sum().item<int64_t>();
  if (nbad > 0) {
    const int64_t i = bad.reshape({-1}).nonzero()[0][0].item<int64_t>();
    ADD_FAILURE() << what << ": " << nbad << " of " << y.numel() << " outputs off; first at flat "
                  << i << ": got " << y.to(at::kDouble).reshape({-1})[i].item<double>() << ", want "
                  << target.reshape({-1})[i].item<double>() << ", tolerance "
                  << tol.reshape({-1})[i].item<double>();
  }
}

// For a bf16 output, the target is rounded to bf16 and one bf16 ulp of it is allowed on top (the
// f32 sum may sit on the other side of a rounding boundary).
void add_bf16_rounding(at::ScalarType t, at::Tensor& target, at::Tensor& tol) {
  if (t != at::kBFloat16) return;
  target = target.to(at::kBFloat16).to(at::kDouble);
  tol = tol + at::exp2(at::floor(at::log2(target.abs().clamp_min(1e-30))) - 7);
}

// The candidates of this call that quantize the activations; checks that the level offers the
// ones its CPU has.
std::vector<std::string> int_dot_candidates(const at::Tensor& x, const at::Tensor& w,
                                            const at::Tensor& b, const at::Tensor& scale) {
  std::vector<std::string> names;
  for (const std::string& n : mm::linear_candidates(x, w, b, scale, true))
    if (mm::quantizes_activations(n)) names.push_back(n);
  const Isa level = metamath::kernel_isa();
  std::vector<std::string> want;
  if (level == Isa::avx512 && metamath::cpu_has_avx512_vnni()) want.push_back("avx512-vnni");
  if (level >= Isa::avx2) want.push_back("avx2-i8dot");
  if (level == Isa::avx512 && kn::amx_int8_available() && x.numel() / x.size(-1) >= 9)
    want.push_back("amx-int8");  // from the planner's row class 16 on (model/amx_kernel.h)
  EXPECT_EQ(names, want);
  for (const std::string& n : mm::linear_candidates(x, w, b, scale, false))  // plain q8
    EXPECT_FALSE(mm::quantizes_activations(n)) << n;
  return names;
}

// Checks every int-dot candidate on x [M, K] (f32 or bf16) against the int8 weight (q, scale)
// and the bias b (or undefined).
void check_candidates(const at::Tensor& x, const mm::QuantizedWeight& w, const at::Tensor& b,
                      const std::string& what) {
  const std::vector<std::string> names = int_dot_candidates(x, w.q, b, w.scale);
  if (names.empty()) return;
  const int64_t K = x.size(1), blocks = (K + 31) / 32;
  const QuantizedRows xq = reference_quantize(x.contiguous());
  // Float64 operands, K padded to whole blocks (padding zeros add nothing).
  at::Tensor wq = at::zeros({w.q.size(0), blocks * 32}, at::kDouble);
  wq.narrow(1, 0, K).copy_(w.q.to(at::kDouble));
  at::Tensor ws = w.scale.to(at::kDouble), xs = xq.scale.to(at::kDouble);
  at::Tensor bd = b.defined() ? b.to(at::kDouble) : at::zeros({w.q.size(0)}, at::kDouble);
  // Per block integer dots [blocks, M, N] (exact in float64: |dot| <= 32 * 127^2 < 2^53).
  const int64_t M = x.size(0), N = w.q.size(0);
  at::Tensor xb = xq.q.to(at::kDouble).view({M, blocks, 32}).transpose(0, 1);  // [blocks, M, 32]
  at::Tensor wb = wq.view({N, blocks, 32}).permute({1, 2, 0});                 // [blocks, 32, N]
  at::Tensor dots = at::bmm(xb, wb);
  at::Tensor abs_dots = at::bmm(xb.abs(), wb.abs());
  at::Tensor xs_b = xs.t().unsqueeze(-1);  // [blocks, M, 1]
  // Same quantized operands: y = ws[n] * sum_blk xs[m, blk] * dot[m, n, blk] + b[n].
  at::Tensor same = (dots * xs_b).sum(0) * ws + bd;
  // Rounding bound: the kernel turns each block's exact dot into f32 (exact, < 2^24), rounds its
  // product with the block scale once, and adds it to one f32 accumulator lane; a lane adds at
  // most `blocks` terms, then up to 16 lanes are summed (4 more additions), then one product with
  // ws[n] and one addition of the bias. Each rounding errs by at most 2^-24 of a partial sum whose
  // magnitude is at most mag = ws[n] sum_blk xs |dot|_abs + |b[n]|, so the error is at most
  // (blocks + 8) 2^-24 mag (first order). A block dropped or double-counted moves y by about
  // mag / blocks, far outside it.
  at::Tensor mag = (abs_dots * xs_b).sum(0) * ws + bd.abs();
  at::Tensor tol_same = mag * (static_cast<double>(blocks + 8) * std::ldexp(1.0, -24)) + 1e-30;
  // Unquantized activations: y_exact = sum_k x[m, k] wd[n, k] + b[n], wd = ws[n] wq[n, k]. Each
  // activation is off by at most kMaxStepError * xs[m, blk] (checked in QuantizesAsTheHeaderSays),
  // so |y_same - y_exact| <= ws[n] sum_blk kMaxStepError xs[m, blk] sum_{k in blk} |wq[n, k]|;
  // plus the rounding bound above.
  at::Tensor xd = at::zeros({M, blocks * 32}, at::kDouble);
  xd.narrow(1, 0, K).copy_(x.to(at::kDouble));
  at::Tensor exact = at::matmul(xd, (wq * ws.unsqueeze(1)).t()) + bd;
  at::Tensor wabs_blocks = wq.abs().view({N, blocks, 32}).sum(-1);  // [N, blocks]
  at::Tensor quant_err = at::matmul(xs * kMaxStepError, wabs_blocks.t()) * ws;
  at::Tensor tol_exact = quant_err + tol_same;

  at::Tensor target_same = same, target_exact = exact;
  add_bf16_rounding(x.scalar_type(), target_same, tol_same);
  add_bf16_rounding(x.scalar_type(), target_exact, tol_exact);
  std::vector<at::Tensor> outputs;
  for (const std::string& name : names) {
    at::Tensor y = mm::linear_using(name, x, w.q, b, w.scale, true);
    ASSERT_EQ(y.scalar_type(), x.scalar_type()) << name << " " << what;
    ASSERT_EQ(y.sizes(), (at::IntArrayRef{x.size(0), w.q.size(0)})) << name << " " << what;
    expect_within(y, target_same, tol_same, name + " (same quantized operands) " + what);
    expect_within(y, target_exact, tol_exact, name + " (unquantized activations) " + what);
    outputs.push_back(y);
  }
  // The candidates against each other: each within tol_same of the float64 value, so within
  // twice that of one another.
  for (size_t i = 1; i < outputs.size(); ++i)
    expect_within(outputs[i], outputs[0].to(at::kDouble), tol_same * 2,
                  names[i] + " against " + names[0] + " " + what);
}

}  // namespace

// quantize_rows_q8 bit for bit against the at:: version of its contract, f32 and bf16 rows with
// a row stride past K, ragged K; the padding (past K, and the extra block scale) is zeros; every
// activation is within half a step of its dequantized value.
TEST_P(Q8Kernel, QuantizesAsTheHeaderSays) {
  at::manual_seed(31);
  for (at::ScalarType t : {at::kFloat, at::kBFloat16})
    for (int64_t K : {1, 7, 31, 32, 33, 64, 65, 100, 2053})
      for (int64_t M : {1, 3}) {
        // Rows of mixed magnitude (one row 1e4 times smaller) so scales differ per block and row.
        at::Tensor x = (at::randn({M, K + 5}) * at::logspace(-4, 0, M).unsqueeze(1)).to(t);
        x = x.narrow(1, 2, K);
        const std::string what = describe(t, M, K, 0, false);
        const QuantizedRows want = reference_quantize(x);
        const QuantizedRows got = kernel_quantize(x);
        const int64_t blocks = want.scale.size(1), bytes = blocks * 32;
        EXPECT_TRUE(at::equal(got.q.narrow(1, 0, bytes), want.q)) << what;
        EXPECT_TRUE(at::equal(got.scale.narrow(1, 0, blocks), want.scale)) << what;
        EXPECT_EQ(got.q.narrow(1, bytes, got.q.size(1) - bytes).abs().sum().item<int64_t>(), 0)
            << what;
        EXPECT_EQ(got.scale.narrow(1, blocks, got.scale.size(1) - blocks).abs().sum().item<float>(),
                  0.0f)
            << what;
        at::Tensor step = want.scale.repeat_interleave(32, 1).narrow(1, 0, K);
        at::Tensor deq = want.q.narrow(1, 0, K).to(at::kFloat) * step;
        EXPECT_TRUE(((deq - x.to(at::kFloat)).abs() <= step * kMaxStepError).all().item<bool>())
            << what;
      }
}

// By hand: a block whose largest magnitude is 127 has scale 1, so q is x rounded half to even
// (-63.5 -> -64, 0.5 -> 0, 1.5 -> 2, 2.5 -> 2); an all-zero block has scale 0; a block with a
// NaN gets a NaN scale (so the products it enters are NaN, as in f32); a tiny block (max below
// 2^-96) is zeros.
TEST_P(Q8Kernel, QuantizesHandCheckedBlocks) {
  at::Tensor x = at::zeros({1, 32 * 4 + 3}, at::kFloat);
  const float first[] = {127.0f, -63.5f, 0.5f, 1.5f, 2.5f, -2.5f, -127.0f};
  for (int i = 0; i < 7; ++i) x[0][i] = first[i];
  x[0][64] = std::numeric_limits<float>::quiet_NaN();
  x[0][96] = std::ldexp(1.0f, -100);
  x[0][129] = -2.54f;  // the partial last block: scale 0.02, q -127
  const QuantizedRows got = kernel_quantize(x);
  const int want_q[] = {127, -64, 0, 2, 2, -2, -127};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(got.q[0][i].item<int>(), want_q[i]) << "element " << i;
  EXPECT_EQ(got.scale[0][0].item<float>(), 1.0f);
  EXPECT_EQ(got.scale[0][1].item<float>(), 0.0f);
  EXPECT_TRUE(std::isnan(got.scale[0][2].item<float>()));
  EXPECT_EQ(got.scale[0][3].item<float>(), 0.0f);
  EXPECT_EQ(got.q.narrow(1, 96, 32).abs().sum().item<int64_t>(), 0);
  EXPECT_FLOAT_EQ(got.scale[0][4].item<float>(), 0.02f);
  EXPECT_EQ(got.q[0][129].item<int>(), -127);
}

// Every int-dot candidate against both references over ragged K, row counts around the tiles'
// 1 / 2 / 4 rows, bias or none, f32 and bf16 activations, and N past several thread chunks.
TEST_P(Q8Kernel, CandidatesMatchFloat64) {
  at::manual_seed(20261129);
  for (at::ScalarType t : {at::kFloat, at::kBFloat16})
    for (int64_t K : {1, 31, 33, 64, 100, 2053})
      for (int64_t N : {5, 771}) {
        const mm::QuantizedWeight w = mm::quantize_q8(at::randn({N, K}));
        at::Tensor b = at::randn({N}).to(t);
        for (int64_t M : {1, 2, 3, 5, 9})
          for (bool bias : {false, true}) {
            at::Tensor x = at::randn({M, K}).to(t);
            check_candidates(x, w, bias ? b : at::Tensor(), describe(t, M, K, N, bias));
          }
      }
}

// Row-strided activations and more rows than fit one tile block; rows with very different
// magnitudes (the block scales are per row); an all-zero row gives the bias exactly.
TEST_P(Q8Kernel, StridedRowsAndZeroRow) {
  at::manual_seed(77);
  const int64_t K = 300, N = 67;
  const mm::QuantizedWeight w = mm::quantize_q8(at::randn({N, K}));
  at::Tensor b = at::randn({N});
  for (int64_t M : {4, 33}) {
    at::Tensor x = (at::randn({M, K + 9}) * at::logspace(-3, 3, M).unsqueeze(1)).narrow(1, 3, K);
    check_candidates(x, w, b, describe(at::kFloat, M, K, N, true) + " row-strided");
    at::Tensor z = at::zeros({M, K});
    for (const std::string& name : int_dot_candidates(z, w.q, b, w.scale))
      EXPECT_TRUE(at::equal(mm::linear_using(name, z, w.q, b, w.scale, true), b.expand({M, N})))
          << name;
  }
}

// Enough rows that model::linear quantizes them on several threads (at least ~64K values per
// range: 70 rows of K = 2053 split into three ranges on 3 threads, whatever the machine's
// default). Checked by breaking the row offset of the quantized output: this test then fails.
TEST_P(Q8Kernel, ManyRowsQuantizedInParallel) {
  at::manual_seed(78);
  const int64_t M = 70, K = 2053, N = 67;
  const int threads = at::get_num_threads();
  at::set_num_threads(3);
  const mm::QuantizedWeight w = mm::quantize_q8(at::randn({N, K}));
  check_candidates(at::randn({M, K}), w, at::randn({N}), describe(at::kFloat, M, K, N, true));
  at::set_num_threads(threads);
}

// The AMX-INT8 tiles (amx-int8, from 9 rows on) on the shapes their edges meet: K with a partial
// last block or less than one (1, 31, 33, 95) and a model's 768; N not a multiple of the 16-row
// weight tiles (a partial last tile, copied zero-padded); M not a multiple of the 16-row
// activation tiles (zero rows); with and without bias; f32 and bf16 activations (and so output).
// Against both float64 references and the other int-dot candidates (check_candidates). Checked
// by breaking the kernel: dropping the last block of K, or using block 0's activation scales
// for every block, fails here.
TEST(Q8Amx, MatchesFloat64AndTheOtherCandidates) {
  if (metamath::cpu_isa() != Isa::avx512 || !kn::amx_int8_available())
    GTEST_SKIP() << "this CPU or kernel offers no AMX-INT8 tiles (flags: "
                 << metamath::cpu_flags_line() << ")";
  at::manual_seed(1129);
  for (at::ScalarType t : {at::kFloat, at::kBFloat16})
    for (int64_t K : {1, 31, 33, 95, 768})
      for (int64_t N : {37, 100}) {
        const mm::QuantizedWeight w = mm::quantize_q8(at::randn({N, K}));
        at::Tensor b = at::randn({N}).to(t);
        for (int64_t M : {9, 16, 17, 33, 40}) {
          at::Tensor x = at::randn({M, K}).to(t);
          const bool bias = (M + K) % 2 == 0;  // both, over the row counts of each K
          check_candidates(x, w, bias ? b : at::Tensor(), describe(t, M, K, N, bias));
        }
      }
}

// The tiles called directly on column ranges that start and end inside 16-row weight tiles
// (model::linear's chunks are whole pairs of tiles), on several threads' worth of ranges: each
// output is the same arithmetic wherever its weight row falls, so the pieces put together equal
// model::linear's amx-int8 output (itself checked against float64 above) bit for bit.
TEST(Q8Amx, AnyColumnRangeGivesTheSameOutputs) {
  if (metamath::cpu_isa() != Isa::avx512 || !kn::amx_int8_available())
    GTEST_SKIP() << "this CPU or kernel offers no AMX-INT8 tiles (flags: "
                 << metamath::cpu_flags_line() << ")";
  at::manual_seed(1130);
  const int64_t M = 35, K = 200, N = 91;
  const mm::QuantizedWeight w = mm::quantize_q8(at::randn({N, K}));
  at::Tensor b = at::randn({N}), x = at::randn({M, K});
  const at::Tensor want = mm::linear_using("amx-int8", x, w.q, b, w.scale, true);
  const QuantizedRows q = kernel_quantize(x);
  at::Tensor packed = at::full({kn::amx_q8_packed_bytes(M, K)}, 99, at::kChar);
  at::Tensor scales = at::full({kn::amx_q8_packed_scales(M, K)}, 99.0f, at::kFloat);
  const int64_t groups = (M + 15) / 16;
  kn::pack_q8_amx(q.q.data_ptr<int8_t>(), q.q.size(1), q.scale.data_ptr<float>(), q.scale.size(1),
                  M, K, 0, 1, packed.data_ptr<int8_t>(), scales.data_ptr<float>());
  kn::pack_q8_amx(q.q.data_ptr<int8_t>(), q.q.size(1), q.scale.data_ptr<float>(), q.scale.size(1),
                  M, K, 1, groups, packed.data_ptr<int8_t>(), scales.data_ptr<float>());
  at::Tensor y = at::full({M, N}, 12345.0f);
  kn::GemmNT a;
  a.M = M;
  a.K = K;
  a.N = N;
  a.w = w.q.data_ptr();
  a.w_type = kn::WeightType::i8;
  a.w_scale = w.scale.data_ptr<float>();
  a.b = b.data_ptr();
  a.y = y.data_ptr();
  a.ldy = N;
  a.xq = q.q.data_ptr<int8_t>();
  a.ldxq = q.q.size(1);
  a.xq_scale = q.scale.data_ptr<float>();
  a.ldxq_scale = q.scale.size(1);
  a.xq_amx = packed.data_ptr<int8_t>();
  a.xq_amx_scale = scales.data_ptr<float>();
  const int64_t cuts[] = {0, 5, 6, 21, 50, 83, 91};
  for (size_t i = 0; i + 1 < std::size(cuts); ++i)
    kn::gemm_nt_columns(a, kn::Tiles::amx_int8, cuts[i], cuts[i + 1]);
  EXPECT_TRUE(at::equal(y, want)) << (y - want).abs().max().item<float>();
  // Without the packed activations the tiles refuse to run.
  a.xq_amx = nullptr;
  EXPECT_THROW(kn::gemm_nt_columns(a, kn::Tiles::amx_int8, 0, N), metamath::Error);
}

METAMATH_EACH_ISA(Q8Kernel);
