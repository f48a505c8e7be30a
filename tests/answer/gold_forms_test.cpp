// Hand-checked gold forms beyond plain numbers: clock times, ratios, parenthesised negative
// fractions (ASDiv), a line break inside \text and a matrix with "/" in its cells (MATH).
#include <gtest/gtest.h>

#include "answer/equiv.h"
#include "answer/extract.h"
#include "answer/numeric.h"
#include "eval/score.h"

namespace metamath::answer {
namespace {

bool gsm_equal(const char* pred, const char* gold) {
  return equivalent(pred, gold, Style::Gsm8k).equal();
}

TEST(GoldForms, GsmGoldsWithSeveralNumbersAreFound) {
  for (const char* g : {"3:30 p.m.", "12:50", "5:6", "5/2", "-(1/3)", "9:03:36 a.m."}) {
    Extracted e = extract_gold(g, Style::Gsm8k);
    EXPECT_EQ(e.method, Method::Bare) << g;
  }
  EXPECT_EQ(extract_gold("3:30 p.m.", Style::Gsm8k).answer, "3:30 p.m");  // final period dropped
  EXPECT_EQ(extract_gold("-(1/3)", Style::Gsm8k).answer, "-(1/3)");
  // A long multi-line text without a marker is still no gold.
  EXPECT_FALSE(
      extract_gold("Natalia sold 48/2 = 24 clips.\nShe sold 48+24 = 72.", Style::Gsm8k).found());
  // Prediction extraction is unchanged: a bare "3:30" prediction gives its last number.
  EXPECT_EQ(extract("3:30 p.m.", Style::Gsm8k).method, Method::LastNumber);
}

TEST(GoldForms, ClockTimes) {
  auto t = parse_time("3:30 p.m.");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->str(), "15:30");
  EXPECT_TRUE(parse_time("9:03:36 a.m"));
  EXPECT_TRUE(parse_time("3:30PM"));
  EXPECT_FALSE(parse_time("5:6"));         // one-digit minutes: a ratio
  EXPECT_FALSE(parse_time("15:30 p.m."));  // no 24-hour hour with p.m.
  EXPECT_FALSE(parse_time("3:75"));
  EXPECT_FALSE(parse_time("3:30 apples"));

  EXPECT_TRUE(gsm_equal("3:30 p.m.", "3:30 p.m"));
  EXPECT_TRUE(gsm_equal("3:30", "3:30 p.m"));   // a bare 12-hour reading
  EXPECT_TRUE(gsm_equal("15:30", "3:30 p.m"));  // 24-hour form
  EXPECT_TRUE(gsm_equal("3:30 pm", "15:30"));
  EXPECT_TRUE(gsm_equal("12:50 p.m.", "12:50"));  // noon hour
  EXPECT_TRUE(gsm_equal("0:50", "12:50 a.m."));   // midnight hour
  EXPECT_TRUE(gsm_equal("9:03:36 AM", "9:03:36 a.m"));
  EXPECT_FALSE(gsm_equal("3:30 a.m.", "3:30 p.m"));
  EXPECT_FALSE(gsm_equal("3:30 a.m.", "15:30"));
  EXPECT_FALSE(gsm_equal("4:30", "3:30 p.m"));
  EXPECT_FALSE(gsm_equal("3:31 p.m.", "3:30 p.m"));
  EXPECT_FALSE(gsm_equal("12:50 a.m.", "12:50 p.m."));
  EXPECT_FALSE(gsm_equal("9:03:37 a.m.", "9:03:36 a.m"));
  EXPECT_FALSE(gsm_equal("330", "3:30 p.m"));
}

TEST(GoldForms, Ratios) {
  auto r = parse_ratio("10:12");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->str(), "5/6");
  EXPECT_FALSE(parse_ratio("5:0"));
  EXPECT_FALSE(parse_ratio("5:6:7"));

  EXPECT_TRUE(gsm_equal("5:6", "5:6"));
  EXPECT_TRUE(gsm_equal("10:12", "5:6"));  // the same ratio
  EXPECT_TRUE(gsm_equal("5 : 6", "5:6"));
  EXPECT_TRUE(gsm_equal("5/6", "5:6"));  // a gold ratio accepts its quotient
  EXPECT_TRUE(gsm_equal("13", "13:1"));
  EXPECT_TRUE(gsm_equal("0.4", "2:5"));
  EXPECT_FALSE(gsm_equal("6:5", "5:6"));
  EXPECT_FALSE(gsm_equal("5", "5:6"));
  EXPECT_FALSE(gsm_equal("0.83", "5:6"));  // exact comparison, no rounding
  // A gold written as a number does not accept a ratio (the question is not seen here).
  EXPECT_FALSE(gsm_equal("5:6", "5/6"));
  // "7:50" is both a valid time and a ratio: both readings are accepted.
  EXPECT_TRUE(gsm_equal("7/50", "7:50"));
  EXPECT_TRUE(gsm_equal("14:100", "7:50"));
  EXPECT_FALSE(gsm_equal("7:51", "7:50"));
  // MATH ratio golds ("3:1") compare the same way.
  EXPECT_TRUE(equivalent("3:1", "3:1", Style::Math).equal());
  EXPECT_TRUE(equivalent("6:2", "3:1", Style::Math).equal());
  EXPECT_TRUE(equivalent("3", "3:1", Style::Math).equal());
  EXPECT_FALSE(equivalent("1:3", "3:1", Style::Math).equal());
}

TEST(GoldForms, FractionsAndParenthesisedNegatives) {
  auto n = parse_number("-(1/3)");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->str(), "-1/3");
  EXPECT_EQ(parse_number("(5/2)")->str(), "5/2");
  EXPECT_FALSE(parse_number("-(1/3"));
  EXPECT_FALSE(parse_number("-(1)/3"));

  EXPECT_TRUE(gsm_equal("-1/3", "-(1/3)"));
  EXPECT_TRUE(gsm_equal("-(1/3)", "-(1/3)"));
  EXPECT_TRUE(gsm_equal("2.5", "5/2"));
  EXPECT_TRUE(gsm_equal("10/4", "5/2"));
  EXPECT_FALSE(gsm_equal("1/3", "-(1/3)"));
  EXPECT_FALSE(gsm_equal("-0.33", "-(1/3)"));
  EXPECT_FALSE(gsm_equal("2/5", "5/2"));
}

TEST(GoldForms, MathLineBreakInTextAndSlashInMatrix) {
  const char* units = "90\\text{ square\nunits}";
  Extracted g = extract_gold(units, Style::Math);
  ASSERT_TRUE(g.found());
  EXPECT_EQ(normalize_math(g.answer).kind, Kind::Number);
  EXPECT_EQ(normalize_math(units).kind, Kind::Number);  // the line break itself parses too
  EXPECT_TRUE(equivalent("90", units, Style::Math).equal());
  EXPECT_FALSE(equivalent("91", units, Style::Math).equal());
  EXPECT_TRUE(eval::score_one("\\boxed{90}", units, Style::Math, {}).correct);

  const char* m =
      "\\begin{pmatrix} 1/\\sqrt{2} & 1/\\sqrt{2} \\\\ -1/\\sqrt{2} & 1/\\sqrt{2} \\end{pmatrix}";
  Extracted gm = extract_gold(m, Style::Math);
  ASSERT_TRUE(gm.found());
  Normalized nm = normalize_math(gm.answer);
  EXPECT_EQ(nm.kind, Kind::Matrix) << nm.error;
  const char* same =
      "\\begin{pmatrix} \\frac{\\sqrt{2}}{2} & \\frac{\\sqrt{2}}{2} \\\\ -\\frac{\\sqrt{2}}{2} & "
      "\\frac{\\sqrt{2}}{2} \\end{pmatrix}";
  const char* other =
      "\\begin{pmatrix} \\frac{\\sqrt{2}}{2} & -\\frac{\\sqrt{2}}{2} \\\\ \\frac{\\sqrt{2}}{2} & "
      "\\frac{\\sqrt{2}}{2} \\end{pmatrix}";
  EXPECT_TRUE(equivalent(same, m, Style::Math).equal());
  EXPECT_FALSE(equivalent(other, m, Style::Math).equal());
  EXPECT_TRUE(eval::score_one(std::string("\\boxed{") + same + "}", m, Style::Math, {}).correct);

  EXPECT_EQ(answer_kind("\\overline{CD}", Style::Math), Kind::Expression);
  EXPECT_TRUE(equivalent("\\overline{CD}", "\\overline{CD}", Style::Math).equal());
  EXPECT_FALSE(equivalent("\\overline{AB}", "\\overline{CD}", Style::Math).equal());
}

TEST(GoldForms, AnswerKinds) {
  EXPECT_EQ(answer_kind("-(1/3)", Style::Gsm8k), Kind::Number);
  EXPECT_EQ(answer_kind("3:30 p.m", Style::Gsm8k), Kind::Time);
  EXPECT_EQ(answer_kind("7:50", Style::Gsm8k), Kind::Time);  // also a ratio; both accepted
  EXPECT_EQ(answer_kind("5:6", Style::Gsm8k), Kind::Ratio);
  EXPECT_EQ(answer_kind("Mrs. Hilt", Style::Gsm8k), Kind::Text);
  EXPECT_EQ(answer_kind("3:1", Style::Math), Kind::Ratio);
  EXPECT_EQ(answer_kind("\\frac{1}{2}", Style::Math), Kind::Number);
}

}  // namespace
}  // namespace metamath::answer
