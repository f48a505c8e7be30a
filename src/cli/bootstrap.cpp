// `metamath bootstrap`: the four MetaMath augmentations over a resumable job store.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include "bootstrap/bootstrap.h"
#include "cli/backend_flags.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/text.h"
#include "data/problem.h"

namespace metamath::cli {
namespace fs = std::filesystem;

namespace {

// "--shard i/n", else torchrun's RANK/WORLD_SIZE, else 0/1.
std::pair<int, int> parse_shard(const std::string& s) {
  if (s.empty()) {
    const char* r = std::getenv("RANK");
    const char* w = std::getenv("WORLD_SIZE");
    if (r && w && *r && *w) return parse_shard(std::string(r) + "/" + w);
    return {0, 1};
  }
  std::size_t slash = s.find('/');
  int i = -1, n = 0;
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    i = std::stoi(s.substr(0, slash));
    n = std::stoi(s.substr(slash + 1));
  } catch (const std::exception&) {
    fail("--shard '{}': expected i/n, e.g. 0/4", s);
  }
  if (n < 1 || i < 0 || i >= n) fail("--shard '{}': need 0 <= i < n", s);
  return {i, n};
}

}  // namespace

void register_bootstrap(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bootstrap",
      "Bootstrap MetaMathQA-style data from GSM8K/MATH train questions with the four MetaMath "
      "augmentations (AnsAug, Rephrased, SV, FOBAR), keeping only answers that check out. "
      "Resumable: run again with the same --out to continue.");
  struct Opts {
    std::string out, gsm8k, math, shard, prompts_dir, methods = "AnsAug,Rephrased,SV,FOBAR";
    std::vector<std::string> datasets = {"gsm8k", "math"}, prompt_overrides;
    std::size_t limit = 0;
    bootstrap::Options b;
    llm::BackendOptions backend;
    bool dry_run = false, retry_failed = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--out,-o", o->out, "output folder: jobs.sqlite, records.jsonl, stats.json");
  cmd->add_option("--datasets", o->datasets, "seed datasets: gsm8k, math (train splits)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--gsm8k", o->gsm8k, "GSM8K train JSONL (default: $METAMATH_DATA/gsm8k/train.jsonl)");
  cmd->add_option("--math", o->math, "MATH train JSONL or folder (default: $METAMATH_DATA/math/train.jsonl)");
  cmd->add_option("--limit", o->limit, "use only the first N questions of each dataset (0 = all)");
  cmd->add_option("--methods", o->methods, "comma-separated subset of AnsAug,Rephrased,SV,FOBAR")
      ->capture_default_str();
  cmd->add_option("-k,--samples", o->b.ansaug_samples, "AnsAug: CoT samples per question")
      ->check(CLI::Range(1, 128))
      ->capture_default_str();
  cmd->add_option("--rephrasings", o->b.rephrasings, "Rephrased: rephrasings per question")
      ->check(CLI::Range(1, 128))
      ->capture_default_str();
  cmd->add_option("--rephrase-attempts", o->b.rephrase_attempts,
                  "Rephrased: solves per rephrasing, one after another, until one is correct")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--masks", o->b.backward_masks,
                  "SV/FOBAR: masked numbers per question (each its own backward question)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--backward-samples", o->b.backward_samples,
                  "SV/FOBAR: solves per backward question")
      ->check(CLI::Range(1, 128))
      ->capture_default_str();
  cmd->add_option("--temperature", o->b.temperature, "sampling temperature")->capture_default_str();
  cmd->add_option("--max-tokens-gsm8k", o->b.max_tokens_gsm8k, "completion limit, GSM8K solves")
      ->capture_default_str();
  cmd->add_option("--max-tokens-math", o->b.max_tokens_math, "completion limit, MATH solves")
      ->capture_default_str();
  cmd->add_option("--max-tokens-rewrite", o->b.max_tokens_rewrite,
                  "completion limit, rephrasings and SV statement rewrites")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--seed", o->b.seed, "seed for mask choice and per-request sampling seeds")
      ->capture_default_str();
  cmd->add_option("--shard", o->shard,
                  "i/n: take every n-th question starting at i (default: RANK/WORLD_SIZE or 0/1)");
  cmd->add_option("--prompts", o->prompts_dir, "folder of prompt templates (default: bundled prompts/)");
  cmd->add_option("--prompt", o->prompt_overrides,
                  "NAME=FILE: replace one template (solve_gsm8k, solve_math, backward_gsm8k, "
                  "backward_math, rephrase, sv_rewrite)");
  cmd->add_flag("--dry-run", o->dry_run, "print the plan with request and token estimates; send nothing");
  cmd->add_flag("--retry-failed", o->retry_failed, "re-send requests the backend gave up on earlier");
  cmd->add_flag("--quiet,-q", o->quiet, "no progress bar");
  add_backend_flags(cmd, o->backend);

  auto* status = cmd->add_subcommand("status", "per-method progress and yield of a bootstrap folder");
  auto sout = std::make_shared<std::string>();
  status->add_option("--out,-o", *sout, "the bootstrap folder")->required()->check(CLI::ExistingDirectory);
  status->callback([sout]() {
    log::init();
    if (!fs::exists(fs::path(*sout) / "jobs.sqlite")) fail("{}: no jobs.sqlite here", *sout);
    bootstrap::Bootstrap b(*sout);
    std::fputs(bootstrap::format_stats(b.stats()).c_str(), stdout);
  });

  cmd->callback([o, status]() {
    if (status->parsed()) return;
    log::init();
    if (o->out.empty()) fail("bootstrap: --out is required");
    bootstrap::Options opts = o->b;
    opts.methods.clear();
    for (const auto& m : text::split(o->methods, ','))
      if (!text::trim(m).empty()) opts.methods.push_back(bootstrap::parse_method(text::trim(m)));
    if (opts.methods.empty()) fail("--methods: nothing selected");
    std::map<std::string, fs::path> overrides;
    for (const auto& s : o->prompt_overrides) {
      std::size_t eq = s.find('=');
      if (eq == std::string::npos) fail("--prompt '{}': expected NAME=FILE", s);
      overrides[s.substr(0, eq)] = s.substr(eq + 1);
    }
    bootstrap::Prompts prompts = bootstrap::load_prompts(
        o->prompts_dir.empty() ? bootstrap::default_prompts_dir() : fs::path(o->prompts_dir),
        overrides);
    auto [shard, shards] = parse_shard(o->shard);

    // A dry run on a new folder plans in a scratch store and leaves --out untouched.
    bool fresh = !fs::exists(fs::path(o->out) / "jobs.sqlite");
    fs::path dir = o->out;
    fs::path scratch;
    if (fresh && o->dry_run) {
      scratch = fs::temp_directory_path() / fmt::format("metamath_plan_{}", ::getpid());
      fs::remove_all(scratch);
      dir = scratch;
    }
    {
      bootstrap::Bootstrap b(dir);
      if (!b.initialized()) {
        std::vector<data::Problem> all;
        for (const auto& d : o->datasets) {
          std::vector<data::Problem> ps;
          if (d == "gsm8k") {
            ps = data::load_gsm8k(o->gsm8k.empty() ? data::default_path("gsm8k", "train")
                                                   : fs::path(o->gsm8k));
          } else if (d == "math") {
            ps = data::load_math(o->math.empty() ? data::default_path("math", "train")
                                                 : fs::path(o->math));
          } else {
            fail("--datasets: unknown seed dataset '{}' (gsm8k or math)", d);
          }
          if (o->limit && ps.size() > o->limit) ps.resize(o->limit);
          all.insert(all.end(), ps.begin(), ps.end());
        }
        std::vector<data::Problem> mine;
        for (std::size_t i = 0; i < all.size(); ++i)
          if (static_cast<int>(i % static_cast<std::size_t>(shards)) == shard) mine.push_back(all[i]);
        b.initialize(mine, opts, prompts);
        if (!o->dry_run)
          log::info("{}: {} seed questions (shard {}/{}), new job store", o->out, mine.size(),
                    shard, shards);
      } else {
        b.check_same(opts, prompts);
        if (!o->dry_run) log::info("{}: resuming", o->out);
      }
      if (o->dry_run) {
        std::fputs(bootstrap::format_plan(b.plan()).c_str(), stdout);
        std::fputs("\n", stdout);
        std::fputs(bootstrap::format_stats(b.stats()).c_str(), stdout);
      } else {
        auto backend = llm::make_backend(o->backend);
        bootstrap::Bootstrap::RunOptions ro;
        ro.retry_failed = o->retry_failed;
        ro.progress = !o->quiet;
        bootstrap::Stats st = b.run(*backend, ro);
        std::size_t n = b.export_records(fs::path(o->out) / "records.jsonl");
        b.export_stats(fs::path(o->out) / "stats.json");
        std::fputs(bootstrap::format_stats(st).c_str(), stdout);
        log::info("{} records written to {}", n, (fs::path(o->out) / "records.jsonl").string());
        if (st.total().failed)
          log::warn("{} requests failed; run again with --retry-failed to re-send them",
                    st.total().failed);
      }
    }
    if (!scratch.empty()) fs::remove_all(scratch);
  });
}

const Registration kRegisterBootstrap{40, register_bootstrap};

}  // namespace metamath::cli
