#pragma once
// Accuracy metrics over n samples per problem: pass@k (the unbiased estimator of Chen et al.
// 2021), majority vote (maj@k), and the paired bootstrap used by `metamath eval --compare`.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "answer/equiv.h"

namespace metamath::eval {

// Probability that at least one of k samples drawn without replacement from n samples, c of them
// correct, is correct: 1 - C(n-c, k) / C(n, k). Requires 1 <= k <= n and c <= n.
double pass_at_k(int n, int c, int k);

// The k values reported for n samples: 1, 2, 4, ... below n, and n.
std::vector<int> report_ks(int n);

// One sample's extracted answer and verdict, for voting.
struct Vote {
  std::string answer;  // empty = no answer found (does not vote)
  bool correct = false;
};

// Majority vote over votes[0..k): answers are grouped by answer::equivalent (each answer joins the
// first group whose first answer it equals); the largest group wins, ties go to the group that
// appeared first. Returns whether the winner is correct (false when nobody voted).
bool majority_correct(const std::vector<Vote>& votes, std::size_t k, answer::Style style,
                      const answer::Limits& limits = {});

struct BootstrapCI {
  double mean = 0;        // observed mean of b - a
  double lo = 0, hi = 0;  // percentile interval
  std::size_t n = 0;      // pairs
};

// Paired bootstrap of mean(b[i] - a[i]): `rounds` resamples of the n pairs with replacement, a
// deterministic generator seeded with `seed`, and the (1-level)/2 and (1+level)/2 percentiles.
BootstrapCI paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b,
                             int rounds = 10000, double level = 0.95, std::uint64_t seed = 1234);

}  // namespace metamath::eval
