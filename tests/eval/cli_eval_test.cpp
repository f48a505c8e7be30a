// `metamath eval` through the program: --rescore of the hand-written fixture run agrees with the
// hand-checked verdicts and with `metamath score` on the same files; --recipe metamath sets the
// official eval scripts' decoding (eval_gsm8k.py / eval_math.py, values written here by hand),
// flags given explicitly win, and the run records and prints what it used.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/atomic_file.h"
#include "eval/benchmark.h"
#include "eval/recipe.h"
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

// The official scripts' stop strings, written out by hand.
const std::vector<std::string> kOfficialStop = {
    "Question:", "Question",     "USER:",       "USER",      "ASSISTANT:",
    "ASSISTANT", "Instruction:", "Instruction", "Response:", "Response"};

EvalOptions scrambled_eval_options() {
  EvalOptions o;
  o.benchmarks = parse_benchmark_list("svamp");
  o.prompt = "fewshot";
  o.n = 4;
  o.temperature = 0.7;
  o.top_p = 0.9;
  o.max_tokens = 99;
  o.stop = std::vector<std::string>{"x"};
  o.scoring = Scoring::Ours;
  return o;
}

const auto kNothingGiven = [](const std::string&) { return false; };

TEST(EvalRecipe, MetamathIsTheOfficialEvalScriptsDecoding) {
  EvalOptions o = scrambled_eval_options();
  json use = apply_eval_recipe(find_eval_recipe("metamath"), o, kNothingGiven);
  ASSERT_EQ(o.benchmarks.size(), 2u);
  EXPECT_EQ(o.benchmarks[0].name, "gsm8k");
  EXPECT_EQ(o.benchmarks[1].name, "math");
  // --max-tokens 0: each benchmark's own, which are the official max_tokens.
  EXPECT_EQ(o.max_tokens, 0);
  EXPECT_EQ(o.benchmarks[0].max_tokens, 512);
  EXPECT_EQ(o.benchmarks[1].max_tokens, 2048);
  EXPECT_EQ(o.prompt, "alpaca");  // "...### Response: Let's think step by step."
  EXPECT_EQ(o.n, 1);
  EXPECT_EQ(o.temperature, 0.0);
  EXPECT_EQ(o.top_p, 1.0);
  ASSERT_TRUE(o.stop.has_value());
  EXPECT_EQ(*o.stop, kOfficialStop);
  EXPECT_EQ(o.scoring, Scoring::Both);
  EXPECT_EQ(use["name"], "metamath");
  EXPECT_TRUE(use["overridden"].empty());
  EXPECT_NE(use["note"].get<std::string>().find("400 prompts"), std::string::npos);
}

TEST(EvalRecipe, FlagsGivenExplicitlyWinAndUnknownNamesAreListed) {
  EvalOptions o = scrambled_eval_options();
  const std::set<std::string> given = {"--max-tokens", "--stop", "--bench"};
  json use = apply_eval_recipe(find_eval_recipe("metamath"), o,
                               [&](const std::string& f) { return given.count(f) > 0; });
  EXPECT_EQ(o.max_tokens, 99);
  EXPECT_EQ(*o.stop, std::vector<std::string>{"x"});
  ASSERT_EQ(o.benchmarks.size(), 1u);
  EXPECT_EQ(o.benchmarks[0].name, "svamp");
  EXPECT_EQ(o.temperature, 0.0);  // the rest is the recipe's
  EXPECT_EQ(std::set<std::string>(use["overridden"].begin(), use["overridden"].end()), given);
  for (const auto& [flag, value] : use["applied"].items()) EXPECT_EQ(given.count(flag), 0u);
  const std::string err = testing::error_of([] { find_eval_recipe("wizardmath"); });
  EXPECT_NE(err.find("unknown eval recipe 'wizardmath' (known: metamath)"), std::string::npos)
      << err;
}

TEST(EvalRecipe, CliRecordsAndPrintsTheEffectiveSettings) {
  METAMATH_REQUIRE_DATA(data);
  METAMATH_REQUIRE_TOKENIZER();
  const fs::path dir = testing::temp_dir("eval_recipe_cli");
  auto made = testing::run_command(
      fmt::format("{} init-model --config tiny --tokenizer {} --out {}", testing::metamath_bin(),
                  testing::llama2_tokenizer_dir()->string(), (dir / "tiny").string()));
  ASSERT_EQ(made.code, 0) << made.output;
  auto run = testing::run_command(fmt::format(
      "{} eval -q --recipe metamath --backend local --model {} --max-batch 1 --max-len 1024 "
      "--bench gsm8k --data {} --limit 2 --max-tokens 4 --out {} 2>&1",
      testing::metamath_bin(), (dir / "tiny").string(), (data / "gsm8k" / "test.jsonl").string(),
      (dir / "out").string()));
  ASSERT_EQ(run.code, 0) << run.output;
  const json rec = read_json_file(dir / "out" / "run.json");
  const json& st = rec["settings"];
  EXPECT_EQ(st["prompt"], "alpaca");
  EXPECT_EQ(st["n"], 1);
  EXPECT_EQ(st["temperature"], 0.0);
  EXPECT_EQ(st["top_p"], 1.0);
  ASSERT_EQ(st["benchmarks"].size(), 1u);           // --bench gsm8k: the flag's
  EXPECT_EQ(st["benchmarks"][0]["max_tokens"], 4);  // --max-tokens 4: the flag's
  EXPECT_EQ(st["benchmarks"][0]["stop"], json(kOfficialStop));
  EXPECT_NE(st["benchmarks"][0]["template"].get<std::string>().find(
                "### Response: Let's think step by step."),
            std::string::npos);
  const json& recipe = rec["provenance"]["recipe"];
  EXPECT_EQ(recipe["name"], "metamath");
  EXPECT_EQ(std::set<std::string>(recipe["overridden"].begin(), recipe["overridden"].end()),
            (std::set<std::string>{"--bench", "--max-tokens"}));
  EXPECT_EQ(recipe["applied"]["--scoring"], "both");
  EXPECT_NE(run.output.find("eval settings (recipe metamath"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("--max-tokens   4  (flag, over the recipe)"), std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("--temperature  0  (recipe metamath)"), std::string::npos)
      << run.output;
  // The table shows the official scoring beside ours (--scoring both).
  EXPECT_NE(run.output.find("| official accuracy (%) |"), std::string::npos) << run.output;

  auto bad = testing::run_command(
      fmt::format("{} eval --recipe paper --backend local --model {} --out {} 2>&1",
                  testing::metamath_bin(), (dir / "tiny").string(), (dir / "bad").string()));
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("unknown eval recipe 'paper' (known: metamath)"), std::string::npos)
      << bad.output;
}

}  // namespace
}  // namespace metamath::eval
