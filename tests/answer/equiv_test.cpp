// Hand-checked equivalence cases, one rule at a time. Every expected verdict below was worked out
// by hand (the arithmetic is in the comments where it is not obvious).
#include "answer/equiv.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "answer/latex.h"

namespace metamath::answer {
namespace {

struct Case {
  const char* pred;
  const char* gold;
  bool equal;
};

// Generous time so a loaded test machine cannot turn a correct answer into "time limit".
Limits relaxed() {
  Limits l;
  l.time_ms = 5000;
  return l;
}

void check_table(const std::vector<Case>& cases, Style style) {
  for (const Case& c : cases) {
    Result r = equivalent(c.pred, c.gold, style, relaxed());
    EXPECT_EQ(r.equal(), c.equal) << "pred [" << c.pred << "] gold [" << c.gold << "] -> "
                                  << verdict_name(r.verdict) << " (" << r.reason << ")";
    EXPECT_FALSE(r.reason.empty()) << c.pred;
    // Equivalence is symmetric for every case here.
    Result back = equivalent(c.gold, c.pred, style, relaxed());
    EXPECT_EQ(back.equal(), c.equal)
        << "reversed: pred [" << c.gold << "] gold [" << c.pred << "] (" << back.reason << ")";
  }
}

TEST(Equiv, Gsm8kNumbers) {
  check_table(
      {
          {"18", "18", true},
          {"18.00", "18", true},
          {"18.0", "18", true},
          {"$18", "18", true},
          {"\\$18", "18", true},
          {"$18.00", "18", true},
          {"18 dollars", "18", true},
          {"5 apples", "5", true},
          {"1,000", "1000", true},
          {"$1,250,000", "1250000", true},
          {"1,000,000.50", "1000000.5", true},
          {"50%", "50", true},
          {"0.5", "1/2", true},
          {"3/4", "0.75", true},
          {"6/8", "3/4", true},
          {"-5", "-5", true},
          {"-3/4", "-0.75", true},
          {"18.", "18", true},
          {"\\frac{1}{2}", "0.5", true},  // not a plain number: compared as MATH LaTeX
          {"18", "19", false},
          {"1.5", "15", false},
          {"-5", "5", false},
          {"0.33", "1/3", false},
          {"1,001", "1000", false},
          {"100", "10", false},
          {"12.5", "125", false},
          {"2 hours", "3", false},
          {"7", "70", false},
      },
      Style::Gsm8k);
}

TEST(Equiv, Fractions) {
  check_table(
      {
          {"\\frac{1}{2}", "0.5", true},
          {"\\dfrac{1}{2}", "\\frac{1}{2}", true},
          {"\\tfrac{3}{4}", "0.75", true},
          {"\\frac12", "\\frac{1}{2}", true},
          {"\\frac 1 2", "\\frac{1}{2}", true},
          {"\\frac{1}2", "0.5", true},
          {"\\frac83", "\\frac{8}{3}", true},
          {"\\frac{2}{4}", "\\frac{1}{2}", true},
          {"-\\frac{5}{3}", "\\frac{-5}{3}", true},
          {"\\frac{6/7}{1}", "\\frac{6}{7}", true},
          {"\\frac{\\pi}{4}", "\\frac14\\pi", true},
          {"\\frac{1}{3}", "\\frac{1}{4}", false},
          {"\\frac{1}{2}", "2", false},
          {"-\\frac{1}{2}", "\\frac{1}{2}", false},
          {"\\frac{12}{3}", "\\frac{1}{23}", false},
      },
      Style::Math);
}

TEST(Equiv, RadicalsAndPowers) {
  check_table(
      {
          {"\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", true},
          {"\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt3}", true},
          {"\\sqrt{8}", "2\\sqrt{2}", true},
          {"\\sqrt{12}", "2\\sqrt3", true},
          {"\\sqrt2", "\\sqrt{2}", true},
          {"\\sqrt{2}\\sqrt{3}", "\\sqrt{6}", true},
          {"\\sqrt[3]{27}", "3", true},
          {"\\sqrt[3]{-8}", "-2", true},  // odd real root of a negative number
          {"\\sqrt[4]{16}", "2", true},
          {"\\frac{2\\sqrt{6}}{5}", "\\frac{\\sqrt{24}}{5}", true},
          {"2^{10}", "1024", true},
          {"2^10", "1024", true},  // a digit run after ^ is one exponent
          {"x^2", "x^{2}", true},
          {"10^{-3}", "0.001", true},
          {"2^{-1}", "\\frac{1}{2}", true},
          {"2^{1/2}", "\\sqrt{2}", true},
          {"4^{3/2}", "8", true},
          {"\\sqrt{x^2+2x+1}", "x+1", true},  // equal for x > -1, where we sample
          {"\\sqrt{8}", "3\\sqrt{2}", false},
          {"\\sqrt{2}", "2", false},
          {"\\sqrt[3]{2}", "\\sqrt{2}", false},
          {"2^{10}", "20", false},
          {"x^3", "x^2", false},
      },
      Style::Math);
}

TEST(Equiv, ConstantsAndImplicitMultiplication) {
  check_table(
      {
          {"2\\pi", "\\pi \\cdot 2", true},
          {"\\pi r^2", "r^2\\pi", true},
          {"2\\sqrt{3}", "\\sqrt{12}", true},
          {"3x", "x \\cdot 3", true},
          {"3 \\times 4", "12", true},
          {"3 \\cdot 4", "12", true},
          {"3*4", "12", true},
          {"ab", "ba", true},
          {"2(x+1)", "2x+2", true},
          {"(x+1)(x-1)", "x^2-1", true},
          {"\\infty", "\\infty", true},
          {"e^{i\\pi}", "-1", true},
          {"-1+i", "i-1", true},
          {"\\frac{i}{5}", "0.2i", true},
          {"\\left(\\frac{1}{2}\\right)", "\\frac12", true},
          {"\\left[ 3 \\right]", "3", true},
          {"\\alpha+\\beta", "\\beta+\\alpha", true},
          {"2\\theta", "\\theta+\\theta", true},
          {"-\\infty", "\\infty", false},
          {"2\\pi", "\\pi", false},
          {"\\alpha", "\\beta", false},
          {"3x", "3y", false},
          {"i", "-i", false},
      },
      Style::Math);
}

TEST(Equiv, PlusMinus) {
  check_table(
      {
          {"\\pm 2", "2, -2", true},
          {"\\pm\\sqrt{3}", "-\\sqrt3, \\sqrt3", true},
          {"1 \\pm \\sqrt{2}", "1+\\sqrt2, 1-\\sqrt2", true},
          {"1 \\pm i", "1-i, 1+i", true},
          {"\\frac{-1 \\pm \\sqrt{5}}{2}", "\\frac{-1+\\sqrt5}{2}, \\frac{-1-\\sqrt5}{2}", true},
          {"\\pm 2", "2", false},
          {"1 \\pm \\sqrt{2}", "1+\\sqrt2", false},
          {"\\pm 3", "3, -2", false},
      },
      Style::Math);
}

TEST(Equiv, UnitsDegreesPercentDollars) {
  check_table(
      {
          {"90^\\circ", "90", true},
          {"90^{\\circ}", "90", true},
          {"45 ^ \\circ", "45", true},
          {"5\\text{ cm}", "5", true},
          {"10\\text{ inches}", "10", true},
          {"20 \\text{ degrees}", "20", true},
          {"45 \\text{ units}^2", "45", true},
          {"12 \\text{ sq units}", "12", true},
          {"15\\mbox{ cm}^2", "15", true},
          {"\\frac{3}{4}\\pi\\text{ inches}", "\\frac{3\\pi}{4}", true},
          {"0.4\\mbox{ miles}", "\\frac25", true},
          {"10 cm", "10", true},
          {"15 cm^2", "15", true},
          {"50\\%", "50", true},  // the percent sign is dropped; 50\% is not 0.5
          {"100\\%", "100", true},
          {"\\$187.12", "187.12", true},
          {"\\$ 5", "5", true},
          {"\\$1,\\!657", "1657", true},
          {"90^\\circ", "91", false},
          {"50\\%", "0.5", false},
          {"5\\text{ cm}", "6", false},
      },
      Style::Math);
}

TEST(Equiv, MixedNumbersScientificThousands) {
  check_table(
      {
          {"2\\frac{1}{2}", "\\frac{5}{2}", true},
          {"2\\frac12", "2.5", true},
          {"33 \\frac{1}{3}", "\\frac{100}{3}", true},
          {"-2\\frac{1}{2}", "-\\frac52", true},
          {"3\\frac{1}{4}", "3.25", true},
          {"2\\frac{\\pi}{3}", "\\frac{2\\pi}{3}", true},  // not a mixed number: a product
          {"1.5\\times10^{3}", "1500", true},
          {"1.5 \\times 10^3", "1500", true},
          {"1.5e3", "1500", true},
          {"2.5e-3", "0.0025", true},
          {"1,000", "1000", true},
          {"32,349", "32349", true},
          {"32, 349", "32349", false},  // a space after the comma: two answers
          {"1{,}000", "1000", true},
          {"1\\,000", "1000", true},
          {"125,\\!000", "125000", true},
          {"5,\\!866,\\!608", "5866608", true},
          {"1,000,000", "10^6", true},
          {"\\frac{12}{5,525}", "\\frac{12}{5525}", true},
          {"2\\frac{1}{2}", "1", false},  // would be 2*(1/2) = 1 as a product: must not be
          {"1,000", "1,001", false},
          {"1,2", "12", false},  // a list of two answers, not a thousands separator
          {"1.5e3", "150", false},
      },
      Style::Math);
}

TEST(Equiv, Equations) {
  check_table(
      {
          {"x = 5", "5", true},
          {"5", "x=5", true},
          {"x=\\frac12", "0.5", true},
          {"y=2x+3", "y = 3+2x", true},
          {"y = 2x+3", "2x - y + 3 = 0", true},  // same line: difference is a constant multiple
          {"2x + z - 5 = 0", "z = 5 - 2x", true},
          {"y = -\\frac{1}{2} x^2 + 4x - 6", "y=4x-6-\\frac{x^2}{2}", true},
          {"a < b", "b > a", true},
          {"s^2 \\le 8r^2", "8r^2 \\ge s^2", true},
          {"x \\in [2, 5)", "[2,5)", true},
          {"x = 5", "6", false},
          {"y = 2x+3", "y = 2x+4", false},
          {"a < b", "a > b", false},
          {"a \\le b", "a < b", false},
          {"y = x^2", "y = x", false},
          // An equation stands for its right side only when the left side names it.
          {"y = 2x+1", "2x+1", true},
          {"x = 5+5+1 = 11", "11", true},  // a chain gives its last side
          {"a_1 = 7", "7", true},
          {"\\theta = \\frac{\\pi}{4}", "\\frac{\\pi}{4}", true},
          {"AB = 12+12\\sqrt{3}", "12 + 12\\sqrt{3}", true},  // a segment's name
          {"\\frac{1}{2} = k", "0.5", true},
          {"7 = 11a+c", "11a+c", false},
          {"a + 3z = 0", "0", false},
          {"2x + z = 1", "1", false},
          {"4x - 5y = -50", "-50", false},
          {"x^2 + y^2 = 13", "13", false},
          {"xy = 6", "6", false},    // a product, not a name
          {"2 + 3 = 5", "5", true},  // a chain of numbers stands for its last side
          {"0.56 = 56\\%", "56\\%", true},
          {"7 = 11a+c", "7", false},  // a side with a variable: an equation, no value
          {"x = 5+5+1 = 11", "10", false},
          {"x = y", "x", false},
          // Otherwise equations compare by their solution sets: sides proportional.
          {"2x + 2y = 2", "x + y = 1", true},
          {"x = y", "y = x", true},
          {"x = 2", "2x = 4", true},
          {"x - 3z = 0", "2x = 6z", true},
          {"4x - 5y = -50", "-4x + 5y = 50", true},  // both sides times -1
          {"2x + 2y = 2", "x + y = 2", false},
          {"x = 2", "x = 3", false},
          {"x - 3z = 0", "x + 3z = 0", false},
      },
      Style::Math);
}

TEST(Equiv, RelationsAndInequalities) {
  check_table(
      {
          // Every spelling of an operator.
          {"x \\geq 5", "x >= 5", true},
          {"x \\neq 3", "x != 3", true},
          {"x \\lt 3", "x < 3", true},
          {"x \\gt -2", "x > -2", true},
          {"x \\leqslant 4", "x \\le 4", true},
          {"y \\geqslant 0", "y \\ge 0", true},
          {"x \\ne 3", "3 \\neq x", true},
          {"5 \\ge x", "x \\le 5", true},
          // One variable: the same solution set (times a negative number flips the relation).
          {"-x > -1", "x < 1", true},
          {"-2x \\le 6", "x \\ge -3", true},
          {"3x + 1 < 7", "x < 2", true},  // 3x < 6
          {"\\frac{x}{2} - 1 \\geq 0", "x \\ge 2", true},
          {"2 < 2x < 6", "1 < x < 3", true},
          {"1 < x \\le 3", "3 \\ge x > 1", true},
          {"x \\in [2, 5)", "2 \\le x < 5", true},
          {"-x > -1", "x > 1", false},
          {"x > 5", "x \\ge 5", false},
          {"x \\ne 3", "x = 3", false},
          {"x \\ge 5", "x \\le 5", false},
          {"2x < 6", "x < 2", false},  // x < 3
          {"x < 1", "y < 1", false},   // different variables
          {"1 < x \\le 3", "1 \\le x \\le 3", false},
          // Several variables: one side a positive multiple of the other.
          {"a - b < 0", "2b > 2a", true},
          {"a - b < 0", "2a > 2b", false},
          // An inequality and the interval or union it describes.
          {"x \\ge 5", "[5, \\infty)", true},
          {"x < 1", "(-\\infty, 1)", true},
          {"x \\ne 3", "(-\\infty,3)\\cup(3,\\infty)", true},
          {"-3 \\le x < 2", "[-3, 2)", true},
          {"1 < x < 3", "(1, 3)", true},
          {"x > \\sqrt{2}", "(\\sqrt{2}, \\infty)", true},
          {"x \\le 0.5", "(-\\infty, \\frac{1}{2}]", true},
          {"-x \\ge -5", "(-\\infty, 5]", true},
          {"x \\ne 0", "(-\\infty, 0) \\cup (0, \\infty)", true},
          {"(-\\infty, 2] \\cup (2, 5)", "x < 5", true},  // the union is (-infinity, 5)
          {"x \\ge 5", "5", false},
          {"x \\ge 5", "(5, \\infty)", false},
          {"x \\le 5", "[5, \\infty)", false},
          {"x < 1", "(-\\infty, 1]", false},
          {"x \\ne 3", "(-\\infty, 3) \\cup (3, 4)", false},
          {"1 < x \\le 3", "[1, 3]", false},
          {"x > 0", "(0, 1)", false},
      },
      Style::Math);
}

// Inequalities that are not linear, solved by the signs between the real roots (worked by hand:
// the roots and the sign of each gap are in the comments), and unions written with "or".
TEST(Equiv, NonlinearInequalities) {
  check_table(
      {
          {"x^2 < 4", "(-2, 2)", true},                        // roots -2, 2; negative between
          {"x^2 \\le 4", "[-2, 2]", true},                     // the roots included
          {"x^2 > 4", "(-\\infty,-2)\\cup(2,\\infty)", true},  // positive outside
          {"x^2 < 4", "-2 < x < 2", true},                     // a relation both sides
          {"-x^2 + 4 > 0", "(-2, 2)", true},                   // the same set, times -1
          {"x^2 - 5x + 6 \\le 0", "[2, 3]", true},             // (x-2)(x-3)
          {"x^2 < 2", "(-\\sqrt{2}, \\sqrt{2})", true},        // irrational roots
          {"x^2 + 1 > 0", "(-\\infty, \\infty)", true},        // no real root: all reals
          {"x^2 + 1 < 0", "\\emptyset", true},                 // and the empty set
          {"(x-1)^2 > 0", "x \\ne 1", true},                   // a double root
          {"\\frac{x-1}{x+2} \\ge 0", "(-\\infty,-2)\\cup[1,\\infty)", true},  // -2 is a pole
          {"\\frac{1}{x} > 1", "(0, 1)", true},                                // (1-x)/x > 0
          {"x^3 - x > 0", "(-1,0)\\cup(1,\\infty)", true},                     // x(x-1)(x+1)
          {"x^3 > 8", "x > 2", true},                                          // (x-2)(x^2+2x+4)
          {"x^4 < 16", "(-2, 2)", true},                                       // (x-2)(x+2)(x^2+4)
          {"x^2 < 4", "[-2, 2]", false},
          {"x^2 < 4", "(-4, 4)", false},
          {"x^2 > 4", "(2, \\infty)", false},  // the left piece is missing
          {"x^2 - 5x + 6 \\le 0", "(2, 3)", false},
          {"\\frac{x-1}{x+2} \\ge 0", "(-\\infty,-2]\\cup[1,\\infty)", false},  // x = -2 undefined
          {"(x-1)^2 > 0", "(-\\infty, \\infty)", false},
          {"x^3 > 8", "x > 2.1", false},
          {"x^2 + 1 > 0", "\\emptyset", false},
      },
      Style::Math);
}

TEST(Equiv, UnionsOfRelations) {
  check_table(
      {
          {"x < -2 \\text{ or } x > 3", "(-\\infty,-2)\\cup(3,\\infty)", true},
          {"x < -2 or x > 3", "(-\\infty,-2)\\cup(3,\\infty)", true},
          {"x \\le -2 \\lor x > 3", "(-\\infty,-2]\\cup(3,\\infty)", true},
          {"x > 3 \\vee x < -2", "(-\\infty,-2)\\cup(3,\\infty)", true},  // any order
          {"x < -2 \\text{ or } x > 3", "x^2 - x - 6 > 0", true},         // (x-3)(x+2)
          {"x \\le 1 \\text{ or } x \\ge 2", "(-\\infty,1]\\cup[2,\\infty)", true},
          {"x < 1 \\text{ or } x = 3", "(-\\infty,1)\\cup\\{3\\}", true},
          {"x < 2 \\text{ or } x \\ge 2", "(-\\infty, \\infty)", true},  // touching pieces merge
          {"x < -2 \\text{ or } x > 3", "(-\\infty,-2]\\cup(3,\\infty)", false},
          {"x < -2 \\text{ or } x > 3", "-2 < x < 3", false},
          {"x < -2 \\text{ or } x > 3", "(-\\infty,-2)", false},
          {"x < 0 \\text{ or } y > 1", "(-\\infty, 0)", false},  // two variables: no set
          {"x < 1 \\text{ or } x = 3", "(-\\infty,1)", false},
          // "or" between answers that are not inequalities still separates answers.
          {"2 \\text{ or } 3", "2, 3", true},
          {"2 or 3", "3, 2", true},
          {"x = 1 \\text{ or } x = 2", "1, 2", true},
          {"2 \\text{ or } 3", "2, 4", false},
      },
      Style::Math);
}

// A decimal comma is read only where it cannot be a thousands separator.
TEST(Equiv, Gsm8kDecimalCommas) {
  check_table(
      {
          {"1000,99", "1000.99", true},
          {"0,111", "0.111", true},
          {"0,5", "1/2", true},
          {"$2500,75", "2500.75", true},
          {"1,000", "1000", true},  // a thousands separator, as before
          {"1000,99", "100099", false},
          {"0,111", "111", false},
          {"1,000", "1", false},
      },
      Style::Gsm8k);
}

TEST(Equiv, IntervalsAndUnions) {
  check_table(
      {
          {"(-\\infty, 3] \\cup (5, \\infty)", "(-\\infty,3]\\cup(5,\\infty)", true},
          {"(5, \\infty) \\cup (-\\infty, 3]", "(-\\infty,3]\\cup(5,\\infty)", true},
          {"\\left( \\frac{3}{4}, 1 \\right) \\cup (1, \\infty)", "(0.75,1)\\cup(1,\\infty)", true},
          {"[1,9]", "[1, 9]", true},
          {"[2,5)", "[2, 5)", true},
          {"[-\\tfrac13, 1]", "[-\\frac{1}{3}, 1]", true},
          {"(0, \\infty)", "(0,\\infty)", true},
          {"(-\\infty, 3] \\cup (5, \\infty)", "(-\\infty,3)\\cup(5,\\infty)", false},
          {"[1,2)", "[1,2]", false},
          {"(1,2]", "[1,2]", false},
          {"(0, \\infty)", "[0,\\infty)", false},
          {"(-\\infty, 2)", "(-\\infty, 3)", false},
          {"[1,2]", "(1,2) \\cup (2,3)", false},
      },
      Style::Math);
}

TEST(Equiv, SetsTuplesListsMatrices) {
  check_table(
      {
          {"\\{1,2\\}", "\\{2,1\\}", true},
          {"\\{1, 2, 3\\}", "\\{3, 2, 1\\}", true},
          {"\\{1,2\\}", "1, 2", true},  // a set of solutions and a list of them
          {"(1,2)", "(1, 2)", true},
          {"\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", true},
          {"(4,-2,3)", "(4, -2, 3)", true},
          {"2, -3", "-3, 2", true},
          {"1, 2, 3", "3, 2, 1", true},
          {"x = 1, x = 2", "2, 1", true},
          {"2 \\text{ or } 3", "3, 2", true},
          {"6, 8\\text{, and }10", "6,8,10", true},
          {"\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
           "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}", true},
          {"\\begin{pmatrix} 6/7 \\\\ -4/7 \\end{pmatrix}",
           "\\begin{pmatrix} \\frac67 \\\\ -\\frac47 \\end{pmatrix}", true},
          {"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "(1,2)", true},
          {"\\{1,2\\}", "\\{1,3\\}", false},
          {"(1,2)", "(2,1)", false},
          {"(1,2,3)", "(1,3,2)", false},
          {"(1,2)", "(1,2,3)", false},
          {"1, 2, 3", "1, 2", false},
          {"2, -3", "2, 3", false},
          {"\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
           "\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}", false},
          {"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\end{pmatrix}",
           false},
      },
      Style::Math);
}

TEST(Equiv, FunctionsAndSymbolic) {
  check_table(
      {
          {"\\sin x", "\\sin(x)", true},
          {"\\sin^2 x + \\cos^2 x", "1", true},
          {"\\cos \\frac{\\pi}{3}", "\\frac12", true},
          {"\\tan \\frac{\\pi}{4}", "1", true},
          {"\\sec x", "\\frac{1}{\\cos x}", true},
          {"\\csc x", "\\frac{1}{\\sin x}", true},
          {"\\cot x", "\\frac{\\cos x}{\\sin x}", true},
          {"\\arcsin 1", "\\frac{\\pi}{2}", true},
          {"\\arccos 0", "\\frac{\\pi}{2}", true},
          {"\\arctan 1", "\\frac\\pi4", true},
          {"\\ln e", "1", true},
          {"\\ln(e^2)", "2", true},
          {"\\log_{10} 100", "2", true},
          {"\\log_2 8", "3", true},
          {"e^{\\ln 5}", "5", true},
          {"\\exp(2)", "e^2", true},
          {"e^x", "\\exp(x)", true},
          {"\\sin 2x", "2\\sin x\\cos x", true},
          {"\\frac{x^2-1}{x-1}", "x+1", true},
          {"(x+1)^2", "x^2+2x+1", true},
          {"\\frac{1}{2 - x}", "-\\frac{1}{x-2}", true},
          {"2x(15x^2-4x+10)", "30x^3-8x^2+20x", true},
          {"-(ab + ac + bc)", "-ab-bc-ca", true},
          {"\\log\\left(\\frac{2007}{2006}\\right)", "\\ln 2007 - \\ln 2006", true},
          {"5!", "120", true},
          {"\\binom{5}{2}", "10", true},
          {"\\dbinom{6}{3}", "20", true},
          {"|{-3}|", "3", true},
          {"\\sin x", "\\cos x", false},
          {"\\ln 2", "\\log_2 e", false},
          {"(x+1)^2", "x^2+1", false},
          {"\\frac{x}{x+1}", "\\frac{x+1}{x}", false},
          {"2^x", "x^2", false},
          {"x^{30}", "x^{30}+1", false},  // 1e-12 relative at sample points: decided symbolically
          {"(a+b+c+d)^{6}", "(d+c+b+a)^6+1", false},
          {"5!", "100", false},
      },
      Style::Math);
}

TEST(Equiv, DecimalTolerance) {
  check_table(
      {
          {"0.3333", "\\frac13", true},  // |0.3333 - 1/3| = 3.3e-5 = 1.0e-4 * (1/3) (just in)
          {"3.1416", "\\pi", true},      // 7.3e-6 absolute, 2.3e-6 relative
          {"3.14159", "\\pi", true},
          {"1.4142", "\\sqrt{2}", true},  // sqrt 2 = 1.41421...
          {"0.142857", "\\frac17", true},
          {"6.2832", "2\\pi", true},
          {"0.5", "\\frac12", true},  // exact
          {"0.1", "\\frac{1}{10}", true},
          {"0.10", "0.1", true},
          {"0.333", "\\frac13", false},  // 1e-3 relative: too coarse
          {"0.33", "\\frac13", false},
          {"1.414", "\\sqrt{2}", false},  // 1.5e-4 relative
          {"18.0001", "18", false},       // 18 needs no rounding at 4 decimals
          {"1000.05", "1000", false},
          {"3.15", "\\pi", false},
          {"0.67", "\\frac23", false},  // rounds 2/3 at 2 decimals but 5e-3 relative
      },
      Style::Math);
}

TEST(Equiv, TextAndMultipleChoice) {
  check_table(
      {
          {"\\text{(A)}", "A", true},
          {"\\text{(A)}", "(A)", true},
          {"\\textbf{(C)}", "C", true},
          {"(C)", "\\text{C}", true},
          {"\\text{Monday}", "Monday", true},
          {"monday", "\\text{Monday}", true},
          {"\\text{odd}", "odd.", true},
          {"\\mbox{four}", "four", true},
          {"\\text{B,E}", "B, E", true},
          {"\\text{Dana}", "Dana", true},
          {"\\text{4:30 p.m.}", "4:30 p.m.", true},
          {"422_8", "422_{8}", true},
          {"\\text{(A)}", "\\text{(B)}", false},
          {"\\text{even}", "\\text{odd}", false},
          {"A", "B", false},
          {"\\text{Monday}", "\\text{Tuesday}", false},
          {"422_8", "423_8", false},
          {"\\text{9 a.m.}", "\\text{9 p.m.}", false},
      },
      Style::Math);
}

TEST(Equiv, EmptyAndUnparsable) {
  EXPECT_TRUE(equivalent("", "", Style::Math).equal());
  Result r = equivalent("", "5", Style::Math);
  EXPECT_EQ(r.verdict, Verdict::Unparsable);
  EXPECT_NE(r.reason.find("empty"), std::string::npos);
  r = equivalent("\\frac{1}{", "\\frac12", Style::Math);
  EXPECT_EQ(r.verdict, Verdict::Unparsable) << r.reason;
  r = equivalent("5", "\\frac{1}{0}", Style::Math);
  EXPECT_EQ(r.verdict, Verdict::Unparsable) << r.reason;
  EXPECT_NE(r.reason.find("division by zero"), std::string::npos) << r.reason;
}

TEST(Equiv, ReasonsNameTheRule) {
  EXPECT_EQ(equivalent("0.5", "\\frac12", Style::Math).reason, "exact");
  EXPECT_EQ(equivalent("\\frac{\\sqrt2}{2}", "\\frac{1}{\\sqrt2}", Style::Math).reason, "symbolic");
  EXPECT_NE(equivalent("3.1416", "\\pi", Style::Math).reason.find("decimal"), std::string::npos);
  EXPECT_NE(equivalent("e^x", "\\exp(x)", Style::Math, relaxed()).reason.find("random points"),
            std::string::npos);
  EXPECT_NE(equivalent("x=5", "5", Style::Math).reason.find("equation"), std::string::npos);
  EXPECT_NE(equivalent("18 dollars", "18", Style::Gsm8k).reason.find("gsm8k"), std::string::npos);
}

// Adversarial inputs: each must finish under the default limits and must not claim equality
// where it does not hold. (No timing assertions: the limits are enforced inside.)
TEST(Equiv, AdversarialInputsFinish) {
  std::vector<std::pair<std::string, std::string>> cases = {
      {"10^{10^{10}}", "10^{10^{10}}+1"},
      {"9^{9^{9^9}}", "9"},
      {"2^{2^{2^{2^{2}}}}", "2"},
      {"10^{-10^{10}}", "0"},
      {"(x+1)^{10000}", "(x+1)^{10000}+1"},
      {"(a+b+c+d+e)^{300}", "1"},
      {"1000000!", "1"},
      {"((2999!)!)", "1"},
      {"\\binom{100000}{50000}", "1"},
      {"(2^{9999})^{9999}", "1"},
      {"2^{3000!}", "2"},
      {"e^{e^{e^{e^{10}}}}", "1"},
      {"x^{x^{x^{x^{x}}}}", "x"},
      {"1e999999", "1"},
      {std::string(3000, '{') + "1" + std::string(3000, '}'), "2"},
      {std::string(500, '(') + "1" + std::string(500, ')'), "2"},
      {std::string(10000, 'x'), "x"},
      {std::string(3999, '7'), "7"},
      {"}}}{{{", "1"},
      {"\\frac", "\\sqrt"},
      {"2^^3", "8"},
      {"\\text{", "1"},
      {"\\begin{pmatrix} 1 & 2 \\\\ 3 \\end{pmatrix}", "1"},
      // A symbolic exponent with a huge numeric term: expand() would split off 3^(10^36).
      {"3^{3333333333333333333333333333333333333-33333333333333333333333333333333333333333n - 0}",
       "27"},
      {"2^{10^{30}+x}", "2^{x}"},
      {"x^{(10^{20}+y)}", "x"},
      // From a 30-minute fuzz run: a 145k-bit coefficient inside a cubed sum (expand() and the
      // printer would multiply it out: 1.6 s).
      {"(8xx\n(8x    9008\n10.00 - 0 908\n)^    9008\n10.00-8\n10.001)^3(x+31)^32C", "1"},
      // normal() would multiply out the 28th power of the sum to find a common denominator.
      {"(x+7)(7p+4e+5333333)^{-28}", "e(999A9999991999999999-1)^3(ci1)"},
      // Printing the canonical form multiplies out the exponent's 24th power of a sum: ~10 ms,
      // uninterruptible until the printer checked the deadline (found by a fuzz campaign).
      {"29b(5b+1)^{$99(5b+1)^{24}}", "1"},
      // expand() splits the exponent's constant term off and multiplies out (b+1)^9900 (4 s);
      // GiNaC's power of a product computed a 9008th power of its decimal coefficient (1 s).
      {"(b+1)^{$99(5^2){b1+4}}", "1"},
      {"(8x(x8x    9008\n10.00-   09x8x    9008\n10.00-   0908\n)^    9008\n10.08\n)^    "
       "9008\n10.00-8\n10.001)^3(x+31)^32C",
       "1"},
      // A product of seven sums whose terms hold powers like 99^x: 820 terms, each a product of
      // up to nine factors that GiNaC merges (7 ms; 60 ms under the fuzzer's sanitizers).
      {"(-9^x2/x+2)(992^xx++92x^xr+x+2)(99^s xx2x+2)(99^2xx++x+22^x99x+-9^x2/x+2)(992^xx++92x^"
       "xr+x+2)(99^x2x+2)(99c3^2xx++92+92x^xr+x+2)",
       "s056^8"},
      // One term at the top, a power of a sum with a symbolic exponent; deep inside its base
      // expand() multiplied out (x-69)^977 (150 ms under sanitizers; found by a fuzz campaign).
      {"822",
       "822\n2\n\ne^x2_2^{x+9-78}2\n\ne^{x0}50\nx2_2{x+9-22\n822\ne^x2_2^{x+9-78}2\n\ne^{x0}50\nx2_"
       "2{x+9-22\n822\n2\n\ne^x2_2^{x+9-78}2\n\ne^{x0}50\nx2_2{x+9-78}^{x+9%77}78}^{x+9-77}"
       "\n2\n\ne^x2_2^{x+9-78}2\n\ne^{x0}50\nx2_2{x+9-78}^{x+9-77}78}^{x+9-77}"},
      // The 21st power of a sum with 54-bit coefficients, x, A and \pi: 253 terms, each with a
      // 1134-bit coefficient (25 ms in each call under sanitizers; found by a fuzz campaign).
      {"(ty)(x9998-99A999pi996x99999999-900A990)^21=y", "4-2=y"},
      // A symbolic power of a symbolic power of a sum: printing the gold expanded
      // (x-69)^{4624} (2.6 s; found by a fuzz campaign).
      {"822",
       "8\n2\n^\n2e2x2_2^{x+9-78}2\n\ne^{x0}50\nx2_2{x+9-22\n822\ne^x2_2^{x+9-78}2\n\ne^{x0}50\nx2_"
       "2{x+9-22\n822\n2\n\ne^x2_2^{x+9-78}2\n\ne^0xx\n05}{2_2{x+9-78}^{x+9-77}58}^{x+9-77}"
       "\n2\n\ne^x2_2^{x+9-78}2\n\ne^{x0}50\nx2_2{x+9-78}^{x+9-77}78}^{x+9-77}"},
      // An exponent holding a symbolic power of a sum inside a symbolic power of a sum (printing
      // it took 60 ms under sanitizers; found by a fuzz campaign).
      {"28b(5b29b(5b+1)^{J$09(5b+0)^y24}+1)^{$09(5b+1)^{24}}8b(5b29b(5b+1)^{J$09(5b+0)^y24}+1)^{$"
       "09(5b+1)^{24}}",
       "1"},
      // 288 terms, each with the sixth root of a fraction that GiNaC evaluates again in every
      // product (printing the gold took 31 ms, 110 ms under sanitizers; found by a fuzz campaign).
      {"103333333311 47(p-1z+abs2+1)^7; 47(p-1z+abs2+1)^7;",
       "(x-1)^7(p-1z+1)^7.656^{1/6}333106333333333"},
  };
  // A union of long inequality chains: each link is a sign analysis, and the deadline is checked
  // between links (the chain below took 44 ms in one call under the fuzzer's sanitizers).
  std::string chains;
  for (int i = 0; i < 12; ++i) chains += (i ? " \\lor " : "") + std::string("6<41 >x<46<41 >x<41");
  cases.push_back({chains, "x = 31"});
  std::string sum;  // 1+1+...+1 (1900 terms) against 1899: node limit, not a wrong answer
  for (int i = 0; i < 1900; ++i) sum += "1+";
  cases.push_back({sum + "1", "1899"});
  std::string fr;
  for (int i = 0; i < 300; ++i) fr += "\\frac{";
  fr += "1";
  for (int i = 0; i < 300; ++i) fr += "}{2}";
  cases.push_back({fr, "0"});
  std::string list, rev;  // 400 answers in reverse order: quadratic matching hits the time limit
  for (int i = 0; i < 400; ++i) {
    list += (i ? ", " : "") + std::to_string(i);
    rev += (i ? ", " : "") + std::to_string(399 - i);
  }
  cases.push_back({list, rev + ", 400"});
  for (const auto& [a, b] : cases) {
    Result r = equivalent(a, b, Style::Math);
    EXPECT_FALSE(r.equal()) << a.substr(0, 60) << " vs " << b.substr(0, 60) << ": " << r.reason;
    EXPECT_FALSE(r.reason.empty());
    Normalized n = normalize_math(a);
    (void)n;
  }
  // Huge but legitimate exact numbers still compare exactly.
  EXPECT_TRUE(equivalent("2^{2008}-2", "2(2^{2007}-1)", Style::Math, relaxed()).equal());
  EXPECT_FALSE(equivalent("3000!", "3000!+1", Style::Math, relaxed()).equal());
  EXPECT_FALSE(equivalent("2^{300}", "2^{300}+1", Style::Math, relaxed()).equal());
}

// expand() cannot be interrupted, so its work is bounded before it starts: terms times the
// distinct factors a term holds (hand-counted below).
TEST(Equiv, ExpandWorkCountsTermsTimesFactors) {
  latex::Deadline later(5000);
  auto work = [&](const char* s) {
    return latex::expand_work(latex::unhold(latex::parse_answer(s, {}, later).expr));
  };
  const std::string ten_pairs = "(a+b)(c+d)(f+g)(h+j)(k+l)(m+n)(p+q)(r+s)(t+u)(v+w)";
  const std::string one_var = "(x+1)(x+2)(x+3)(x+4)(x+5)(x+6)(x+7)(x+8)(x+9)(x+10)";
  EXPECT_EQ(work(ten_pairs.c_str()), 1024.0 * 20);  // 2^10 terms of 20 distinct symbols (no e, i)
  EXPECT_EQ(work(one_var.c_str()), 1024.0);         // 2^10 products, one symbol
  EXPECT_EQ(work("99^x (x+1)"), 2.0 * 2);           // x and 99^x
  EXPECT_EQ(work("(a+b+c)^2"), 6.0 * 3);            // C(4, 2) terms
  // One term in the end, but expand() multiplies out (x-69)^977 inside the base first.
  EXPECT_GE(work("(x+(x-69)^{977+x})^{x-68}"), 1e18);
  EXPECT_GE(work("\\sin((x+1)^{50})"), 1e18);
  // Coefficients count too: 2 terms of 1 symbol, the larger coefficient 3^70 (111 bits, and one
  // each for the denominators of its real and imaginary parts: 113, one limb past the first).
  EXPECT_EQ(work("3^{70}x+1"), 2.0 * (1 + 1));
  EXPECT_EQ(work("3^{30}x+1"), 2.0 * 1);   // 48 + 2 bits: no limb past the first
  EXPECT_EQ(work("\\pi x + 1"), 2.0 * 2);  // constants are factors too
  // Numeric radicals are evaluated again in every product expand() forms (measured: ~45 us a term
  // for the higher root of a fraction, against ~0.5 us a unit).
  // Each is a factor (x and the radical) plus the radical's weight.
  EXPECT_EQ(work("\\sqrt{2} x + 1"), 2.0 * (2 + 2));
  EXPECT_EQ(work("\\sqrt[3]{2} x + 1"), 2.0 * (2 + 24));
  EXPECT_EQ(work("(82/125)^{1/6} x + 1"), 2.0 * (2 + 100));
  // Found by the fuzzer: 288 terms, 31 ms of expand() for normalize_math's printer.
  EXPECT_GT(work("(x-1)^7(p-1z+1)^7.656^{1/6}333106333333333"), latex::kMaxExpandWork);
  // expand() multiplies the exponents, then splits (x-69)^{4624} off (x-69)^{(x-68)^2}.
  EXPECT_GE(work("(58(x-69)^{x-68})^{x-68}"), 1e18);
  EXPECT_LT(work("(58(x-69))^{x-68}"), 1e18);
  // The cheap one is multiplied out and compared exactly; the costly one goes to random points.
  const char* one_var_expanded =
      "x^{10}+55x^9+1320x^8+18150x^7+157773x^6+902055x^5+3416930x^4+8409500x^3+12753576x^2+"
      "10628640x+3628800";
  EXPECT_EQ(equivalent(one_var, one_var_expanded, Style::Math).reason, "symbolic");
  // Nine pairs: 512 terms a side, under the term bound, but 512 x 18 factors of work a side.
  Result r = equivalent("(a+b)(c+d)(f+g)(h+j)(k+l)(m+n)(p+q)(r+s)(t+u)+1",
                        "(b+a)(d+c)(g+f)(j+h)(l+k)(n+m)(q+p)(s+r)(u+t)", Style::Math);
  EXPECT_FALSE(r.equal());
  EXPECT_NE(r.reason.find("random point"), std::string::npos) << r.reason;
}

// The printer stops at the deadline too (normalize_math passes its deadline to print): a long
// expanded sum whose parse took only a few nodes is no longer printed past the time limit.
TEST(Equiv, PrintStopsAtTheDeadline) {
  latex::Deadline later(5000), passed(-1);
  latex::Value v = latex::parse_answer("29b(5b+1)^{99(5b+1)^{24}}", {}, later);
  EXPECT_FALSE(latex::print(v, &later).empty());
  EXPECT_THROW(latex::print(v, &passed), latex::ParseError);
  EXPECT_FALSE(latex::print(v).empty());  // no deadline: prints
}

TEST(Equiv, ConcurrentCallsAreSafe) {
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &ok] {
      for (int i = 0; i < 50; ++i) {
        if (equivalent("\\frac{\\sqrt2}{2}", "\\frac{1}{\\sqrt{2}}", Style::Math, relaxed())
                .equal() &&
            !equivalent("x+1", "x+2", Style::Math, relaxed()).equal())
          ++ok[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int v : ok) EXPECT_EQ(v, 50);
}

}  // namespace
}  // namespace metamath::answer
