// A perfect model scores 100.00% on every benchmark, end to end: the real `metamath eval
// --backend openai` talks over HTTP to an OpenAI-compatible endpoint (serve::Server over a scripted
// backend) that reads each problem's question out of the prompt it receives and answers with that
// problem's gold answer, written the way a model writes it:
//
//   MetaMath       "<reasoning>\nThe answer is: GOLD" (every MetaMathQA response ends so)
//   Minerva        "<reasoning>\nFinal Answer: The final answer is $GOLD$. I hope it is correct."
//                  (lm-eval minerva_math). Its four exemplars always wrap the answer in $...$, so
//                  a model prompted that way writes $18$ on word problems too; models that only
//                  copy the sentence write a bare 18. GSM-style benchmarks get both, alternating by
//                  question (odd length: $18$, even: 18), and the bare form puts the sentence's
//                  period right after the number ("18.", "2.5.").
//
// The gold comes from the same data files `metamath eval` reads, loaded through the same loaders
// (eval::load_problems), and the endpoint finds it from the prompt alone (the question between the
// template's prefix and suffix), so a loader, extraction or equivalence bug shows up as a problem
// the perfect model gets wrong. Every problem of every benchmark is run (~11,300 per ending, about
// 4 s of CPU each): no sample could promise to hold the hard golds (times, ratios, fractions,
// matrices, \text, units) that a new dataset version or a checker change may break. One `metamath
// eval` per benchmark: MATH-500's problems are MATH problems, some with another gold ("90^\circ"
// against "90"), so one prompt cannot name its gold across both. A failure lists each wrong
// problem (id, gold, extracted prediction and how, verdict, reason, the completion's end).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "core/text.h"
#include "eval/benchmark.h"
#include "eval/runner.h"
#include "fake_backend.h"
#include "serve/server.h"
#include "test_util.h"

namespace metamath::eval {
namespace {
namespace fs = std::filesystem;

enum class Ending { MetaMath, Minerva };

// One benchmark of the run: its data file and the problems `metamath eval` loads from it.
struct Case {
  Benchmark bench;
  fs::path file;
  std::vector<data::Problem> problems;
};

std::vector<Case> make_cases(const fs::path& data) {
  std::vector<Case> cases;
  for (const char* name : {"gsm8k", "math", "math500", "gsm8k_backward", "svamp", "asdiv"}) {
    Case c{find_benchmark(name), data / name / "test.jsonl", {}};
    c.problems = load_problems(c.bench, c.file);
    // No record may be dropped on the way: one problem per non-blank line of the file.
    std::size_t records = 0;
    for (const std::string& line : text::split(read_file(c.file), '\n'))
      records += !text::trim(line).empty();
    EXPECT_EQ(c.problems.size(), records) << c.file.string();
    cases.push_back(std::move(c));
  }
  return cases;
}

// The completion of a perfect model for a problem.
std::string perfect_completion(const data::Problem& p, answer::Style style, Ending ending) {
  const std::string reasoning =
      " We read the problem carefully and work through it one step at a time.\n"
      "Each step follows from the one before, and the result checks out.\n";
  if (ending == Ending::MetaMath) return reasoning + "The answer is: " + p.answer;
  const bool dollars = style == answer::Style::Math || p.question.size() % 2 == 1;
  const std::string gold = dollars ? "$" + p.answer + "$" : p.answer;
  return reasoning + "Final Answer: The final answer is " + gold + ". I hope it is correct.";
}

// The scripted model of one benchmark: finds the question inside the rendered prompt, answers with
// its gold. (One per benchmark: MATH-500's problems are MATH problems, some with another gold.)
class PerfectModel {
 public:
  PerfectModel(const Case& c, Ending ending) : case_(c), ending_(ending) {
    // The prompt around the question, from the template `metamath eval` renders.
    const std::string marker = "\x01QUESTION\x01";
    const std::string rendered = load_template("alpaca", c.bench.style).render(marker);
    const std::size_t at = rendered.find(marker);
    prefix_ = rendered.substr(0, at);
    suffix_ = rendered.substr(at + marker.size());
    for (const data::Problem& p : c.problems) {
      auto [it, inserted] = by_question_.emplace(p.question, &p);
      if (!inserted && it->second->answer != p.answer)
        throw std::runtime_error(
            fmt::format("{}: {} and {} have the same question, golds {} and {}", c.bench.name,
                        it->second->id, p.id, it->second->answer, p.answer));
    }
  }

  llm::Result answer(const llm::Request& r) {
    if (text::starts_with(r.prompt, prefix_) && text::ends_with(r.prompt, suffix_)) {
      const std::string q =
          r.prompt.substr(prefix_.size(), r.prompt.size() - prefix_.size() - suffix_.size());
      auto it = by_question_.find(q);
      if (it != by_question_.end())
        return fake::choices({perfect_completion(*it->second, case_.bench.style, ending_)});
    }
    ++unknown_prompts;
    llm::Result bad;
    bad.error_kind = llm::ErrorKind::BadRequest;
    bad.error = "the perfect model does not know this prompt: " + r.prompt.substr(0, 200);
    return bad;
  }

  std::atomic<int> unknown_prompts{0};

 private:
  const Case& case_;
  Ending ending_;
  std::string prefix_, suffix_;  // the prompt around the question
  std::map<std::string, const data::Problem*> by_question_;
};

// The wrong rows of a benchmark's samples file, one line each.
std::string failures(const fs::path& samples, std::size_t* count) {
  std::string out;
  *count = 0;
  for (const json& r : read_samples(samples)) {
    if (r.value("correct", false)) continue;
    if (++*count > 40) continue;  // the first 40 are enough to act on
    const std::string completion = r.value("completion", "");
    const std::size_t tail = completion.size() > 160 ? completion.size() - 160 : 0;
    out += fmt::format(
        "  {}: gold {} | pred {} ({}) | {} {} | completion ends {}\n", r.value("id", "?"),
        json(r.value("gold", "")).dump(), json(r.value("pred_answer", "")).dump(),
        r.value("pred_method", "?"), r.value("verdict", "?"), r.value("reason", ""),
        json(completion.substr(tail)).dump(-1, ' ', false, json::error_handler_t::replace));
  }
  if (*count > 40) out += fmt::format("  ... and {} more\n", *count - 40);
  return out;
}

// `metamath eval --backend openai` on one benchmark against the perfect model of that benchmark,
// served over HTTP; then every problem must be right.
void expect_perfect_score(const Case& c, Ending ending, const std::string& label,
                          const fs::path& dir) {
  PerfectModel model(c, ending);
  fake::FakeBackend backend([&](const llm::Request& r) { return model.answer(r); }, "perfect");
  serve::ServeOptions so;
  so.port = 0;
  serve::Server server(backend, so);
  const int port = server.bind();
  std::thread serving([&] { server.run(); });
  const fs::path out = dir / c.bench.name;
  auto run = testing::run_command(
      fmt::format("{} eval -q --backend openai --base-url http://127.0.0.1:{}/v1 --model perfect "
                  "--max-attempts 1 --concurrency 8 -b {} --data {} --out {}",
                  testing::metamath_bin(), port, c.bench.name, c.file.string(), out.string()));
  server.stop();
  serving.join();
  ASSERT_EQ(run.code, 0) << run.output;
  EXPECT_EQ(model.unknown_prompts, 0) << c.bench.name;

  const json summary = json::parse(read_file(out / "summary.json"));
  const json& r = summary["results"][c.bench.name];
  std::size_t wrong = 0;
  const std::string listing = failures(out / (c.bench.name + ".samples.jsonl"), &wrong);
  EXPECT_EQ(r["problems"].get<std::size_t>(), c.problems.size()) << c.bench.name;
  EXPECT_EQ(fmt::format("{:.2f}", 100.0 * r["accuracy"].get<double>()), "100.00")
      << label << " ending, " << c.bench.name << ": " << wrong << " of " << c.problems.size()
      << " wrong (data " << c.file.string() << "):\n"
      << listing;
  EXPECT_EQ(wrong, 0u) << c.bench.name;

  // MetaMath's official scoring of the same samples (summary "official"): it reads only "The
  // answer is: ", so the Minerva ending scores 0; with MetaMath's ending, GSM8K's integer golds
  // all match (other benchmarks' golds are not all integers, which the official GSM8K rule
  // rounds: printed, not asserted).
  const double official = r["official"]["accuracy"].get<double>();
  std::printf("[ %s ending, %s ] official scoring %.2f%%\n", label.c_str(), c.bench.name.c_str(),
              100.0 * official);
  if (ending == Ending::Minerva) {
    EXPECT_EQ(official, 0.0) << c.bench.name;
  }
  if (ending == Ending::MetaMath && (c.bench.name == "gsm8k" || c.bench.name == "gsm8k_backward")) {
    EXPECT_EQ(fmt::format("{:.2f}", 100.0 * official), "100.00") << c.bench.name;
  }
}

void expect_perfect_scores(Ending ending, const std::string& label) {
  METAMATH_REQUIRE_DATA(data);
  const fs::path dir = testing::temp_dir("perfect_model_" + label);
  for (const Case& c : make_cases(data)) expect_perfect_score(c, ending, label, dir);
}

TEST(PerfectModel, MetaMathEndingScores100OnEveryBenchmark) {
  expect_perfect_scores(Ending::MetaMath, "metamath");
}

TEST(PerfectModel, MinervaEndingScores100OnEveryBenchmark) {
  expect_perfect_scores(Ending::Minerva, "minerva");
}

}  // namespace
}  // namespace metamath::eval
