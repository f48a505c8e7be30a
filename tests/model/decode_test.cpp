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
#include <vector>

#include "fixtures.h"
#include "model/linear.h"
#include "model/model.h"
#include "model/plan.h"
#include "test_util.h"

namespace mm = metamath::model;
using metamath::testing::kFixtures;

namespace {

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

}  // namespace
