// Every gold of every benchmark scores: each benchmark file in ../shared/data is loaded through
// eval::load_problems (the loaders `metamath eval` uses), each gold is extracted as score_one()
// extracts it (answer::extract_gold), and must be found, be understood as the kind it is meant to
// be (no LaTeX parse error, no GSM-style gold left as text when it holds a number), and score as
// correct when a model writes it back ("The answer is: GOLD", or "\boxed{GOLD}" in MATH style).
// Prints the counts per benchmark and per kind.
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "answer/equiv.h"
#include "answer/extract.h"
#include "answer/numeric.h"
#include "data/problem.h"
#include "eval/benchmark.h"
#include "eval/score.h"
#include "test_util.h"

namespace metamath::eval {
namespace {

// Generous limits: this checks correctness, not speed (a loaded machine must not flake).
answer::Limits generous() {
  answer::Limits l;
  l.time_ms = 10000;
  return l;
}

bool has_digit(const std::string& s) {
  for (char c : s)
    if (c >= '0' && c <= '9') return true;
  return false;
}

// GSM-style golds that are words on purpose (ASDiv comparisons, ordinals, a date): they hold a
// digit but no number, time or ratio a model could write instead.
bool text_gold_on_purpose(const std::string& gold) {
  for (const char* s : {"1st", "6th", "60th", "February 3rd", "24 December 2014", "Vendor 2"})
    if (gold.find(s) != std::string::npos) return true;
  return false;
}

struct Counts {
  std::size_t total = 0;
  std::map<std::string, std::size_t> kinds;
};

TEST(GoldData, EveryGoldOfEveryBenchmarkIsFoundParsedAndScoresItself) {
  METAMATH_REQUIRE_DATA(dir);
  std::map<std::string, Counts> counts;
  for (const Benchmark& b : benchmarks()) {
    std::vector<data::Problem> problems = load_problems(b, dir / b.dataset / "test.jsonl");
    Counts& c = counts[b.name];
    for (const data::Problem& p : problems) {
      ++c.total;
      answer::Extracted gold = answer::extract_gold(p.answer, b.style);
      EXPECT_TRUE(gold.found()) << b.name << " " << p.id << ": no gold answer found in ["
                                << p.answer << "]";
      if (!gold.found()) continue;
      answer::Kind kind = answer::answer_kind(gold.answer, b.style, generous());
      ++c.kinds[answer::kind_name(kind)];
      EXPECT_NE(kind, answer::Kind::Empty) << b.name << " " << p.id << ": empty gold";
      if (b.style == answer::Style::Math && kind != answer::Kind::Ratio &&
          kind != answer::Kind::Time) {
        answer::Normalized n = answer::normalize_math(gold.answer, generous());
        EXPECT_TRUE(n.error.empty()) << b.name << " " << p.id << ": gold [" << gold.answer
                                     << "] does not parse: " << n.error;
      } else if (kind == answer::Kind::Text) {
        EXPECT_TRUE(!has_digit(gold.answer) || text_gold_on_purpose(gold.answer))
            << b.name << " " << p.id << ": gold [" << gold.answer << "] left as text";
      }
      if (b.name == "asdiv" && p.type == "Ratio" && gold.answer.find(':') != std::string::npos) {
        EXPECT_TRUE(kind == answer::Kind::Ratio ||
                    (kind == answer::Kind::Time && answer::parse_ratio(gold.answer)))
            << p.id << ": ratio gold [" << gold.answer << "] is " << answer::kind_name(kind);
      }
      std::string written = b.style == answer::Style::Math ? "\\boxed{" + gold.answer + "}"
                                                           : "The answer is: " + gold.answer;
      RowVerdict v = score_one(written, p.answer, b.style, generous());
      EXPECT_TRUE(v.correct) << b.name << " " << p.id << ": gold [" << gold.answer
                             << "] does not score itself: " << v.reason;
    }
  }
  for (const auto& [name, c] : counts) {
    std::cout << name << ": " << c.total << " golds;";
    for (const auto& [k, n] : c.kinds) std::cout << " " << k << " " << n;
    std::cout << "\n";
  }
  EXPECT_EQ(counts["gsm8k"].total, 1319u);
  EXPECT_EQ(counts["math"].total, 5000u);
  EXPECT_EQ(counts["math500"].total, 500u);
  EXPECT_EQ(counts["gsm8k_backward"].total, 1270u);
  EXPECT_EQ(counts["svamp"].total, 1000u);
  EXPECT_EQ(counts["asdiv"].total, 2215u);
}

}  // namespace
}  // namespace metamath::eval
