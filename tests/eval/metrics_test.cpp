#include "eval/metrics.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace metamath::eval {
namespace {

TEST(Metrics, PassAtKHandValues) {
  // 1 - C(n-c,k)/C(n,k), worked by hand.
  EXPECT_DOUBLE_EQ(pass_at_k(1, 1, 1), 1.0);
  EXPECT_DOUBLE_EQ(pass_at_k(1, 0, 1), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(4, 1, 1), 0.25);
  EXPECT_NEAR(pass_at_k(5, 2, 2), 1.0 - 3.0 / 10.0, 1e-12);     // C(3,2)=3, C(5,2)=10
  EXPECT_NEAR(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0, 1e-12);  // C(7,5)=21, C(10,5)=252
  EXPECT_DOUBLE_EQ(pass_at_k(4, 3, 2), 1.0);                    // fewer than k wrong samples
  EXPECT_DOUBLE_EQ(pass_at_k(4, 0, 4), 0.0);
  EXPECT_NE(testing::error_of([] { pass_at_k(4, 1, 5); }), "(no error)");
  EXPECT_NE(testing::error_of([] { pass_at_k(4, 5, 1); }), "(no error)");
}

TEST(Metrics, ReportedKs) {
  EXPECT_EQ(report_ks(1), (std::vector<int>{1}));
  EXPECT_EQ(report_ks(4), (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(report_ks(10), (std::vector<int>{1, 2, 4, 8, 10}));
}

TEST(Metrics, MajorityVoteGroupsEquivalentAnswers) {
  using answer::Style;
  // "0.5", "1/2" and "\frac{1}{2}" are one answer in MATH style: 3 votes against 2 for "2".
  std::vector<Vote> v = {
      {"2", false}, {"0.5", true}, {"2", false}, {"\\frac{1}{2}", true}, {"1/2", true}};
  EXPECT_TRUE(majority_correct(v, 5, Style::Math));
  EXPECT_FALSE(majority_correct(v, 3, Style::Math));  // first three: "2" twice
  // A 1-1 tie goes to the answer seen first.
  EXPECT_FALSE(majority_correct(v, 2, Style::Math));
  // GSM style: "1,000" and "1000" and "$1000" agree.
  std::vector<Vote> g = {
      {"7", false}, {"1,000", true}, {"1000", true}, {"$1000", true}, {"7", false}};
  EXPECT_TRUE(majority_correct(g, 5, Style::Gsm8k));
  // Samples without an answer do not vote.
  std::vector<Vote> e = {{"", false}, {"", false}, {"5", true}};
  EXPECT_TRUE(majority_correct(e, 3, Style::Gsm8k));
  EXPECT_FALSE(majority_correct({{"", false}}, 1, Style::Gsm8k));
}

TEST(Metrics, PairedBootstrap) {
  // Identical systems: the interval is exactly [0, 0].
  std::vector<double> a = {1, 0, 1, 1, 0, 1, 0, 0, 1, 1};
  BootstrapCI same = paired_bootstrap(a, a, 2000);
  EXPECT_EQ(same.mean, 0.0);
  EXPECT_EQ(same.lo, 0.0);
  EXPECT_EQ(same.hi, 0.0);
  // B fixes every error of A and breaks nothing: every resample's delta is >= 0.
  std::vector<double> b(a.size(), 1.0);
  BootstrapCI up = paired_bootstrap(a, b, 2000);
  EXPECT_DOUBLE_EQ(up.mean, 0.4);
  EXPECT_GE(up.lo, 0.0);
  EXPECT_LE(up.hi, 1.0);
  EXPECT_LT(up.lo, up.mean);
  EXPECT_GT(up.hi, up.mean);
  // The same seed gives the same interval; more pairs give a narrower one.
  BootstrapCI again = paired_bootstrap(a, b, 2000);
  EXPECT_EQ(again.lo, up.lo);
  EXPECT_EQ(again.hi, up.hi);
  std::vector<double> a4, b4;
  for (int r = 0; r < 20; ++r) {
    a4.insert(a4.end(), a.begin(), a.end());
    b4.insert(b4.end(), b.begin(), b.end());
  }
  BootstrapCI wide = up, narrow = paired_bootstrap(a4, b4, 2000);
  EXPECT_DOUBLE_EQ(narrow.mean, 0.4);
  EXPECT_LT(narrow.hi - narrow.lo, wide.hi - wide.lo);
  // The delta of 0.4 on 200 pairs with sd 0.49 is far from 0: about 0.4 +- 1.96 * 0.035.
  EXPECT_NEAR(narrow.lo, 0.4 - 1.96 * 0.0346, 0.02);
  EXPECT_NEAR(narrow.hi, 0.4 + 1.96 * 0.0346, 0.02);
  EXPECT_NE(testing::error_of([] { paired_bootstrap({1}, {1, 0}); }), "(no error)");
}

}  // namespace
}  // namespace metamath::eval
