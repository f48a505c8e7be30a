#include "core/progress.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace metamath {
namespace {

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(Progress::format_duration(12.4), "12s");
  EXPECT_EQ(Progress::format_duration(187), "3m07s");
  EXPECT_EQ(Progress::format_duration(3720), "1h02m");
  EXPECT_EQ(Progress::format_duration(-1), "?");
}

TEST(Progress, RendersDoneTotalRateAndEta) {
  std::FILE* sink = std::tmpfile();
  Progress p("score", 200, sink);
  p.tick(50);
  p.set_postfix("acc 50.00%");
  // 50 done in 10 s: 5/s, 150 left -> ETA 30 s.
  std::string line = p.render(10.0, false);
  EXPECT_EQ(line, "score: 50/200 (25.0%) 5.00/s elapsed 10s ETA 30s | acc 50.00%");
  std::string bar = p.render(10.0, true);
  EXPECT_NE(bar.find("[######.................."), std::string::npos) << bar;
  p.finish();
  std::fclose(sink);
}

TEST(Progress, PlainLinesWhenNotATty) {
  std::FILE* sink = std::tmpfile();
  {
    Progress p("job", 3, sink);
    p.plain_interval = 1e9;  // only the final line
    p.tick();
    p.tick();
    p.tick();
  }
  std::rewind(sink);
  char buf[512] = {0};
  size_t n = std::fread(buf, 1, sizeof buf - 1, sink);
  std::string out(buf, n);
  std::fclose(sink);
  EXPECT_EQ(out.find('\r'), std::string::npos);  // no carriage returns in logs
  EXPECT_NE(out.find("job: 3/3 (100.0%)"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
}

}  // namespace
}  // namespace metamath
