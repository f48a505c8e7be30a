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

void expect_all(std::initializer_list<Case> cases, bool allow_last_number = true) {
  for (const auto& c : cases) {
    Extracted e = extract(c.text, c.style, allow_last_number);
    EXPECT_EQ(e.answer, c.answer) << c.text;
    EXPECT_EQ(e.method, c.method) << c.text << " -> " << method_name(e.method);
  }
}

// lm-evaluation-harness minerva_math ends every answer with this sentence (4-shot prompt).
TEST(Extract, MinervaFinalAnswer) {
  expect_all({
      {"Solving the system, $x = -6$ and $y = 10$.\nFinal Answer: The final answer is $(-6, 10)$. "
       "I hope it is correct.",
       Style::Math, "(-6, 10)", Method::FinalAnswer},
      {R"(The probability is $\frac{6}{8}$, which reduces.
Final Answer: The final answer is $\frac{3}{4}$. I hope it is correct.)",
       Style::Math, R"(\frac{3}{4})", Method::FinalAnswer},
      {"She has 3 + 9 = 12 apples.\nFinal Answer: The final answer is 12. I hope it is correct.",
       Style::Gsm8k, "12", Method::FinalAnswer},
      {R"x(The final answer is \(\sqrt{2}\).)x", Style::Math, R"(\sqrt{2})", Method::FinalAnswer},
      {R"(The final answer is \[ x^2+1 \])", Style::Math, "x^2+1", Method::FinalAnswer},
      {R"(Final Answer: The final answer is $$\begin{pmatrix} 1 \\ 2 \end{pmatrix}$$. I hope it is correct.)",
       Style::Math, R"(\begin{pmatrix} 1 \\ 2 \end{pmatrix})", Method::FinalAnswer},
      // A display span across lines is taken to its closing "$$", not cut at the first newline.
      {"Final Answer: The final answer is $$\n\\begin{pmatrix} 1 & 0 \\\\\n0 & 1 "
       "\\end{pmatrix}\n$$\nI hope it is correct.",
       Style::Math, "\\begin{pmatrix} 1 & 0 \\\\\n0 & 1 \\end{pmatrix}", Method::FinalAnswer},
      {R"(Final Answer: The final answer is $\boxed{7}$. I hope it is correct.)", Style::Math, "7",
       Method::FinalAnswer},
      {"FINAL ANSWER: THE FINAL ANSWER IS 5", Style::Gsm8k, "5", Method::FinalAnswer},
      {"The final answer is: 3.", Style::Gsm8k, "3", Method::FinalAnswer},
      {R"(Final Answer: The final answer is $x \in [2, 5)$. I hope it is correct.)", Style::Math,
       R"(x \in [2, 5))", Method::FinalAnswer},
      {"The answer is 3. Then again,\nFinal Answer: The final answer is $4$. I hope it is correct.",
       Style::Math, "4", Method::FinalAnswer},
      // The last marker wins, whichever of the two phrasings it is.
      {"The final answer is 4, but rechecking, the answer is: 5", Style::Gsm8k, "5",
       Method::AnswerIs},
      // A bare "Final Answer:" line, as chat models write it (with or without bold).
      {"3 + 9 = 12\nFinal Answer: 12", Style::Gsm8k, "12", Method::FinalAnswer},
      {"Adding the terms gives one half.\nFinal Answer: $\\frac{1}{2}$", Style::Math,
       "\\frac{1}{2}", Method::FinalAnswer},
      {"**Final Answer:** $(-6, 10)$", Style::Math, "(-6, 10)", Method::FinalAnswer},
      {"**Final Answer**: 42 apples", Style::Gsm8k, "42 apples", Method::FinalAnswer},
      {"Final answer: \\boxed{7}", Style::Math, "7", Method::FinalAnswer},
      {"Final Answer: 3\nWait, the answer is: 4", Style::Gsm8k, "4", Method::AnswerIs},
  });
}

// MetaMath's own outputs (the format the model is trained on) keep their old extraction.
TEST(Extract, MetaMathOutputs) {
  expect_all({
      {"We have $x^2 = 9$, so $x = \\pm 3$.\nThe answer is: \\pm3", Style::Math, "\\pm3",
       Method::AnswerIs},
      {"Since $\\boxed{5}$ was a guess, we recompute.\nThe answer is: 6", Style::Math, "6",
       Method::AnswerIs},
      {"Mark has 3 * 4 = 12 marbles.\nHe gives away 2, so he has 12 - 2 = 10 marbles.\nThe answer "
       "is: 10",
       Style::Gsm8k, "10", Method::AnswerIs},
      {"The answer is $$12$$", Style::Math, "12", Method::AnswerIs},
      {"The answer is: $(1, 2)$", Style::Math, "(1, 2)", Method::AnswerIs},
      {"We know that the total is 60.\nSo 2x = 60 and x = 30.\nThe value of x is 30.\nThe answer "
       "is: 30",
       Style::Gsm8k, "30", Method::AnswerIs},
      // A line break inside a brace group is part of the answer (MATH's "90\text{ square\nunits}");
      // outside one, or with braces that never close, the line ends the answer.
      {"The area is 90.\nThe answer is: 90\\text{ square\nunits}", Style::Math,
       "90\\text{ square\nunits}", Method::AnswerIs},
      {"The answer is: 90\\text{ units}\nQuestion: next", Style::Math, "90\\text{ units}",
       Method::AnswerIs},
      {"The answer is: 90\\text{ square\nunits", Style::Math, "90\\text{ square", Method::AnswerIs},
  });
}

// Qwen/DeepSeek-style chat answers end with \boxed{}; several boxed answers form a list.
TEST(Extract, BoxedAnswers) {
  expect_all({
      {R"x(To find the vertex, use $x = -\frac{b}{2a}$:
\[
x = -\frac{-6}{2 \cdot 1} = 3
\]
Thus the vertex is at \(x = \boxed{3}\).)x",
       Style::Math, "3", Method::Boxed},
      {"Janet sells 16 - 3 - 4 = 9 eggs.\nShe makes 9 * 2 = 18 dollars.\n\n**Answer:** "
       "\\boxed{18}",
       Style::Gsm8k, "18", Method::Boxed},
      {"\\boxed{1}\\boxed{2}", Style::Math, "1, 2", Method::Boxed},
      {"The solutions are $\\boxed{-2}$ and $\\boxed{5}$.", Style::Math, "-2, 5", Method::Boxed},
      {"So $x = \\boxed{1}, \\boxed{2}, \\boxed{3}$", Style::Math, "1, 2, 3", Method::Boxed},
      {"Either \\boxed{1} or \\boxed{2}", Style::Math, "2", Method::Boxed},
      {"\\boxed{1} is wrong; the answer is\n\\boxed{2}.", Style::Math, "2", Method::AnswerIs},
      {"Hence \\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}.", Style::Math,
       "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", Method::Boxed},
      {"\\boxed{\\boxed{5}}", Style::Math, "5", Method::Boxed},
      {"Then $a = \\boxed{\\{1, 2\\}}$ and we are done.", Style::Math, "\\{1, 2\\}", Method::Boxed},
  });
}

// Strict mode (gold, bootstrap filter) keeps MATH's gold rule: the last box alone.
TEST(Extract, StrictModeTakesTheLastBoxOnly) {
  expect_all({{"The answers are $\\boxed{-2}$ and $\\boxed{1}$.", Style::Math, "1", Method::Boxed},
              {"The answer is: $\\boxed{3}, \\boxed{4}$", Style::Math, "4", Method::AnswerIs}},
             /*allow_last_number=*/false);
  EXPECT_EQ(extract("The answers are $\\boxed{-2}$ and $\\boxed{1}$.", Style::Math).answer,
            "-2, 1");
}

TEST(Extract, StyleDecidesBoxedVersusHashes) {
  const char* text = "A first guess is \\boxed{9}.\nOn reflection 9 * 2 = 18.\n#### 18";
  expect_all({{text, Style::Gsm8k, "18", Method::Hashes}, {text, Style::Math, "9", Method::Boxed}});
}

TEST(Extract, HashesAndValueOfX) {
  expect_all({
      {"Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 "
       "clips altogether in April and May.\n#### 72",
       Style::Gsm8k, "72", Method::Hashes},
      {"The total is 1,000 + 250 = 1,250.\n#### 1,250", Style::Gsm8k, "1250", Method::Hashes},
      // A few-shot model that keeps going after its answer: only the "#### N" line counts.
      {"So he has 5 left.\n#### 5\n\nQuestion: Tom has 3 cats and 2 dogs.", Style::Gsm8k, "5",
       Method::Hashes},
      {"Thus $x$ satisfies $2x = 10$.\nThe value of x is $5$.", Style::Math, "5", Method::ValueOfX},
      {"The value of x is: $\\frac{1}{2}$", Style::Math, "\\frac{1}{2}", Method::ValueOfX},
      // The unknown in math mode, as the official MATH backward shots write it (a last number
      // fallback would pick 2 from "2X" here, a math span "X = 7" the whole equation).
      {"Since $2X = 14$, we get $X = 7$.\nThe value of $X$ is 7.", Style::Math, "7",
       Method::ValueOfX},
      {"So $X - 2 = 3$ and the value of unknown variable $X$ is $5$.", Style::Math, "5",
       Method::ValueOfX},
      {"Hence the value of \\(x\\) is \\(12\\).", Style::Math, "12", Method::ValueOfX},
  });
}

TEST(Extract, LastMathSpan) {
  expect_all({
      {"Therefore $x \\geq 5$ is the solution.", Style::Math, "x \\geq 5", Method::MathSpan},
      {"The identity matrix is $\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix}$.", Style::Math,
       "\\begin{pmatrix}1 & 0 \\\\ 0 & 1\\end{pmatrix}", Method::MathSpan},
      {"Answer $ 9 $", Style::Math, "9", Method::MathSpan},
      {"Answer \\( 9 \\)", Style::Math, "9", Method::MathSpan},
      {"Answer \\[ 9 \\]", Style::Math, "9", Method::MathSpan},
      {"Answer $$ 9 $$", Style::Math, "9", Method::MathSpan},
      {"So the matrix is\n$$\\left[ \\begin{array}{cc} 1 & 2 \\\\[2pt] 3 & 4 \\end{array} "
       "\\right]$$\nwhich is what we wanted.",
       Style::Math, "\\left[ \\begin{array}{cc} 1 & 2 \\\\[2pt] 3 & 4 \\end{array} \\right]",
       Method::MathSpan},
      {"The product is \\begin{bmatrix} 2 & 0 \\\\ 0 & 2 \\end{bmatrix}\nand that is all.",
       Style::Math, "\\begin{bmatrix} 2 & 0 \\\\ 0 & 2 \\end{bmatrix}", Method::MathSpan},
      {"First $a = 1$, then $b = 2$, so\n$a + b = 3.$ That is all\n", Style::Math, "a + b = 3",
       Method::MathSpan},
      // "$5 and $10" are prices, not a formula.
      {"He paid $5 and then $10 for the rest,\nso the total is 15 dollars.", Style::Math, "15",
       Method::LastNumber},
      {"It costs \\$5 and \\$7 in total\nso we add them", Style::Math, "7", Method::LastNumber},
      // GSM8K style never reads '$' as math.
      {"The cost is $18 per box.\nHe buys 2 boxes, so he pays $36", Style::Gsm8k, "36",
       Method::LastNumber},
  });
}

TEST(Extract, FallbacksSkipMatrices) {
  expect_all({
      {"After 7 steps we get \\begin{bmatrix} 1 \\\\ 2 \\end{bmatrix}\nthere", Style::Gsm8k, "7",
       Method::LastNumber},
      {"We try 3 first.\n\\left[\\begin{array}{cc} 1 & 2 \\\\ 3 & 4\\end{array}\\right]\nDone",
       Style::Gsm8k, "3", Method::LastNumber},
  });
}

TEST(Extract, NegativeCases) {
  for (const char* t : {
           // Output cut off inside a matrix (max tokens): no span, and no number from inside it.
           "The answer matrix is\n\\begin{pmatrix} 1 & 2 \\\\ 3",
           // A marker with nothing after it.
           "Let me think about this.\nThe final answer is",
           // An empty box and an empty math span.
           "We are done here\n\\boxed{}",
           "$$ $$\nnothing here at all",
       }) {
    for (Style style : {Style::Gsm8k, Style::Math}) {
      Extracted e = extract(t, style);
      EXPECT_FALSE(e.found()) << t << " -> " << method_name(e.method) << " " << e.answer;
    }
  }
  // A matrix is never cut into numbers: GSM8K style has no math spans, so nothing is found
  // (Style::Math returns the whole matrix as a math span).
  const char* matrix =
      "The matrix is \\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}\nso we are done";
  EXPECT_FALSE(extract(matrix, Style::Gsm8k).found());
  EXPECT_EQ(extract(matrix, Style::Math).answer,
            "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}");
  // Without fallbacks (gold answers, bootstrap filtering) a math span is not an answer either.
  EXPECT_FALSE(extract("Therefore $x \\geq 5$ is it.\nDone", Style::Math, false).found());
}

TEST(Extract, MethodNames) {
  EXPECT_STREQ(method_name(Method::FinalAnswer), "final_answer");
  EXPECT_STREQ(method_name(Method::MathSpan), "math_span");
  EXPECT_STREQ(method_name(Method::Boxed), "boxed");
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
