#include "eval/score.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "test_util.h"

namespace metamath::eval {
namespace {
namespace fs = std::filesystem;

fs::path sample(const char* name) { return fs::path(METAMATH_SOURCE_DIR) / "samples" / name; }

std::map<std::string, bool> verdicts(const fs::path& p) {
  std::map<std::string, bool> m;
  for (const auto& r : read_jsonl(p)) m[r["id"].get<std::string>()] = r["correct"].get<bool>();
  return m;
}

// samples/gsm8k_outputs.jsonl is written by hand; each verdict below was checked by hand.
TEST(Score, Gsm8kSampleHandChecked) {
  auto dir = testing::temp_dir("score_gsm");
  ScoreOptions o;
  o.progress = false;
  o.style = answer::Style::Gsm8k;
  ScoreSummary s = score_file(sample("gsm8k_outputs.jsonl"), dir / "v.jsonl", o);
  EXPECT_EQ(s.pred_field, "completion");
  EXPECT_EQ(s.gold_field, "gold");
  EXPECT_EQ(s.overall.total, 12u);
  EXPECT_EQ(s.overall.correct, 9u);
  auto v = verdicts(dir / "v.jsonl");
  std::map<std::string, bool> expect = {
      {"g1", true}, {"g2", true}, {"g3", true},  {"g4", false}, {"g5", true},  {"g6", true},
      {"g7", true}, {"g8", true}, {"g9", false}, {"g10", true}, {"g11", true}, {"g12", false}};
  EXPECT_EQ(v, expect);
  auto rows = read_jsonl(dir / "v.jsonl");
  EXPECT_EQ(rows[6]["pred_method"], "last_number");  // g7 has no answer marker
  EXPECT_EQ(rows[6]["pred_answer"], "43");
  EXPECT_EQ(rows[2]["gold_answer"], "1550");
  for (const auto& r : rows)
    for (const char* f : {"id", "correct", "pred_answer", "gold_answer", "reason"})
      EXPECT_TRUE(r.contains(f)) << f;
}

// The same sample under MetaMath's official scoring (answer/official.h), checked by hand: only
// rows with "The answer is: " count, and the first number after it is rounded: g5 "3/4" rounds
// to 1 (gold 0.75), g10 "\frac{2}{5}" reads 2; g6 and g7 have no marker.
TEST(Score, Gsm8kSampleOfficialAndBoth) {
  auto dir = testing::temp_dir("score_gsm_official");
  ScoreOptions o;
  o.progress = false;
  o.style = answer::Style::Gsm8k;
  o.scoring = Scoring::Official;
  ScoreSummary s = score_file(sample("gsm8k_outputs.jsonl"), dir / "v.jsonl", o);
  EXPECT_EQ(s.overall.total, 12u);
  EXPECT_EQ(s.overall.correct, 5u);
  std::map<std::string, bool> expect = {
      {"g1", true},  {"g2", true}, {"g3", true},  {"g4", false},  {"g5", false}, {"g6", false},
      {"g7", false}, {"g8", true}, {"g9", false}, {"g10", false}, {"g11", true}, {"g12", false}};
  EXPECT_EQ(verdicts(dir / "v.jsonl"), expect);
  EXPECT_EQ(read_jsonl(dir / "v.jsonl")[4]["pred_answer"], "1");

  o.scoring = Scoring::Both;
  s = score_file(sample("gsm8k_outputs.jsonl"), dir / "b.jsonl", o);
  EXPECT_EQ(s.overall.correct, 9u);
  EXPECT_EQ(s.official.correct, 5u);
  std::string md = format_summary(s);
  EXPECT_NE(md.find("| **overall** | 12 | 9 | 75.00 | 5 | 41.67 | +33.33 |"), std::string::npos)
      << md;
  auto rows = read_jsonl(dir / "b.jsonl");
  EXPECT_EQ(rows[4]["correct"], true);
  EXPECT_EQ(rows[4]["official_correct"], false);
  EXPECT_EQ(summary_json(s)["official"]["overall"]["correct"], 5);
  EXPECT_THROW(parse_scoring("sympy"), Error);
}

TEST(Score, MathSampleHandCheckedWithBreakdown) {
  auto dir = testing::temp_dir("score_math");
  ScoreOptions o;
  o.progress = false;
  o.style = answer::Style::Math;
  ScoreSummary s = score_file(sample("math_outputs.jsonl"), dir / "v.jsonl", o);
  EXPECT_EQ(s.overall.total, 12u);
  EXPECT_EQ(s.overall.correct, 10u);
  auto v = verdicts(dir / "v.jsonl");
  EXPECT_FALSE(v["m7"]);   // open vs closed interval ends
  EXPECT_FALSE(v["m10"]);  // different vector
  EXPECT_TRUE(v["m4"]);    // solutions listed in another order
  EXPECT_TRUE(v["m9"]);    // 90^\circ vs 90
  EXPECT_TRUE(v["m11"]);   // (x+1)^2 vs x^2+2x+1
  EXPECT_EQ(s.by_subject.at("Algebra").total, 3u);
  EXPECT_EQ(s.by_subject.at("Algebra").correct, 2u);
  EXPECT_EQ(s.by_subject.at("Precalculus").correct, 1u);
  EXPECT_EQ(s.by_level.at("Level 3").total, 4u);
  EXPECT_EQ(s.by_level.at("Level 3").correct, 3u);
  EXPECT_EQ(s.by_level.at("Level 5").correct, 0u);
  std::string md = format_summary(s);
  EXPECT_NE(md.find("| **overall** | 12 | 10 | 83.33 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| Algebra | 3 | 2 | 66.67 |"), std::string::npos) << md;
}

TEST(Score, LmEvalStyleFieldsAndNumericLevels) {
  auto dir = testing::temp_dir("score_lmeval");
  std::ofstream(dir / "in.jsonl")
      << R"({"doc_id": 0, "doc": {"answer": "\\frac{1}{2}", "type": "Algebra", "level": 2}, "resps": [["so it is \\boxed{0.5}"]], "filtered_resps": ["0.5"]})"
      << "\n"
      << R"({"doc_id": 1, "doc": {"answer": "3", "type": "Geometry", "level": 2}, "resps": [["\\boxed{4}"]], "filtered_resps": ["4"]})"
      << "\n";
  ScoreOptions o;
  o.progress = false;
  o.style = answer::Style::Math;
  o.id_field = "doc_id";
  ScoreSummary s = score_file(dir / "in.jsonl", dir / "v.jsonl", o);
  EXPECT_EQ(s.pred_field, "filtered_resps");
  EXPECT_EQ(s.gold_field, "doc.answer");
  EXPECT_EQ(s.overall.correct, 1u);
  EXPECT_EQ(s.by_level.at("Level 2").total, 2u);
  auto rows = read_jsonl(dir / "v.jsonl");
  EXPECT_EQ(rows[1]["id"], 1);
}

TEST(Score, ErrorsAndNoPartialOutput) {
  auto dir = testing::temp_dir("score_err");
  std::ofstream(dir / "in.jsonl") << R"({"completion": "The answer is: 3", "gold": "3"})"
                                  << "\n"
                                  << R"({"completion": "The answer is: 4"})"
                                  << "\n";
  ScoreOptions o;
  o.progress = false;
  try {
    score_file(dir / "in.jsonl", dir / "v.jsonl", o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("in.jsonl:2: missing gold field \"gold\""),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "v.jsonl"));  // nothing half-written
  std::ofstream(dir / "nofield.jsonl") << R"({"x": 1})"
                                       << "\n";
  EXPECT_THROW(score_file(dir / "nofield.jsonl", "", o), Error);
}

TEST(Score, Lookup) {
  json j = json::parse(R"({"a": {"b": [10, {"c": "x"}]}, "r": [["t"]]})");
  EXPECT_EQ(*lookup(j, "a.b.0"), 10);
  EXPECT_EQ(*lookup(j, "a.b.1.c"), "x");
  EXPECT_EQ(lookup(j, "a.z"), nullptr);
  EXPECT_EQ(lookup(j, "a.b.7"), nullptr);
  EXPECT_EQ(field_text(*lookup(j, "r")), "t");
  EXPECT_EQ(field_text(json(2.5)), "2.5");
}

}  // namespace
}  // namespace metamath::eval

namespace metamath::eval {
namespace {

// Real data: a reference solution scored against its own dataset's gold answer must be correct,
// and a solution of a different problem must (almost always) be wrong.
TEST(ScoreRealData, GoldSolutionsScoreAsCorrect) {
  METAMATH_REQUIRE_DATA(dir);
  auto dir_out = testing::temp_dir("score_real");
  {
    JsonlWriter w(dir_out / "gsm.jsonl");
    JsonlWriter shuffled(dir_out / "gsm_shuffled.jsonl");
    auto rows = read_jsonl(dir / "gsm8k/test.jsonl");
    for (size_t i = 0; i < rows.size(); ++i) {
      w.write({{"id", i}, {"completion", rows[i]["answer"]}, {"gold", rows[i]["answer"]}});
      shuffled.write({{"id", i},
                      {"completion", rows[(i + 1) % rows.size()]["answer"]},
                      {"gold", rows[i]["answer"]}});
    }
    w.commit();
    shuffled.commit();
  }
  ScoreOptions o;
  o.progress = false;
  ScoreSummary s = score_file(dir_out / "gsm.jsonl", "", o);
  EXPECT_EQ(s.overall.total, 1319u);
  EXPECT_EQ(s.overall.correct, 1319u);
  s = score_file(dir_out / "gsm_shuffled.jsonl", "", o);
  EXPECT_LT(s.overall.correct, 40u) << "neighbouring problems rarely share an answer";

  // MATH-500: the curated `answer` against the full reference solution (last \boxed{}).
  ScoreOptions m;
  m.progress = false;
  m.style = answer::Style::Math;
  m.pred_field = "solution";
  m.gold_field = "answer";
  s = score_file(dir / "math500/test.jsonl", dir_out / "m500.jsonl", m);
  EXPECT_EQ(s.overall.total, 500u);
  EXPECT_GE(s.overall.correct, 497u) << "at most the 3 documented unit/degree cases may differ";
  for (const auto& r : read_jsonl(dir_out / "m500.jsonl"))
    if (!r["correct"].get<bool>())
      std::printf("MATH-500 disagreement %s: %s vs %s (%s)\n", r["id"].get<std::string>().c_str(),
                  r["pred_answer"].get<std::string>().c_str(),
                  r["gold_answer"].get<std::string>().c_str(),
                  r["reason"].get<std::string>().c_str());
  EXPECT_EQ(s.by_subject.size(), 7u);
  EXPECT_EQ(s.by_level.size(), 5u);
}

}  // namespace
}  // namespace metamath::eval
