// bootstrap/job.h: `metamath bootstrap` as a library call (flags parsed into a BootstrapJob).
#include "bootstrap/job.h"

#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "test_util.h"

namespace metamath::bootstrap {
namespace {
namespace fs = std::filesystem;

fs::path write_seeds(const fs::path& dir) {
  std::string rows;
  for (int i = 0; i < 5; ++i)
    rows += "{\"question\": \"Tom has " + std::to_string(i + 2) +
            " apples and buys 3 more. How many apples does he have?\", \"answer\": \"" +
            std::to_string(i + 2) + " + 3 = " + std::to_string(i + 5) + "\\n#### " +
            std::to_string(i + 5) + "\"}\n";
  write_file_atomic(dir / "train.jsonl", rows);
  return dir / "train.jsonl";
}

TEST(BootstrapJob, DryRunOnANewFolderPlansThisShardAndLeavesTheFolderAlone) {
  auto dir = testing::temp_dir("bootstrap_job_dry");
  BootstrapJob job;
  job.out = dir / "out";
  job.datasets = {"gsm8k"};
  job.gsm8k = write_seeds(dir);
  job.methods = "AnsAug";
  job.shard = "1/2";  // seed questions 1 and 3
  job.dry_run = true;
  BootstrapJobResult r = run_bootstrap_job(job);
  EXPECT_FALSE(fs::exists(job.out));
  EXPECT_NE(r.report.find("| AnsAug | 2 | 2 | 2 |"), std::string::npos) << r.report;
  EXPECT_NE(r.report.find("\n\n2 seed problems\n"), std::string::npos) << r.report;
  EXPECT_EQ(r.records, 0u);
}

TEST(BootstrapJob, SeedsAndFlagValues) {
  auto dir = testing::temp_dir("bootstrap_job_seeds");
  BootstrapJob job;
  job.datasets = {"gsm8k"};
  job.gsm8k = write_seeds(dir);
  job.limit = 3;
  auto seeds = load_seed_problems(job);
  ASSERT_EQ(seeds.size(), 3u);
  EXPECT_EQ(seeds[2].answer, "7");
  job.datasets = {"svamp"};
  EXPECT_EQ(testing::error_of([&] { load_seed_problems(job); }),
            "--datasets: unknown seed dataset 'svamp' (gsm8k or math)");

  EXPECT_EQ(parse_methods(" sv, FOBAR ,"), (std::vector<Method>{Method::SV, Method::FOBAR}));
  EXPECT_EQ(testing::error_of([] { parse_methods(" , "); }), "--methods: nothing selected");
  auto o = parse_prompt_overrides({"rephrase=a.txt", "sv_rewrite=b=c.txt"});
  EXPECT_EQ(o.at("rephrase"), fs::path("a.txt"));
  EXPECT_EQ(o.at("sv_rewrite"), fs::path("b=c.txt"));
  EXPECT_EQ(testing::error_of([] { parse_prompt_overrides({"rephrase"}); }),
            "--prompt 'rephrase': expected NAME=FILE");

  BootstrapJob no_out;
  EXPECT_EQ(testing::error_of([&] { run_bootstrap_job(no_out); }), "bootstrap: --out is required");
  EXPECT_EQ(testing::error_of([&] { bootstrap_status(dir); }),
            (dir.string() + ": no jobs.sqlite here"));
}

TEST(BootstrapJob, TargetsFromMixtureTargetAndScaleFlags) {
  BootstrapJob job;
  EXPECT_FALSE(resolve_targets(job).has_value());  // no targets: one round, as before
  job.mixture = "paper";
  auto t = resolve_targets(job);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->per_type.size(), 8u);
  EXPECT_EQ(t->per_type.at("GSM_Rephrased"), 80000u);  // the paper's Table 1
  job.scale = 0.01;
  job.target_flags = {"MATH_SV=7"};
  t = resolve_targets(job);
  EXPECT_EQ(t->per_type.at("GSM_AnsAug"), 800u);
  EXPECT_EQ(t->per_type.at("MATH_SV"), 7u);
  // --target alone: only the listed types.
  BootstrapJob only;
  only.target_flags = {"GSM_FOBAR=12"};
  t = resolve_targets(only);
  ASSERT_EQ(t->per_type.size(), 1u);
  EXPECT_EQ(t->per_type.at("GSM_FOBAR"), 12u);
  only.mixture = "alpaca";
  EXPECT_NE(testing::error_of([&] { resolve_targets(only); }).find("--mixture 'alpaca'"),
            std::string::npos);
  only.mixture.clear();
  only.backend.price = "0.5";
  EXPECT_NE(testing::error_of([&] { resolve_targets(only); }).find("--price '0.5'"),
            std::string::npos);
}

TEST(BootstrapJob, DryRunWithTargetsPrintsTheTargetPlan) {
  auto dir = testing::temp_dir("bootstrap_job_dry_targets");
  BootstrapJob job;
  job.out = dir / "out";
  job.datasets = {"gsm8k"};
  job.gsm8k = write_seeds(dir);
  job.scale = 0.001;
  job.backend.price = "1,2";
  job.dry_run = true;
  BootstrapJobResult r = run_bootstrap_job(job);
  EXPECT_FALSE(fs::exists(job.out));
  // 5 GSM8K questions; 80 * 1.1 = 88 GSM_AnsAug records wanted.
  EXPECT_NE(r.report.find("| GSM_AnsAug | 80 | 88 | 0 | 5 |"), std::string::npos) << r.report;
  // No MATH seeds here: those targets cannot be met by any cap.
  EXPECT_NE(r.report.find("| MATH_AnsAug | 75 | 83 | 0 | 0 |"), std::string::npos) << r.report;
  EXPECT_NE(r.report.find("estimated cost: $"), std::string::npos) << r.report;
}

}  // namespace
}  // namespace metamath::bootstrap
