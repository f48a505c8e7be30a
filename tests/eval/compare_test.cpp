#include "eval/compare.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>

#include "core/atomic_file.h"
#include "eval/metrics.h"
#include "test_util.h"

namespace metamath::eval {
namespace {
namespace fs = std::filesystem;

// A summary in run_eval's format with one row of per-problem outcomes per benchmark.
json summary(const std::string& model, const std::map<std::string, std::vector<int>>& outcomes,
             const std::map<std::string, json>& extra = {}) {
  json s = {{"settings", {{"model", model}, {"n", 1}, {"benchmarks", json::array()}}},
            {"results", json::object()}};
  for (const auto& [bench, v] : outcomes) {
    s["settings"]["benchmarks"].push_back({{"name", bench}});
    json per = json::object();
    int c = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      per[fmt::format("{}/{}", bench, i)] = v[i];
      c += v[i];
    }
    s["results"][bench] = {{"problems", v.size()},
                           {"samples", v.size()},
                           {"correct", c},
                           {"n", 1},
                           {"accuracy", static_cast<double>(c) / static_cast<double>(v.size())},
                           {"per_problem", per}};
    if (extra.count(bench))
      for (const auto& [k, x] : extra.at(bench).items()) s["results"][bench][k] = x;
  }
  return s;
}

TEST(Compare, SideBySideWithPairedBootstrap) {
  std::vector<int> a = {1, 0, 1, 1, 0, 1, 0, 0, 1, 1};
  json sa = summary("base", {{"gsm8k", a}, {"svamp", {1, 1, 0, 0}}});
  json sb = summary("tuned", {{"gsm8k", std::vector<int>(10, 1)}, {"math", {0, 1}}});
  Comparison c = compare_summaries(sa, sb, "A.json", "B.json");
  ASSERT_EQ(c.table.size(), 1u);
  const json& row = c.table[0];
  EXPECT_EQ(row["benchmark"], "gsm8k");
  EXPECT_DOUBLE_EQ(row["a"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(row["b"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(row["delta"].get<double>(), 0.4);
  EXPECT_EQ(row["paired"], 10);
  // The interval is the paired bootstrap of the per-problem outcomes.
  std::vector<double> da(a.begin(), a.end()), db(10, 1.0);
  BootstrapCI ci = paired_bootstrap(da, db);
  EXPECT_DOUBLE_EQ(row["ci"][0].get<double>(), ci.lo);
  EXPECT_DOUBLE_EQ(row["ci"][1].get<double>(), ci.hi);
  EXPECT_EQ(row["significant"], ci.lo > 0);
  EXPECT_NE(c.markdown.find("A: A.json (base)\nB: B.json (tuned)"), std::string::npos)
      << c.markdown;
  EXPECT_NE(c.markdown.find(fmt::format("| gsm8k | 60.00 | 100.00 | +40.00 | [{:+.2f}, {:+.2f}]",
                                        100 * ci.lo, 100 * ci.hi)),
            std::string::npos)
      << c.markdown;
  EXPECT_NE(c.markdown.find("| svamp | 50.00 | — | — | — | 0 |"), std::string::npos) << c.markdown;
  EXPECT_NE(c.markdown.find("| math | — | 50.00 | — | — | 0 |"), std::string::npos) << c.markdown;
}

TEST(Compare, PairsByProblemIdAndShowsBreakdowns) {
  // B answered only the first 4 problems: the CI is over those, the accuracies over each run.
  json sa = summary(
      "a", {{"math", {1, 0, 0, 1, 1, 1}}},
      {{"math", {{"by_subject", {{"Algebra", {{"problems", 6}, {"accuracy", 4.0 / 6}}}}}}}});
  json sb =
      summary("b", {{"math", {1, 1, 0, 1}}},
              {{"math", {{"by_subject", {{"Algebra", {{"problems", 4}, {"accuracy", 0.75}}}}}}}});
  Comparison c = compare_summaries(sa, sb, "a", "b");
  ASSERT_EQ(c.table.size(), 2u);
  EXPECT_EQ(c.table[0]["paired"], 4);
  EXPECT_DOUBLE_EQ(c.table[0]["paired_delta"].get<double>(), 0.25);  // (0 + 1 + 0 + 0) / 4
  EXPECT_NE(c.markdown.find("(on the 4 common problems: Δ +25.00)"), std::string::npos)
      << c.markdown;
  EXPECT_EQ(c.table[1]["subject"], "Algebra");
  EXPECT_NE(c.markdown.find("| Algebra | 6 | 66.67 | 75.00 | +8.33 |"), std::string::npos)
      << c.markdown;
}

TEST(Compare, FilesAndErrors) {
  auto dir = testing::temp_dir("compare");
  write_file_atomic(dir / "a.json", summary("a", {{"gsm8k", {1, 0}}}).dump());
  write_file_atomic(dir / "b.json", summary("b", {{"gsm8k", {1, 1}}}).dump());
  write_file_atomic(dir / "c.json", summary("c", {{"svamp", {1, 1}}}).dump());
  write_file_atomic(dir / "score.json", R"({"overall": {"n": 2}})");
  write_file_atomic(dir / "bad.json", "{nope");
  EXPECT_NO_THROW(compare_files(dir / "a.json", dir / "b.json"));
  std::string err = testing::error_of([&] { compare_files(dir / "a.json", dir / "c.json"); });
  EXPECT_NE(err.find("have no benchmark in common"), std::string::npos) << err;
  err = testing::error_of([&] { compare_files(dir / "a.json", dir / "score.json"); });
  EXPECT_NE(err.find("score.json: not a metamath eval summary"), std::string::npos) << err;
  err = testing::error_of([&] { compare_files(dir / "bad.json", dir / "a.json"); });
  EXPECT_NE(err.find("bad.json:1: malformed JSON (parse error at line 1"), std::string::npos)
      << err;
}

}  // namespace
}  // namespace metamath::eval
