#include "eval/runner.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/prompt.h"
#include "eval/fake_backend.h"
#include "eval/score.h"
#include "test_util.h"

namespace metamath::eval {
namespace {
namespace fs = std::filesystem;
using fake::FakeBackend;

// Answers every request from the gold answer of the problem whose question is in the prompt, in
// four styles by the problem's position p in the data file: p%4 == 0 "The answer is: G",
// 1 "#### G" after some work, 2 "\boxed{G}", 3 deliberately wrong. So 3 of every 4 are right.
struct GoldOracle {
  std::vector<data::Problem> problems;
  std::vector<std::size_t> positions;  // each problem's position in its benchmark's file

  const data::Problem& find(const llm::Request& r, std::size_t* pos) const {
    std::string text = r.prompt;
    for (const auto& m : r.messages) text += m.content;
    for (std::size_t i = 0; i < problems.size(); ++i)
      if (text.find(problems[i].question) != std::string::npos) {
        *pos = positions[i];
        return problems[i];
      }
    throw std::runtime_error("oracle: unknown question in prompt");
  }
  static std::string answer(const data::Problem& p, std::size_t pos) {
    switch (pos % 4) {
      case 0:
        return "We work it out carefully.\nThe answer is: " + p.answer;
      case 1:
        return p.style == "math" ? "Therefore, the final answer is $\\boxed{" + p.answer + "}$."
                                 : "Adding everything up gives the total.\n#### " + p.answer;
      case 2:
        return "So the result is $\\boxed{" + p.answer + "}$.";
      default:
        return "I am not sure, but I think the result is 123456789.\nThe answer is: 123456789";
    }
  }
  FakeBackend::Answer fn() const {
    return [this](const llm::Request& r) {
      std::size_t pos = 0;
      const data::Problem& p = find(r, &pos);
      return fake::choices(
          std::vector<std::string>(static_cast<std::size_t>(r.sampling.n), answer(p, pos)));
    };
  }
};

GoldOracle oracle_for(const std::vector<Benchmark>& bs, const fs::path& data) {
  GoldOracle o;
  for (const auto& b : bs) {
    std::size_t i = 0;
    for (auto& p : load_problems(b, data / b.dataset / "test.jsonl")) {
      o.problems.push_back(std::move(p));
      o.positions.push_back(i++);
    }
  }
  return o;
}

EvalOptions options(const fs::path& data, const fs::path& out, std::string list = "gsm8k,math") {
  EvalOptions o;
  o.benchmarks = parse_benchmark_list(list);
  for (const auto& b : o.benchmarks) o.data[b.name] = data / b.dataset / "test.jsonl";
  o.limit = 20;
  o.out_dir = out;
  o.progress = false;
  return o;
}

std::string file(const fs::path& p) { return read_file(p); }

TEST(Runner, GreedyRunOnRealDataScoresTheOracle) {
  METAMATH_REQUIRE_DATA(data);
  auto dir = testing::temp_dir("eval_run");
  EvalOptions o = options(data, dir);
  GoldOracle oracle = oracle_for(o.benchmarks, data);
  FakeBackend be(oracle.fn());
  EvalResult r = run_eval(be, o);
  EXPECT_EQ(r.generated, 40u);
  EXPECT_EQ(r.resumed, 0u);

  // The requests: MetaMath's Alpaca prompt, greedy, 512 / 2048 new tokens, DESIGN.md's stops.
  ASSERT_EQ(be.seen.size(), 40u);
  for (const auto& req : be.seen) {
    std::size_t pos = 0;
    const data::Problem& p = oracle.find(req, &pos);
    EXPECT_EQ(req.prompt, data::alpaca_eval_prompt(p.question));
    EXPECT_TRUE(
        data::alpaca_eval_prompt(p.question).ends_with("### Response: Let's think step by step."));
    EXPECT_EQ(req.sampling.temperature, 0.0);
    EXPECT_EQ(req.sampling.n, 1);
    EXPECT_EQ(req.sampling.max_tokens, p.style == "math" ? 2048 : 512);
    EXPECT_EQ(req.sampling.stop, default_stop());
  }

  // 3 of every 4 are right: positions 3, 7, 11, 15, 19 are wrong.
  const json& res = r.summary["results"];
  EXPECT_EQ(res["gsm8k"]["problems"], 20);
  EXPECT_EQ(res["gsm8k"]["correct"], 15);
  EXPECT_DOUBLE_EQ(res["gsm8k"]["accuracy"].get<double>(), 0.75);
  EXPECT_EQ(res["math"]["correct"], 15);
  EXPECT_DOUBLE_EQ(res["math"]["pass@k"]["1"].get<double>(), 0.75);
  EXPECT_EQ(res["gsm8k"]["pred_methods"]["answer_is"], 10);  // styles 0 and 3
  EXPECT_EQ(res["gsm8k"]["pred_methods"]["hashes"], 5);
  EXPECT_EQ(res["gsm8k"]["pred_methods"]["boxed"], 5);
  // The first 20 MATH test problems are all Algebra (the file is sorted by subject).
  EXPECT_EQ(res["math"]["by_subject"]["Algebra"]["problems"], 20);
  std::map<std::string, int> level_total, level_correct;
  std::vector<data::Problem> math =
      load_problems(find_benchmark("math"), data / "math" / "test.jsonl");
  for (std::size_t i = 0; i < 20; ++i) {
    ++level_total[math[i].level];
    level_correct[math[i].level] += i % 4 != 3;
  }
  for (const auto& [lv, t] : level_total) {
    EXPECT_EQ(res["math"]["by_level"][lv]["problems"], t) << lv;
    EXPECT_EQ(res["math"]["by_level"][lv]["correct"], level_correct[lv]) << lv;
  }

  // Per-sample rows.
  auto rows = read_jsonl(dir / "gsm8k.samples.jsonl");
  ASSERT_EQ(rows.size(), 20u);
  std::vector<data::Problem> gsm =
      load_problems(find_benchmark("gsm8k"), data / "gsm8k" / "test.jsonl");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const json& row = rows[i];
    EXPECT_EQ(row["id"], gsm[i].id);
    EXPECT_EQ(row["index"], i);
    EXPECT_EQ(row["sample"], 0);
    EXPECT_EQ(row["prompt"], data::alpaca_eval_prompt(gsm[i].question));
    EXPECT_EQ(row["completion"], GoldOracle::answer(gsm[i], i));
    EXPECT_EQ(row["gold"], gsm[i].answer);
    EXPECT_EQ(row["correct"], i % 4 != 3) << i;
    EXPECT_EQ(row["verdict"], i % 4 != 3 ? "equal" : "not_equal");
    EXPECT_EQ(row["pred_answer"], i % 4 != 3 ? gsm[i].answer : "123456789");
    EXPECT_FALSE(row["reason"].get<std::string>().empty());
    EXPECT_EQ(row["prompt_tokens"], 100);
  }
  auto mrows = read_jsonl(dir / "math.samples.jsonl");
  ASSERT_EQ(mrows.size(), 20u);
  EXPECT_EQ(mrows[0]["subject"], "Algebra");
  EXPECT_EQ(mrows[0]["level"], math[0].level);

  // The Markdown table and the files on disk.
  EXPECT_NE(r.markdown.find("| gsm8k | 20 | 15 | 75.00 |"), std::string::npos) << r.markdown;
  EXPECT_NE(r.markdown.find("| math | 20 | 15 | 75.00 |"), std::string::npos) << r.markdown;
  EXPECT_NE(r.markdown.find("| Algebra | 20 | 15 | 75.00 |"), std::string::npos) << r.markdown;
  EXPECT_EQ(json::parse(file(dir / "summary.json")), r.summary);
  EXPECT_EQ(file(dir / "summary.md"), r.markdown);
  EXPECT_TRUE(fs::exists(dir / "run.json"));
}

// What `metamath score` says about our samples file is what eval says.
TEST(Runner, SavedOutputsScoreLikeMetamathScore) {
  METAMATH_REQUIRE_DATA(data);
  auto dir = testing::temp_dir("eval_score_eq");
  EvalOptions o = options(data, dir);
  GoldOracle oracle = oracle_for(o.benchmarks, data);
  FakeBackend be(oracle.fn());
  EvalResult r = run_eval(be, o);
  for (const char* bench : {"gsm8k", "math"}) {
    fs::path samples = dir / (std::string(bench) + ".samples.jsonl");
    auto cmd = fmt::format("{} score -q --input {} --bench {} --out {} --summary {}",
                           testing::metamath_bin(), samples.string(), bench,
                           (dir / "v.jsonl").string(), (dir / "s.json").string());
    auto run = testing::run_command(cmd);
    ASSERT_EQ(run.code, 0) << run.output;
    json s = json::parse(file(dir / "s.json"));
    const json& mine = r.summary["results"][bench];
    EXPECT_EQ(s["pred_field"], "completion");
    EXPECT_EQ(s["gold_field"], "gold");
    EXPECT_EQ(s["overall"]["n"], mine["samples"]);
    EXPECT_EQ(s["overall"]["correct"], mine["correct"]);
    EXPECT_DOUBLE_EQ(s["overall"]["accuracy"].get<double>(), mine["accuracy"].get<double>());
    EXPECT_EQ(s["pred_methods"], mine["pred_methods"]);
    if (std::string(bench) == "math") {
      for (const auto& [k, t] : s["by_subject"].items())
        EXPECT_EQ(t["correct"], mine["by_subject"][k]["correct"]);
      for (const auto& [k, t] : s["by_level"].items())
        EXPECT_EQ(t["correct"], mine["by_level"][k]["correct"]);
      EXPECT_EQ(s["by_level"].size(), mine["by_level"].size());
    }
    auto verdicts = read_jsonl(dir / "v.jsonl");
    auto rows = read_jsonl(samples);
    ASSERT_EQ(verdicts.size(), rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(verdicts[i]["id"], rows[i]["id"]);
      EXPECT_EQ(verdicts[i]["correct"], rows[i]["correct"]);
      EXPECT_EQ(verdicts[i]["pred_answer"], rows[i]["pred_answer"]);
      EXPECT_EQ(verdicts[i]["verdict"], rows[i]["verdict"]);
      EXPECT_EQ(verdicts[i]["reason"], rows[i]["reason"]);
    }
  }
}

TEST(Runner, ResumeAfterACrashGivesTheSameFilesAsOneRun) {
  METAMATH_REQUIRE_DATA(data);
  auto whole = testing::temp_dir("eval_whole");
  auto resumed = testing::temp_dir("eval_resumed");
  EvalOptions o = options(data, whole);
  GoldOracle oracle = oracle_for(o.benchmarks, data);
  FakeBackend be(oracle.fn());
  run_eval(be, o);

  o.out_dir = resumed;
  FakeBackend crashing(oracle.fn());
  crashing.crash_after = 13;
  EXPECT_THROW(run_eval(crashing, o), std::runtime_error);
  // The journal holds the 13 finished problems; add a torn line as a kill mid-write leaves.
  std::size_t lines = 0;
  for (const char* b : {"gsm8k", "math"})
    lines += read_jsonl(resumed / (std::string(b) + ".samples.jsonl")).size();
  EXPECT_EQ(lines, 13u);
  EXPECT_FALSE(fs::exists(resumed / "summary.json"));
  std::ofstream(resumed / "math.samples.jsonl", std::ios::app) << R"({"id": "test/algebra/)";

  FakeBackend again(oracle.fn());
  EvalResult r = run_eval(again, o);
  EXPECT_EQ(again.seen.size(), 27u);  // only what was not finished
  EXPECT_EQ(r.resumed, 13u);
  EXPECT_EQ(r.generated, 27u);
  for (const char* f : {"summary.json", "summary.md", "gsm8k.samples.jsonl", "math.samples.jsonl"})
    EXPECT_EQ(file(resumed / f), file(whole / f)) << f;

  // A finished run resumes to itself without asking the backend anything.
  FakeBackend idle(oracle.fn());
  run_eval(idle, o);
  EXPECT_TRUE(idle.seen.empty());
  EXPECT_EQ(file(resumed / "summary.json"), file(whole / "summary.json"));
}

TEST(Runner, ShardsMergeToTheSameFilesAsOneRun) {
  METAMATH_REQUIRE_DATA(data);
  auto whole = testing::temp_dir("eval_whole2");
  auto sharded = testing::temp_dir("eval_sharded");
  EvalOptions o = options(data, whole);
  GoldOracle oracle = oracle_for(o.benchmarks, data);
  FakeBackend be(oracle.fn());
  run_eval(be, o);

  o.out_dir = sharded;
  std::size_t asked = 0;
  for (int i = 0; i < 3; ++i) {
    o.shard = {i, 3};
    FakeBackend part(oracle.fn());
    run_eval(part, o);
    asked += part.seen.size();
    if (i == 1) {
      std::string err = testing::error_of([&] { merge_shards(sharded); });
      EXPECT_NE(err.find("shard 2/3 has not run"), std::string::npos) << err;
    }
  }
  EXPECT_EQ(asked, 40u);  // every problem exactly once
  EvalResult m = merge_shards(sharded);
  for (const char* f : {"summary.json", "summary.md", "gsm8k.samples.jsonl", "math.samples.jsonl"})
    EXPECT_EQ(file(sharded / f), file(whole / f)) << f;
  EXPECT_EQ(m.summary, json::parse(file(whole / "summary.json")));
}

TEST(Runner, SamplingGivesPassAtKAndMajorityVote) {
  METAMATH_REQUIRE_DATA(data);
  auto dir = testing::temp_dir("eval_sampling");
  EvalOptions o = options(data, dir, "gsm8k");
  o.limit = 8;
  o.n = 4;
  o.temperature = 0.7;
  o.seed = 100;
  GoldOracle oracle = oracle_for(o.benchmarks, data);
  // Problem p gets c = p % 5 right samples first, then the same wrong answer.
  FakeBackend::Answer answer = [&](const llm::Request& r) {
    std::size_t pos = 0;
    const data::Problem& p = oracle.find(r, &pos);
    std::vector<std::string> texts;
    for (int s = 0; s < r.sampling.n; ++s)
      texts.push_back(s < static_cast<int>(pos % 5) ? "The answer is: " + p.answer
                                                    : "The answer is: 99999");
    return fake::choices(texts);
  };
  FakeBackend be(answer);
  EvalResult r = run_eval(be, o);
  for (const auto& req : be.seen) {
    std::size_t pos = 0;
    oracle.find(req, &pos);
    EXPECT_EQ(req.sampling.n, 4);
    EXPECT_EQ(req.sampling.temperature, 0.7);
    EXPECT_EQ(req.sampling.seed, 100u + 4u * pos);
  }
  // c per problem: 0 1 2 3 4 0 1 2 (hand-computed metrics below).
  const json& g = r.summary["results"]["gsm8k"];
  EXPECT_EQ(g["problems"], 8);
  EXPECT_EQ(g["samples"], 32);
  EXPECT_EQ(g["correct"], 13);
  EXPECT_DOUBLE_EQ(g["accuracy"].get<double>(), 13.0 / 32);
  EXPECT_DOUBLE_EQ(g["pass@k"]["1"].get<double>(), 13.0 / 32);
  // pass@2 per problem: 1 - C(4-c,2)/C(4,2) = 0, 1/2, 5/6, 1, 1, 0, 1/2, 5/6.
  EXPECT_NEAR(g["pass@k"]["2"].get<double>(), (0.5 + 5.0 / 6 + 1 + 1 + 0.5 + 5.0 / 6) / 8, 1e-12);
  EXPECT_DOUBLE_EQ(g["pass@k"]["4"].get<double>(), 6.0 / 8);
  // maj@4: right when c >= 3, or c == 2 (a 2-2 tie goes to the answer seen first, the right one).
  EXPECT_DOUBLE_EQ(g["maj@k"]["4"].get<double>(), 4.0 / 8);
  // maj@2 (first two samples): right when c >= 1.
  EXPECT_DOUBLE_EQ(g["maj@k"]["2"].get<double>(), 6.0 / 8);
  EXPECT_EQ(read_jsonl(dir / "gsm8k.samples.jsonl").size(), 32u);
  EXPECT_NE(r.markdown.find("maj@4"), std::string::npos);

  // A problem that lost one of its samples is generated again, whole.
  auto rows = read_jsonl(dir / "gsm8k.samples.jsonl");
  rows.erase(rows.begin() + 5);  // problem 1, sample 1
  {
    JsonlWriter w(dir / "gsm8k.samples.jsonl");
    for (const auto& row : rows) w.write(row);
    w.commit();
  }
  std::string before = file(dir / "summary.json");
  FakeBackend again(answer);
  run_eval(again, o);
  ASSERT_EQ(again.seen.size(), 1u);
  EXPECT_EQ(file(dir / "summary.json"), before);
}

TEST(Runner, RefusesToResumeARunWithOtherSettings) {
  METAMATH_REQUIRE_DATA(data);
  auto dir = testing::temp_dir("eval_settings");
  EvalOptions o = options(data, dir, "gsm8k");
  o.limit = 4;
  GoldOracle oracle = oracle_for(o.benchmarks, data);
  FakeBackend be(oracle.fn());
  run_eval(be, o);
  o.prompt = "cot";
  std::string err = testing::error_of([&] { run_eval(be, o); });
  EXPECT_NE(
      err.find("run.json: this folder holds a run with other settings (prompt: was \"alpaca\", "
               "now \"cot\")"),
      std::string::npos)
      << err;
  o.prompt = "alpaca";
  o.temperature = 0.5;
  err = testing::error_of([&] { run_eval(be, o); });
  EXPECT_NE(err.find("temperature: was 0.0, now 0.5"), std::string::npos) << err;
}

TEST(Runner, FailedRequestsKeepTheFinishedWorkAndAreRetried) {
  METAMATH_REQUIRE_DATA(data);
  auto whole = testing::temp_dir("eval_whole3");
  auto flaky = testing::temp_dir("eval_flaky");
  EvalOptions o = options(data, whole, "gsm8k");
  GoldOracle oracle = oracle_for(o.benchmarks, data);
  FakeBackend be(oracle.fn());
  run_eval(be, o);

  o.out_dir = flaky;
  FakeBackend failing([&](const llm::Request& r) {
    std::size_t pos = 0;
    oracle.find(r, &pos);
    if (pos == 5 || pos == 9) {
      llm::Result res;
      res.error_kind = llm::ErrorKind::Transient;
      res.error = "HTTP 503 after 6 attempts";
      return res;
    }
    return oracle.fn()(r);
  });
  std::string err = testing::error_of([&] { run_eval(failing, o); });
  EXPECT_NE(err.find("2 of 20 requests failed"), std::string::npos) << err;
  EXPECT_NE(err.find("HTTP 503 after 6 attempts"), std::string::npos) << err;
  EXPECT_NE(err.find("run the same command again"), std::string::npos) << err;
  EXPECT_EQ(read_jsonl(flaky / "gsm8k.samples.jsonl").size(), 18u);

  FakeBackend good(oracle.fn());
  run_eval(good, o);
  EXPECT_EQ(good.seen.size(), 2u);
  EXPECT_EQ(file(flaky / "summary.json"), file(whole / "summary.json"));
}

TEST(Runner, BadRequestsAreRecordedAsWrongWithTheReason) {
  METAMATH_REQUIRE_DATA(data);
  auto dir = testing::temp_dir("eval_badreq");
  EvalOptions o = options(data, dir, "gsm8k");
  o.limit = 4;
  GoldOracle oracle = oracle_for(o.benchmarks, data);
  FakeBackend be([&](const llm::Request& r) {
    std::size_t pos = 0;
    oracle.find(r, &pos);
    if (pos == 0) {
      llm::Result res;
      res.error_kind = llm::ErrorKind::BadRequest;
      res.error = "prompt is 5000 tokens, the context holds 4096";
      return res;
    }
    return oracle.fn()(r);
  });
  EvalResult r = run_eval(be, o);
  auto rows = read_jsonl(dir / "gsm8k.samples.jsonl");
  EXPECT_EQ(rows[0]["correct"], false);
  EXPECT_EQ(rows[0]["finish_reason"], "error");
  EXPECT_EQ(rows[0]["reason"], "backend error: prompt is 5000 tokens, the context holds 4096");
  const json& g = r.summary["results"]["gsm8k"];
  EXPECT_EQ(g["errors"], 1);
  EXPECT_EQ(g["correct"], 2);  // positions 1 and 2 right, 3 wrong by design
  EXPECT_NE(r.markdown.find("1 samples failed in the backend"), std::string::npos) << r.markdown;

  // Resuming keeps the error row; --retry-errors asks again for that problem only.
  FakeBackend idle(oracle.fn());
  run_eval(idle, o);
  EXPECT_TRUE(idle.seen.empty());
  o.retry_errors = true;
  FakeBackend good(oracle.fn());
  EvalResult fixed = run_eval(good, o);
  EXPECT_EQ(good.seen.size(), 1u);
  EXPECT_EQ(fixed.summary["results"]["gsm8k"]["errors"], 0);
  EXPECT_EQ(fixed.summary["results"]["gsm8k"]["correct"], 3);
}

TEST(Runner, ChatTemplatesSendMessages) {
  METAMATH_REQUIRE_DATA(data);
  auto dir = testing::temp_dir("eval_chat");
  EvalOptions o = options(data, dir, "math500");
  o.limit = 3;
  o.prompt = "chat_boxed";
  GoldOracle oracle = oracle_for(o.benchmarks, data);
  FakeBackend be(oracle.fn());
  EvalResult r = run_eval(be, o);
  ASSERT_EQ(be.seen.size(), 3u);
  for (const auto& req : be.seen) {
    ASSERT_TRUE(req.is_chat());
    ASSERT_EQ(req.messages.size(), 1u);
    EXPECT_EQ(req.messages[0].role, "user");
    EXPECT_NE(req.messages[0].content.find("\\boxed{ANSWER}"), std::string::npos);
    EXPECT_TRUE(req.sampling.stop.empty());  // the template's "% stop: []"
    EXPECT_EQ(req.sampling.max_tokens, 2048);
  }
  auto rows = read_jsonl(dir / "math500.samples.jsonl");
  EXPECT_EQ(rows[0]["messages"][0]["role"], "user");
  EXPECT_FALSE(rows[0].contains("prompt"));
  EXPECT_EQ(r.summary["results"]["math500"]["correct"],
            3);  // positions 0..2 are all answered right
}

// parse_shard and the environment rules are core/shard.h's (tests/core/shard_test.cpp).
TEST(Runner, ShardSuffixNamesTheFiles) {
  EXPECT_EQ(shard_suffix(parse_shard("0/1")), "");
  EXPECT_EQ(shard_suffix(parse_shard("1/4")), ".shard-1-of-4");
  EXPECT_EQ(shard_suffix(Shard{2, 8}), ".shard-2-of-8");
}

}  // namespace
}  // namespace metamath::eval
