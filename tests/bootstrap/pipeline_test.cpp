#include <gtest/gtest.h>

#include <random>
#include <set>

#include "answer/equiv.h"
#include "bootstrap/bootstrap.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/text.h"
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
  auto dir = metamath::testing::temp_dir("boot_small");
  Prompts prompts = load_prompts(default_prompts_dir());
  auto probs = small_problems();
  ScriptedWorld world(probs, prompts);
  FakeBackend be(world);
  Bootstrap b(dir);
  b.initialize(probs, test_options(), prompts);
  Bootstrap::RunOptions ro;
  ro.progress = false;
  Stats st = b.run(be, ro);
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
  uint64_t sent = be.sent;
  Bootstrap again(dir);
  again.check_same(test_options(), prompts);
  again.run(be, ro);
  EXPECT_EQ(be.sent, sent);
  EXPECT_EQ(got(again), want);
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
  auto dir = metamath::testing::temp_dir("boot_fail");
  Prompts prompts = load_prompts(default_prompts_dir());
  auto probs = small_problems();
  ScriptedWorld world(probs, prompts);
  FakeBackend be(world);
  be.fail_keyword = "Rewrite each question in your own words";  // the rephrase prompt
  Bootstrap b(dir);
  b.initialize(probs, test_options(), prompts);
  Bootstrap::RunOptions ro;
  ro.progress = false;
  Stats st = b.run(be, ro);
  EXPECT_EQ(st.methods[Method::Rephrased].failed, 2u);
  EXPECT_EQ(st.methods[Method::Rephrased].kept, 0u);
  be.fail_keyword.clear();
  ro.retry_failed = true;
  b.run(be, ro);
  EXPECT_EQ(got(b), testing::expected_records(probs, test_options()));
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
  auto dir = metamath::testing::temp_dir("boot_targets");
  Prompts prompts = load_prompts(default_prompts_dir());
  auto probs = small_problems();
  ScriptedWorld world(probs, prompts);
  FakeBackend be(world);
  Bootstrap b(dir);
  b.initialize(probs, one_sample_options(), prompts);
  Bootstrap::RunOptions ro;
  ro.progress = false;
  b.run_to_targets(be, ro, small_targets());
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
  auto dir = metamath::testing::temp_dir("boot_targets_cap");
  Prompts prompts = load_prompts(default_prompts_dir());
  auto probs = small_problems();
  ScriptedWorld world(probs, prompts);
  FakeBackend be(world);
  Bootstrap b(dir);
  Options o = one_sample_options();
  o.methods = {Method::AnsAug};
  b.initialize(probs, o, prompts);
  Bootstrap::RunOptions ro;
  ro.progress = false;
  Targets t;
  t.per_type = {{"GSM_AnsAug", 1000}, {"GSM_FOBAR", 5}};
  t.per_question_cap = 5;
  b.run_to_targets(be, ro, t);
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
  auto dir = metamath::testing::temp_dir("boot_targets_budget");
  Prompts prompts = load_prompts(default_prompts_dir());
  auto probs = small_problems();
  ScriptedWorld world(probs, prompts);
  FakeBackend be(world);
  Bootstrap b(dir);
  b.initialize(probs, one_sample_options(), prompts);
  Targets t = small_targets();
  t.budget_tokens = 1;  // spent by the first round
  Bootstrap::RunOptions ro;
  ro.progress = false;
  b.run_to_targets(be, ro, t);
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
