#include "model/sampling.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

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

}  // namespace
}  // namespace metamath::model
