// MetaMathQA's formats (bootstrap/metamathqa.h), checked against records written here by hand in
// the style of the released data (meta-math/MetaMathQA): the FOBAR line after a newline, SV as
// "{kept part}{statement} What is the value of unknown variable x?", number words masked as
// MetaMath's script masks them ("half" -> "x%"), and responses ending "#### A\nThe answer is: A"
// (GSM8K) or "The answer is: A" (MATH). Each record's arithmetic was checked by hand.
#include "bootstrap/metamathqa.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "bootstrap/bootstrap.h"
#include "core/text.h"
#include "data/problem.h"
#include "test_util.h"

namespace metamath::bootstrap {
namespace {

using answer::Style;

TEST(MetaMathQA, FobarQueryHasANewlineAndTheStylesUnknown) {
  EXPECT_EQ(fobar_query(" Tom has x cats. How many legs do they have? \n", "8", Style::Gsm8k),
            "Tom has x cats. How many legs do they have?\nIf we know the answer to the above "
            "question is 8, what is the value of unknown variable x?");
  EXPECT_EQ(fobar_query("Compute $X \\cdot 7$.", "\\frac{1}{2}", Style::Math),
            "Compute $X \\cdot 7$.\nIf we know the answer to the above question is \\frac{1}{2}, "
            "what is the value of unknown variable X?");
}

TEST(MetaMathQA, SvSplitKeepsEverythingBeforeTheFinalSentence) {
  SvParts p = sv_split("Tom has x cats.  Each has 4 legs. How many legs are there? ", Style::Gsm8k);
  EXPECT_EQ(p.kept, "Tom has x cats.  Each has 4 legs. ");
  EXPECT_EQ(p.final, "How many legs are there?");
  EXPECT_EQ(sv_query(p, "There are 8 legs", Style::Gsm8k),
            "Tom has x cats.  Each has 4 legs. There are 8 legs. What is the value of unknown "
            "variable x?");
  SvParts one = sv_split("If Tom has x cats, how many legs are there?", Style::Gsm8k);
  EXPECT_EQ(one.kept, "");
  EXPECT_EQ(sv_query(one, "If Tom has x cats, there are 8 legs.", Style::Gsm8k),
            "If Tom has x cats, there are 8 legs. What is the value of unknown variable x?");
}

TEST(MetaMathQA, SvCheckRejectsDroppedUnknownsAndStatedValues) {
  // The unknown is in the final sentence: the statement must keep it.
  SvParts in_final = sv_split("A box holds 6 pens. How many pens are in x boxes?", Style::Gsm8k);
  EXPECT_EQ(sv_check(in_final, "There are 24 pens in x boxes.", "4", "24", Style::Gsm8k), "");
  EXPECT_EQ(sv_check(in_final, "There are 24 pens in the boxes.", "4", "24", Style::Gsm8k),
            kSvDropsUnknown);
  EXPECT_EQ(sv_check(in_final, "There are 24 pens in x boxes, that is four boxes.", "4", "24",
                     Style::Gsm8k),
            kSvStatesValue);
  EXPECT_EQ(sv_check(in_final, "There are 24 pens in x = 4.0 boxes.", "4", "24", Style::Gsm8k),
            kSvStatesValue);
  // The unknown is in the kept part: the statement may hold the masked value where the final
  // sentence or the answer already did.
  SvParts kept = sv_split("A box holds x pens. How many pens are in 4 boxes?", Style::Gsm8k);
  EXPECT_EQ(sv_check(kept, "There are 24 pens in 4 boxes.", "4", "24", Style::Gsm8k), "");
  EXPECT_EQ(sv_check(kept, "There are 24 pens in 4 boxes of 4.", "4", "24", Style::Gsm8k),
            kSvStatesValue);
  EXPECT_EQ(sv_check(kept, "How many pens are in 4 boxes?", "4", "24", Style::Gsm8k), kSvAsks);
  EXPECT_EQ(sv_check(kept, "  ", "4", "24", Style::Gsm8k), kSvEmpty);
  // The answer equal to the masked value: stating it once is the answer, not the value.
  SvParts same = sv_split("Sam has x apples. How many apples does Sam have?", Style::Gsm8k);
  EXPECT_EQ(sv_check(same, "Sam has 5 apples in all.", "5", "5", Style::Gsm8k), "");
  EXPECT_EQ(sv_check(same, "Sam has 5 apples, 5 red ones.", "5", "5", Style::Gsm8k),
            kSvStatesValue);
  // MATH: the unknown is X; x is another variable.
  SvParts m = sv_split("Let $y = X$. What is the value of $x$ if $x + y = 5$?", Style::Math);
  EXPECT_EQ(m.final, "What is the value of $x$ if $x + y = 5$?");
  EXPECT_EQ(sv_check(m, "The value of $x$ is 3 if $x + y = 5$.", "2", "3", Style::Math), "");
}

TEST(MetaMathQA, ResponsesEndAsTheReleasedData) {
  EXPECT_EQ(metamathqa_response(" So 2 + 3 = 5.\n", "5", Style::Gsm8k),
            "So 2 + 3 = 5.\n#### 5\nThe answer is: 5");
  EXPECT_EQ(metamathqa_response("So 2 + 3 = 5.\n#### 5", "5", Style::Gsm8k),
            "So 2 + 3 = 5.\n#### 5\nThe answer is: 5");
  EXPECT_EQ(metamathqa_response("So $2 + 3 = \\boxed{5}$.", "5", Style::Math),
            "So $2 + 3 = \\boxed{5}$.\nThe answer is: 5");
  EXPECT_EQ(metamathqa_response("", "5", Style::Gsm8k), "#### 5\nThe answer is: 5");
}

// ---------------------------------------------------------------------------------------------
// Records written by hand in the released style, and what the pipeline keeps for the same
// questions when the LLM answers with the same reasoning.

struct HandRecord {
  const char* type;
  const char* query;
  const char* response;
  const char* gold;
  const char* completion;  // what the LLM sends back for the query (before normalisation)
};

const char* kNatalia =
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?";
const char* kWeng =
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
    "How much did she earn?";
const char* kDistance = "Find the distance between the points $(-5,-2)$ and $(7,3)$.";
const char* kSquares = "If $a+b = 6$ and $a - b = 2$, what is the value of $a^2 - b^2$?";
const char* kMn = "Let $m$ and $n$ satisfy $mn=4$ and $m+n=5$. What is $|m-n|$?";
const char* kPens = "A box holds 6 pens. How many pens are in 4 boxes?";
const char* kPages = "Tom reads 5 pages a day. How many pages does he read in 7 days?";

const std::vector<HandRecord> kRecords = {
    {"GSM_AnsAug", kNatalia,
     "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and "
     "May.\n#### 72\nThe answer is: 72",
     "72",
     " Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and "
     "May.\nThe answer is: 72"},
    // 48 masked: x + x/2 = 72 gives x = 48.
    {"GSM_FOBAR",
     "Natalia sold clips to x of her friends in April, and then she sold half as many clips in "
     "May. How many clips did Natalia sell altogether in April and May?\nIf we know the answer to "
     "the above question is 72, what is the value of unknown variable x?",
     "Natalia sold x clips in April and x/2 clips in May, so she sold x + x/2 = 1.5x clips.\nWe "
     "are given that she sold 72 clips, so we can write: 1.5x = 72.\nDividing both sides by 1.5, "
     "we get: x = 48.\nThe value of x is 48.\n#### 48\nThe answer is: 48",
     "48",
     " Natalia sold x clips in April and x/2 clips in May, so she sold x + x/2 = 1.5x clips.\nWe "
     "are given that she sold 72 clips, so we can write: 1.5x = 72.\nDividing both sides by 1.5, "
     "we get: x = 48.\nThe value of x is 48."},
    // "half" masked as MetaMath masks it: 48 + 0.48x = 72 gives x = 50. The model wrote both
    // ending lines itself; one of each is kept.
    {"GSM_FOBAR",
     "Natalia sold clips to 48 of her friends in April, and then she sold x% as many clips in "
     "May. How many clips did Natalia sell altogether in April and May?\nIf we know the answer to "
     "the above question is 72, what is the value of unknown variable x?",
     "In May she sold x% of 48 clips, which is 0.48x clips.\nWe are given that she sold 72 clips "
     "in all, so we can write: 48 + 0.48x = 72.\nSubtracting 48 and dividing by 0.48, we get: x = "
     "50.\nThe value of x is 50.\n#### 50\nThe answer is: 50",
     "50",
     " In May she sold x% of 48 clips, which is 0.48x clips.\nWe are given that she sold 72 clips "
     "in all, so we can write: 48 + 0.48x = 72.\nSubtracting 48 and dividing by 0.48, we get: x = "
     "50.\nThe value of x is 50.\n#### 50\nThe answer is: 50"},
    // SV: only "How many clips ... May?" was rewritten (see kStatements); x + x/2 = 72.
    {"GSM_SV",
     "Natalia sold clips to x of her friends in April, and then she sold half as many clips in "
     "May. Natalia sold 72 clips altogether in April and May. What is the value of unknown "
     "variable x?",
     "To solve this problem, we need to determine the value of x, which represents the number of "
     "clips Natalia sold in April.\nIn May she sold x/2 clips, so x + x/2 = 72.\n1.5x = 72.\nx = "
     "48.\nThe value of x is 48.\n#### 48\nThe answer is: 48",
     "48",
     " To solve this problem, we need to determine the value of x, which represents the number of "
     "clips Natalia sold in April.\nIn May she sold x/2 clips, so x + x/2 = 72.\n1.5x = 72.\nx = "
     "48.\nThe value of x is 48."},
    // $12 masked as $x: 50 * x/60 = 10 gives x = 12.
    {"GSM_FOBAR",
     "Weng earns $x an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
     "How much did she earn?\nIf we know the answer to the above question is 10, what is the "
     "value of unknown variable x?",
     "Weng earns x/60 dollars per minute.\nFor 50 minutes she earns 50 * x/60 = 5x/6 dollars.\nWe "
     "are given that she earned $10, so we can write: 5x/6 = 10.\nMultiplying both sides by 6/5, "
     "we get: x = 12.\nThe value of x is 12.\n#### 12\nThe answer is: 12",
     "12",
     " Weng earns x/60 dollars per minute.\nFor 50 minutes she earns 50 * x/60 = 5x/6 dollars.\nWe "
     "are given that she earned $10, so we can write: 5x/6 = 10.\nMultiplying both sides by 6/5, "
     "we get: x = 12.\nThe value of x is 12.\n#### 12\nThe answer is: 12"},
    // 50 masked; "How much did she earn?" -> "She earned $10."; 0.2x = 10 gives x = 50.
    {"GSM_SV",
     "Weng earns $12 an hour for babysitting. Yesterday, she just did x minutes of babysitting. "
     "She earned $10. What is the value of unknown variable x?",
     "To solve this problem, we need to determine the value of x, the minutes Weng babysat.\nShe "
     "earns 12/60 = $0.2 per minute, so 0.2x = 10.\nx = 50.\nThe value of x is 50.\n#### "
     "50\nThe answer is: 50",
     "50",
     " To solve this problem, we need to determine the value of x, the minutes Weng babysat.\nShe "
     "earns 12/60 = $0.2 per minute, so 0.2x = 10.\nx = 50.\nThe value of x is 50."},
    // 6 masked; "How many pens are in 4 boxes?" -> "There are 24 pens in 4 boxes."; 4x = 24.
    {"GSM_SV",
     "A box holds x pens. There are 24 pens in 4 boxes. What is the value of unknown variable x?",
     "To solve this problem, we need to determine the value of x.\n4 boxes hold 4x pens, so 4x = "
     "24.\nx = 6.\nThe value of x is 6.\n#### 6\nThe answer is: 6",
     "6",
     " To solve this problem, we need to determine the value of x.\n4 boxes hold 4x pens, so 4x = "
     "24.\nx = 6.\nThe value of x is 6."},
    // 12^2 + 5^2 = 169.
    {"MATH_AnsAug", kDistance,
     "We use the distance formula: $\\sqrt{(7 - (-5))^2 + (3 - (-2))^2} = \\sqrt{144 + 25} = "
     "\\boxed{13}$.\nThe answer is: 13",
     "13",
     " We use the distance formula: $\\sqrt{(7 - (-5))^2 + (3 - (-2))^2} = \\sqrt{144 + 25} = "
     "\\boxed{13}$."},
    // 6 masked inside math mode: (a+b)(a-b) = 2X = 12 gives X = 6.
    {"MATH_FOBAR",
     "If $a+b = X$ and $a - b = 2$, what is the value of $a^2 - b^2$?\nIf we know the answer to "
     "the above question is 12, what is the value of unknown variable X?",
     "We know that $a^2 - b^2 = (a+b)(a-b) = 2X$.\nWe are given that $a^2 - b^2 = 12$, so $2X = "
     "12$ and $X = 6$.\nThe value of X is 6.\nThe answer is: 6",
     "6",
     " We know that $a^2 - b^2 = (a+b)(a-b) = 2X$.\nWe are given that $a^2 - b^2 = 12$, so $2X = "
     "12$ and $X = 6$.\nThe value of X is 6."},
    // 4 masked; "What is $|m-n|$?" -> "The value of $|m-n|$ is 3."; 25 - 4X = 9 gives X = 4.
    {"MATH_SV",
     "Let $m$ and $n$ satisfy $mn=X$ and $m+n=5$. The value of $|m-n|$ is 3. What is the value "
     "of unknown variable X?",
     "To solve this problem, we need to determine the value of X.\nWe have $(m-n)^2 = (m+n)^2 - "
     "4mn = 25 - 4X$, and $(m-n)^2 = 9$.\nSo $25 - 4X = 9$, and $X = 4$.\nThe value of X is "
     "4.\nThe answer is: 4",
     "4",
     " To solve this problem, we need to determine the value of X.\nWe have $(m-n)^2 = (m+n)^2 - "
     "4mn = 25 - 4X$, and $(m-n)^2 = 9$.\nSo $25 - 4X = 9$, and $X = 4$.\nThe value of X is 4."},
};

// The LLM's statements for final sentences. Two are rejected: one drops the unknown, one states
// the masked value (7).
const std::map<std::string, std::string> kStatements = {
    {"How many clips did Natalia sell altogether in April and May?",
     "Natalia sold 72 clips altogether in April and May."},
    {"How much did she earn?", "She earned $10."},
    {"How many pens are in 4 boxes?", "There are 24 pens in 4 boxes."},
    {"How many pens are in x boxes?", "There are 24 pens in 4 boxes."},
    {"How many pages does he read in 7 days?", "He reads 35 pages in 7 days."},
    {"How many pages does he read in x days?", "He reads 35 pages in x days, which is 7 days."},
    {"What is $|m-n|$?", "The value of $|m-n|$ is 3."},
};

// Answers prompts from the tables above; anything else gets an answer that is never kept.
class HandBackend : public llm::Backend {
 public:
  explicit HandBackend(Prompts p) : prompts_(std::move(p)) {
    for (const HandRecord& r : kRecords) completions_[r.query] = r.completion;
  }
  void generate(const std::vector<llm::Request>& reqs, const llm::ResultCallback& cb) override {
    for (const auto& r : reqs) {
      llm::Result res;
      res.id = r.id;
      for (int c = 0; c < r.sampling.n; ++c) res.choices.push_back({respond(r.prompt), "stop"});
      res.prompt_tokens = 1;
      res.completion_tokens = 1;
      cb(std::move(res));
    }
  }
  std::vector<std::vector<float>> embed(const std::vector<std::string>&) override { return {}; }
  std::string model_name() const override { return "hand"; }

 private:
  // The text filled into the template's first placeholder, when the prompt is that template's.
  static bool fill_of(const std::string& prompt, const std::string& tmpl, std::string& q) {
    std::size_t at = tmpl.find("{question}");
    std::size_t end = tmpl.find("{answer}");
    std::string pre = tmpl.substr(0, at);
    std::string post = tmpl.substr(end == std::string::npos ? at + 10 : end + 8);
    if (prompt.size() < pre.size() + post.size() || prompt.compare(0, pre.size(), pre) != 0 ||
        prompt.compare(prompt.size() - post.size(), post.size(), post) != 0)
      return false;
    q = prompt.substr(pre.size(), prompt.size() - pre.size() - post.size());
    if (end != std::string::npos) q = q.substr(0, q.rfind(tmpl.substr(at + 10, end - at - 10)));
    return true;
  }
  std::string respond(const std::string& prompt) const {
    std::string q;
    if (fill_of(prompt, prompts_.sv_rewrite, q)) {
      auto it = kStatements.find(q);
      return it == kStatements.end() ? "" : " " + it->second;
    }
    for (const std::string* t : {&prompts_.backward_gsm8k, &prompts_.backward_math,
                                 &prompts_.solve_gsm8k, &prompts_.solve_math}) {
      if (!fill_of(prompt, *t, q)) continue;
      auto it = completions_.find(q);
      return it == completions_.end() ? " I cannot tell." : it->second;
    }
    return "";
  }
  Prompts prompts_;
  std::map<std::string, std::string> completions_;
};

data::Problem problem(const char* id, const char* style, const char* question, const char* ans) {
  data::Problem p;
  p.id = id;
  p.dataset = style;
  p.style = style;
  p.question = question;
  p.answer = ans;
  p.solution = "(not used)";
  return p;
}

TEST(MetaMathQA, PipelineWritesTheHandRecordsExactly) {
  auto dir = metamath::testing::temp_dir("metamathqa_records");
  Prompts prompts = load_prompts(default_prompts_dir());
  std::vector<data::Problem> probs = {
      problem("gsm8k/train/0", "gsm8k", kNatalia, "72"),
      problem("gsm8k/train/1", "gsm8k", kWeng, "10"),
      problem("math/train/algebra/8", "math", kDistance, "13"),
      problem("math/train/algebra/228", "math", kSquares, "12"),
      problem("math/train/algebra/173", "math", kMn, "3"),
      problem("pens", "gsm8k", kPens, "24"),
      problem("pages", "gsm8k", kPages, "35"),
  };
  Options o;
  o.methods = {Method::AnsAug, Method::SV, Method::FOBAR};
  o.ansaug_samples = 1;
  o.backward_samples = 1;
  o.backward_masks = 100;  // every candidate
  Bootstrap b(dir);
  b.initialize(probs, o, prompts);
  HandBackend be(prompts);
  Bootstrap::RunOptions ro;
  ro.progress = false;
  Stats st = b.run(be, ro);

  std::vector<Record> got = b.records();
  for (const HandRecord& want : kRecords) {
    SCOPED_TRACE(std::string(want.type) + ": " + want.query);
    int found = 0;
    for (const Record& r : got) {
      if (r.type != want.type || r.query != want.query) continue;
      ++found;
      EXPECT_EQ(r.response, want.response);
      EXPECT_EQ(r.gold, want.gold);
    }
    EXPECT_EQ(found, 1);
  }
  // Nothing else is kept: every other request got an answer that cannot be verified.
  EXPECT_EQ(got.size(), kRecords.size());
  // The two bad statements were rejected and counted (other final sentences got no statement).
  const auto& rejected = st.methods.at(Method::SV).rejected;
  ASSERT_EQ(rejected.count(kSvDropsUnknown), 1u);
  EXPECT_EQ(rejected.at(kSvDropsUnknown), 1u);
  ASSERT_EQ(rejected.count(kSvStatesValue), 1u);
  EXPECT_EQ(rejected.at(kSvStatesValue), 1u);
  EXPECT_NE(format_stats(st).find("SV rewrites rejected:"), std::string::npos);
  EXPECT_EQ(stats_json(st)["methods"]["SV"]["rejected"][kSvStatesValue], 1);
}

}  // namespace
}  // namespace metamath::bootstrap
