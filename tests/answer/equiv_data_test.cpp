// Equivalence and normalisation over the real datasets in ../shared/data (skipped when absent).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "answer/equiv.h"
#include "answer/numeric.h"
#include "core/text.h"
#include "test_util.h"

namespace metamath::answer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<json> read_lines(const fs::path& p) {
  std::vector<json> out;
  std::ifstream in(p);
  EXPECT_TRUE(in.good()) << "cannot open " << p;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

// Generous limits: these tests check correctness, not speed (a loaded machine must not flake).
Limits generous() {
  Limits l;
  l.time_ms = 10000;
  return l;
}

TEST(EquivData, MathAnswersParseAndRoundTrip) {
  METAMATH_REQUIRE_DATA(dir);
  std::map<std::string, int> kinds;
  int total = 0, self_fail = 0, trip_fail = 0, parse_errors = 0;
  for (const char* split : {"train", "test"}) {
    for (const json& r : read_lines(dir / "math" / (std::string(split) + ".jsonl"))) {
      std::string a = r.at("answer").get<std::string>();
      ++total;
      Normalized n = normalize_math(a, generous());
      ++kinds[kind_name(n.kind)];
      if (!n.error.empty()) ++parse_errors;
      Result self = equivalent(a, a, Style::Math, generous());
      if (!self.equal()) {
        ++self_fail;
        ADD_FAILURE() << "not equal to itself: " << a << " (" << self.reason << ")";
      }
      if (n.kind != Kind::Text) {  // canonical forms are fixed points
        Normalized again = normalize_math(n.canonical, generous());
        if (again.canonical != n.canonical) {
          ++trip_fail;
          ADD_FAILURE() << "canonical not stable: [" << a << "] -> [" << n.canonical << "] -> ["
                        << again.canonical << "]";
        }
      }
      Result trip = equivalent(n.canonical, a, Style::Math, generous());
      if (!trip.equal()) {
        ++trip_fail;
        ADD_FAILURE() << "round trip failed: [" << a << "] -> [" << n.canonical << "] ("
                      << trip.reason << ")";
      }
    }
  }
  std::cout << "MATH answers: " << total << " (parse errors, kept as text: " << parse_errors
            << ")\n";
  for (auto& [k, c] : kinds) std::cout << "  " << k << ": " << c << "\n";
  EXPECT_EQ(total, 12500);
  EXPECT_EQ(self_fail, 0);
  EXPECT_EQ(trip_fail, 0);
  EXPECT_EQ(kinds["empty"], 2);  // train/number_theory/7115 and 7117 have an empty \boxed{}
}

TEST(EquivData, Math500CuratedAnswerMatchesBoxed) {
  METAMATH_REQUIRE_DATA(dir);
  int n = 0, disagree = 0;
  for (const json& r : read_lines(dir / "math500" / "test.jsonl")) {
    ++n;
    std::string gold = r.at("answer").get<std::string>();
    auto boxed = text::last_boxed(r.at("solution").get<std::string>());
    ASSERT_TRUE(boxed.has_value()) << r.at("unique_id");
    Result res = equivalent(*boxed, gold, Style::Math, generous());
    if (!res.equal()) {
      ++disagree;
      std::cout << "MATH-500 " << r.at("unique_id").get<std::string>() << ": boxed [" << *boxed
                << "] vs curated [" << gold << "]: " << verdict_name(res.verdict) << " ("
                << res.reason << ")\n";
    }
  }
  EXPECT_EQ(n, 500);
  std::cout << "MATH-500 disagreements: " << disagree << "\n";
  EXPECT_LE(disagree, 3);  // SOURCES.md documents 3 unit/degree differences; we handle them
}

TEST(EquivData, Gsm8kGoldsAreNumbers) {
  METAMATH_REQUIRE_DATA(dir);
  int n = 0;
  for (const char* split : {"train", "test"}) {
    for (const json& r : read_lines(dir / "gsm8k" / (std::string(split) + ".jsonl"))) {
      ++n;
      auto gold = text::after_hashes(r.at("answer").get<std::string>());
      ASSERT_TRUE(gold.has_value()) << r.at("question");
      auto num = parse_number(*gold);
      EXPECT_TRUE(num.has_value()) << "GSM8K gold not a number: " << *gold;
      if (num) {
        EXPECT_TRUE(equivalent(*gold, num->str(), Style::Gsm8k).equal()) << *gold;
      }
    }
  }
  EXPECT_EQ(n, 7473 + 1319);
}

TEST(EquivData, Gsm8kBackwardAnswersAreNumbers) {
  METAMATH_REQUIRE_DATA(dir);
  int n = 0;
  for (const json& r : read_lines(dir / "gsm8k_backward" / "test.jsonl")) {
    ++n;
    std::string a = r.at("answer").get<std::string>();
    EXPECT_TRUE(parse_number(a).has_value()) << "GSM8K_Backward answer not a number: " << a;
  }
  EXPECT_EQ(n, 1270);
}

}  // namespace
}  // namespace metamath::answer
