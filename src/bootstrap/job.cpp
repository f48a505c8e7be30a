#include "bootstrap/job.h"

#include <fmt/format.h>
#include <unistd.h>

#include <stdexcept>

#include "bootstrap/assemble.h"
#include "core/error.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/text.h"

namespace metamath::bootstrap {
namespace fs = std::filesystem;

std::vector<Method> parse_methods(std::string_view list) {
  std::vector<Method> methods;
  for (const auto& m : text::split(list, ','))
    if (!text::trim(m).empty()) methods.push_back(parse_method(text::trim(m)));
  if (methods.empty()) fail("--methods: nothing selected");
  return methods;
}

std::map<std::string, fs::path> parse_prompt_overrides(const std::vector<std::string>& flags) {
  std::map<std::string, fs::path> overrides;
  for (const auto& s : flags) {
    std::size_t eq = s.find('=');
    if (eq == std::string::npos) fail("--prompt '{}': expected NAME=FILE", s);
    overrides[s.substr(0, eq)] = s.substr(eq + 1);
  }
  return overrides;
}

std::vector<data::Problem> load_seed_problems(const BootstrapJob& job) {
  std::vector<data::Problem> all;
  for (const auto& d : job.datasets) {
    std::vector<data::Problem> ps;
    if (d == "gsm8k") {
      ps = data::load_gsm8k(job.gsm8k.empty() ? data::default_path("gsm8k", "train") : job.gsm8k);
    } else if (d == "math") {
      ps = data::load_math(job.math.empty() ? data::default_path("math", "train") : job.math);
    } else {
      fail("--datasets: unknown seed dataset '{}' (gsm8k or math)", d);
    }
    if (job.limit && ps.size() > job.limit) ps.resize(job.limit);
    all.insert(all.end(), ps.begin(), ps.end());
  }
  return all;
}

std::optional<Targets> resolve_targets(const BootstrapJob& job) {
  if (job.mixture.empty() && job.target_flags.empty() && job.scale == 0) return std::nullopt;
  if (!job.mixture.empty() && job.mixture != "paper")
    fail("--mixture '{}': the only mixture is 'paper' (use --target TYPE=N for others)",
         job.mixture);
  if (job.scale < 0) fail("--scale {}: must be positive", job.scale);
  Targets t = job.targets;
  const double scale = job.scale > 0 ? job.scale : 1.0;
  if (!job.mixture.empty() || job.scale > 0) {
    t.per_type = parse_targets(scale, job.target_flags);
  } else {  // --target alone: only the listed types
    std::map<std::string, uint64_t> all = parse_targets(scale, job.target_flags);
    for (const std::string& f : job.target_flags) {
      std::string type = f.substr(0, f.find('='));
      t.per_type[type] = all.at(type);
    }
  }
  if (t.margin < 0) fail("--margin {}: must be at least 0", t.margin);
  if (!job.backend.price.empty()) {  // "PROMPT,COMPLETION" dollars per million tokens
    auto parts = text::split(job.backend.price, ',');
    try {
      if (parts.size() != 2) throw std::invalid_argument("two values");
      t.price_prompt_per_m = std::stod(parts[0]);
      t.price_completion_per_m = std::stod(parts[1]);
    } catch (const std::exception&) {
      fail("--price '{}': expected PROMPT,COMPLETION dollars per million tokens",
           job.backend.price);
    }
  }
  return t;
}

std::string bootstrap_status(const fs::path& dir) {
  if (!fs::exists(dir / "jobs.sqlite")) fail("{}: no jobs.sqlite here", dir.string());
  Bootstrap b(dir);
  return format_stats(b.stats());
}

namespace {

// A new store gets this shard's seed questions; an existing one must have the same settings.
void open_job_store(Bootstrap& b, const BootstrapJob& job, const Options& opts,
                    const Prompts& prompts, const Shard& shard) {
  if (b.initialized()) {
    b.check_same(opts, prompts);
    if (!job.dry_run) log::info("{}: resuming", job.out.string());
    return;
  }
  std::vector<data::Problem> all = load_seed_problems(job);
  std::vector<data::Problem> mine;
  for (std::size_t i = 0; i < all.size(); ++i)
    if (shard.owns(i)) mine.push_back(all[i]);
  b.initialize(mine, opts, prompts);
  if (!job.dry_run)
    log::info("{}: {} seed questions (shard {}/{}), new job store", job.out.string(), mine.size(),
              shard.index, shard.count);
}

// The plan and the status table (and the target plan); sends nothing.
BootstrapJobResult plan_only(const Bootstrap& b, const std::optional<Targets>& targets) {
  BootstrapJobResult r;
  r.report = format_plan(b.plan()) + "\n" + format_stats(b.stats());
  if (targets) r.report += "\n" + format_target_plan(b.target_plan(*targets), *targets);
  return r;
}

// Sends every pending job, then writes records.jsonl and stats.json. A store holding only
// symbolic jobs (or only those left) needs no backend: it is run locally.
BootstrapJobResult send_and_export(Bootstrap& b, const BootstrapJob& job,
                                   const std::optional<Targets>& targets) {
  Bootstrap::RunOptions ro;
  ro.retry_failed = job.retry_failed;
  ro.progress = job.progress;
  Stats st;
  if (!b.llm_jobs_pending() && !job.retry_failed) {
    st = b.run_local(ro);
  } else {
    auto backend = llm::make_backend(job.backend);
    st = targets ? b.run_to_targets(*backend, ro, *targets) : b.run(*backend, ro);
  }
  BootstrapJobResult r;
  r.records = b.export_records(job.out / "records.jsonl");
  b.export_stats(job.out / "stats.json");
  r.report = format_stats(st);
  r.failed = st.total().failed;
  return r;
}

}  // namespace

BootstrapJobResult run_bootstrap_job(const BootstrapJob& job) {
  if (job.out.empty()) fail("bootstrap: --out is required");
  Options opts = job.options;
  opts.methods = parse_methods(job.methods);
  Prompts prompts = load_prompts(job.prompts_dir.empty() ? default_prompts_dir() : job.prompts_dir,
                                 parse_prompt_overrides(job.prompt_overrides));
  const Shard shard = resolve_shard(job.shard);
  const std::optional<Targets> targets = resolve_targets(job);

  // A dry run on a new folder plans in a scratch store and leaves `out` untouched.
  const bool fresh = !fs::exists(job.out / "jobs.sqlite");
  fs::path scratch;
  if (fresh && job.dry_run) {
    scratch = fs::temp_directory_path() / fmt::format("metamath_plan_{}", ::getpid());
    fs::remove_all(scratch);
  }
  BootstrapJobResult result;
  {
    Bootstrap b(scratch.empty() ? job.out : scratch);
    open_job_store(b, job, opts, prompts, shard);
    result = job.dry_run ? plan_only(b, targets) : send_and_export(b, job, targets);
  }
  if (!scratch.empty()) fs::remove_all(scratch);
  return result;
}

}  // namespace metamath::bootstrap
