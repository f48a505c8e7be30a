// `metamath score` on outputs built to blow up an exact checker (huge exponents and factorials,
// exponents whose numeric part is huge, deep nesting, big expansions, long inputs): every row must
// get its verdict under the library's limits, checked from outside through the real program. A
// row that hangs shows as the whole command killed by `timeout` (the cap is far above what the
// limits allow: rows x 100 ms); no time is measured here.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "core/jsonl.h"
#include "test_util.h"

namespace metamath {
namespace {

std::vector<std::pair<std::string, std::string>> hostile_rows() {
  std::vector<std::pair<std::string, std::string>> rows = {
      // A symbolic exponent with a 37-digit numeric part: expand() would evaluate 3^(10^36).
      {"The answer is: 3^{3333333333333333333333333333333333333-"
       "33333333333333333333333333333333333333333n - 0}",
       "27"},
      // Printing it once multiplied out (x-1)^3 (z+2)^301.
      {"The answer is: (x-(x-1)^3(z+2)^301)^3(z+2)^30D", "27"},
      {"The answer is: 10^{10^{10}}", "10"},
      {"The answer is: 2^{10^{30}+x}", "2^{x}"},
      {"The answer is: 9^{9^{9^9}}", "9"},
      {"The answer is: 1000000!", "1"},
      {"The answer is: \\binom{100000}{50000}", "1"},
      {"The answer is: (a+b+c+d+e)^{300}", "1"},
      {"The answer is: (x+1)^{10000}", "(x+1)^{10000}+1"},
      {"The answer is: e^{e^{e^{e^{10}}}}", "1"},
      {"The answer is: x^{x^{x^{x^{x}}}}", "x"},
      {"The answer is: 1e999999", "1"},
      {"The answer is: " + std::string(400, '(') + "1" + std::string(400, ')'), "2"},
      {"The answer is: " + std::string(3999, '7'), "7"},
      // Seven sums of terms like 99^x multiplied out: 820 terms of up to nine factors.
      {"The answer is: (-9^x2/x+2)(992^xx++92x^xr+x+2)(99^s xx2x+2)(99^2xx++x+22^x99x+-9^x2/x+2)"
       "(992^xx++92x^xr+x+2)(99^x2x+2)(99c3^2xx++92+92x^xr+x+2)",
       "s056^8"},
  };
  std::string chains;  // a union of twelve inequality chains, each link a sign analysis
  for (int i = 0; i < 12; ++i) chains += (i ? " \\lor " : "") + std::string("6<41 >x<46<41 >x<41");
  rows.push_back({"The answer is: $" + chains + "$", "x = 31"});
  std::string sum;
  for (int i = 0; i < 1900; ++i) sum += "1+";
  rows.push_back({"The answer is: " + sum + "1", "1899"});
  return rows;
}

TEST(ScoreLimits, EveryHostileRowGetsAVerdict) {
  const auto dir = testing::temp_dir("score_limits");
  const auto rows = hostile_rows();
  {
    std::ofstream f(dir / "in.jsonl");
    for (const auto& [pred, gold] : rows)
      f << json{{"completion", pred}, {"gold", gold}}.dump() << "\n";
  }
  for (const char* bench : {"math", "gsm8k"}) {
    const auto out = dir / (std::string(bench) + ".jsonl");
    // 17 rows x 100 ms each is 1.7 s; a row that escapes the limits runs for minutes (the first
    // one took 2.6 GB and was still running after 30 s before its guard existed).
    const auto r = testing::run_command("timeout 120 " + testing::metamath_bin() + " score -q -i " +
                                        (dir / "in.jsonl").string() + " -b " + bench + " -o " +
                                        out.string() + " --time-limit-ms 100");
    ASSERT_NE(r.code, 124) << bench << ": killed after 120 s: a row escaped the limits";
    ASSERT_EQ(r.code, 0) << bench << ": " << r.output;
    const auto verdicts = read_jsonl(out);
    ASSERT_EQ(verdicts.size(), rows.size()) << bench;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      EXPECT_FALSE(verdicts[i]["correct"].get<bool>()) << bench << " row " << i;
      EXPECT_FALSE(verdicts[i]["reason"].get<std::string>().empty()) << bench << " row " << i;
    }
  }
}

}  // namespace
}  // namespace metamath
