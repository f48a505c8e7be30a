#include "model/sampling.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "isa_test.h"

namespace metamath::model {
namespace {

at::Tensor logits_for(std::vector<float> probs) {
  at::Tensor p = at::tensor(probs);
  return p.log();  // softmax(log p) == p
}

TEST(Sampler, GreedyIsArgmax) {
  Sampler s(SamplingParams{});
  EXPECT_EQ(s.next(at::tensor({0.1f, 2.0f, -1.0f, 1.9f})), 1);
  EXPECT_EQ(s.next(at::tensor({0.1f, 2.0f, -1.0f, 1.9f}).to(at::kBFloat16)), 1);
}

TEST(Sampler, FrequenciesFollowTheDistribution) {
  Sampler s(SamplingParams{.temperature = 1.0f, .seed = 7});
  std::vector<float> p = {0.5f, 0.3f, 0.15f, 0.05f};
  at::Tensor l = logits_for(p);
  std::vector<int> count(4, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++count[s.next(l)];
  for (int k = 0; k < 4; ++k) {
    double f = static_cast<double>(count[k]) / n;
    double sd = std::sqrt(p[k] * (1 - p[k]) / n);
    EXPECT_NEAR(f, p[k], 5 * sd) << "token " << k;
  }
}

TEST(Sampler, TopPKeepsTheNucleusOnly) {
  // Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.8 keeps tokens 0 and 1 (0.5 + 0.3 reaches 0.8).
  Sampler s(SamplingParams{.temperature = 1.0f, .top_p = 0.8f, .seed = 1});
  at::Tensor l = logits_for({0.05f, 0.5f, 0.15f, 0.3f});
  std::vector<int> count(4, 0);
  for (int i = 0; i < 4000; ++i) ++count[s.next(l)];
  EXPECT_EQ(count[0], 0);
  EXPECT_EQ(count[2], 0);
  EXPECT_GT(count[1], count[3]);  // renormalised 0.625 vs 0.375
  EXPECT_NEAR(count[1] / 4000.0, 0.625, 0.04);
}

TEST(Sampler, TopKAndSeedReproducibility) {
  at::Tensor l = logits_for({0.4f, 0.3f, 0.2f, 0.1f});
  Sampler k1(SamplingParams{.temperature = 1.0f, .top_k = 1, .seed = 3});
  for (int i = 0; i < 50; ++i) EXPECT_EQ(k1.next(l), 0);
  Sampler a(SamplingParams{.temperature = 0.7f, .seed = 42}),
      b(SamplingParams{.temperature = 0.7f, .seed = 42});
  std::vector<int64_t> xa, xb;
  for (int i = 0; i < 100; ++i) {
    xa.push_back(a.next(l));
    xb.push_back(b.next(l));
  }
  EXPECT_EQ(xa, xb);
  Sampler c(SamplingParams{.temperature = 0.7f, .seed = 43});
  std::vector<int64_t> xc;
  for (int i = 0; i < 100; ++i) xc.push_back(c.next(l));
  EXPECT_NE(xa, xc);
}

TEST(Sampler, BadParameters) {
  EXPECT_THROW(Sampler(SamplingParams{.temperature = -1.0f}), Error);
  EXPECT_THROW(Sampler(SamplingParams{.temperature = 1.0f, .top_p = 0.0f}), Error);
  EXPECT_THROW(Sampler(SamplingParams{.top_k = -2}), Error);
}

// The greedy argmax (sampling.h) against libtorch's at::argmax, with the kernels capped at each
// level in turn: random rows of lengths around the vector widths (8, 16, the 32-value main
// loop) and a vocabulary's, with ties, NaNs, infinities and signed zeros placed at the start,
// the middle, a vector's last lane and the tail.
class ArgmaxIsa : public metamath::testing::IsaTest {};

int64_t torch_argmax(const std::vector<float>& x) { return at::tensor(x).argmax().item<int64_t>(); }

TEST_P(ArgmaxIsa, MatchesLibtorch) {
  const float nan = std::numeric_limits<float>::quiet_NaN(),
              inf = std::numeric_limits<float>::infinity();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_int_distribution<int> coarse(-3, 3);  // few distinct values: many ties
  int checked = 0;
  for (int64_t n : {1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 1000, 32000, 32001})
    for (int kind = 0; kind < 9; ++kind) {
      std::vector<float> x(n);
      for (float& v : x) v = kind == 1 ? static_cast<float>(coarse(rng)) : normal(rng);
      for (int64_t at : {int64_t{0}, n / 2, std::min<int64_t>(n - 1, 15), n - 1}) {
        std::vector<float> y = x;
        switch (kind) {
          case 2:  // a NaN (the first one wins over everything)
            y[at] = nan;
            break;
          case 3:  // two NaNs, the later one planted first
            y[n - 1] = nan;
            y[at] = nan;
            break;
          case 4:  // +inf, twice
            y[at] = inf;
            y[n - 1] = inf;
            break;
          case 5:  // everything -inf
            std::fill(y.begin(), y.end(), -inf);
            break;
          case 6:  // the maximum is a zero, of either sign, tied
            for (float& v : y) v = -std::abs(v) - 1.0f;
            y[at] = -0.0f;
            y[n - 1] = 0.0f;
            break;
          case 7:  // -inf and a NaN after it
            std::fill(y.begin(), y.end(), -inf);
            y[at] = nan;
            break;
          case 8:  // the maximum tied at `at` and the end
            y[at] = 100.0f;
            y[n - 1] = 100.0f;
            break;
          default:
            break;
        }
        const int64_t want = torch_argmax(y);
        EXPECT_EQ(argmax(y.data(), n), want) << "n " << n << " kind " << kind << " at " << at;
        ++checked;
      }
    }
  EXPECT_GT(checked, 600);
  EXPECT_THROW(argmax(nullptr, 0), Error);
}

// greedy_tokens: each row's argmax, in place for contiguous float32 logits and through libtorch
// otherwise (bf16, a transposed view, an empty vocabulary's error).
TEST_P(ArgmaxIsa, GreedyTokensAreArgmaxOfEachRow) {
  at::manual_seed(3);
  const at::Tensor logits = at::randn({5, 1, 1000});
  logits[2][0][17] = std::numeric_limits<float>::quiet_NaN();
  const auto want = [](const at::Tensor& l) {
    const at::Tensor t = l.argmax(-1).reshape({-1}).contiguous();
    return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  };
  EXPECT_EQ(greedy_tokens(logits), want(logits));
  EXPECT_EQ(greedy_tokens(logits.to(at::kBFloat16)), want(logits.to(at::kBFloat16)));
  const at::Tensor strided = logits.view({5, 1000}).t();  // [1000, 5], not contiguous
  EXPECT_EQ(greedy_tokens(strided), want(strided));
  EXPECT_ANY_THROW(greedy_tokens(at::empty({2, 0})));
  // The sampler's greedy choice, from the tensor and from the values in place.
  Sampler s(SamplingParams{});
  const at::Tensor row = logits[2][0];
  EXPECT_EQ(s.next(row), 17);
  EXPECT_EQ(s.next(row.data_ptr<float>(), 1000), 17);
}

METAMATH_EACH_ISA(ArgmaxIsa);

}  // namespace
}  // namespace metamath::model
