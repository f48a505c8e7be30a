#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "answer/equiv.h"
#include "bootstrap/bootstrap.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/text.h"
#include "official_requests.h"
#include "scripted_world.h"
#include "test_util.h"

namespace metamath::bootstrap {
namespace {

using testing::Expected;
using testing::ScriptedWorld;

// An in-process Backend that answers from the scripted world, optionally failing some requests.
class FakeBackend : public llm::Backend {
 public:
  explicit FakeBackend(const ScriptedWorld& w) : world_(w) {}
  void generate(const std::vector<llm::Request>& reqs, const llm::ResultCallback& cb) override {
    for (const auto& r : reqs) {
      ++sent;
      llm::Result res;
      res.id = r.id;
      if (fail_keyword.size() && r.prompt.find(fail_keyword) != std::string::npos) {
        res.error_kind = llm::ErrorKind::Transient;
        res.error = "scripted failure";
        cb(std::move(res));
        continue;
      }
      for (int c = 0; c < r.sampling.n; ++c)
        res.choices.push_back({world_.respond(r.prompt, r.sampling.seed.value_or(0), c), "stop"});
      res.prompt_tokens = static_cast<int>(r.prompt.size() / 4);
      res.completion_tokens = 10 * r.sampling.n;
      cb(std::move(res));
    }
  }
  std::vector<std::vector<float>> embed(const std::vector<std::string>&) override { return {}; }
  std::string model_name() const override { return "scripted"; }

  std::string fail_keyword;
  uint64_t sent = 0;

 private:
  const ScriptedWorld& world_;
};

// Hand-written seed problems (GSM8K train style), independent of the data folder.
std::vector<data::Problem> small_problems() {
  std::vector<data::Problem> ps(2);
  ps[0].id = "t/0";
  ps[0].dataset = "gsm8k";
  ps[0].style = "gsm8k";
  ps[0].question = "Sam has 12 apples and buys 30 more. How many apples does he have?";
  ps[0].solution = "Sam has 12 + 30 = <<12+30=42>>42 apples.\n#### 42";
  ps[0].answer = "42";
  ps[1].id = "t/1";
  ps[1].dataset = "math";
  ps[1].style = "math";
  ps[1].question = "Compute $7 \\cdot 6$.";
  ps[1].solution = "We have $7 \\cdot 6 = \\boxed{42}$.";
  ps[1].answer = "42";
  return ps;
}

Options test_options() {
  Options o;
  o.ansaug_samples = 4;
  o.rephrasings = 3;  // the third rephrasing repeats the first and must be dropped
  o.rephrase_attempts = 3;
  o.backward_masks = 1000;  // every candidate
  o.backward_samples = 2;
  o.seed = 7;
  return o;
}

std::vector<Expected> got(const Bootstrap& b) {
  std::vector<Expected> out;
  for (const Record& r : b.records()) out.push_back({r.type, r.query, r.gold});
  std::sort(out.begin(), out.end());
  return out;
}

// A job on small_problems() with our prompts in a fresh folder, initialized with `o`, answered in
// process by the scripted world; run options without a progress bar.
struct ScriptedJob {
  explicit ScriptedJob(const std::string& name, const Options& o = test_options())
      : dir(metamath::testing::temp_dir(name)),
        prompts(load_prompts(default_prompts_dir())),
        probs(small_problems()),
        world(probs, prompts),
        be(world),
        b(dir) {
    b.initialize(probs, o, prompts);
    ro.progress = false;
  }
  std::filesystem::path dir;
  Prompts prompts;
  std::vector<data::Problem> probs;
  ScriptedWorld world;
  FakeBackend be;
  Bootstrap b;
  Bootstrap::RunOptions ro;
};

// Kept responses end as MetaMathQA's: "#### A\nThe answer is: A" for GSM8K, "The answer is: A"
// for MATH.
TEST(Verify, NormalisesTheEnding) {
  using answer::Style;
  auto v = verify_solution(" 12 + 30 = 42 apples.\nThe answer is: 42\n\nQuestion: next", "42",
                           Style::Gsm8k);
  ASSERT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.response, "12 + 30 = 42 apples.\n#### 42\nThe answer is: 42");
  v = verify_solution("He has 12 + 30 = 42.\n#### 42", "42", Style::Gsm8k);
  ASSERT_TRUE(v.ok);
  EXPECT_EQ(v.response, "He has 12 + 30 = 42.\n#### 42\nThe answer is: 42");
  v = verify_solution("So $x = \\boxed{\\frac{1}{2}}$.", "\\frac12", Style::Math);
  ASSERT_TRUE(v.ok);
  EXPECT_EQ(v.response, "So $x = \\boxed{\\frac{1}{2}}$.\nThe answer is: \\frac12");
  v = verify_solution("1.5x = 72, so x = 48.\nThe value of x is 48.", "48", Style::Gsm8k);
  ASSERT_TRUE(v.ok);
  EXPECT_EQ(v.response, "1.5x = 72, so x = 48.\nThe value of x is 48.\n#### 48\nThe answer is: 48");
  // lm-eval minerva_math's ending: the sentence goes, MetaMath's ending replaces it.
  v = verify_solution("So $x=5$.\nFinal Answer: The final answer is $5$. I hope it is correct.",
                      "5", Style::Math);
  ASSERT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.response, "So $x=5$.\nThe answer is: 5");
  v = verify_solution("Thus 2+3 = 5. The final answer is 5.", "5", Style::Gsm8k);
  ASSERT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.response, "Thus 2+3 = 5.\n#### 5\nThe answer is: 5");
  // A model that already wrote both lines: one of each is kept.
  v = verify_solution("So 5.\n#### 5\nThe answer is: 5", "5", Style::Gsm8k);
  ASSERT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.response, "So 5.\n#### 5\nThe answer is: 5");
  // Wrong answer, and a bare last number that is not a stated final answer.
  EXPECT_FALSE(verify_solution("So 43.\nThe answer is: 43", "42", Style::Gsm8k).ok);
  EXPECT_FALSE(
      verify_solution("I think it is 12 + 30 = 42 apples in all today", "42", Style::Gsm8k).ok);
}

TEST(Pipeline, KeepsExactlyTheScriptedCorrectRecords) {
  ScriptedJob job("boot_small");
  Bootstrap& b = job.b;
  const auto& probs = job.probs;
  Stats st = b.run(job.be, job.ro);
  auto want = testing::expected_records(probs, test_options());
  EXPECT_EQ(got(b), want);
  EXPECT_EQ(st.total().kept, want.size());
  EXPECT_EQ(st.total().pending + st.total().in_flight + st.total().failed, 0u);
  for (const Record& r : b.records()) {
    EXPECT_TRUE(text::ends_with(r.response, "The answer is: " + r.gold)) << r.response;
    EXPECT_EQ(r.response.find("Question:"), std::string::npos);
    EXPECT_EQ(r.original_question, probs[r.problem_id == "t/0" ? 0 : 1].question);
  }
  // Four methods on both styles are present.
  std::set<std::string> types;
  for (const auto& e : want) types.insert(e.type);
  EXPECT_EQ(types.size(), 8u);

  // A second run on the finished store sends nothing and changes nothing.
  uint64_t sent = job.be.sent;
  Bootstrap again(job.dir);
  again.check_same(test_options(), job.prompts);
  again.run(job.be, job.ro);
  EXPECT_EQ(job.be.sent, sent);
  EXPECT_EQ(got(again), want);
}

// The official prompt set (bootstrap/official_prompts.h) in a checkout-like fixture written here
// (tests/bootstrap/fixtures/official_prompts: our own shots in the official layout).
const std::filesystem::path kOfficialCheckout =
    std::filesystem::path(METAMATH_SOURCE_DIR) / "tests/bootstrap/fixtures/official_prompts";

// Turns an official request's user message back into the prompt our templates would have made
// for the same question (the kind told by the prompt file the message starts with), so that the
// scripted world can answer it.
class OfficialToOurs {
 public:
  OfficialToOurs(const Prompts& ours, const OfficialPrompts& official)
      : ours_(ours), official_(official) {}

  std::string operator()(const std::string& user) const {
    const std::string marker = "\n\nQuestion: ";
    std::string q = user.substr(user.rfind(marker) + marker.size());
    for (const auto& [name, text] : official_.files) {
      if (!text::starts_with(user, text + marker)) continue;
      const bool math = text::ends_with(name, "_math.txt");
      if (name.starts_with("rephrase_cot"))
        return fill_prompt(ours_.rephrase, q.substr(0, q.rfind("\nRephrase the above question: ")));
      if (name.starts_with("sv_rewrite")) {
        std::size_t a = q.rfind(" The answer is ");
        std::string ans = q.substr(a + 15, q.rfind(".\n Result: ") - a - 15);
        return fill_prompt(ours_.sv_rewrite, q.substr(0, a), ans);
      }
      q = q.substr(0, q.rfind("\nA: Let's think step by step.\n"));
      if (name.starts_with("ansaug_cot"))
        return fill_prompt(math ? ours_.solve_math : ours_.solve_gsm8k, q);
      // Backward: back to MetaMathQA's form.
      q = text::replace_all(text::replace_all(q, "\n### If we know", "\nIf we know"),
                            "variable $X$?", "variable X?");
      return fill_prompt(math ? ours_.backward_math : ours_.backward_gsm8k, q);
    }
    throw std::runtime_error("not an official prompt: " + user.substr(0, 80));
  }

 private:
  const Prompts& ours_;
  const OfficialPrompts& official_;
};

// An in-process Backend for the official prompt set: records every request and answers it from
// the scripted world.
class OfficialScriptedBackend : public llm::Backend {
 public:
  OfficialScriptedBackend(const ScriptedWorld& w, const OfficialToOurs& to_ours)
      : world_(w), to_ours_(to_ours) {}
  void generate(const std::vector<llm::Request>& reqs, const llm::ResultCallback& cb) override {
    for (const auto& r : reqs) {
      sent.push_back(r);
      llm::Result res;
      res.id = r.id;
      const std::string prompt = to_ours_(r.messages.back().content);
      for (int c = 0; c < r.sampling.n; ++c)
        res.choices.push_back({world_.respond(prompt, r.sampling.seed.value_or(0), c), "stop"});
      cb(std::move(res));
    }
  }
  std::vector<std::vector<float>> embed(const std::vector<std::string>&) override { return {}; }
  std::string model_name() const override { return "scripted"; }

  std::vector<llm::Request> sent;

 private:
  const ScriptedWorld& world_;
  const OfficialToOurs& to_ours_;
};

// Four of the requests bootstrap must send for small_problems() with the fixture's prompts,
// written out by hand: the prompt file, then the question as the official scripts ask it.
std::vector<std::string> hand_written_official_requests() {
  return {
      testing::kOfficialFobarMathRequest, testing::kOfficialSvRewriteGsmRequest,
      // SV step 2, GSM8K, 12 masked: the kept part, the scripted statement, the question for x.
      "Find the unknown variable x from the facts each problem gives.\n"
      "\n"
      "Question: Tom has x boxes with 4 pens in each box. Tom has 12 pens. What is the value "
      "of unknown variable x?\n"
      "A: Let's think step by step.\n"
      "Tom has 4x pens, and 4x = 12, so x = 3.\n"
      "The value of x is 3.\n"
      "\n"
      "Question: Sam has x apples and buys 30 more. The answer to: How many apples does he have "
      "is 42. What is the value of unknown variable x?\n"
      "A: Let's think step by step.\n",
      // The solve of the MATH question's second rephrasing.
      "Question: What is $2^5$?\n"
      "A: Let's think step by step.\n"
      "Doubling $1$ five times gives $2^5 = \\boxed{32}$.\n"
      "The answer is 32\n"
      "\n"
      "Question: In other words, Compute $7 \\cdot 6$.\n"
      "A: Let's think step by step.\n"};
}

// With the official prompt set, bootstrap sends the official requests (chat messages, the
// system message first, no stop strings) and keeps the same records as with our templates.
TEST(Pipeline, OfficialPromptsSendTheOfficialRequests) {
  Prompts ours = load_prompts(default_prompts_dir());
  Prompts official = load_prompts(kOfficialCheckout);
  ASSERT_TRUE(official.official.has_value());
  auto probs = small_problems();
  ScriptedWorld world(probs, ours);
  OfficialToOurs to_ours(ours, *official.official);
  OfficialScriptedBackend be(world, to_ours);
  auto dir = metamath::testing::temp_dir("boot_official");
  Bootstrap b(dir);
  b.initialize(probs, test_options(), official);
  Bootstrap::RunOptions ro;
  ro.progress = false;
  Stats st = b.run(be, ro);
  EXPECT_EQ(got(b), testing::expected_records(probs, test_options()));
  EXPECT_EQ(st.prompt_set, "official");

  std::set<std::string> users;
  for (const llm::Request& r : be.sent) {
    ASSERT_EQ(r.messages.size(), 2u);
    EXPECT_EQ(r.messages[0].role, "system");
    EXPECT_EQ(r.messages[0].content, "Answer the way the examples do.");
    EXPECT_EQ(r.messages[1].role, "user");
    EXPECT_TRUE(r.prompt.empty());
    EXPECT_TRUE(r.sampling.stop.empty());
    users.insert(r.messages[1].content);
  }
  for (const std::string& want : hand_written_official_requests())
    EXPECT_EQ(users.count(want), 1u) << want;
}

// An OpenAI-compatible chat endpoint over the scripted world that keeps every request body.
class ScriptedChatServer {
 public:
  ScriptedChatServer(const ScriptedWorld& w, const OfficialToOurs& to_ours)
      : world_(w), to_ours_(to_ours) {
    svr_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      nlohmann::json b = nlohmann::json::parse(req.body);
      const int n = b.value("n", 1);
      const uint64_t seed = b.value("seed", uint64_t{0});
      nlohmann::json out = {
          {"id", "x"}, {"object", "chat.completion"}, {"choices", nlohmann::json::array()}};
      try {
        const std::string prompt = to_ours_(b["messages"].back()["content"].get<std::string>());
        for (int c = 0; c < n; ++c)
          out["choices"].push_back(
              {{"index", c},
               {"message", {{"role", "assistant"}, {"content", world_.respond(prompt, seed, c)}}},
               {"finish_reason", "stop"}});
      } catch (const std::exception& e) {
        res.status = 400;
        res.set_content(nlohmann::json{{"error", {{"message", e.what()}}}}.dump(),
                        "application/json");
        return;
      }
      out["usage"] = {
          {"prompt_tokens", 100}, {"completion_tokens", 20 * n}, {"total_tokens", 100 + 20 * n}};
      {
        std::lock_guard lock(mu_);
        bodies.push_back(std::move(b));
      }
      res.set_content(out.dump(), "application/json");
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    while (!svr_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~ScriptedChatServer() {
    svr_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::vector<nlohmann::json> bodies;  // read after the client is done

 private:
  const ScriptedWorld& world_;
  const OfficialToOurs& to_ours_;
  httplib::Server svr_;
  std::mutex mu_;
  int port_ = 0;
  std::thread thread_;
};

// `metamath bootstrap --prompts CHECKOUT` over HTTP: the endpoint gets the official requests,
// records.jsonl holds the records the script must yield, stats.json names the prompt set.
TEST(Pipeline, CliWithOfficialPromptsSendsTheOfficialRequestsOverHttp) {
  auto dir = metamath::testing::temp_dir("boot_official_cli");
  auto probs = small_problems();
  JsonlWriter g(dir / "gsm8k.jsonl");
  g.write({{"question", probs[0].question}, {"answer", probs[0].solution}});
  g.commit();
  JsonlWriter m(dir / "math.jsonl");
  m.write({{"problem", probs[1].question}, {"solution", probs[1].solution}});
  m.commit();
  std::vector<data::Problem> seeds = data::load_gsm8k(dir / "gsm8k.jsonl");
  for (auto& p : data::load_math(dir / "math.jsonl")) seeds.push_back(p);

  Prompts ours = load_prompts(default_prompts_dir());
  Prompts official = load_prompts(kOfficialCheckout);
  ScriptedWorld world(seeds, ours);
  OfficialToOurs to_ours(ours, *official.official);
  ScriptedChatServer srv(world, to_ours);
  const std::string cmd =
      metamath::testing::metamath_bin() + " bootstrap -q --backend openai --model scripted" +
      " --base-url " + srv.url() + " --max-attempts 1 --gsm8k " + (dir / "gsm8k.jsonl").string() +
      " --math " + (dir / "math.jsonl").string() + " --prompts " + kOfficialCheckout.string() +
      " --out " + (dir / "out").string() +
      " -k 4 --rephrasings 3 --rephrase-attempts 3 --masks 64 --backward-samples 2 --seed 7";
  auto r = metamath::testing::run_command(cmd);
  ASSERT_EQ(r.code, 0) << r.output;

  std::vector<Expected> records;
  for (const auto& j : read_jsonl(dir / "out" / "records.jsonl"))
    records.push_back({j["type"], j["query"], j["gold"]});
  std::sort(records.begin(), records.end());
  EXPECT_EQ(records, testing::expected_records(seeds, test_options()));
  auto stats = read_json_file(dir / "out" / "stats.json");
  EXPECT_EQ(stats["prompts"]["set"], "official");
  EXPECT_EQ(stats["prompts"]["dir"],
            (kOfficialCheckout / "code_for_generating_data/configs").string());

  std::set<std::string> users;
  for (const auto& b : srv.bodies) {
    EXPECT_FALSE(b.contains("stop")) << b.dump();
    ASSERT_EQ(b["messages"].size(), 2u);
    EXPECT_EQ(b["messages"][0]["role"], "system");
    EXPECT_EQ(b["messages"][0]["content"], "Answer the way the examples do.");
    users.insert(b["messages"][1]["content"].get<std::string>());
  }
  for (const std::string& want : hand_written_official_requests())
    EXPECT_EQ(users.count(want), 1u) << want;
}

TEST(Pipeline, ResumeAfterCrashesNeverLosesOrDuplicates) {
  METAMATH_REQUIRE_DATA(data);
  Prompts prompts = load_prompts(default_prompts_dir());
  auto probs = data::load_gsm8k(data / "gsm8k" / "train.jsonl");
  probs.resize(30);
  ScriptedWorld world(probs, prompts);
  auto want = testing::expected_records(probs, test_options());

  auto dir = metamath::testing::temp_dir("boot_crash");
  {
    Bootstrap b(dir);
    b.initialize(probs, test_options(), prompts);
  }
  std::mt19937 rng(11);
  int crashes = 0;
  for (int round = 0; round < 200; ++round) {
    FakeBackend be(world);
    Bootstrap b(dir);
    Bootstrap::RunOptions ro;
    ro.progress = false;
    uint64_t stop_at = std::uniform_int_distribution<uint64_t>(1, 60)(rng);
    ro.after_result = [&](uint64_t n) {
      if (n == stop_at) throw std::runtime_error("simulated crash");
    };
    try {
      b.run(be, ro);
      break;
    } catch (const std::runtime_error& e) {
      ASSERT_STREQ(e.what(), "simulated crash");
      ++crashes;
    }
  }
  EXPECT_GT(crashes, 5);
  Bootstrap b(dir);
  EXPECT_EQ(got(b), want);
  Stats st = b.stats();
  EXPECT_EQ(st.total().kept, want.size());
  EXPECT_EQ(st.total().pending + st.total().in_flight, 0u);
}

TEST(Pipeline, FailedRequestsAreRecordedAndRetriedOnRequest) {
  ScriptedJob job("boot_fail");
  job.be.fail_keyword = "Rewrite each question in your own words";  // the rephrase prompt
  Stats st = job.b.run(job.be, job.ro);
  EXPECT_EQ(st.methods[Method::Rephrased].failed, 2u);
  EXPECT_EQ(st.methods[Method::Rephrased].kept, 0u);
  job.be.fail_keyword.clear();
  job.ro.retry_failed = true;
  job.b.run(job.be, job.ro);
  EXPECT_EQ(got(job.b), testing::expected_records(job.probs, test_options()));
}

TEST(Pipeline, ResumingWithOtherSettingsIsAnError) {
  auto dir = metamath::testing::temp_dir("boot_settings");
  Prompts prompts = load_prompts(default_prompts_dir());
  Bootstrap b(dir);
  b.initialize(small_problems(), test_options(), prompts);
  Options o = test_options();
  o.ansaug_samples = 8;
  EXPECT_NE(metamath::testing::error_of([&] { b.check_same(o, prompts); }).find("ansaug_samples=4"),
            std::string::npos);
  Prompts p2 = prompts;
  p2.rephrase += "\nmore";
  EXPECT_NE(metamath::testing::error_of([&] { b.check_same(test_options(), p2); }).find("rephrase"),
            std::string::npos);
}

TEST(Pipeline, PlanCountsFirstRequests) {
  auto dir = metamath::testing::temp_dir("boot_plan");
  Prompts prompts = load_prompts(default_prompts_dir());
  Bootstrap b(dir);
  auto probs = small_problems();
  b.initialize(probs, test_options(), prompts);
  auto rows = b.plan();
  ASSERT_EQ(rows.size(), 4u);
  // AnsAug: one request per problem; Rephrased: one rephrase request per problem; SV and FOBAR:
  // one request per masked number (Sam: 12, 30; MATH: 7, 6).
  EXPECT_EQ(rows[0].first_requests, 2u);
  EXPECT_EQ(rows[1].first_requests, 2u);
  EXPECT_EQ(rows[1].max_requests, 2u + 2u * 3u * 3u);
  EXPECT_EQ(rows[2].first_requests, 4u);
  EXPECT_EQ(rows[3].first_requests, 4u);
  EXPECT_GT(rows[0].completion_tokens, 0);
}

// Target-driven sampling: rounds sized from the measured yield until each target (plus margin) is
// kept. The scripted world gets about one solve in three wrong, so one sample per question is far
// from the targets and only rounds can reach them.
Options one_sample_options() {
  Options o = test_options();
  o.ansaug_samples = 1;
  o.rephrasings = 1;
  o.backward_samples = 1;
  return o;
}

Targets small_targets() {
  Targets t;
  t.per_type = {{"GSM_AnsAug", 10},
                {"GSM_FOBAR", 6},
                {"GSM_SV", 4},
                {"GSM_Rephrased", 3},
                {"MATH_AnsAug", 5}};
  t.margin = 0.2;
  return t;
}

// Records as (job, choice, query, response): what a resumed run must reproduce exactly.
std::set<std::tuple<std::string, int, std::string, std::string>> record_set(const Bootstrap& b) {
  std::set<std::tuple<std::string, int, std::string, std::string>> out;
  for (const Record& r : b.records()) out.insert({r.job, r.choice, r.query, r.response});
  return out;
}

TEST(Targets, RoundsReachEachTargetPlusMargin) {
  ScriptedJob job("boot_targets", one_sample_options());
  Bootstrap& b = job.b;
  b.run_to_targets(job.be, job.ro, small_targets());
  auto kept = b.kept_by_type();
  // ceil(target * 1.2): 12, 8, 5, 4, 6.
  EXPECT_GE(kept["GSM_AnsAug"], 12u);
  EXPECT_GE(kept["GSM_FOBAR"], 8u);
  EXPECT_GE(kept["GSM_SV"], 5u);
  EXPECT_GE(kept["GSM_Rephrased"], 4u);
  EXPECT_GE(kept["MATH_AnsAug"], 6u);
  // Types without a target got no round: MATH FOBAR keeps its first-round records only.
  EXPECT_LE(kept["MATH_FOBAR"], 2u);
  // Everything sent was recorded; nothing is left over.
  Stats st = b.stats();
  EXPECT_EQ(st.total().pending + st.total().in_flight + st.total().failed, 0u);
  // Every kept record is still a verified one (ends as MetaMathQA's).
  for (const Record& r : b.records())
    EXPECT_TRUE(text::ends_with(r.response, "The answer is: " + r.gold)) << r.response;
  // Met: another top-up adds nothing.
  EXPECT_EQ(b.top_up(small_targets()).jobs, 0u);
}

TEST(Targets, PerQuestionCapAndRoundLimitStopWithAReason) {
  Options o = one_sample_options();
  o.methods = {Method::AnsAug};
  ScriptedJob job("boot_targets_cap", o);
  Bootstrap& b = job.b;
  Targets t;
  t.per_type = {{"GSM_AnsAug", 1000}, {"GSM_FOBAR", 5}};
  t.per_question_cap = 5;
  b.run_to_targets(job.be, job.ro, t);
  // The one GSM8K question was sampled exactly up to the cap.
  EXPECT_EQ(b.stats().methods.at(Method::AnsAug).samples, 5u + 1u);  // + the MATH question's one
  TopUp u = b.top_up(t);
  EXPECT_EQ(u.jobs, 0u);
  EXPECT_EQ(u.stopped["GSM_AnsAug"], "per-question cap (5) reached");
  EXPECT_EQ(u.stopped["GSM_FOBAR"], "method not selected (--methods)");
  t.per_question_cap = 1000;
  t.max_rounds = 1;
  EXPECT_EQ(b.top_up(t).stopped["GSM_AnsAug"], "1 rounds done");
}

TEST(Targets, CrashesMidRoundResumeWithoutLossOrDuplicates) {
  Prompts prompts = load_prompts(default_prompts_dir());
  auto probs = small_problems();
  ScriptedWorld world(probs, prompts);
  Bootstrap::RunOptions ro;
  ro.progress = false;
  auto clean_dir = metamath::testing::temp_dir("boot_targets_clean");
  {
    FakeBackend be(world);
    Bootstrap b(clean_dir);
    b.initialize(probs, one_sample_options(), prompts);
    b.run_to_targets(be, ro, small_targets());
  }
  auto dir = metamath::testing::temp_dir("boot_targets_crash");
  {
    Bootstrap b(dir);
    b.initialize(probs, one_sample_options(), prompts);
  }
  std::mt19937 rng(5);
  int crashes = 0;
  for (int attempt = 0; attempt < 200; ++attempt) {
    FakeBackend be(world);
    Bootstrap b(dir);
    Bootstrap::RunOptions kill = ro;
    uint64_t stop_at = std::uniform_int_distribution<uint64_t>(1, 8)(rng);
    kill.after_result = [&](uint64_t n) {
      if (n == stop_at) throw std::runtime_error("simulated crash");
    };
    try {
      b.run_to_targets(be, kill, small_targets());
      break;
    } catch (const std::runtime_error& e) {
      ASSERT_STREQ(e.what(), "simulated crash");
      ++crashes;
    }
  }
  EXPECT_GT(crashes, 3);
  Bootstrap clean(clean_dir), resumed(dir);
  EXPECT_EQ(record_set(resumed), record_set(clean));
  EXPECT_EQ(resumed.kept_by_type(), clean.kept_by_type());
}

TEST(Targets, BudgetStopsRoundsAndThePlanSaysWhatTheCapAllows) {
  ScriptedJob job("boot_targets_budget", one_sample_options());
  Bootstrap& b = job.b;
  Targets t = small_targets();
  t.budget_tokens = 1;  // spent by the first round
  b.run_to_targets(job.be, job.ro, t);
  TopUp u = b.top_up(t);
  EXPECT_EQ(u.jobs, 0u);
  EXPECT_EQ(u.stopped["GSM_AnsAug"], "token budget (1) spent");
  // Dollars: the FakeBackend reports 10 completion tokens per sample; at $1e6 per million that
  // is far over a $1 budget.
  t.budget_tokens = 0;
  t.budget_usd = 1;
  EXPECT_NE(metamath::testing::error_of([&] { b.top_up(t); }).find("--price"), std::string::npos);
  t.price_completion_per_m = 1e6;
  EXPECT_EQ(b.top_up(t).stopped["GSM_AnsAug"], "cost budget ($1.00) spent");

  // The plan: one GSM8K question can give at most cap * yield AnsAug records.
  Targets big;
  big.per_type = {{"GSM_AnsAug", 100}};
  big.per_question_cap = 5;
  auto rows = b.target_plan(big);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].want, 110u);
  EXPECT_EQ(rows[0].bases, 1u);
  EXPECT_LT(rows[0].reachable, 5.01);
  EXPECT_NE(format_target_plan(rows, big).find("| **no** |"), std::string::npos);
}

}  // namespace
}  // namespace metamath::bootstrap
