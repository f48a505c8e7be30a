#pragma once
// The four MetaMath augmentations over a job store (DESIGN.md, issue 5).
//
//   AnsAug     few-shot CoT solve of the seed question, K samples; keep those reaching the gold.
//   Rephrased  few-shot rephrasing, R samples; each rephrasing is solved (up to M sequential
//              attempts) and kept with the first solve that reaches the gold.
//   SV         mask a number (mask.h); the LLM rewrites the masked question's final sentence plus
//              the answer as a statement, the rest is kept word for word and "What is the value of
//              unknown variable x?" is appended (metamathqa.h); statements that drop the unknown
//              or state the masked value are rejected and counted; keep solves giving the masked
//              value.
//   FOBAR      "{masked question}\nIf we know the answer to the above question is {A}, what is
//              the value of unknown variable x?"; keep solves giving the masked value.
//
// Every kept response ends as MetaMathQA's do: "\n#### {A}\nThe answer is: {A}" for GSM8K,
// "\nThe answer is: {A}" for MATH.
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
#include "bootstrap/official_prompts.h"
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
// With `official` set (load_prompts on a folder in the official layout), requests are built from
// the official MetaMath prompts instead (official_prompts.h) and the templates are empty.
struct Prompts {
  std::string solve_gsm8k, solve_math, backward_gsm8k, backward_math, rephrase, sv_rewrite;
  std::optional<OfficialPrompts> official;
};
// Names accepted by load_prompts overrides: the file stems above.
const std::vector<std::string>& prompt_names();
// The bundled prompts folder: $METAMATH_PROMPTS, <exe>/../prompts, <exe>/../../prompts, or the
// source tree's prompts/.
std::filesystem::path default_prompts_dir();
// Loads <dir>/<name>.txt for every name; overrides maps a name to another file. Errors name the
// file and the missing placeholder. A folder in the official MetaMath layout (at dir, dir/configs
// or dir/code_for_generating_data/configs: find_official_prompts) loads the official set
// instead; overrides are refused with it.
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
// it with gold, and on success returns the text ending as MetaMathQA's responses do
// (metamathqa_response: "#### {gold}\nThe answer is: {gold}" for GSM8K).
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
  // SV: statement rewrites rejected, by cause (metamathqa.h sv_check, or "too long").
  std::map<std::string, uint64_t> rejected;
  double yield() const { return samples ? static_cast<double>(kept) / samples : 0.0; }
};
struct Stats {
  std::map<Method, MethodStats> methods;
  uint64_t problems = 0;
  // The prompt set the store was started with: "metamath" (prompts/*.txt templates) or
  // "official" (the official MetaMath prompts, read from prompt_dir); prompt_digest tells two
  // sets apart (FNV-1a of every prompt text and the system message).
  std::string prompt_set = "metamath", prompt_dir, prompt_digest;
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

// Target-driven sampling (issue 16): how many records of each MetaMathQA type this store should
// keep. Bootstrap::run_to_targets sends rounds: after each, every type below
// ceil(target * (1 + margin)) gets more samples, sized from the yield measured so far (kept per
// sample of that type), until every type is met, a question reaches the per-question cap, the
// token budget is spent, or max_rounds rounds were added. A round's jobs are ordinary jobs (keys
// "A/12/r2", "F/12/3/r2", "SS/12/3/r2", "R/12/r2"), added in one transaction with the round
// number: a killed run re-sends them when resumed, and the next round is sized from the store
// alone, so a resumed run ends with the same records as an uninterrupted one. Records of a type
// count towards its target whatever their provenance (symbolic ones included).
struct Targets {
  std::map<std::string, uint64_t> per_type;  // "GSM_AnsAug" -> N (assemble.h default_targets)
  double margin = 0.1;                       // extra share, lost later to deduplication
  int max_rounds = 8;
  int per_question_cap = 64;   // samples (AnsAug), rephrasings or backward solves per question
  uint64_t budget_tokens = 0;  // prompt + completion tokens; 0 = no limit
  double budget_usd = 0;       // dollars at the prices below; 0 = no limit
  double price_prompt_per_m = 0, price_completion_per_m = 0;  // dollars per million tokens
};

// What one top-up added, and why a type short of its target got nothing more.
struct TopUp {
  int round = 0;
  uint64_t jobs = 0;
  std::map<std::string, std::string> stopped;  // type -> reason (cap, no question, budget)
};

// The --dry-run plan of target-driven sampling, per type: the units (samples; rephrasings for
// Rephrased) needed at the measured yield (an assumed prior one before anything was measured),
// whether the per-question cap allows them, and the requests and tokens they cost, scaled from
// this store's first-round estimate (plan()).
struct TargetPlanRow {
  std::string type;
  uint64_t target = 0, want = 0, kept = 0;  // want = ceil(target * (1 + margin))
  uint64_t bases = 0;                       // questions (backward questions for SV/FOBAR)
  double yield = 0;                         // records per unit
  bool measured = false;                    // yield measured here (else the prior)
  double units = 0, requests = 0, prompt_tokens = 0, completion_tokens = 0;
  double reachable = 0;  // records the per-question cap allows at this yield
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

  // Records kept per MetaMathQA type ("GSM_AnsAug" ...), and samples checked per type.
  std::map<std::string, uint64_t> kept_by_type() const;
  // Adds one round of jobs for the types short of their targets (one transaction, with the round
  // number, so a killed run resumes it). Nothing is added when every target is met.
  TopUp top_up(const Targets& t);
  std::vector<TargetPlanRow> target_plan(const Targets& t) const;
  // run(), then top_up() and run() again until top_up adds nothing or max_rounds is reached.
  Stats run_to_targets(llm::Backend& backend, const RunOptions& ro, const Targets& t);

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
std::string format_target_plan(const std::vector<TargetPlanRow>& rows, const Targets& t);

}  // namespace metamath::bootstrap
