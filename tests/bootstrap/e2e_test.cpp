// End to end through the real HTTP path: `metamath bootstrap --backend openai` against a scripted
// OpenAI-compatible endpoint (cpp-httplib) that answers from gold solutions, then
// `metamath assemble`; and crash safety under SIGKILL.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>

#include "answer/equiv.h"
#include "bootstrap/assemble.h"
#include "bootstrap/bootstrap.h"
#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "core/text.h"
#include "scripted_world.h"
#include "test_util.h"

extern char** environ;

namespace metamath::bootstrap {
namespace {

using testing::Expected;
namespace fs = std::filesystem;

class ScriptedServer {
 public:
  ScriptedServer(const testing::ScriptedWorld& w, int delay_us) : world_(w) {
    // One server thread per client connection: keep-alive connections each hold a thread.
    svr_.new_task_queue = [] { return new httplib::ThreadPool(24); };
    svr_.Post("/v1/completions", [this, delay_us](const httplib::Request& req,
                                                  httplib::Response& res) {
      json b = json::parse(req.body);
      int n = b.value("n", 1);
      uint64_t seed = b.value("seed", uint64_t{0});
      std::string prompt = b["prompt"].get<std::string>();
      json out = {{"id", "x"}, {"object", "text_completion"}, {"choices", json::array()}};
      try {
        for (int c = 0; c < n; ++c)
          out["choices"].push_back(
              {{"index", c}, {"text", world_.respond(prompt, seed, c)}, {"finish_reason", "stop"}});
      } catch (const std::exception& e) {
        ++errors;
        res.status = 400;
        res.set_content(json{{"error", {{"message", e.what()}}}}.dump(), "application/json");
        return;
      }
      out["usage"] = {{"prompt_tokens", prompt.size() / 4},
                      {"completion_tokens", 20 * n},
                      {"total_tokens", prompt.size() / 4 + 20 * n}};
      ++requests;
      if (delay_us) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
      res.set_content(out.dump(), "application/json");
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    while (!svr_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~ScriptedServer() {
    svr_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::atomic<int> requests{0}, errors{0};

 private:
  const testing::ScriptedWorld& world_;
  httplib::Server svr_;
  int port_ = 0;
  std::thread thread_;
};

Options e2e_options() {
  Options o;
  o.ansaug_samples = 4;
  o.rephrasings = 3;
  o.rephrase_attempts = 3;
  o.backward_masks = 64;
  o.backward_samples = 2;
  o.seed = 7;
  return o;
}
const char* kFlags =
    " -k 4 --rephrasings 3 --rephrase-attempts 3 --masks 64 --backward-samples 2 --seed 7";

struct Seeds {
  fs::path gsm8k, math;
  std::vector<data::Problem> problems;  // gsm8k first, then math, as the CLI orders them
};

// The first n_gsm GSM8K and n_math MATH train problems, written as seed files. MATH problems
// whose gold is not comparable to itself, or whose text holds a blank line (the SV statement is
// one paragraph), are left out so the script's verdicts are unambiguous.
Seeds make_seeds(const fs::path& data, const fs::path& dir, std::size_t n_gsm, std::size_t n_math) {
  Seeds s;
  s.gsm8k = dir / "gsm8k.jsonl";
  s.math = dir / "math.jsonl";
  auto g = read_jsonl(data / "gsm8k" / "train.jsonl");
  JsonlWriter wg(s.gsm8k);
  for (std::size_t i = 0; i < n_gsm; ++i) wg.write(g[i]);
  wg.commit();
  auto m = read_jsonl(data / "math" / "train.jsonl");
  JsonlWriter wm(s.math);
  std::size_t taken = 0;
  for (const auto& r : m) {
    if (taken == n_math) break;
    std::string a = r["answer"], q = r["problem"];
    if (a.empty() || q.find("\n\n") != std::string::npos) continue;
    if (!answer::equivalent(a, a, answer::Style::Math).equal()) continue;
    if (answer::equivalent(a + "+1", a, answer::Style::Math).equal()) continue;
    wm.write(r);
    ++taken;
  }
  wm.commit();
  s.problems = data::load_gsm8k(s.gsm8k);
  auto mp = data::load_math(s.math);
  s.problems.insert(s.problems.end(), mp.begin(), mp.end());
  return s;
}

std::string bootstrap_cmd(const Seeds& s, const ScriptedServer& srv, const fs::path& out,
                          int concurrency) {
  return metamath::testing::metamath_bin() + " bootstrap -q --backend openai --model scripted" +
         " --base-url " + srv.url() + " --concurrency " + std::to_string(concurrency) +
         " --max-attempts 1 --gsm8k " + s.gsm8k.string() + " --math " + s.math.string() +
         " --out " + out.string() + kFlags;
}

std::vector<Expected> read_records(const fs::path& file) {
  std::vector<Expected> out;
  for (const auto& r : read_jsonl(file)) out.push_back({r["type"], r["query"], r["gold"]});
  std::sort(out.begin(), out.end());
  return out;
}

TEST(EndToEnd, HttpBootstrapAndAssembleOnRealTrainProblems) {
  METAMATH_REQUIRE_DATA(data);
  auto dir = metamath::testing::temp_dir("boot_e2e");
  Seeds seeds = make_seeds(data, dir, 200, 100);
  ASSERT_EQ(seeds.problems.size(), 300u);
  Prompts prompts = load_prompts(default_prompts_dir());
  testing::ScriptedWorld world(seeds.problems, prompts);
  ScriptedServer srv(world, 0);

  auto r = metamath::testing::run_command(bootstrap_cmd(seeds, srv, dir / "out", 16));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(srv.errors, 0);
  auto want = testing::expected_records(seeds.problems, e2e_options());
  auto got = read_records(dir / "out" / "records.jsonl");
  ASSERT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want);
  std::map<std::string, std::size_t> per_type;
  for (const auto& e : want) ++per_type[e.type];
  EXPECT_EQ(per_type.size(), 8u);
  for (const auto& [t, n] : per_type) EXPECT_GT(n, 20u) << t;
  // Every record: schema, normalised ending, no continued transcript.
  for (const auto& rec : read_jsonl(dir / "out" / "records.jsonl")) {
    for (const char* f : {"query", "response", "type", "original_question"})
      ASSERT_TRUE(rec.contains(f) && rec[f].is_string()) << f;
    std::string resp = rec["response"];
    EXPECT_TRUE(text::ends_with(resp, "The answer is: " + rec["gold"].get<std::string>())) << resp;
    EXPECT_EQ(resp.find("Question:"), std::string::npos) << resp;
    EXPECT_EQ(resp.find("<<"), std::string::npos) << resp;
  }
  // Yield in stats.json equals kept / samples of the script.
  json st = json::parse(read_file(dir / "out" / "stats.json"));
  uint64_t kept = 0;
  for (auto& [m, v] : st["methods"].items()) kept += v["kept"].get<uint64_t>();
  EXPECT_EQ(kept, want.size());

  // status reads the same store.
  auto s = metamath::testing::run_command(metamath::testing::metamath_bin() +
                                          " bootstrap status --out " + (dir / "out").string());
  ASSERT_EQ(s.code, 0) << s.output;
  EXPECT_NE(s.output.find("| FOBAR |"), std::string::npos) << s.output;

  // assemble: targets at a tiny scale are filled from what exists; every type present.
  auto a = metamath::testing::run_command(
      metamath::testing::metamath_bin() + " assemble " + (dir / "out").string() + " --out " +
      (dir / "mmqa.jsonl").string() + " --scale 0.001 --test-gsm8k " +
      (data / "gsm8k" / "test.jsonl").string() + " --test-math " +
      (data / "math" / "test.jsonl").string());
  ASSERT_EQ(a.code, 0) << a.output;
  auto rows = read_jsonl(dir / "mmqa.jsonl");
  std::map<std::string, std::size_t> kept_per_type;
  for (const auto& row : rows) {
    EXPECT_EQ(row.size(), 4u);
    ++kept_per_type[row["type"]];
  }
  auto targets = default_targets(0.001);
  for (const auto& [t, n] : per_type)
    EXPECT_EQ(kept_per_type[t], std::min<std::size_t>(n, targets[t])) << t;
}

pid_t spawn_shell(const std::string& cmd) {
  pid_t pid = 0;
  std::string full = "exec " + cmd + " >/dev/null 2>&1";
  const char* argv[] = {"/bin/sh", "-c", full.c_str(), nullptr};
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
    return -1;
  return pid;
}

TEST(EndToEnd, SigkillAtRandomPointsThenResumeGivesTheSameOutput) {
  METAMATH_REQUIRE_DATA(data);
  auto dir = metamath::testing::temp_dir("boot_kill");
  Seeds seeds = make_seeds(data, dir, 40, 10);
  Prompts prompts = load_prompts(default_prompts_dir());
  testing::ScriptedWorld world(seeds.problems, prompts);
  ScriptedServer srv(world, 3000);  // 3 ms per request, so a run lasts long enough to be killed

  auto ref = metamath::testing::run_command(bootstrap_cmd(seeds, srv, dir / "ref", 4));
  ASSERT_EQ(ref.code, 0) << ref.output;

  std::mt19937 rng(2024);
  int killed = 0;
  for (int i = 0; i < 20; ++i) {
    pid_t pid = spawn_shell(bootstrap_cmd(seeds, srv, dir / "killed", 4));
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(150, 700)(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++killed;
  }
  EXPECT_GE(killed, 10);
  auto fin = metamath::testing::run_command(bootstrap_cmd(seeds, srv, dir / "killed", 4));
  ASSERT_EQ(fin.code, 0) << fin.output;
  std::string a = read_file(dir / "ref" / "records.jsonl");
  std::string b = read_file(dir / "killed" / "records.jsonl");
  EXPECT_GT(a.size(), 1000u);
  EXPECT_TRUE(a == b) << "records differ after kills";
  EXPECT_EQ(read_records(dir / "killed" / "records.jsonl"),
            testing::expected_records(seeds.problems, e2e_options()));
}

// Target-driven sampling end to end: `--scale 0.01` of the paper's mixture (GSM8K 800/800/400/400,
// MATH 750/500/150/150, plus the 10% margin) from 120 GSM8K and 80 MATH train problems needs
// several rounds beyond the first; the bootstrap keeps going until every type is met, and a run
// killed with SIGKILL at random points, then resumed, ends with the same records.
TEST(EndToEnd, ScaledMixtureIsReachedInRoundsAndSurvivesSigkill) {
  METAMATH_REQUIRE_DATA(data);
  auto dir = metamath::testing::temp_dir("boot_scale");
  Seeds seeds = make_seeds(data, dir, 120, 80);
  Prompts prompts = load_prompts(default_prompts_dir());
  testing::ScriptedWorld world(seeds.problems, prompts);
  ScriptedServer srv(world, 1000);
  auto cmd = [&](const char* out) {
    return metamath::testing::metamath_bin() +
           " bootstrap -q --backend openai --model scripted --base-url " + srv.url() +
           " --concurrency 8 --max-attempts 1 --gsm8k " + seeds.gsm8k.string() + " --math " +
           seeds.math.string() + " --out " + (dir / out).string() +
           " -k 1 --rephrasings 1 --masks 1 --backward-samples 1 --seed 7 --scale 0.01";
  };
  auto ref = metamath::testing::run_command(cmd("ref"));
  ASSERT_EQ(ref.code, 0) << ref.output;
  // One sample per question in the first round: the targets need more rounds.
  EXPECT_NE(ref.output.find("round 2:"), std::string::npos) << ref.output;
  std::map<std::string, uint64_t> kept;
  for (const auto& r : read_jsonl(dir / "ref" / "records.jsonl")) ++kept[r["type"]];
  for (const auto& [type, target] : default_targets(0.01)) {
    EXPECT_GE(kept[type],
              static_cast<uint64_t>(std::ceil(static_cast<double>(target) * 1.1 - 1e-6)))
        << type;
  }
  // The yields measured (stats.json), for the record.
  json st = json::parse(read_file(dir / "ref" / "stats.json"));
  for (auto& [m, v] : st["methods"].items())
    std::printf("measured yield %s: %.1f%% of %llu samples\n", m.c_str(),
                100.0 * v["yield"].get<double>(),
                static_cast<unsigned long long>(v["samples"].get<uint64_t>()));

  // Kills spread over the run (each resumed process gets further), so later rounds are cut too.
  std::mt19937 rng(77);
  int killed = 0;
  for (int i = 0; i < 6; ++i) {
    pid_t pid = spawn_shell(cmd("killed"));
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(300, 2500)(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++killed;
  }
  EXPECT_GE(killed, 3);
  auto fin = metamath::testing::run_command(cmd("killed"));
  ASSERT_EQ(fin.code, 0) << fin.output;
  EXPECT_TRUE(read_file(dir / "ref" / "records.jsonl") ==
              read_file(dir / "killed" / "records.jsonl"))
      << "records differ after kills";

  // assemble says plainly which targets the kept records cannot fill after deduplication (the
  // script's correct solutions of one question are all the same text).
  auto a = metamath::testing::run_command(
      metamath::testing::metamath_bin() + " assemble " + (dir / "ref").string() + " --out " +
      (dir / "mmqa.jsonl").string() + " --scale 0.01 --no-contamination-check");
  ASSERT_EQ(a.code, 0) << a.output;
  EXPECT_NE(a.output.find("targets not met:"), std::string::npos) << a.output;
  EXPECT_NE(a.output.find("GSM_AnsAug: kept 120 of the 800 target"), std::string::npos) << a.output;
}

}  // namespace
}  // namespace metamath::bootstrap
