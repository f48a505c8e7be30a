// normalize_math(): kinds, canonical forms, determinism and round trips; parse_number().
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "answer/equiv.h"
#include "answer/numeric.h"

namespace metamath::answer {
namespace {

struct KindCase {
  const char* input;
  Kind kind;
  const char* canonical;  // nullptr: not checked
};

TEST(Normalize, KindsAndCanonicalForms) {
  const KindCase cases[] = {
      {"", Kind::Empty, ""},
      {"42", Kind::Number, "42"},
      {"0.5", Kind::Number, "\\frac{1}{2}"},
      {"\\dfrac{3}{6}", Kind::Number, "\\frac{1}{2}"},
      {"-\\frac83", Kind::Number, "-\\frac{8}{3}"},
      {"2\\frac{1}{2}", Kind::Number, "\\frac{5}{2}"},
      {"1,000", Kind::Number, "1000"},
      {"90^\\circ", Kind::Number, "90"},
      {"\\sqrt{2}", Kind::Number, "\\sqrt{2}"},
      {"\\frac{\\pi}{2}", Kind::Number, "\\frac{\\pi}{2}"},
      {"2^{2008}-2", Kind::Number, "2^{2008}-2"},  // big powers stay compact
      {"\\infty", Kind::Number, "\\infty"},
      {"x+1", Kind::Expression, "x+1"},
      {"(x+1)^2", Kind::Expression, "2 \\cdot x+x^{2}+1"},  // expanded: factored forms agree
      {"x^2+2x+1", Kind::Expression, "2 \\cdot x+x^{2}+1"},
      {"y=2x+3", Kind::Equation, "y = 2 \\cdot x+3"},
      {"a \\le b", Kind::Equation, "a \\le b"},
      {"(1,2)", Kind::Tuple, "(1, 2)"},
      {"\\left( 3, \\frac{\\pi}{2} \\right)", Kind::Tuple, "(3, \\frac{\\pi}{2})"},
      {"[1,2)", Kind::Interval, "[1, 2)"},
      {"(-\\infty, 3] \\cup (5, \\infty)", Kind::Interval, "(-\\infty, 3] \\cup (5, \\infty)"},
      {"\\{3,1,2\\}", Kind::Set, "\\{1, 2, 3\\}"},  // unordered kinds print sorted
      {"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", Kind::Matrix,
       "\\begin{pmatrix}1 \\\\ 2\\end{pmatrix}"},
      {"3, 1, 2", Kind::List, "1, 2, 3"},
      {"\\pm 2", Kind::List, "-2, 2"},
      {"\\text{Monday}", Kind::Text, "monday"},
      {"\\text{(A)}", Kind::Text, "a"},
      {"odd", Kind::Text, "odd"},
      {"422_{8}", Kind::Text, nullptr},
  };
  for (const auto& c : cases) {
    Normalized n = normalize_math(c.input);
    EXPECT_EQ(n.kind, c.kind) << c.input << " -> " << kind_name(n.kind) << " [" << n.canonical
                              << "] " << n.error;
    if (c.canonical) {
      EXPECT_EQ(n.canonical, c.canonical) << c.input;
    }
    EXPECT_TRUE(n.error.empty()) << c.input << ": " << n.error;
  }
}

TEST(Normalize, ParseErrorsBecomeTextWithError) {
  for (const char* bad : {"\\frac{1}{", "2^^3", "\\unknowncommand{x}", "3:1", "\\frac{1}{0}"}) {
    Normalized n = normalize_math(bad);
    EXPECT_EQ(n.kind, Kind::Text) << bad;
    EXPECT_FALSE(n.error.empty()) << bad;
  }
  Normalized huge = normalize_math("9^{9^{9^9}}");
  EXPECT_EQ(huge.kind, Kind::Text);
  EXPECT_NE(huge.error.find("too large"), std::string::npos) << huge.error;
}

// Round trip, as defined for this module: the canonical form is Equal to the input, and (for
// everything the parser understood) normalising the canonical form again gives the same string.
TEST(Normalize, RoundTripAndIdempotence) {
  const std::vector<std::string> inputs = {
      "\\frac{\\sqrt{2}}{2}",
      "-\\frac{1}{2}x",
      "\\frac{1}{2 - x}",
      "2x(15x^2-4x+10)",
      "\\frac{a}{(a-b)b}",
      "1 \\pm \\sqrt{2}",
      "\\{1 \\pm \\sqrt{5}, -2\\}",
      "3 - 2i",
      "\\sqrt{3} i",
      "e^{x}",
      "\\sin^2 x",
      "\\log_2 8",
      "\\frac{1}{2004!}",
      "x \\in [2,5)",
      "(4,-2,3)",
      "\\begin{pmatrix} 7/17 & -3/17 \\\\ 1/17 & 2/17 \\end{pmatrix}",
      "f(2) < f(1) < f(4)",
      "y = -\\frac{1}{2} x^2 + 4x - 6",
      "\\text{B,E}",
      "0.0011_{2}",
      "10\\%",
      "\\$1,\\!657",
      "(-\\infty, \\tfrac37] \\cup [\\tfrac35, \\infty)",
      "|x-1|",
      "\\binom{10}{3}",
      "5!",
      "\\theta + 2\\alpha",
      "a_1 + a_{2}",
      "1.5\\times10^{3}",
  };
  for (const auto& in : inputs) {
    Normalized n = normalize_math(in);
    Result r = equivalent(n.canonical, in, Style::Math);
    EXPECT_TRUE(r.equal()) << in << " -> [" << n.canonical << "]: " << r.reason;
    if (n.kind != Kind::Text) {
      Normalized again = normalize_math(n.canonical);
      EXPECT_EQ(again.canonical, n.canonical) << in;
      EXPECT_EQ(again.kind, n.kind) << in;
    }
  }
}

TEST(Normalize, DeterministicAcrossCalls) {
  for (const char* s : {"\\frac{1}{(a-b) b}", "(c - a)(b - c)", "x y + z w - v"}) {
    std::string first = normalize_math(s).canonical;
    for (int i = 0; i < 5; ++i) EXPECT_EQ(normalize_math(s).canonical, first) << s;
  }
}

TEST(Numeric, ParsesGsm8kNumbers) {
  struct C {
    const char* in;
    const char* out;  // nullptr: not a number
  };
  const C cases[] = {
      {"18", "18"},
      {"18.00", "18"},
      {"$18", "18"},
      {"\\$18.50", "37/2"},
      {"1,000", "1000"},
      {"1,234,567", "1234567"},
      {"-5", "-5"},
      {"- 5", "-5"},
      {"-$5", "-5"},
      {"$-5", "-5"},
      {"3/4", "3/4"},
      {"6 / 8", "3/4"},
      {".5", "1/2"},
      {"0.125", "1/8"},
      {"50%", "50"},
      {"18 dollars", "18"},
      {"5 apples.", "5"},
      {"18.", "18"},
      {"+7", "7"},
      {"007", "7"},
      {"1,2", nullptr},
      {"abc", nullptr},
      {"", nullptr},
      {"1/0", nullptr},
      {"\\frac{1}{2}", nullptr},
      {"5 + 3", nullptr},
      {"about 5", nullptr},
      {"1,0000", nullptr},
      {"2x", nullptr},
  };
  for (const auto& c : cases) {
    auto n = parse_number(c.in);
    if (c.out == nullptr) {
      EXPECT_FALSE(n.has_value()) << c.in << " -> " << n->str();
    } else {
      ASSERT_TRUE(n.has_value()) << c.in;
      EXPECT_EQ(n->str(), c.out) << c.in;
    }
  }
  EXPECT_DOUBLE_EQ(parse_number("3/4")->approx(), 0.75);
  EXPECT_FALSE(parse_number(std::string(300, '9')).has_value());
}

}  // namespace
}  // namespace metamath::answer
