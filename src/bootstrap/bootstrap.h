#pragma once
// The four MetaMath augmentations over a job store (DESIGN.md, issue 5).
//
//   AnsAug     few-shot CoT solve of the seed question, K samples; keep those reaching the gold.
//   Rephrased  few-shot rephrasing, R samples; each rephrasing is solved (up to M sequential
//              attempts) and kept with the first solve that reaches the gold.
//   SV         mask a number (mask.h); the LLM rewrites "masked question + answer" as a statement,
//              "What is the value of unknown variable x?" is appended; keep solves giving the
//              masked value.
//   FOBAR      "{masked question} If we know the answer to the above question is {A}, what is the
//              value of unknown variable x?"; keep solves giving the masked value.
//
// Every request is a row of the job store (SQLite, WAL) before it is sent, and every result is
// recorded in one transaction from the backend's callback together with the records it yields and
// the follow-up requests it makes, so a kill at any point loses only what was in flight. Running
// again on the same folder re-sends exactly the jobs that were pending or in flight; records are
// keyed by (job, choice) and can never be duplicated.
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "answer/extract.h"
#include "data/problem.h"
#include "llm/backend.h"

namespace metamath::bootstrap {

// Symbolic (issue 18, bootstrap/symbolic.h): LLM-free backward questions for GSM8K seeds, solved
// exactly from the gold solution's calculator annotations. One job per seed question, run
// locally (no backend); it keeps GSM_FOBAR and GSM_SV records (provenance "symbolic"). Not among
// the default methods.
enum class Method { AnsAug = 0, Rephrased = 1, SV = 2, FOBAR = 3, Symbolic = 4 };
// The LLM methods (the default selection).
inline constexpr std::array<Method, 4> kMethods = {Method::AnsAug, Method::Rephrased, Method::SV,
                                                   Method::FOBAR};
const char* method_name(Method m);  // "AnsAug", "Rephrased", "SV", "FOBAR", "symbolic"
// Case-insensitive; also "rephrase"; throws.
Method parse_method(std::string_view name);
// MetaMathQA type: "GSM_AnsAug", ..., "MATH_FOBAR".
std::string record_type(answer::Style style, Method m);

// The prompt templates (prompts/*.txt). Each holds "{question}" (sv_rewrite also "{answer}").
struct Prompts {
  std::string solve_gsm8k, solve_math, backward_gsm8k, backward_math, rephrase, sv_rewrite;
};
// Names accepted by load_prompts overrides: the file stems above.
const std::vector<std::string>& prompt_names();
// The bundled prompts folder: $METAMATH_PROMPTS, <exe>/../prompts, <exe>/../../prompts, or the
// source tree's prompts/.
std::filesystem::path default_prompts_dir();
// Loads <dir>/<name>.txt for every name; overrides maps a name to another file. Errors name the
// file and the missing placeholder.
Prompts load_prompts(const std::filesystem::path& dir,
                     const std::map<std::string, std::filesystem::path>& overrides = {});
// Replaces "{question}" and "{answer}" literally (LaTeX braces elsewhere are left alone).
std::string fill_prompt(std::string_view tmpl, std::string_view question,
                        std::string_view answer = "");

struct Options {
  std::vector<Method> methods = {kMethods.begin(), kMethods.end()};
  int ansaug_samples = 4;     // K
  int rephrasings = 2;        // R rephrasings per question
  int rephrase_attempts = 3;  // M solves per rephrasing, sequential, until one is correct
  int backward_masks = 2;     // masked numbers per question, for SV and for FOBAR each
  int backward_samples = 2;   // solves per backward question
  double temperature = 0.7;
  int max_tokens_gsm8k = 512, max_tokens_math = 1024, max_tokens_rewrite = 256;
  uint64_t seed = 1;
};
nlohmann::json options_json(const Options& o);

// The sampling seed sent with a job's request (Options::seed and the job's key, e.g. "A/12",
// "RS/12/0/1"), so a seeded backend gives the same samples when a job is re-sent.
uint64_t job_seed(uint64_t run_seed, std::string_view key);

// Normalises a solve: cuts a continued few-shot transcript ("\nQuestion:"), extracts the final
// answer (The answer is / \boxed / The value of x is / ####; never a bare last number), compares
// it with gold, and on success returns the text ending with "The answer is: {gold}".
struct Verified {
  bool ok = false;
  std::string response;   // normalised, when ok
  std::string predicted;  // the extracted answer ("" when none)
  std::string reason;     // why it was rejected
};
Verified verify_solution(std::string_view text, std::string_view gold, answer::Style style);

// One kept record (MetaMathQA fields plus provenance).
struct Record {
  std::string query, response, type, original_question;
  std::string problem_id, job, gold;
  std::string provenance = "llm";  // "llm" or "symbolic" (Method::Symbolic's records)
  int choice = 0;
  // query, response, type, original_question, id, job, choice, gold, provenance
  nlohmann::json to_json() const;
};

// Per-method counters.
struct MethodStats {
  uint64_t jobs = 0, pending = 0, in_flight = 0, done = 0, failed = 0;
  uint64_t samples = 0;  // solve completions checked
  uint64_t kept = 0;     // records
  uint64_t prompt_tokens = 0, completion_tokens = 0;
  double yield() const { return samples ? static_cast<double>(kept) / samples : 0.0; }
};
struct Stats {
  std::map<Method, MethodStats> methods;
  uint64_t problems = 0;
  MethodStats total() const;
};

// The plan for --dry-run: requests and token estimates per method.
struct PlanRow {
  Method method;
  uint64_t first_requests = 0;     // requests known up front
  uint64_t expected_requests = 0;  // including follow-ups (rephrase solves, SV solves), estimated
  uint64_t max_requests = 0;       // upper bound
  double prompt_tokens = 0, completion_tokens = 0;  // estimates (about 4 characters per token)
};

class Bootstrap {
 public:
  // Opens <dir>/jobs.sqlite (creating the folder and the store when absent).
  explicit Bootstrap(const std::filesystem::path& dir);
  ~Bootstrap();

  bool initialized() const;
  // A fresh store: saves problems, options and prompts and creates the first jobs. Masks are
  // chosen here, deterministically from the seed.
  void initialize(const std::vector<data::Problem>& problems, const Options& opts,
                  const Prompts& prompts);
  // An existing store: throws when opts/prompts differ from the ones it was started with.
  void check_same(const Options& opts, const Prompts& prompts) const;

  std::vector<PlanRow> plan() const;
  Stats stats() const;

  struct RunOptions {
    bool retry_failed = false;  // re-send jobs that failed (backend gave up) in an earlier run
    bool progress = true;
    std::size_t max_batch = 0;  // requests handed to one generate() call (0 = all ready)
    // Test hook: called after each recorded result (with the number recorded in this run).
    std::function<void(uint64_t)> after_result;
  };
  // Sends every pending job (and follow-ups) until none is left. Returns the final stats.
  // A Fatal backend error stops the run after the current batch with an error. Symbolic jobs are
  // run first, locally (run_local).
  Stats run(llm::Backend& backend, const RunOptions& ro);
  // Runs the pending symbolic jobs only (no backend needed); each job's records and its done state
  // are written in one transaction, so a killed run resumes where it stopped.
  Stats run_local(const RunOptions& ro);
  // Whether jobs other than symbolic ones are pending or in flight.
  bool llm_jobs_pending() const;

  // Every kept record in a stable order (problem, method, job, choice).
  std::vector<Record> records() const;
  // Writes records() as JSONL atomically; returns how many.
  std::size_t export_records(const std::filesystem::path& file) const;
  // Writes stats as JSON (for assemble's yield column) atomically.
  void export_stats(const std::filesystem::path& file) const;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  struct Impl;
  std::filesystem::path dir_;
  std::unique_ptr<Impl> impl_;
};

nlohmann::json stats_json(const Stats& s);
// The status table (markdown) of `metamath bootstrap status`.
std::string format_stats(const Stats& s);
std::string format_plan(const std::vector<PlanRow>& rows);

}  // namespace metamath::bootstrap
