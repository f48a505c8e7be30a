#pragma once
// `metamath bootstrap` as one library call; the CLI only maps its flags onto a BootstrapJob.
//
// run_bootstrap_job(job), in order:
//   1. the settings: --methods, the prompt templates (job.prompts_dir or the bundled ones, with
//      NAME=FILE overrides; a prompts_dir in the official MetaMath layout gives the official
//      prompt set, official_prompts.h), the shard (job.shard "I/N", else torchrun's
//      RANK/WORLD_SIZE, by core/shard.h's rules);
//   2. the job store <out>/jobs.sqlite: a new one gets this shard's seed questions (seed problem i
//      of the concatenated datasets, each cut to `limit`, belongs to shard i % N); an existing one
//      is resumed and must have been started with the same options and prompts;
//   3. a dry run returns the plan and the status table and sends nothing (on a folder without a
//      job store it plans in a scratch store under the temp folder and leaves `out` untouched);
//      otherwise every pending job is sent through the backend, then records.jsonl and stats.json
//      are written (atomically) and the status table is returned. With targets (--mixture paper,
//      --target, --scale) the run goes on in rounds until each type's target is kept
//      (Bootstrap::run_to_targets), and a dry run adds the target plan.
// Errors name the flag or file to fix; a run stopped by a fatal backend error resumes when run
// again with the same job.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bootstrap/bootstrap.h"
#include "data/problem.h"
#include "llm/backend.h"

namespace metamath::bootstrap {

struct BootstrapJob {
  std::filesystem::path out;                              // the bootstrap folder (required)
  std::vector<std::string> datasets = {"gsm8k", "math"};  // seed datasets (train splits)
  std::filesystem::path gsm8k, math;  // seed files (default: data::default_path(name, "train"))
  std::size_t limit = 0;              // first N questions of each dataset (0 = all)
  // Comma-separated; replaces options.methods. "symbolic" (LLM-free backward questions for GSM8K
  // seeds) is not among the defaults; a run of symbolic jobs alone needs no backend.
  std::string methods = "AnsAug,Rephrased,SV,FOBAR";
  Options options;
  std::filesystem::path prompts_dir;          // ours or the official layout; default: bundled
  std::vector<std::string> prompt_overrides;  // NAME=FILE
  std::string shard;                          // "I/N"; empty: torchrun's environment, else 0/1
  llm::BackendOptions backend;
  // Target-driven sampling: the paper's mixture ("paper") times `scale`, with TYPE=N overrides;
  // --target alone selects only the listed types. No targets: one round, as before.
  std::string mixture;
  std::vector<std::string> target_flags;
  double scale = 0;  // 0 = not given (1 with --mixture paper)
  Targets targets;   // margin, caps and budget; per_type is filled from the flags above
  bool dry_run = false;
  bool retry_failed = false;  // re-send requests the backend gave up on earlier
  bool progress = true;
};

struct BootstrapJobResult {
  std::string report;       // dry run: the plan, a blank line, the status table; else the table
  std::size_t records = 0;  // records written to <out>/records.jsonl (0 in a dry run)
  uint64_t failed = 0;      // requests that failed for good (rerun with retry_failed)
};

BootstrapJobResult run_bootstrap_job(const BootstrapJob& job);

// The status table of an existing bootstrap folder (`metamath bootstrap status`); throws when it
// holds no jobs.sqlite.
std::string bootstrap_status(const std::filesystem::path& dir);

// The per-type targets from job.mixture, job.target_flags and job.scale, or nullopt when none
// was asked for; throws naming the bad flag.
std::optional<Targets> resolve_targets(const BootstrapJob& job);

// "AnsAug,SV" -> the methods (names as parse_method); throws when none is selected.
std::vector<Method> parse_methods(std::string_view list);
// NAME=FILE values -> name -> file (load_prompts checks the names).
std::map<std::string, std::filesystem::path> parse_prompt_overrides(
    const std::vector<std::string>& flags);
// The seed questions of job.datasets, in order, each dataset cut to job.limit (not sharded).
std::vector<data::Problem> load_seed_problems(const BootstrapJob& job);

}  // namespace metamath::bootstrap
