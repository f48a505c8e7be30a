// The bootstrap pipeline through the real local backend (in-process model, continuous batching) on
// a tiny random model with the real LLaMA-2 tokenizer, seeded by real GSM8K train questions. The
// model's text is gibberish, so the yield is about zero: what must hold is that every job ends
// (none lost, none left in flight), the reported counts agree with the request shapes and with
// records.jsonl, anything kept really checks out, and a crash + resume re-sends only what had not
// been recorded, while a rerun of a finished folder sends nothing and changes nothing.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <stdexcept>

#include "answer/equiv.h"
#include "answer/extract.h"
#include "bootstrap/bootstrap.h"
#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "core/text.h"
#include "data/problem.h"
#include "llm/backend.h"
#include "llm/tiny_model.h"
#include "test_util.h"

namespace metamath::bootstrap {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kProblems = 3;

Options local_options() {
  Options o;
  o.ansaug_samples = 2;
  o.rephrasings = 2;
  o.rephrase_attempts = 2;
  o.backward_masks = 1;
  o.backward_samples = 2;
  o.max_tokens_gsm8k = 24;
  o.max_tokens_rewrite = 24;
  o.seed = 3;
  return o;
}

std::unique_ptr<llm::Backend> tiny_local_backend() {
  llm::BackendOptions o;
  o.kind = "local";
  o.model = metamath::testing::tiny_chat_model().string();
  o.max_batch = 8;
  o.max_len = 1024;  // the few-shot prompts are ~500 tokens
  return llm::make_backend(o);
}

// The CLI flags that give local_options() (and the bundled prompts).
std::string cli_flags() {
  return "--datasets gsm8k -k 2 --rephrasings 2 --rephrase-attempts 2 --masks 1 "
         "--backward-samples 2 --max-tokens-gsm8k 24 --max-tokens-rewrite 24 --seed 3";
}

TEST(LocalBackendPipeline, FinishesReportsHonestlyAndResumes) {
  METAMATH_REQUIRE_TOKENIZER();
  METAMATH_REQUIRE_DATA(data);
  const fs::path train = data / "gsm8k" / "train.jsonl";
  auto probs = data::load_gsm8k(train);
  probs.resize(kProblems);
  const Options opts = local_options();
  const Prompts prompts = load_prompts(default_prompts_dir());
  const auto dir = metamath::testing::temp_dir("boot_local");

  // Run 1 "crashes" after 5 recorded results (an exception out of the result callback, as a
  // kill would stop it): the local backend drains the batch, the rest stays in flight.
  constexpr uint64_t kCrashAt = 5;
  Stats at_crash;
  uint64_t sent1 = 0;
  {
    Bootstrap b(dir);
    b.initialize(probs, opts, prompts);
    auto be = tiny_local_backend();
    Bootstrap::RunOptions ro;
    ro.progress = false;
    ro.after_result = [](uint64_t n) {
      if (n == kCrashAt) throw std::runtime_error("simulated crash");
    };
    EXPECT_THROW(b.run(*be, ro), std::runtime_error);
    at_crash = b.stats();
    sent1 = be->usage().requests.load();
  }
  const MethodStats c = at_crash.total();
  EXPECT_EQ(c.done + c.failed, kCrashAt);
  EXPECT_GT(c.pending + c.in_flight, 0u);
  // Everything handed to the backend in run 1 was either recorded or is still marked in flight.
  EXPECT_EQ(sent1, kCrashAt + c.in_flight);

  // Run 2 resumes: exactly the jobs not recorded are sent, each once (follow-ups included).
  Stats st;
  uint64_t sent2 = 0;
  {
    Bootstrap b(dir);
    ASSERT_TRUE(b.initialized());
    b.check_same(opts, prompts);
    auto be = tiny_local_backend();
    Bootstrap::RunOptions ro;
    ro.progress = false;
    st = b.run(*be, ro);
    sent2 = be->usage().requests.load();
    b.export_records(dir / "records.jsonl");
    b.export_stats(dir / "stats.json");
  }
  const MethodStats t = st.total();
  EXPECT_EQ(sent2, t.jobs - c.done - c.failed);

  // Every job ended, and ended well: no request lost, in flight or failed on the local path.
  EXPECT_EQ(t.pending, 0u);
  EXPECT_EQ(t.in_flight, 0u);
  EXPECT_EQ(t.failed, 0u);
  EXPECT_EQ(t.done, t.jobs);
  EXPECT_EQ(st.problems, static_cast<uint64_t>(kProblems));

  // The counts follow from the request shapes. AnsAug: one job of K samples per question.
  const MethodStats& a = st.methods.at(Method::AnsAug);
  EXPECT_EQ(a.jobs, static_cast<uint64_t>(kProblems));
  EXPECT_EQ(a.samples, static_cast<uint64_t>(kProblems * opts.ansaug_samples));
  // FOBAR: one backward solve per mask (every GSM8K question has a number), B samples each.
  const MethodStats& f = st.methods.at(Method::FOBAR);
  EXPECT_EQ(f.jobs, static_cast<uint64_t>(kProblems * opts.backward_masks));
  EXPECT_EQ(f.samples, f.jobs * static_cast<uint64_t>(opts.backward_samples));
  // SV: one rewrite per mask, then at most one backward solve of B samples per rewrite.
  const MethodStats& sv = st.methods.at(Method::SV);
  const uint64_t rewrites = static_cast<uint64_t>(kProblems * opts.backward_masks);
  ASSERT_GE(sv.jobs, rewrites);
  EXPECT_LE(sv.jobs, 2 * rewrites);
  EXPECT_EQ(sv.samples, (sv.jobs - rewrites) * static_cast<uint64_t>(opts.backward_samples));
  // Rephrased: one rephrase per question, then up to M one-sample solves per rephrasing.
  const MethodStats& r = st.methods.at(Method::Rephrased);
  ASSERT_GE(r.jobs, static_cast<uint64_t>(kProblems));
  const uint64_t solves = r.jobs - kProblems;
  EXPECT_EQ(r.samples, solves);
  EXPECT_LE(solves, static_cast<uint64_t>(kProblems * opts.rephrasings * opts.rephrase_attempts));
  // A rephrasing is solved again only after a wrong solve: without a keeper every rephrasing
  // gets all M attempts.
  if (r.kept == 0) {
    EXPECT_EQ(solves % static_cast<uint64_t>(opts.rephrase_attempts), 0u);
  }

  // The model really ran: tokens were produced, never more than the limits allow.
  for (const auto& [m, ms] : st.methods) EXPECT_GT(ms.prompt_tokens, 0u) << method_name(m);
  EXPECT_GT(a.completion_tokens, 0u);
  EXPECT_GT(f.completion_tokens, 0u);
  EXPECT_LE(a.completion_tokens, a.samples * static_cast<uint64_t>(opts.max_tokens_gsm8k));
  EXPECT_LE(f.completion_tokens, f.samples * static_cast<uint64_t>(opts.max_tokens_gsm8k));

  // records.jsonl and stats.json say what the stats say; the yield is kept / samples.
  const auto lines = read_jsonl(dir / "records.jsonl");
  EXPECT_EQ(lines.size(), t.kept);
  const json sj = json::parse(read_file(dir / "stats.json"));
  for (const auto& [m, ms] : st.methods) {
    const json& row = sj.at("methods").at(method_name(m));
    EXPECT_EQ(row.at("kept").get<uint64_t>(), ms.kept);
    EXPECT_EQ(row.at("samples").get<uint64_t>(), ms.samples);
    // (SV and Rephrased have no samples when every rewrite came back empty.)
    const double want =
        ms.samples ? static_cast<double>(ms.kept) / static_cast<double>(ms.samples) : 0.0;
    EXPECT_DOUBLE_EQ(row.at("yield").get<double>(), want) << method_name(m);
  }
  // The table shows the same total (a 0.0% yield is reported as such, not as an error).
  const std::string table = format_stats(st);
  EXPECT_NE(
      table.find(fmt::format("| {} | {:.1f} |", t.kept,
                             100.0 * static_cast<double>(t.kept) / static_cast<double>(t.samples))),
      std::string::npos)
      << table;

  // Anything kept checks out against its gold under the answer checker.
  for (const json& rec : lines) {
    const std::string resp = rec.at("response"), gold = rec.at("gold");
    const auto e = answer::extract(resp, answer::Style::Gsm8k, /*allow_last_number=*/false);
    ASSERT_TRUE(e.found()) << resp;
    EXPECT_TRUE(answer::equivalent(e.answer, gold, answer::Style::Gsm8k).equal()) << resp;
    EXPECT_TRUE(text::ends_with(resp, "The answer is: " + gold)) << resp;
    const std::string type = rec.at("type");
    if (type == "GSM_AnsAug" || type == "GSM_Rephrased") {
      bool gold_of_a_seed = false;
      for (const auto& p : probs) gold_of_a_seed |= p.answer == gold;
      EXPECT_TRUE(gold_of_a_seed) << gold;
    }
  }

  // Run 3 on the finished folder sends nothing and changes nothing.
  const std::string records_before = read_file(dir / "records.jsonl");
  const std::string stats_before = read_file(dir / "stats.json");
  {
    Bootstrap b(dir);
    b.check_same(opts, prompts);
    auto be = tiny_local_backend();
    Bootstrap::RunOptions ro;
    ro.progress = false;
    Stats again = b.run(*be, ro);
    EXPECT_EQ(be->usage().requests.load(), 0u);
    EXPECT_EQ(stats_json(again), stats_json(st));
    b.export_records(dir / "records.jsonl");
    b.export_stats(dir / "stats.json");
  }
  EXPECT_EQ(read_file(dir / "records.jsonl"), records_before);
  EXPECT_EQ(read_file(dir / "stats.json"), stats_before);

  // So does `metamath bootstrap --backend local` on it: it resumes, prints the same table and
  // rewrites identical files.
  const auto res = metamath::testing::run_command(
      fmt::format("{} bootstrap --out {} --gsm8k {} --limit {} {} --backend local --model {} "
                  "--max-batch 8 --max-len 1024 --quiet 2>&1",
                  metamath::testing::metamath_bin(), dir.string(), train.string(), kProblems,
                  cli_flags(), metamath::testing::tiny_chat_model().string()));
  ASSERT_EQ(res.code, 0) << res.output;
  EXPECT_NE(res.output.find("resuming"), std::string::npos) << res.output;
  EXPECT_NE(res.output.find(table), std::string::npos) << res.output;
  EXPECT_EQ(read_file(dir / "records.jsonl"), records_before);
  EXPECT_EQ(read_file(dir / "stats.json"), stats_before);
}

}  // namespace
}  // namespace metamath::bootstrap
