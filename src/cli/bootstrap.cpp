// `metamath bootstrap`: the four MetaMath augmentations over a resumable job store.
#include <cstdio>

#include "bootstrap/job.h"
#include "cli/backend_flags.h"
#include "cli/commands.h"
#include "core/log.h"

namespace metamath::cli {

void register_bootstrap(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bootstrap",
      "Bootstrap MetaMathQA-style data from GSM8K/MATH train questions with the four MetaMath "
      "augmentations (AnsAug, Rephrased, SV, FOBAR), keeping only answers that check out. "
      "Resumable: run again with the same --out to continue.");
  auto job = std::make_shared<bootstrap::BootstrapJob>();
  auto& b = job->options;
  auto quiet = std::make_shared<bool>(false);
  cmd->add_option("--out,-o", job->out, "output folder: jobs.sqlite, records.jsonl, stats.json");
  cmd->add_option("--datasets", job->datasets, "seed datasets: gsm8k, math (train splits)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--gsm8k", job->gsm8k,
                  "GSM8K train JSONL (default: $METAMATH_DATA/gsm8k/train.jsonl)");
  cmd->add_option("--math", job->math,
                  "MATH train JSONL or folder (default: $METAMATH_DATA/math/train.jsonl)");
  cmd->add_option("--limit", job->limit,
                  "use only the first N questions of each dataset (0 = all)");
  cmd->add_option("--methods", job->methods,
                  "comma-separated subset of AnsAug,Rephrased,SV,FOBAR,symbolic (symbolic: "
                  "LLM-free GSM8K backward questions solved from the gold solution's calculator "
                  "annotations; needs no backend)")
      ->capture_default_str();
  cmd->add_option("-k,--samples", b.ansaug_samples, "AnsAug: CoT samples per question")
      ->check(CLI::Range(1, 128))
      ->capture_default_str();
  cmd->add_option("--rephrasings", b.rephrasings, "Rephrased: rephrasings per question")
      ->check(CLI::Range(1, 128))
      ->capture_default_str();
  cmd->add_option("--rephrase-attempts", b.rephrase_attempts,
                  "Rephrased: solves per rephrasing, one after another, until one is correct")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--masks", b.backward_masks,
                  "SV/FOBAR: masked numbers per question (each its own backward question)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--backward-samples", b.backward_samples,
                  "SV/FOBAR: solves per backward question")
      ->check(CLI::Range(1, 128))
      ->capture_default_str();
  cmd->add_option("--temperature", b.temperature, "sampling temperature")->capture_default_str();
  cmd->add_option("--max-tokens-gsm8k", b.max_tokens_gsm8k, "completion limit, GSM8K solves")
      ->capture_default_str();
  cmd->add_option("--max-tokens-math", b.max_tokens_math, "completion limit, MATH solves")
      ->capture_default_str();
  cmd->add_option("--max-tokens-rewrite", b.max_tokens_rewrite,
                  "completion limit, rephrasings and SV statement rewrites")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--seed", b.seed, "seed for mask choice and per-request sampling seeds")
      ->capture_default_str();
  cmd->add_option("--shard", job->shard,
                  "i/n: take every n-th question starting at i (default: RANK/WORLD_SIZE or 0/1)");
  cmd->add_option("--prompts", job->prompts_dir,
                  "prompt folder (default: the bundled prompts/): either our templates "
                  "(solve_gsm8k.txt ... sv_rewrite.txt), or the official MetaMath prompts: the "
                  "configs folder of a meta-math/MetaMath checkout "
                  "(code_for_generating_data/configs, or the checkout itself), sent as the "
                  "official scripts send them (system message, the same shots and labels; see "
                  "docs/official_prompts.md)");
  cmd->add_option("--prompt", job->prompt_overrides,
                  "NAME=FILE: replace one of our templates (solve_gsm8k, solve_math, "
                  "backward_gsm8k, backward_math, rephrase, sv_rewrite; not with the official "
                  "prompts)");
  cmd->add_option(
      "--mixture", job->mixture,
      "paper: keep sampling in rounds until the paper's mixture (GSM8K 80K/80K/40K/40K, "
      "MATH 75K/50K/15K/15K, times --scale) is kept");
  cmd->add_option("--target", job->target_flags,
                  "TYPE=N: a target for one type (GSM_AnsAug ... MATH_FOBAR); alone, only the "
                  "listed types get rounds");
  cmd->add_option("--scale", job->scale, "scale of the paper's mixture (implies --mixture paper)");
  cmd->add_option("--margin", job->targets.margin,
                  "targets: extra share requested for later deduplication")
      ->capture_default_str();
  cmd->add_option("--max-rounds", job->targets.max_rounds, "targets: at most this many rounds")
      ->capture_default_str();
  cmd->add_option("--per-question-cap", job->targets.per_question_cap,
                  "targets: at most this many samples (rephrasings, backward solves) per question")
      ->capture_default_str();
  cmd->add_option("--budget-tokens", job->targets.budget_tokens,
                  "targets: no new round once this many tokens were spent (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--budget-usd", job->targets.budget_usd,
                  "targets: no new round once this many dollars were spent (needs --price)")
      ->capture_default_str();
  cmd->add_flag("--dry-run", job->dry_run,
                "print the plan with request and token estimates; send nothing");
  cmd->add_flag("--retry-failed", job->retry_failed,
                "re-send requests the backend gave up on earlier");
  cmd->add_flag("--quiet,-q", *quiet, "no progress bar");
  add_backend_flags(cmd, job->backend);

  auto* status =
      cmd->add_subcommand("status", "per-method progress and yield of a bootstrap folder");
  auto sout = std::make_shared<std::string>();
  status->add_option("--out,-o", *sout, "the bootstrap folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  status->callback([sout]() {
    log::init();
    std::fputs(bootstrap::bootstrap_status(*sout).c_str(), stdout);
  });

  cmd->callback([job, quiet, status]() {
    if (status->parsed()) return;
    log::init();
    job->progress = !*quiet;
    bootstrap::BootstrapJobResult r = bootstrap::run_bootstrap_job(*job);
    std::fputs(r.report.c_str(), stdout);
    if (job->dry_run) return;
    log::info("{} records written to {}", r.records, (job->out / "records.jsonl").string());
    if (r.failed)
      log::warn("{} requests failed; run again with --retry-failed to re-send them", r.failed);
  });
}

const Registration kRegisterBootstrap{40, register_bootstrap};

}  // namespace metamath::cli
