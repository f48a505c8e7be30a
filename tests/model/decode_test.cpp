// The fused decode step (model/decode.h) against the layered pass on the tiny fixtures: the same
// inputs through both (three rows in scattered slots of different lengths, past Mistral's sliding
// window), in f32, bf16 and q8, on two threads. The layered pass itself is checked against the
// Hugging Face references in model_test.cpp, whose one-token decode loops now run fused as well.
#include "model/decode.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "core/cpu.h"
#include "fixtures.h"
#include "model/linear.h"
#include "model/model.h"
#include "model/plan.h"
#include "test_util.h"

namespace mm = metamath::model;
using metamath::testing::kFixtures;

namespace {

// The fused step runs only at kernel level avx2 or above (METAMATH_ISA=scalar turns it off).
#define SKIP_WITHOUT_FUSED_STEP()                      \
  if (metamath::kernel_isa() == metamath::Isa::scalar) \
  GTEST_SKIP() << "the fused step needs AVX2 (METAMATH_ISA=scalar)"

struct DecodeRun {
  std::vector<at::Tensor> logits;  // per decode step [3, V]
  at::Tensor k_last, v_last;       // the last layer's cache after the run
};

// Deterministic token ids (not the model's own choices, so both paths always see the same
// inputs even where near-ties would send greedy decoding apart).
int64_t token(int64_t step, int64_t row, int64_t vocab) {
  return (step * 37 + row * 101 + 7) % vocab;
}

// Prefills prompts of 5, 11 and 17 tokens into slots 2, 0 and 3 of a 4-slot cache (the layered
// pass: several tokens per row), then runs `steps` decode steps of all three rows at once.
DecodeRun decode_run(const mm::Model& m, bool fused, int64_t steps) {
  c10::InferenceMode guard;
  const bool previous = mm::set_fused_decode(fused);
  const int64_t V = m.config().vocab_size;
  const std::vector<int64_t> slots = {2, 0, 3}, lengths = {5, 11, 17};
  mm::KVCache cache = m.make_cache(4, 64);
  for (int64_t b = 0; b < 3; ++b) {
    std::vector<int64_t> ids;
    for (int64_t t = 0; t < lengths[b]; ++t) ids.push_back(token(t + 100, b, V));
    mm::ForwardInput in;
    in.input_ids = at::tensor(ids, at::kLong).view({1, -1});
    in.slots = {slots[b]};
    m.forward(in, &cache, mm::LogitsMode::Last);
  }
  DecodeRun r;
  for (int64_t step = 0; step < steps; ++step) {
    mm::ForwardInput in;
    in.input_ids = at::tensor({token(step, 0, V), token(step, 1, V), token(step, 2, V)}, at::kLong)
                       .view({3, 1});
    in.slots = slots;
    r.logits.push_back(m.forward(in, &cache, mm::LogitsMode::Last).view({3, V}).clone());
  }
  const int64_t last = m.config().num_hidden_layers - 1;
  r.k_last = cache.k(last).to(at::kFloat);
  r.v_last = cache.v(last).to(at::kFloat);
  mm::set_fused_decode(previous);
  return r;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

class FusedDecode : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  void SetUp() override {
    threads_ = at::get_num_threads();
    at::set_num_threads(2);  // the barriers and the claimed chunks, even where libtorch says 1
    SKIP_WITHOUT_FUSED_STEP();
  }
  void TearDown() override { at::set_num_threads(threads_); }
  int threads_ = 1;
};

TEST_P(FusedDecode, MatchesTheLayeredPass) {
  const auto& [fixture, dtype] = GetParam();
  const mm::Model m = mm::Model::load(kFixtures / fixture, mm::parse_dtype(dtype));
  // q8-dot: both paths forced onto an int8-dot candidate (the fused step quantizes its inputs
  // per thread, the layered pass once per product).
  std::string dot;
  if (dtype == "q8-dot")
    for (const std::string& name : mm::linear_candidates(
             at::zeros({3, m.config().hidden_size}), m.layers[0].q_w, {}, m.layers[0].q_s, true))
      if (mm::quantizes_activations(name) && dot.empty()) dot = name;
  if (dtype == "q8-dot" && dot.empty()) GTEST_SKIP() << "no int8-dot candidate on this CPU";
  mm::ScopedForcedCandidate force(dot);
  const int64_t steps = 14;  // the 17-token row ends at 31 cached tokens, past Mistral's 16
  const int64_t before = mm::fused_decode_steps();
  const DecodeRun fused = decode_run(m, true, steps);
  ASSERT_EQ(mm::fused_decode_steps() - before, steps) << "the fused path did not run";
  const DecodeRun layered = decode_run(m, false, steps);
  ASSERT_EQ(mm::fused_decode_steps() - before, steps) << "the switch did not turn it off";
  // The two paths round at the same points and share the product and attention kernels; they
  // differ only in the order of a few float sums (the norms' sums of squares: double here,
  // libtorch's float reduction there; RoPE's sum, which the compiler may contract to an FMA). In
  // f32 and q8 that is a few float roundings of each logit: 1e-5 of the largest logit. In bf16 a
  // last-bit difference sometimes rounds an activation or a logit to the neighbouring bf16 value
  // (2^-8 relative), and both paths are then equally far from Hugging Face's bf16 and float64
  // logits (measured on these fixtures). So in bf16 the bound is bf16's own envelope on these
  // inputs, the layered pass's distance from the f32 model (measured 0.2-0.6 of it). Breaking the
  // fused path (no RoPE on k, the window ignored) moves logits by several envelopes.
  // bf16 and q8-dot round activations (to bf16, to int8 blocks) where a last-bit difference can
  // move a value by a whole step; their bound is the rounding's own envelope (below).
  const bool bf16 = dtype == "bf16" || dtype == "q8-dot";
  std::vector<double> tol(steps);
  double k_tol = 1e-5 * layered.k_last.abs().max().item<double>();
  double v_tol = 1e-5 * layered.v_last.abs().max().item<double>();
  if (bf16) {
    const DecodeRun f32 =
        decode_run(mm::Model::load(kFixtures / fixture, at::kFloat), false, steps);
    for (int64_t step = 0; step < steps; ++step)
      tol[step] = max_abs_diff(layered.logits[step], f32.logits[step]);
    k_tol = max_abs_diff(layered.k_last, f32.k_last);
    v_tol = max_abs_diff(layered.v_last, f32.v_last);
  } else {
    for (int64_t step = 0; step < steps; ++step)
      tol[step] = 1e-5 * layered.logits[step].abs().max().item<double>();
  }
  double worst = 0;
  for (int64_t step = 0; step < steps; ++step) {
    const double err = max_abs_diff(fused.logits[step], layered.logits[step]);
    worst = std::max(worst, err / tol[step]);
    EXPECT_LE(err, tol[step]) << "step " << step;
  }
  std::printf("%s %s: worst |fused - layered| = %.2f of the bound\n", fixture.c_str(),
              dtype.c_str(), worst);
  // The cache the next steps read: the last layer's keys and values, same bounds.
  EXPECT_LE(max_abs_diff(fused.k_last, layered.k_last), k_tol);
  EXPECT_LE(max_abs_diff(fused.v_last, layered.v_last), v_tol);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FusedDecode,
                         ::testing::Combine(::testing::Values("llama2", "llama3", "mistral",
                                                              "qwen2"),
                                            ::testing::Values("f32", "bf16", "q8", "q8-dot")),
                         [](const auto& info) {
                           std::string dtype = std::get<1>(info.param);
                           std::replace(dtype.begin(), dtype.end(), '-', '_');
                           return std::get<0>(info.param) + "_" + dtype;
                         });

// What the fused step leaves to the layered pass: too many rows, padding, and bad input (whose
// error the layered pass reports).
TEST(FusedDecodeScope, IrregularStepsTakeTheLayeredPass) {
  SKIP_WITHOUT_FUSED_STEP();
  c10::InferenceMode guard;
  const mm::Model m = mm::Model::load(kFixtures / "llama2", at::kFloat);
  mm::KVCache cache = m.make_cache(mm::kFusedMaxRows + 1, 8);
  const int64_t before = mm::fused_decode_steps();
  mm::ForwardInput many;
  many.input_ids = at::ones({mm::kFusedMaxRows + 1, 1}, at::kLong);
  m.forward(many, &cache, mm::LogitsMode::Last);
  mm::ForwardInput padded;
  padded.input_ids = at::ones({2, 1}, at::kLong);
  padded.attention_mask = at::tensor({1, 0}, at::kLong).view({2, 1});
  m.forward(padded, &cache, mm::LogitsMode::Last);
  EXPECT_EQ(mm::fused_decode_steps(), before);
  mm::ForwardInput bad;
  bad.input_ids = at::full({1, 1}, m.config().vocab_size, at::kLong);
  EXPECT_NE(metamath::testing::error_of([&] {
              m.forward(bad, &cache, mm::LogitsMode::Last);
            }).find("outside the vocabulary"),
            std::string::npos);
  mm::ForwardInput one;
  one.input_ids = at::ones({1, 1}, at::kLong);
  m.forward(one, &cache, mm::LogitsMode::Last);
  EXPECT_EQ(mm::fused_decode_steps(), before + 1);
}

// Without AVX2 (kernels limited to scalar) a regular step takes the layered pass and gives its
// logits; the same step at the CPU's own level runs fused.
TEST(FusedDecodeScope, WithoutAvx2EveryStepTakesTheLayeredPass) {
  if (metamath::kernel_isa() == metamath::Isa::scalar)
    GTEST_SKIP() << "needs AVX2 to tell the two apart (METAMATH_ISA=scalar)";
  c10::InferenceMode guard;
  const mm::Model m = mm::Model::load(kFixtures / "llama2", at::kFloat);
  auto step = [&](metamath::Isa limit) {
    const metamath::ScopedIsaLimit scope(limit);
    mm::KVCache cache = m.make_cache(1, 8);
    mm::ForwardInput prompt;
    prompt.input_ids = at::tensor({5, 9, 2}, at::kLong).view({1, 3});
    m.forward(prompt, &cache, mm::LogitsMode::Last);
    mm::ForwardInput one;
    one.input_ids = at::full({1, 1}, 7, at::kLong);
    const int64_t before = mm::fused_decode_steps();
    at::Tensor logits = m.forward(one, &cache, mm::LogitsMode::Last).clone();
    return std::make_pair(mm::fused_decode_steps() - before, logits);
  };
  const auto [scalar_steps, scalar_logits] = step(metamath::Isa::scalar);
  const auto [own_steps, own_logits] = step(metamath::kernel_isa());
  EXPECT_EQ(scalar_steps, 0);
  EXPECT_EQ(own_steps, 1);
  EXPECT_LE(max_abs_diff(scalar_logits, own_logits), 1e-4 * own_logits.abs().max().item<double>());
}

// The tile sets the fused step keeps per thread (decode.cpp, "Tile sets") must follow whatever
// changes the planner's answer between steps. Each case runs one decode step of one row after a
// 9-token prompt, fused and layered (the layered pass asks the planner at every product), and
// switches between tiles that quantize the activations to int8 and tiles that do not: a
// difference of ~1e-2 of the logits, against ~1e-6 between the two paths on the same tiles.
// A fused step that kept its first tiles fails each case.

// Logits [V] of one decode step after a fixed prompt, on a fresh cache.
at::Tensor one_step(const mm::Model& m, bool fused) {
  c10::InferenceMode guard;
  const bool previous = mm::set_fused_decode(fused);
  const int64_t V = m.config().vocab_size;
  mm::KVCache cache = m.make_cache(1, 16);
  std::vector<int64_t> prompt;
  for (int64_t t = 0; t < 9; ++t) prompt.push_back(token(t + 50, 0, V));
  mm::ForwardInput in;
  in.input_ids = at::tensor(prompt, at::kLong).view({1, -1});
  m.forward(in, &cache, mm::LogitsMode::Last);
  mm::ForwardInput step;
  step.input_ids = at::tensor({token(1, 0, V)}, at::kLong).view({1, 1});
  at::Tensor logits = m.forward(step, &cache, mm::LogitsMode::Last).view({V}).clone();
  mm::set_fused_decode(previous);
  return logits;
}

class FusedDecodeTiles : public ::testing::Test {
 protected:
  void SetUp() override {
    threads_ = at::get_num_threads();
    at::set_num_threads(2);
    SKIP_WITHOUT_FUSED_STEP();
  }
  void TearDown() override { at::set_num_threads(threads_); }

  // An int8-dot candidate of this CPU at the current kernel level ("" when none).
  static std::string dot_candidate(const mm::Model& q8dot) {
    for (const std::string& name :
         mm::linear_candidates(at::zeros({1, q8dot.config().hidden_size}), q8dot.layers[0].q_w, {},
                               q8dot.layers[0].q_s, true))
      if (mm::quantizes_activations(name)) return name;
    return "";
  }

  // The fused step matches the layered pass on the same tiles, and is far from `other` (the
  // layered pass on the other tiles): it runs the tiles the planner gives now.
  static void expect_follows(const mm::Model& m, const at::Tensor& other, const char* what) {
    const int64_t before = mm::fused_decode_steps();
    const at::Tensor fused = one_step(m, true);
    ASSERT_EQ(mm::fused_decode_steps(), before + 1) << what << ": the fused path did not run";
    const at::Tensor layered = one_step(m, false);
    const double scale = layered.abs().max().item<double>();
    const double same = max_abs_diff(fused, layered), apart = max_abs_diff(layered, other);
    std::printf("%s: |fused - layered| = %.2e, |layered - other tiles| = %.2e (of %.2f)\n", what,
                same, apart, scale);
    ASSERT_GT(apart, 1e-3 * scale) << what << ": the two tile choices do not differ here";
    EXPECT_LE(same, 1e-5 * scale) << what;
  }
  int threads_ = 1;
};

TEST_F(FusedDecodeTiles, FollowTheForcedCandidateBetweenSteps) {
  const mm::Model m = mm::Model::load(kFixtures / "llama2", mm::parse_dtype("q8-dot"));
  const std::string dot = dot_candidate(m);
  if (dot.empty()) GTEST_SKIP() << "no int8-dot candidate on this CPU";
  const char* plain = metamath::kernel_isa() == metamath::Isa::avx512 ? "avx512" : "avx2";
  at::Tensor layered_plain, layered_dot;
  {
    mm::ScopedForcedCandidate force(plain);
    layered_plain = one_step(m, false);
  }
  {
    mm::ScopedForcedCandidate force(dot);
    layered_dot = one_step(m, false);
  }
  // Nested, so that forcing and releasing a candidate are each followed on their own.
  mm::ScopedForcedCandidate outer(plain);
  expect_follows(m, layered_dot, plain);
  {
    mm::ScopedForcedCandidate inner(dot);
    expect_follows(m, layered_plain, dot.c_str());
  }
  expect_follows(m, layered_dot, "released");
}

TEST_F(FusedDecodeTiles, FollowTheKernelLevel) {
  if (metamath::kernel_isa() != metamath::Isa::avx512 || !metamath::cpu_has_avx512_vnni())
    GTEST_SKIP() << "needs AVX-512 VNNI at the current kernel level (flags: "
                 << metamath::cpu_flags_line() << ")";
  const mm::Model m = mm::Model::load(kFixtures / "llama2", mm::parse_dtype("q8-dot"));
  // avx512-vnni is listed at the AVX-512 level only: capped at AVX2 the planner takes its fixed
  // rule (avx2 tiles, float activations).
  mm::ScopedForcedCandidate force("avx512-vnni");
  const at::Tensor layered_vnni = one_step(m, false);
  at::Tensor layered_avx2;
  {
    metamath::ScopedIsaLimit avx2(metamath::Isa::avx2);
    layered_avx2 = one_step(m, false);
  }
  expect_follows(m, layered_avx2, "avx512-vnni");
  {
    metamath::ScopedIsaLimit avx2(metamath::Isa::avx2);
    expect_follows(m, layered_vnni, "capped at avx2");
  }
  expect_follows(m, layered_avx2, "avx512-vnni again");
}

TEST_F(FusedDecodeTiles, FollowTheModelsWeights) {
  // One Model object: float32, then quantized in place to q8-dot, then another model assigned
  // to it. With an int8-dot candidate forced, only the int8 weights take it.
  mm::Model m = mm::Model::load(kFixtures / "llama2", at::kFloat);
  const std::string dot =
      dot_candidate(mm::Model::load(kFixtures / "llama2", mm::parse_dtype("q8-dot")));
  if (dot.empty()) GTEST_SKIP() << "no int8-dot candidate on this CPU";
  mm::ScopedForcedCandidate force(dot);
  const mm::Model q8 = mm::Model::load(kFixtures / "llama2", mm::parse_dtype("q8"));
  const at::Tensor layered_q8 = one_step(q8, false);  // the same int8 weights, float activations
  at::Tensor layered_dot;
  {
    const mm::Model q8dot = mm::Model::load(kFixtures / "llama2", mm::parse_dtype("q8-dot"));
    layered_dot = one_step(q8dot, false);
  }
  expect_follows(m, layered_q8, "float32");
  m.quantize_q8(true);
  expect_follows(m, layered_q8, "quantized in place to q8-dot");
  m = mm::Model::load(kFixtures / "llama2", mm::parse_dtype("q8"));
  expect_follows(m, layered_dot, "another model (q8) at the same address");
}

// The logits a step returns are the caller's: a step after them writes new ones while the caller
// holds them or a view of them (and may reuse them once the caller has let them go).
TEST(FusedDecodeScope, LogitsTheCallerHoldsAreNotOverwritten) {
  SKIP_WITHOUT_FUSED_STEP();
  c10::InferenceMode guard;
  const mm::Model m = mm::Model::load(kFixtures / "llama2", at::kFloat);
  const int64_t V = m.config().vocab_size;
  mm::KVCache cache = m.make_cache(1, 16);
  auto step = [&](int64_t id) {
    mm::ForwardInput in;
    in.input_ids = at::tensor({id}, at::kLong).view({1, 1});
    return m.forward(in, &cache, mm::LogitsMode::Last);
  };
  const int64_t before = mm::fused_decode_steps();
  const at::Tensor held = step(3);
  const at::Tensor held_copy = held.clone();
  const at::Tensor next = step(4);
  EXPECT_NE(next.data_ptr(), held.data_ptr());
  EXPECT_TRUE(at::equal(held, held_copy));
  const at::Tensor view = step(5).view({V});  // only a view of the step's logits survives
  const at::Tensor view_copy = view.clone();
  step(6);
  EXPECT_TRUE(at::equal(view, view_copy));
  EXPECT_EQ(mm::fused_decode_steps(), before + 4);
}

// Ids and masks of other dtypes than int64 read as libtorch reads them: int32 ids with a bool or
// float mask of ones take the fused step with the same logits; a zero in a float mask sends the
// step to the layered pass.
TEST(FusedDecodeScope, IdsAndMasksOfOtherDtypes) {
  SKIP_WITHOUT_FUSED_STEP();
  c10::InferenceMode guard;
  const mm::Model m = mm::Model::load(kFixtures / "llama2", at::kFloat);
  const int64_t V = m.config().vocab_size;
  auto step = [&](const at::Tensor& ids, const at::Tensor& mask) {
    mm::KVCache cache = m.make_cache(2, 8);
    mm::ForwardInput in;
    in.input_ids = ids;
    in.attention_mask = mask;
    return m.forward(in, &cache, mm::LogitsMode::Last).view({2, V}).clone();
  };
  const at::Tensor ids = at::tensor({token(0, 0, V), token(0, 1, V)}, at::kLong).view({2, 1});
  const int64_t before = mm::fused_decode_steps();
  const at::Tensor want = step(ids, {});
  EXPECT_TRUE(at::equal(step(ids.to(at::kInt), at::ones({2, 1}, at::kBool)), want));
  EXPECT_TRUE(at::equal(step(ids, at::ones({2, 1}, at::kFloat)), want));
  EXPECT_TRUE(at::equal(step(ids.to(at::kShort), at::ones({2, 1}, at::kInt)), want));
  EXPECT_EQ(mm::fused_decode_steps(), before + 4);
  step(ids, at::tensor({1.0f, 0.0f}).view({2, 1}));
  EXPECT_EQ(mm::fused_decode_steps(), before + 4);
}

}  // namespace
