// The symbolic method in the bootstrap pipeline and its mixing in assemble (issue 18, item 4).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "bootstrap/assemble.h"
#include "bootstrap/bootstrap.h"
#include "bootstrap/job.h"
#include "core/jsonl.h"
#include "test_util.h"

namespace metamath::bootstrap {
namespace {

using json = nlohmann::json;

// Two GSM8K train problems (lines 1 and 2 of data/gsm8k/train.jsonl) and a MATH one (no
// symbolic job: MATH solutions carry no calculator annotations).
std::vector<data::Problem> seeds() {
  data::Problem a, b, m;
  a.id = "gsm8k/train/0";
  a.style = "gsm8k";
  a.question =
      "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
      "May. How many clips did Natalia sell altogether in April and May?";
  a.solution =
      "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 "
      "clips altogether in April and May.\n#### 72";
  a.answer = "72";
  b.id = "gsm8k/train/1";
  b.style = "gsm8k";
  b.question =
      "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
      "How much did she earn?";
  b.solution =
      "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 "
      "= $<<0.2*50=10>>10.\n#### 10";
  b.answer = "10";
  m.id = "train/algebra/1.json";
  m.style = "math";
  m.question = "What is $2+3$?";
  m.solution = "$2+3=\\boxed{5}$";
  m.answer = "5";
  return {a, b, m};
}

Prompts prompts() {
  Prompts p;
  p.solve_gsm8k = p.solve_math = p.backward_gsm8k = p.backward_math = p.rephrase = "{question}";
  p.sv_rewrite = "{question} {answer}";
  return p;
}

TEST(SymbolicPipeline, RecordsThroughTheJobStoreResumableAndDeduplicated) {
  auto dir = testing::temp_dir("symbolic_pipeline");
  Options o;
  o.methods = {Method::Symbolic};
  {
    Bootstrap b(dir);
    b.initialize(seeds(), o, prompts());
    EXPECT_TRUE(b.plan()[0].first_requests == 0);  // nothing is sent to a model
    Bootstrap::RunOptions ro;
    ro.progress = false;
    Stats st = b.run_local(ro);
    const MethodStats& ms = st.methods.at(Method::Symbolic);
    EXPECT_EQ(ms.jobs, 2u);  // the MATH seed gets none
    EXPECT_EQ(ms.done, 2u);
    // Natalia: 48 and "half" as x% (48 + 48 * x/100 = 72: x = 50); Weng: $12 and 50 minutes;
    // FOBAR and SV each.
    EXPECT_EQ(ms.kept, 8u);
    EXPECT_FALSE(b.llm_jobs_pending());
  }
  Bootstrap b(dir);  // reopened: nothing left to do, nothing duplicated
  Bootstrap::RunOptions ro;
  ro.progress = false;
  EXPECT_EQ(b.run_local(ro).methods.at(Method::Symbolic).kept, 8u);
  auto recs = b.records();
  ASSERT_EQ(recs.size(), 8u);
  std::map<std::string, int> types;
  for (const Record& r : recs) {
    ++types[r.type];
    EXPECT_EQ(r.provenance, "symbolic");
    EXPECT_EQ(r.to_json()["provenance"], "symbolic");
    EXPECT_TRUE(r.response.ends_with("The answer is: " + r.gold)) << r.response;
  }
  EXPECT_EQ(types["GSM_FOBAR"], 4);
  EXPECT_EQ(types["GSM_SV"], 4);
  std::multiset<std::string> golds;
  for (const Record& r : recs)
    if (r.problem_id == "gsm8k/train/0") golds.insert(r.gold);
  EXPECT_EQ(golds, (std::multiset<std::string>{"48", "48", "50", "50"}));
  const Record* fobar = nullptr;
  for (const Record& r : recs)
    if (r.type == "GSM_FOBAR" && r.problem_id == "gsm8k/train/0" && r.gold == "48") fobar = &r;
  ASSERT_NE(fobar, nullptr);
  EXPECT_EQ(fobar->query,
            "Natalia sold clips to x of her friends in April, and then she sold half as many clips "
            "in May. How many clips did Natalia sell altogether in April and May?\nIf we know the "
            "answer to the above question is 72, what is the value of unknown variable x?");
  EXPECT_EQ(fobar->gold, "48");
}

TEST(SymbolicPipeline, BootstrapJobNeedsNoBackend) {
  METAMATH_REQUIRE_DATA(data);
  BootstrapJob job;
  job.out = testing::temp_dir("symbolic_job");
  job.datasets = {"gsm8k"};
  job.gsm8k = data / "gsm8k" / "train.jsonl";
  job.limit = 20;
  job.methods = "symbolic";
  job.progress = false;
  job.backend.kind = "openai";  // never contacted
  job.backend.base_url = "http://127.0.0.1:9/v1";
  BootstrapJobResult r = run_bootstrap_job(job);
  EXPECT_GT(r.records, 20u);
  EXPECT_EQ(r.failed, 0u);
  EXPECT_NE(r.report.find("| symbolic |"), std::string::npos) << r.report;
}

// Records for assemble: n symbolic and n LLM ones of one type, distinct texts.
std::filesystem::path write_records(const std::filesystem::path& dir, int n) {
  auto file = dir / "records.jsonl";
  std::ofstream out(file);
  for (int i = 0; i < n; ++i)
    for (const char* prov : {"symbolic", "llm"})
      out << json{{"query", std::string(prov) + " question " + std::to_string(i)},
                  {"response", "The answer is: " + std::to_string(i)},
                  {"type", "GSM_FOBAR"},
                  {"original_question", "seed " + std::to_string(i)},
                  {"provenance", prov}}
                 .dump()
          << "\n";
  return file;
}

TEST(SymbolicPipeline, AssembleMixesBySymbolicShare) {
  auto dir = testing::temp_dir("symbolic_assemble");
  AssembleOptions a;
  a.inputs = {write_records(dir, 10)};
  a.targets = {{"GSM_FOBAR", 8}};
  auto count = [&](double share, bool none) {
    a.out = dir / "out.jsonl";
    a.symbolic_share = share;
    a.no_symbolic = none;
    AssembleReport r = assemble(a);
    int sym = 0, total = 0;
    std::ifstream in(a.out);
    std::string line;
    while (std::getline(in, line)) {
      ++total;
      if (line.find("symbolic question") != std::string::npos) ++sym;
    }
    EXPECT_EQ(static_cast<int>(r.types["GSM_FOBAR"].symbolic_kept), sym);
    return std::pair{sym, total};
  };
  EXPECT_EQ(count(0.25, false), (std::pair{2, 8}));
  EXPECT_EQ(count(1.0, false), (std::pair{8, 8}));
  EXPECT_EQ(count(0.0, false), (std::pair{0, 8}));
  EXPECT_EQ(count(-1, true), (std::pair{0, 8}));
  // A short pool is filled from the other: 10 LLM records, a target of 16 with share 0.
  a.targets = {{"GSM_FOBAR", 16}};
  EXPECT_EQ(count(0.0, false), (std::pair{6, 16}));
}

}  // namespace
}  // namespace metamath::bootstrap
