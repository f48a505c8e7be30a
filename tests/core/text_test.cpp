#include "core/text.h"

#include <gtest/gtest.h>

namespace metamath::text {
namespace {

TEST(Text, LastBoxedIsBraceMatched) {
  EXPECT_EQ(last_boxed("so $\\boxed{\\frac{1}{2}}$."), "\\frac{1}{2}");
  EXPECT_EQ(last_boxed("\\boxed{1} then \\boxed{2}"), "2");
  EXPECT_EQ(last_boxed("\\boxed{\\{1,2\\}}"), "\\{1,2\\}");  // escaped braces do not count
  EXPECT_EQ(last_boxed("\\fbox{7}"), "7");
  EXPECT_EQ(last_boxed("\\boxed{1} and \\fbox{x}"), "x");
  EXPECT_EQ(last_boxed("answer $\\boxed 5$"), "5");
  EXPECT_EQ(last_boxed("\\boxed{}"), "");
  EXPECT_FALSE(last_boxed("no box here"));
  EXPECT_FALSE(last_boxed("\\boxed{unbalanced"));
}

TEST(Text, AfterHashesRemovesCommas) {
  EXPECT_EQ(after_hashes("work\n#### 1,234"), "1234");
  EXPECT_EQ(after_hashes("#### -7 "), "-7");
  EXPECT_FALSE(after_hashes("no marker"));
  EXPECT_FALSE(after_hashes("#### "));
}

TEST(Text, MatchBrace) {
  EXPECT_EQ(match_brace("{a{b}c}", 0), 6u);
  EXPECT_EQ(match_brace("{a\\}b}", 0), 5u);
  EXPECT_EQ(match_brace("{a", 0), std::string_view::npos);
  EXPECT_EQ(match_brace("a", 0), std::string_view::npos);
}

TEST(Text, Utf8) {
  EXPECT_TRUE(is_valid_utf8("Janet’s ducks"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\xe2\x80"));  // truncated 3-byte character
  std::string s = "ab\xe2\x80\x99";         // "ab’"
  EXPECT_EQ(utf8_safe_prefix(s), 5u);
  EXPECT_EQ(utf8_safe_prefix(s.substr(0, 4)), 2u);
  EXPECT_EQ(utf8_safe_prefix(s.substr(0, 3)), 2u);
  EXPECT_EQ(utf8_safe_prefix("abc"), 3u);
}

TEST(Text, Basics) {
  EXPECT_EQ(trim("  a b \n"), "a b");
  EXPECT_EQ(collapse_spaces("  a \n\t b  "), "a b");
  EXPECT_EQ(split("a,,b", ','), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(replace_all("aXbXc", "X", "--"), "a--b--c");
  EXPECT_EQ(to_lower("The Answer"), "the answer");
}

}  // namespace
}  // namespace metamath::text
