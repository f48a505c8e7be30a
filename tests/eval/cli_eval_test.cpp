// `metamath eval` through the program: --rescore of the hand-written fixture run agrees with the
// hand-checked verdicts and with `metamath score` on the same files.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>

#include "core/atomic_file.h"
#include "eval/runner.h"
#include "eval/score.h"
#include "fixture_run.h"
#include "test_util.h"

namespace metamath::eval {
namespace {
namespace fs = std::filesystem;

TEST(Fixture, CliRescoreAndScoreAgree) {
  fs::path dir = copy_fixture("fixture_cli");
  auto run = testing::run_command(testing::metamath_bin() + " eval --rescore " + dir.string());
  ASSERT_EQ(run.code, 0) << run.output;
  EXPECT_NE(run.output.find("| math | 20 | 14 | 70.00 |"), std::string::npos) << run.output;
  expect_hand_verdicts(dir / "math.samples.jsonl");
  json summary = json::parse(read_file(dir / "summary.json"));
  for (const char* bench : {"gsm8k", "math"}) {
    // `metamath score` on the original (unscored) fixture file.
    fs::path in = kFixture / (std::string(bench) + ".samples.jsonl");
    auto s = testing::run_command(fmt::format("{} score -q --input {} --bench {} --summary {}",
                                              testing::metamath_bin(), in.string(), bench,
                                              (dir / "score.json").string()));
    ASSERT_EQ(s.code, 0) << s.output;
    json sj = json::parse(read_file(dir / "score.json"));
    EXPECT_EQ(sj["overall"]["correct"], summary["results"][bench]["correct"]) << bench;
    EXPECT_EQ(sj["overall"]["n"], summary["results"][bench]["samples"]) << bench;
    EXPECT_EQ(sj["pred_methods"], summary["results"][bench]["pred_methods"]) << bench;
  }
}

}  // namespace
}  // namespace metamath::eval
