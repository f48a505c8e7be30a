// Re-scoring the hand-written fixture run (tests/eval/fixtures/run/, see its README.md) gives the
// hand-checked verdicts and accuracies.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>

#include "core/atomic_file.h"
#include "eval/runner.h"
#include "eval/score.h"
#include "fixture_run.h"
#include "test_util.h"

namespace metamath::eval {
namespace {
namespace fs = std::filesystem;

TEST(Fixture, RescoreGivesTheHandCheckedAccuracy) {
  fs::path dir = copy_fixture("fixture_rescore");
  EvalResult r = rescore_run(dir);
  expect_hand_verdicts(dir / "gsm8k.samples.jsonl");
  expect_hand_verdicts(dir / "math.samples.jsonl");
  const json& g = r.summary["results"]["gsm8k"];
  const json& m = r.summary["results"]["math"];
  EXPECT_EQ(g["correct"], 15);
  EXPECT_EQ(g["problems"], 20);
  EXPECT_EQ(m["correct"], 14);
  EXPECT_EQ(m["truncated"], 1);
  EXPECT_EQ(g["truncated"], 1);
  // Hand-counted breakdown (see the fixture rows).
  std::map<std::string, std::pair<int, int>> subjects = {
      {"Algebra", {6, 4}},     {"Number Theory", {2, 1}},
      {"Geometry", {2, 1}},    {"Counting & Probability", {2, 1}},
      {"Precalculus", {2, 2}}, {"Intermediate Algebra", {4, 3}},
      {"Prealgebra", {2, 2}}};
  EXPECT_EQ(m["by_subject"].size(), subjects.size());
  for (const auto& [k, v] : subjects) {
    EXPECT_EQ(m["by_subject"][k]["problems"], v.first) << k;
    EXPECT_EQ(m["by_subject"][k]["correct"], v.second) << k;
  }
  std::map<std::string, std::pair<int, int>> levels = {{"Level 1", {3, 2}},
                                                       {"Level 2", {5, 5}},
                                                       {"Level 3", {5, 3}},
                                                       {"Level 4", {4, 3}},
                                                       {"Level 5", {3, 1}}};
  for (const auto& [k, v] : levels) {
    EXPECT_EQ(m["by_level"][k]["problems"], v.first) << k;
    EXPECT_EQ(m["by_level"][k]["correct"], v.second) << k;
  }
  EXPECT_NE(r.markdown.find("| gsm8k | 20 | 15 | 75.00 |"), std::string::npos) << r.markdown;
  EXPECT_NE(r.markdown.find("| math | 20 | 14 | 70.00 |"), std::string::npos) << r.markdown;
  EXPECT_EQ(json::parse(read_file(dir / "summary.json")), r.summary);
}

}  // namespace
}  // namespace metamath::eval
