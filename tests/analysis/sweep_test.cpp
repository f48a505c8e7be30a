// `metamath sweep` end to end on a tiny model: a bootstrap output made from real GSM8K train
// problems, three scales, each assembled, trained (tiny random LLaMA with the real LLaMA-2
// tokenizer) and evaluated (2 GSM8K test problems), then the report. The same sweep is run once
// straight through and once stopped at a stage boundary, killed (SIGKILL) in the middle of a later
// stage and rerun: finished stages are never started again (sweep_log.jsonl), the first point's
// files are untouched, and every output equals the uninterrupted run's byte for byte.
#include "analysis/sweep.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "core/text.h"
#include "test_util.h"

namespace metamath::analysis {
namespace {
namespace fs = std::filesystem;

// A bootstrap --out folder in MetaMathQA's record shape over the first 40 GSM8K train problems:
// each problem's own solution as AnsAug and Rephrased records, every other one as SV and FOBAR.
fs::path fake_bootstrap(const fs::path& data, const fs::path& dir) {
  JsonlReader in(data / "gsm8k" / "train.jsonl");
  std::string records;
  json row;
  for (int i = 0; i < 40 && in.next(row); ++i) {
    const std::string q = row["question"], a = row["answer"];
    const std::string gold = *text::after_hashes(a);
    const std::string response =
        text::replace_all(a.substr(0, a.rfind("####")), "\n", " ") + "The answer is: " + gold;
    auto add = [&](const std::string& type, const std::string& query) {
      records +=
          json{{"query", query}, {"response", response}, {"type", type}, {"original_question", q}}
              .dump() +
          "\n";
    };
    add("GSM_AnsAug", q);
    add("GSM_Rephrased", "Put differently: " + q);
    if (i % 2 == 0) {
      add("GSM_SV", q + " (backward)");
      add("GSM_FOBAR",
          q + "\nIf we know the answer to the above question is " + gold + ", what is x?");
    }
  }
  write_file_atomic(dir / "records.jsonl", records);
  json methods = {{"AnsAug", {{"samples", 80}, {"kept", 40}, {"yield", 0.5}}},
                  {"Rephrase", {{"samples", 50}, {"kept", 40}, {"yield", 0.8}}},
                  {"SV", {{"samples", 40}, {"kept", 20}, {"yield", 0.5}}},
                  {"FOBAR", {{"samples", 25}, {"kept", 20}, {"yield", 0.8}}}};
  write_file_atomic(dir / "stats.json", json{{"problems", 40}, {"methods", methods}}.dump(2));
  return dir;
}

std::string sweep_command(const fs::path& data, const fs::path& boot, const fs::path& out,
                          const std::string& extra = "") {
  return fmt::format(
      "{} sweep {} --out {} --scales 0.0001,0.0002,0.0004 --test-gsm8k {} --test-math {} "
      "--init random --config tiny --tokenizer {} --epochs 1 --global-batch 8 --micro-batch 4 "
      "--max-len 256 --lr 1e-3 --save-steps 2 -b gsm8k --data gsm8k={} --limit 2 --max-tokens 8 "
      "--max-batch 2 --eval-max-len 512 -q {}",
      testing::metamath_bin(), boot.string(), out.string(),
      (data / "gsm8k" / "test.jsonl").string(), (data / "math" / "test.jsonl").string(),
      testing::llama2_tokenizer_dir()->string(), (data / "gsm8k" / "test.jsonl").string(), extra);
}

const char* kPoints[] = {"scale-0.0001", "scale-0.0002", "scale-0.0004"};

std::size_t count_lines(const fs::path& f) {
  if (!fs::exists(f)) return 0;
  const std::string s = read_file(f);
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

int64_t mtime_ns(const fs::path& f) {
  struct stat st {};
  if (::stat(f.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

TEST(Sweep, FinishesAndResumesAfterAKillWithoutRedoingFinishedStages) {
  METAMATH_REQUIRE_DATA(data);
  METAMATH_REQUIRE_TOKENIZER();
  const fs::path dir = testing::temp_dir("sweep");
  const fs::path boot = fake_bootstrap(data, dir / "boot");

  // The plan, before anything ran: nine stages to run, nothing written.
  auto plan = testing::run_command(sweep_command(data, boot, dir / "b", "--dry-run"));
  ASSERT_EQ(plan.code, 0) << plan.output;
  EXPECT_EQ(std::count(plan.output.begin(), plan.output.end(), '|') > 0, true);
  auto occurrences = [](const std::string& s, const std::string& w) {
    std::size_t n = 0;
    for (std::size_t at = s.find(w); at != std::string::npos; at = s.find(w, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(occurrences(plan.output, "| to run"), 9u) << plan.output;
  EXPECT_FALSE(fs::exists(dir / "b" / "sweep.json"));

  // Straight through.
  auto a = testing::run_command(sweep_command(data, boot, dir / "a"));
  ASSERT_EQ(a.code, 0) << a.output;
  EXPECT_TRUE(fs::exists(dir / "a" / "report.html"));

  // Stopped after the first point's three stages and the second point's assemble.
  auto b1 = testing::run_command(sweep_command(data, boot, dir / "b", "--stop-after-stages 4"));
  ASSERT_EQ(b1.code, 0) << b1.output;
  auto plan2 = testing::run_command(sweep_command(data, boot, dir / "b", "--dry-run"));
  EXPECT_EQ(occurrences(plan2.output, "| done"), 4u) << plan2.output;
  const fs::path first_model = dir / "b" / kPoints[0] / "model" / "model.safetensors";
  const int64_t first_mtime = mtime_ns(first_model);
  ASSERT_GT(first_mtime, 0);

  // Killed in the middle of the second point's training (or, if it is quick, a later stage).
  const std::string cmd = fmt::format("exec {} > {} 2>&1", sweep_command(data, boot, dir / "b"),
                                      (dir / "b2.log").string());
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  const fs::path train_log = dir / "b" / kPoints[1] / "model" / "train_log.jsonl";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int status = 0;
  bool exited = false;
  while (count_lines(train_log) < 3 && std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(exited) << "the sweep ended before it could be killed: "
                       << read_file(dir / "b2.log");
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(fs::exists(dir / "b" / "report.html"));

  // Rerun to the end.
  auto b3 = testing::run_command(sweep_command(data, boot, dir / "b"));
  ASSERT_EQ(b3.code, 0) << b3.output;
  EXPECT_NE(b3.output.find("report: "), std::string::npos) << b3.output;

  // The journal: every stage done once; no stage started again after it was done; exactly one
  // stage (the killed one) started twice.
  std::map<std::string, int> starts, dones;
  int restarted = 0;
  for (const json& e : read_jsonl(dir / "b" / "sweep_log.jsonl")) {
    const std::string key = e["point"].get<std::string>() + "/" + e["stage"].get<std::string>();
    if (e["event"] == "start") {
      EXPECT_EQ(dones[key], 0) << key << " started again after it was done";
      restarted += ++starts[key] == 2;
    }
    if (e["event"] == "done") ++dones[key];
  }
  EXPECT_EQ(dones.size(), 10u);  // 3 points x 3 stages + the report
  for (const auto& [key, n] : dones) EXPECT_EQ(n, 1) << key;
  EXPECT_EQ(restarted, 1);
  EXPECT_EQ(mtime_ns(first_model), first_mtime) << "the first point's training was redone";

  // The same result as the uninterrupted sweep.
  for (const char* p : kPoints) {
    SCOPED_TRACE(p);
    EXPECT_EQ(read_file(dir / "a" / p / "MetaMathQA.jsonl"),
              read_file(dir / "b" / p / "MetaMathQA.jsonl"));
    EXPECT_EQ(read_file(dir / "a" / p / "model" / "model.safetensors"),
              read_file(dir / "b" / p / "model" / "model.safetensors"));
    EXPECT_EQ(read_json_file(dir / "a" / p / "eval" / "summary.json")["results"],
              read_json_file(dir / "b" / p / "eval" / "summary.json")["results"]);
    const json train = read_json_file(dir / "b" / p / "model" / "train_run.json");
    EXPECT_EQ(train["status"], "finished");
    auto sum = testing::run_command("sha256sum " + (dir / "b" / p / "MetaMathQA.jsonl").string());
    EXPECT_EQ(train["data"]["sha256"], sum.output.substr(0, 64));
    EXPECT_EQ(read_json_file(dir / "b" / p / "assemble.json")["sha256"], train["data"]["sha256"]);
  }
  // More data at each scale: the targets are 8/8/4/4, 16/16/8/8 and 32/32/16/16 GSM records
  // (AnsAug/Rephrased/SV/FOBAR), and the bootstrap output has 40/40/20/20.
  int64_t want[] = {24, 48, 96};
  for (int i = 0; i < 3; ++i) {
    const json d = read_json_file(dir / "b" / kPoints[i] / "model" / "train_run.json")["data"];
    EXPECT_EQ(d["records"], want[i]) << kPoints[i];
    EXPECT_EQ(d["examples"].get<int64_t>() + d["dropped"].get<int64_t>(), want[i]);
    EXPECT_EQ(d["types"]["GSM_SV"], want[i] / 6);
  }
  // The report's data-size chart has one point per scale.
  const std::string html = read_file(dir / "b" / "report.html");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      html, m, std::regex("data-chart=\"accuracy-vs-size\"[^>]*data-marks=\"(\\d+)\"")));
  EXPECT_EQ(m[1], "3");
  EXPECT_EQ(html, read_file(dir / "a" / "report.html"));

  // A finished sweep run again does nothing.
  auto again = testing::run_command(sweep_command(data, boot, dir / "b"));
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("sweep: 0 stages run, 10 already done"), std::string::npos)
      << again.output;
  EXPECT_EQ(mtime_ns(first_model), first_mtime);

  // Other settings in the same folder are refused, naming the difference.
  auto other = testing::run_command(sweep_command(data, boot, dir / "b", "--assemble-seed 2"));
  EXPECT_NE(other.code, 0);
  EXPECT_NE(other.output.find("assemble_seed: was 1, now 2"), std::string::npos) << other.output;
}

// Two shards at once (two processes sharing the folder, as two machines would): each runs only
// its points (0 and 2, then 1), the last to finish writes the report, and every output equals the
// unsharded sweep's.
TEST(Sweep, TwoShardsAtOnceGiveTheUnshardedResult) {
  METAMATH_REQUIRE_DATA(data);
  METAMATH_REQUIRE_TOKENIZER();
  const fs::path dir = testing::temp_dir("sweep_shards");
  const fs::path boot = fake_bootstrap(data, dir / "boot");
  auto whole = testing::run_command(sweep_command(data, boot, dir / "whole"));
  ASSERT_EQ(whole.code, 0) << whole.output;

  pid_t pids[2] = {0, 0};
  for (int s = 0; s < 2; ++s) {
    const std::string cmd =
        fmt::format("exec {} > {} 2>&1",
                    sweep_command(data, boot, dir / "sharded", fmt::format("--shard {}/2", s)),
                    (dir / fmt::format("shard{}.log", s)).string());
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    ASSERT_EQ(
        ::posix_spawn(&pids[s], "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  }
  for (int s = 0; s < 2; ++s) {
    int status = 0;
    ASSERT_EQ(::waitpid(pids[s], &status, 0), pids[s]);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << read_file(dir / fmt::format("shard{}.log", s));
  }

  // Who ran what: each point's stages by one process, points 0 and 2 by the same one.
  std::map<std::string, std::set<int64_t>> pid_of;
  int reports = 0;
  for (const json& e : read_jsonl(dir / "sharded" / "sweep_log.jsonl")) {
    if (e["event"] != "start") continue;
    if (e["stage"] == "report")
      ++reports;
    else
      pid_of[e["point"].get<std::string>()].insert(e["pid"].get<int64_t>());
  }
  ASSERT_EQ(pid_of.size(), 3u);
  for (const auto& [point, p] : pid_of) EXPECT_EQ(p.size(), 1u) << point;
  EXPECT_EQ(pid_of[kPoints[0]], pid_of[kPoints[2]]);
  EXPECT_NE(pid_of[kPoints[0]], pid_of[kPoints[1]]);
  EXPECT_GE(reports, 1);

  for (const char* p : kPoints) {
    SCOPED_TRACE(p);
    EXPECT_EQ(read_file(dir / "whole" / p / "MetaMathQA.jsonl"),
              read_file(dir / "sharded" / p / "MetaMathQA.jsonl"));
    EXPECT_EQ(read_file(dir / "whole" / p / "model" / "model.safetensors"),
              read_file(dir / "sharded" / p / "model" / "model.safetensors"));
    EXPECT_EQ(read_json_file(dir / "whole" / p / "eval" / "summary.json")["results"],
              read_json_file(dir / "sharded" / p / "eval" / "summary.json")["results"]);
  }
  ASSERT_TRUE(fs::exists(dir / "sharded" / "report.html"));
  EXPECT_EQ(read_file(dir / "sharded" / "report.html"), read_file(dir / "whole" / "report.html"));
}

TEST(Sweep, PointsAndPlan) {
  SweepOptions o;
  o.out = "/tmp/sw";
  o.bootstrap = {"/tmp/boot"};
  o.scales = {0.01, 0.02};
  auto points = sweep_points(o);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].name, "scale-0.01");
  // The paper's mixture (395K) times the scale.
  EXPECT_EQ(points[0].target_records, 3950u);
  EXPECT_EQ(points[1].target_records, 7900u);
  o.scales = {0.01, 0.01};
  EXPECT_NE(testing::error_of([&] { sweep_points(o); }).find("twice"), std::string::npos);
  o.scales = {0.01, 0.02, 0.04};
  o.shard = Shard{1, 2};
  const std::string plan = format_sweep_plan(o);
  EXPECT_NE(plan.find("| scale-0.02 | 0.02 | 7900 | to run | to run | to run |"), std::string::npos)
      << plan;
  EXPECT_NE(plan.find("| scale-0.01 | 0.01 | 3950 | other shard |"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("--out /tmp/sw/scale-0.04/MetaMathQA.jsonl"), std::string::npos) << plan;
}

}  // namespace
}  // namespace metamath::analysis
