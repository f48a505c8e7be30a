#include "answer/extract.h"

#include <gtest/gtest.h>

namespace metamath::answer {
namespace {

struct Case {
  const char* text;
  Style style;
  const char* answer;
  Method method;
};

TEST(Extract, HandCheckedCompletions) {
  const Case cases[] = {
      {"So she has 5 apples.\nThe answer is: 5", Style::Gsm8k, "5", Method::AnswerIs},
      {"The answer is 18.", Style::Gsm8k, "18", Method::AnswerIs},
      {"... The answer is: $1,250.", Style::Gsm8k, "$1,250", Method::AnswerIs},
      {"the answer is: \\frac{1}{2}.\nQuestion: next", Style::Math, "\\frac{1}{2}",
       Method::AnswerIs},
      {"The answer is: \\boxed{7}", Style::Math, "7", Method::AnswerIs},
      {"The answer is 3. Wait, the answer is: 4", Style::Gsm8k, "4", Method::AnswerIs},
      {"Hence $x = \\boxed{\\frac{\\sqrt{3}}{2}}$.", Style::Math, "\\frac{\\sqrt{3}}{2}",
       Method::Boxed},
      {"First \\boxed{1}, finally \\fbox{2}.", Style::Math, "2", Method::Boxed},
      {"We solve for x.\nThe value of x is 80000.", Style::Gsm8k, "80000", Method::ValueOfX},
      {"The value of unknown variable x is 12. Done", Style::Gsm8k, "12", Method::ValueOfX},
      {"The value of x is: 2.5", Style::Gsm8k, "2.5", Method::ValueOfX},
      {"She pays 2 * 9 = 18\n#### 18", Style::Gsm8k, "18", Method::Hashes},
      {"42", Style::Gsm8k, "42", Method::Bare},
      {"$18.00", Style::Gsm8k, "$18.00", Method::Bare},
      {"\\frac{3}{4}", Style::Math, "\\frac{3}{4}", Method::Bare},
      {"x = 3, 5", Style::Math, "x = 3, 5", Method::Bare},
      {"He buys 3 packs of 4 cookies.\nSo he has 3 * 4 = 12 cookies in total.", Style::Gsm8k, "12",
       Method::LastNumber},
      {"Spent 1,200 dollars then 3,450.5 more on\nthings", Style::Gsm8k, "3450.5",
       Method::LastNumber},
      {"The temperature fell\nto -7 degrees overnight", Style::Gsm8k, "-7", Method::LastNumber},
      {"each gets\n 3/4 of a pie", Style::Gsm8k, "3/4", Method::LastNumber},
  };
  for (const auto& c : cases) {
    Extracted e = extract(c.text, c.style);
    EXPECT_EQ(e.answer, c.answer) << c.text;
    EXPECT_EQ(e.method, c.method) << c.text << " -> " << method_name(e.method);
  }
}

TEST(Extract, NothingFound) {
  EXPECT_FALSE(extract("", Style::Gsm8k).found());
  EXPECT_FALSE(extract("I do not know\nthe answer to this", Style::Gsm8k).found());
  EXPECT_FALSE(
      extract("two numbers here 3 and\n5", Style::Gsm8k, /*allow_last_number=*/false).found());
}

TEST(Extract, GoldFromSolutions) {
  EXPECT_EQ(extract_gold("Work <<2*3=6>>6\n#### 1,000", Style::Gsm8k).answer, "1000");
  EXPECT_EQ(extract_gold("Thus $\\boxed{\\{1,2\\}}$", Style::Math).answer, "\\{1,2\\}");
  EXPECT_EQ(extract_gold("\\frac{1}{2}", Style::Math).method, Method::Bare);
  EXPECT_EQ(extract_gold("18", Style::Gsm8k).answer, "18");
}

TEST(Extract, Styles) {
  EXPECT_EQ(parse_style("GSM8K"), Style::Gsm8k);
  EXPECT_EQ(parse_style("svamp"), Style::Gsm8k);
  EXPECT_EQ(parse_style("math500"), Style::Math);
  EXPECT_ANY_THROW(parse_style("chess"));
}

}  // namespace
}  // namespace metamath::answer
