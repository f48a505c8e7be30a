#include "model/stop.h"

#include <gtest/gtest.h>

namespace metamath::model {
namespace {

TEST(StopMatcher, StopsAcrossPiecesAndTruncates) {
  StopMatcher m({"Question:", "</s>"});
  EXPECT_FALSE(m.append("The answer is: 5\n\nQue"));
  EXPECT_EQ(m.safe_length(), std::string("The answer is: 5\n\n").size());  // "Que" held back
  EXPECT_TRUE(m.append("stion: next"));
  EXPECT_EQ(m.text(), "The answer is: 5\n\n");
  EXPECT_EQ(m.matched(), "Question:");
  EXPECT_TRUE(m.append("more"));  // stays stopped
  EXPECT_EQ(m.text(), "The answer is: 5\n\n");
}

TEST(StopMatcher, EarliestStopWins) {
  StopMatcher m({"Response:", "USER:"});
  EXPECT_TRUE(m.append("x USER: y Response: z"));
  EXPECT_EQ(m.text(), "x ");
  EXPECT_EQ(m.matched(), "USER:");
}

TEST(StopMatcher, NoStopsAndUtf8SafeStreaming) {
  StopMatcher m({});
  EXPECT_FALSE(m.append("caf\xc3"));  // first byte of "é"
  EXPECT_EQ(m.safe_length(), 3u);     // never cut a multi-byte character
  EXPECT_FALSE(m.append("\xa9!"));
  EXPECT_EQ(m.safe_length(), 6u);
  EXPECT_EQ(m.text(), "café!");
}

TEST(StopMatcher, PrefixThatFailsIsReleased) {
  StopMatcher m({"Instruction:"});
  EXPECT_FALSE(m.append("Inst"));
  EXPECT_EQ(m.safe_length(), 0u);
  EXPECT_FALSE(m.append("ead of that"));
  EXPECT_EQ(m.safe_length(), m.text().size());
  EXPECT_FALSE(m.stopped());
}

}  // namespace
}  // namespace metamath::model
