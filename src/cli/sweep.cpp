// `metamath sweep`: assemble at several scales, train and evaluate each, then report
// (the paper's accuracy-against-data-size experiment), resumably.
#include "analysis/sweep.h"

#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/log.h"
#include "core/shard.h"

namespace metamath::cli {

void register_sweep(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sweep",
      "The data-size experiment in one resumable command: from bootstrap output(s), for each "
      "--scales value assemble the paper's mixture at that scale, train a model on it, evaluate "
      "it; then write OUT/report.html (accuracy against training-set size and more). A finished "
      "stage is never redone: rerun the same command to resume. --dry-run prints the plan; "
      "--shard I/N spreads the points over machines.");
  struct Opts {
    analysis::SweepOptions s;
    std::vector<std::string> bootstrap;
    std::string scales, out, shard, precision = "f32";
    bool dry_run = false, quiet = false, no_contamination = false;
  };
  auto o = std::make_shared<Opts>();
  auto& s = o->s;
  auto& t = s.train;
  cmd->add_option("bootstrap", o->bootstrap, "bootstrap --out folders (or records.jsonl files)")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_option("--out,-o", o->out, "the sweep's folder (rerun to resume)")->required();
  cmd->add_option("--scales", o->scales,
                  "comma-separated multiples of the paper's mixture, e.g. 0.01,0.02,0.04")
      ->required();
  cmd->add_option("--target", s.targets, "TYPE=N: override one type's target at every scale");
  cmd->add_flag("--no-contamination-check", o->no_contamination,
                "assemble without the test-set check");
  cmd->add_option("--test-gsm8k", s.test_gsm8k, "GSM8K test JSONL for the contamination check");
  cmd->add_option("--test-math", s.test_math, "MATH test JSONL for the contamination check");
  cmd->add_option("--assemble-seed", s.assemble_seed, "assemble --seed")->capture_default_str();
  // train
  cmd->add_option("--model,-m", t.model, "HF model folder to fine-tune at every point");
  cmd->add_option("--init", t.init, "pretrained (from --model) or random (from --config)")
      ->capture_default_str()
      ->check(CLI::IsMember({"pretrained", "random"}));
  cmd->add_option("--config", t.config, "with --init random: tiny, small or a config.json")
      ->capture_default_str();
  cmd->add_option("--arch", t.arch, "with --init random and a preset: llama, mistral or qwen2");
  cmd->add_option("--tokenizer,-t", t.tokenizer, "tokenizer folder (default: the model folder)");
  cmd->add_option("--lr", t.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--epochs", t.epochs, "passes over each point's data")->capture_default_str();
  cmd->add_option("--max-steps", t.max_steps, "steps per point instead of --epochs");
  cmd->add_option("--global-batch", t.global_batch, "examples per optimizer step")
      ->capture_default_str();
  cmd->add_option("--micro-batch", t.micro_batch, "examples per forward/backward")
      ->capture_default_str();
  cmd->add_option("--max-len", t.max_len, "training tokens per example")->capture_default_str();
  cmd->add_option("--seed", t.seed, "training seed")->capture_default_str();
  cmd->add_option("--save-steps", t.save_steps, "checkpoint every N steps (a killed train resumes)")
      ->capture_default_str();
  cmd->add_option("--precision", o->precision, "f32, or bf16 compute")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_flag("--lora", t.lora, "train LoRA adapters instead of all weights");
  cmd->add_option("--lora-r", t.lora_config.r, "LoRA rank")->capture_default_str();
  // eval
  cmd->add_option("--bench,-b", s.benchmarks, "benchmarks to evaluate each model on")
      ->capture_default_str();
  cmd->add_option("--data", s.eval_data, "NAME=PATH data file of a benchmark (eval --data)");
  cmd->add_option("--limit", s.limit, "first N problems of each benchmark (0 = all)");
  cmd->add_option("--max-tokens", s.max_tokens, "new tokens per answer (0 = the benchmark's)");
  cmd->add_option("--prompt", s.prompt, "eval prompt template")->capture_default_str();
  cmd->add_option("--dtype", s.backend.dtype, "eval: f32, bf16 or f16")->capture_default_str();
  cmd->add_option("--device", s.backend.device, "eval: cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--max-batch", s.backend.max_batch, "eval: sequences decoded together")
      ->capture_default_str();
  cmd->add_option("--eval-max-len", s.backend.max_len, "eval: prompt + completion tokens")
      ->capture_default_str();
  // the sweep
  cmd->add_option("--shard", o->shard, "I/N: run points I, I+N, ... (default: RANK/WORLD_SIZE)");
  cmd->add_option("--title", s.title, "report title")->capture_default_str();
  cmd->add_flag("--dry-run", o->dry_run, "print the plan and each stage's state; run nothing");
  cmd->add_flag("--quiet,-q", o->quiet, "no progress bars");
  cmd->add_option("--stop-after-stages", s.stop_after_stages,
                  "stop after N stages as if killed (for testing resume)");
  cmd->callback([o]() {
    log::init();
    auto& s = o->s;
    for (const auto& b : o->bootstrap) s.bootstrap.push_back(b);
    s.out = o->out;
    s.scales = analysis::parse_scales(o->scales);
    s.contamination_check = !o->no_contamination;
    s.train.bf16 = o->precision == "bf16";
    s.shard = resolve_shard(o->shard);
    s.progress = !o->quiet;
    if (o->dry_run) {
      std::fputs(analysis::format_sweep_plan(s).c_str(), stdout);
      return;
    }
    const analysis::SweepResult r = analysis::run_sweep(s);
    std::string what = fmt::format("sweep: {} stages run, {} already done", r.ran, r.skipped);
    if (r.stopped)
      what += fmt::format("; stopped after {} stages (rerun to go on)", r.ran);
    else if (r.report_written || std::filesystem::exists(r.report))
      what += fmt::format("; report: {}", std::filesystem::absolute(r.report).string());
    std::fputs((what + "\n").c_str(), stdout);
  });
}

const Registration kRegisterSweep{80, register_sweep};

}  // namespace metamath::cli
