#pragma once
// `metamath sweep`: the paper's data-size experiment as one resumable command. From one bootstrap
// output, for each --scale: assemble the mixture at that scale, train a model on it, evaluate the
// model; then one report (accuracy against training-set size and the rest, analysis/report.h).
// Each stage is the library call of its subcommand (bootstrap::assemble, train::run_training,
// eval::run_eval, analysis::write_report).
//
// Folder (OUT = --out):
//   sweep.json            the settings; a rerun must have the same ones (else an error naming the
//                         first difference)
//   sweep_log.jsonl       one line per stage event: {"point", "stage", "event": start | done |
//                         skip, "pid"} (a journal: appended and flushed line by line)
//   scale-<S>/            one point: MetaMathQA.jsonl + assemble.json (assemble), model/ (train,
//                         with its train_run.json, train_log.jsonl and checkpoints), eval/
//                         (eval: summary.json, samples), stages.json (which stages finished)
//   report.html           written when every point has finished
// stages.json is written atomically after a stage's outputs are complete, so a finished stage is
// never redone; a stage killed half way is run again, and picks up what its subcommand keeps
// (train resumes from its newest checkpoint, eval from its samples journal).
//
// Shards: point i belongs to shard i % N (--shard I/N, or torchrun's RANK/WORLD_SIZE; training
// within a point is then single-process). Every shard writes only its points; the shard that
// finds every point finished writes the report (rerun without --shard to write it later).
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/jsonl.h"
#include "core/shard.h"
#include "llm/backend.h"
#include "train/trainer.h"

namespace metamath::analysis {

struct SweepOptions {
  std::vector<std::filesystem::path> bootstrap;  // bootstrap --out folders or records JSONL
  std::vector<double> scales;                    // of the paper's mixture (assemble --scale)
  std::vector<std::string> targets;              // TYPE=N overrides at every scale
  std::filesystem::path test_gsm8k, test_math;   // contamination check (default: the data's)
  bool contamination_check = true;
  uint64_t assemble_seed = 1;
  train::TrainOptions train;  // data, out and resume are set per point
  // eval
  std::string benchmarks = "gsm8k,math";
  std::vector<std::string> eval_data;  // NAME=PATH (eval --data)
  std::size_t limit = 0;
  int max_tokens = 0;
  std::string prompt = "alpaca";
  llm::BackendOptions backend;  // local; model is set per point
  // the sweep
  std::filesystem::path out;
  Shard shard;
  std::string title = "metamath sweep";
  bool progress = true;
  int stop_after_stages = 0;  // > 0: return after this many stages ran (tests of resume)
};

struct SweepPoint {
  std::string name;  // "scale-<S>"
  double scale = 0;
  std::filesystem::path dir;
  uint64_t target_records = 0;
};

enum class Stage { Assemble, Train, Eval };
const char* stage_name(Stage s);

struct SweepResult {
  std::size_t ran = 0, skipped = 0;  // stages
  bool stopped = false;              // stop_after_stages reached
  bool report_written = false;
  std::filesystem::path report;
};

// "0.01,0.02,0.04" -> the scales; throws naming a value that is not a number.
std::vector<double> parse_scales(std::string_view list);

// The points, in --scales order (duplicates are an error).
std::vector<SweepPoint> sweep_points(const SweepOptions& o);

// The settings recorded in sweep.json.
json sweep_settings(const SweepOptions& o);

// --dry-run: the points, each stage's state (done / to run / other shard) and the equivalent
// commands, as text.
std::string format_sweep_plan(const SweepOptions& o);

// Runs (or resumes) this shard's stages, then the report when every point has finished.
SweepResult run_sweep(const SweepOptions& o);

}  // namespace metamath::analysis
