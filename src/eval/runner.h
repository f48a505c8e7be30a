#pragma once
// `metamath eval`: run benchmarks through an llm::Backend and score every sample.
//
// Files in the output folder (SFX is "" for a whole run, ".shard-I-of-N" for a shard):
//   run{SFX}.json                 the settings; a resumed run must have the same ones
//   <bench>{SFX}.samples.jsonl    one row per (problem, sample): id, index, sample, benchmark,
//                                 prompt (or messages), completion, finish_reason, pred_answer,
//                                 pred_method, gold, correct, verdict, reason, subject/level
//                                 (MATH), and on sample 0 the request's prompt_tokens and
//                                 completion_tokens (all n samples). Appended through a journal
//                                 while the run goes, rewritten sorted by (index, sample) at the
//                                 end. Rerunning the same command resumes: problems with all their
//                                 samples are kept, the rest is generated.
//   summary{SFX}.json / .md       metrics, computed only from the samples files, so a resumed run
//                                 and a merged sharded run give the same summary as one run.
// run{SFX}.json also records the run's "provenance" (backend, data files' sha256, the model's
// training record: eval/provenance.h), beside the settings and not compared on resume.
// Sample rows also record question_words (whitespace-separated words of the question), for the
// report's accuracy-by-question-length chart.
// merge_shards() turns the shard files of a finished sharded run into the whole-run files.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "answer/equiv.h"
#include "core/jsonl.h"
#include "core/shard.h"
#include "eval/benchmark.h"
#include "eval/score.h"
#include "llm/backend.h"

namespace metamath::eval {

// The shard of a run: --shard I/N or torchrun's RANK/WORLD_SIZE, read by core/shard.h's
// resolve_shard(). Problem i of a benchmark belongs to shard i % N.
using metamath::Shard;
// The output files' suffix: "" for the whole run, ".shard-I-of-N" for a shard.
std::string shard_suffix(const Shard& sh);

struct EvalOptions {
  std::vector<Benchmark> benchmarks;
  std::map<std::string, std::filesystem::path> data;  // benchmark -> data file (default: registry)
  std::string prompt = "alpaca";
  int n = 1;
  double temperature = 0.0, top_p = 1.0;
  std::uint64_t seed = 0;  // sample s of problem i uses seed + i * n + s
  int max_tokens = 0;      // 0 = the benchmark's (512 GSM-style, 2048 MATH-style)
  std::optional<std::vector<std::string>> stop;  // default: the template's, else default_stop()
  std::size_t limit = 0;  // first `limit` problems of each benchmark (0 = all)
  Shard shard;
  std::filesystem::path out_dir;
  bool progress = true;
  bool retry_errors = false;  // regenerate problems whose saved samples hold a backend error
  answer::Limits limits;
  Scoring scoring = Scoring::Ours;  // what the printed table shows (the summary holds both)
  // What the run was made with (eval/provenance.h's backend_provenance); run_eval adds the data
  // files' hashes and writes it into run{SFX}.json.
  json provenance = json::object();
};

struct EvalResult {
  json summary;                            // as written to summary{SFX}.json
  std::string markdown;                    // as printed
  std::size_t generated = 0, resumed = 0;  // problems generated now / kept from an earlier run
};

// Runs (or resumes) the evaluation. Throws metamath::Error when requests fail for good (what
// completed is kept: rerun to retry) or when the output folder holds a run with other settings.
EvalResult run_eval(llm::Backend& backend, const EvalOptions& opts);

// Merges the shard files of `out_dir` (every shard finished, same settings) into the whole-run
// files; returns the summary.
EvalResult merge_shards(const std::filesystem::path& out_dir);

// Re-scores the samples files of a finished run in `out_dir` with the current answer checker
// (completions are kept) and rewrites them and the summary.
EvalResult rescore_run(const std::filesystem::path& out_dir, const answer::Limits& limits = {});

// Scores one sample row in place from its "completion" and "gold" fields (sets pred_answer,
// pred_method, correct, verdict, reason) with eval::score_one, as `metamath score` does.
void score_row(json& row, answer::Style style, const answer::Limits& limits);

// Metrics of one benchmark from its sample rows (any order; rows sorted inside): problems,
// samples per problem, accuracy (mean over samples = pass@1), pass@k and maj@k for n > 1,
// per-subject/level breakdown when `breakdown`, extraction methods, errors, truncations, tokens,
// and per_problem (id -> correct samples) for paired comparisons. Throws when a problem does not
// have exactly n samples 0..n-1.
json summarize_benchmark(std::vector<json> rows, int n, answer::Style style, bool breakdown,
                         const answer::Limits& limits = {});

// Markdown tables of a summary (one row per benchmark, then MATH breakdowns). Scoring::Official
// shows the official scoring's accuracy (the summary's "official" entries) in the benchmark
// table, Scoring::Both shows it beside ours with the difference; breakdowns stay ours.
std::string format_eval_summary(const json& summary, Scoring scoring = Scoring::Ours);

// Reads a samples file; the torn last line of a killed run is dropped (with a warning).
std::vector<json> read_samples(const std::filesystem::path& file);

}  // namespace metamath::eval
