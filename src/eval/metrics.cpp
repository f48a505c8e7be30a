#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"

namespace metamath::eval {

double pass_at_k(int n, int c, int k) {
  if (n < 1 || k < 1 || k > n || c < 0 || c > n)
    fail("pass@k: need 1 <= k <= n and 0 <= c <= n (n={}, c={}, k={})", n, c, k);
  if (n - c < k) return 1.0;
  // C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i), a stable product.
  double fail_all = 1.0;
  for (int i = n - c + 1; i <= n; ++i) fail_all *= 1.0 - static_cast<double>(k) / i;
  return 1.0 - fail_all;
}

std::vector<int> report_ks(int n) {
  std::vector<int> ks;
  for (int k = 1; k < n; k *= 2) ks.push_back(k);
  if (n >= 1) ks.push_back(n);
  return ks;
}

bool majority_correct(const std::vector<Vote>& votes, std::size_t k, answer::Style style,
                      const answer::Limits& limits) {
  struct Group {
    std::string answer;
    std::size_t count = 0;
    bool correct = false;
  };
  std::vector<Group> groups;
  k = std::min(k, votes.size());
  for (std::size_t i = 0; i < k; ++i) {
    const Vote& v = votes[i];
    if (v.answer.empty()) continue;
    bool joined = false;
    for (Group& g : groups) {
      if (g.answer == v.answer || answer::equivalent(v.answer, g.answer, style, limits).equal()) {
        ++g.count;
        joined = true;
        break;
      }
    }
    if (!joined) groups.push_back({v.answer, 1, v.correct});
  }
  const Group* best = nullptr;
  for (const Group& g : groups)
    if (!best || g.count > best->count) best = &g;
  return best && best->correct;
}

BootstrapCI paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b, int rounds,
                             double level, std::uint64_t seed) {
  if (a.size() != b.size()) fail("paired bootstrap: {} vs {} values", a.size(), b.size());
  if (rounds < 1 || !(level > 0 && level < 1)) fail("paired bootstrap: bad rounds or level");
  BootstrapCI ci;
  ci.n = a.size();
  if (a.empty()) return ci;
  std::vector<double> d(a.size());
  double sum = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d[i] = b[i] - a[i];
    sum += d[i];
  }
  const double n = static_cast<double>(d.size());
  ci.mean = sum / n;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, d.size() - 1);
  std::vector<double> means(static_cast<std::size_t>(rounds));
  for (double& m : means) {
    double s = 0;
    for (std::size_t i = 0; i < d.size(); ++i) s += d[pick(rng)];
    m = s / n;
  }
  std::sort(means.begin(), means.end());
  auto at = [&](double q) {
    double pos = q * (static_cast<double>(means.size()) - 1);
    auto lo = static_cast<std::size_t>(std::floor(pos));
    std::size_t hi = std::min(lo + 1, means.size() - 1);
    double f = pos - static_cast<double>(lo);
    return means[lo] * (1 - f) + means[hi] * f;
  };
  ci.lo = at((1 - level) / 2);
  ci.hi = at((1 + level) / 2);
  return ci;
}

}  // namespace metamath::eval
