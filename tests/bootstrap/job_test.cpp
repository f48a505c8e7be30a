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

}  // namespace
}  // namespace metamath::bootstrap
