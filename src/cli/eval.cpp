// `metamath eval`: GSM8K, MATH, MATH-500, GSM8K_Backward, SVAMP and ASDiv accuracy through any
// backend; --merge, --rescore and --compare work on finished runs.
#include <fmt/format.h>

#include <cstdio>

#include "cli/backend_flags.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/shard.h"
#include "eval/compare.h"
#include "eval/provenance.h"
#include "eval/recipe.h"
#include "eval/runner.h"

namespace metamath::cli {

namespace {

struct Opts {
  llm::BackendOptions backend;
  eval::EvalOptions eval;
  std::string benches = "gsm8k,math", out, shard, merge, rescore, scoring = "ours", recipe;
  std::vector<std::string> data, stop, compare;
  bool no_stop = false, quiet = false;
  double time_ms = 100;
  int rounds = 10000;
};

void add_eval_flags(CLI::App* cmd, Opts& o) {
  cmd->add_option("--recipe", o.recipe,
                  "metamath: the paper's evaluation (official eval_gsm8k.py / eval_math.py): "
                  "gsm8k and math, the Alpaca prompt, greedy, 512/2048 new tokens, MetaMath's stop "
                  "strings, --scoring both. Flags given explicitly override the recipe's values");
  cmd->add_option("--bench,-b", o.benches,
                  "comma-separated benchmarks: gsm8k, math, math500, gsm8k_backward, svamp, asdiv, "
                  "or all")
      ->capture_default_str();
  cmd->add_option(
      "--data", o.data,
      "NAME=PATH data file of a benchmark (repeatable; a bare PATH when one benchmark is "
      "run); default: the benchmark's file under $METAMATH_DATA (../shared/data)");
  cmd->add_option("--out,-o", o.out, "output folder (samples, summary); rerun to resume");
  cmd->add_option("--prompt", o.eval.prompt,
                  "prompt template: alpaca (MetaMath's), or a name under prompts/eval/ (fewshot, "
                  "cot, chat_boxed; NAME_<gsm8k|math>.txt is tried first) or a file path")
      ->capture_default_str();
  cmd->add_option("--n,-n", o.eval.n, "samples per problem (pass@k and maj@k for n > 1)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--temperature", o.eval.temperature, "0 = greedy")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--top-p", o.eval.top_p, "nucleus sampling mass")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--seed", o.eval.seed, "sample s of problem i uses seed + i*n + s")
      ->capture_default_str();
  cmd->add_option("--max-tokens", o.eval.max_tokens,
                  "new tokens per sample (0 = the benchmark's: 512 GSM-style, 2048 MATH-style)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  auto* stop = cmd->add_option("--stop", o.stop,
                               "stop string (repeatable); replaces MetaMath's (Question:, USER:, "
                               "ASSISTANT:, Instruction:, Response: and the bare words)");
  cmd->add_flag("--no-stop", o.no_stop, "no stop strings")->excludes(stop);
  cmd->add_option("--limit", o.eval.limit, "first N problems of each benchmark (0 = all)")
      ->capture_default_str();
  cmd->add_option("--shard", o.shard,
                  "I/N: run every N-th problem starting at I (default: RANK/WORLD_SIZE when set); "
                  "then --merge the folder");
  cmd->add_option("--scoring", o.scoring,
                  "accuracy printed: ours, official (MetaMath's released eval scripts, as the "
                  "paper's table), or both with their difference; summary.json always holds both")
      ->check(CLI::IsMember({"ours", "official", "both"}))
      ->capture_default_str();
  cmd->add_option("--time-limit-ms", o.time_ms, "hard time limit for one answer comparison")
      ->capture_default_str();
  cmd->add_flag("--retry-errors", o.eval.retry_errors,
                "when resuming, generate again the problems the backend refused (saved as errors, "
                "counted wrong)");
  cmd->add_flag("--quiet,-q", o.quiet, "no progress bar");
  auto* merge = cmd->add_option("--merge", o.merge, "merge the finished shards in this folder")
                    ->check(CLI::ExistingDirectory);
  auto* rescore = cmd->add_option("--rescore", o.rescore,
                                  "re-score the saved completions of a finished run folder")
                      ->check(CLI::ExistingDirectory);
  auto* compare = cmd->add_option("--compare", o.compare,
                                  "A.json B.json: compare two summary.json files side by side")
                      ->expected(2)
                      ->check(CLI::ExistingFile);
  cmd->add_option("--bootstrap", o.rounds, "--compare: bootstrap resamples")
      ->check(CLI::Range(100, 10000000))
      ->capture_default_str();
  merge->excludes(rescore)->excludes(compare);
  rescore->excludes(compare);
  add_backend_flags(cmd, o.backend);
}

// --compare, --merge and --rescore work on finished runs; returns false when none was given.
bool run_on_finished(const Opts& o, const answer::Limits& limits) {
  if (!o.compare.empty()) {
    eval::CompareOptions co;
    co.rounds = o.rounds;
    eval::Comparison c = eval::compare_files(o.compare[0], o.compare[1], co);
    std::fputs(c.markdown.c_str(), stdout);
    return true;
  }
  if (!o.merge.empty()) {
    eval::EvalResult r = eval::merge_shards(o.merge);
    std::fputs(r.markdown.c_str(), stdout);
    log::info("merged shards into {}", o.merge);
    return true;
  }
  if (!o.rescore.empty()) {
    eval::EvalResult r = eval::rescore_run(o.rescore, limits);
    std::fputs(r.markdown.c_str(), stdout);
    return true;
  }
  return false;
}

// A new or resumed run through the backend. given(flag): the user gave that flag.
void run_new(Opts& o, const answer::Limits& limits,
             const std::function<bool(const std::string&)>& given) {
  eval::EvalOptions& e = o.eval;
  if (o.out.empty()) fail("eval: --out FOLDER is needed (it holds the samples and the summary)");
  if (o.backend.model.empty())
    fail("eval: --model is needed (local: a model folder; openai: its name)");
  e.out_dir = o.out;
  e.benchmarks = eval::parse_benchmark_list(o.benches);
  e.data = eval::parse_data_flags(o.data, e.benchmarks);
  if (o.no_stop)
    e.stop = std::vector<std::string>{};
  else if (!o.stop.empty())
    e.stop = o.stop;
  e.shard = resolve_shard(o.shard);
  e.progress = !o.quiet;
  e.limits = limits;
  e.scoring = eval::parse_scoring(o.scoring);
  e.provenance = eval::backend_provenance(o.backend);
  json recipe = nullptr;
  if (!o.recipe.empty()) {
    recipe = eval::apply_eval_recipe(eval::find_eval_recipe(o.recipe), e, given);
    e.provenance["recipe"] = recipe;
  }
  log::info("{}", eval::describe_eval_settings(e, recipe));
  std::unique_ptr<llm::Backend> backend = llm::make_backend(o.backend);
  eval::EvalResult r = eval::run_eval(*backend, e);
  std::fputs(r.markdown.c_str(), stdout);
  const llm::Usage& u = backend->usage();
  log::info("{} problems generated, {} resumed; {} prompt + {} completion tokens this run{}",
            r.generated, r.resumed, u.prompt_tokens.load(), u.completion_tokens.load(),
            o.backend.price.empty() ? std::string() : fmt::format(", ${:.4f}", backend->cost()));
  if (e.shard.whole())
    log::info("results in {}", o.out);
  else
    log::info("shard {}/{} done; when every shard is done: metamath eval --merge {}", e.shard.index,
              e.shard.count, o.out);
}

}  // namespace

void register_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval",
      "Evaluate a model on math benchmarks as MetaMath does (Alpaca prompt ending in \"Let's think "
      "step by step.\", greedy, 512/2048 new tokens): per-sample JSONL, summary JSON and a "
      "Markdown table in --out. Rerun the same command to resume. --merge joins --shard runs, "
      "--rescore re-checks saved completions, --compare A.json B.json compares two runs.");
  auto o = std::make_shared<Opts>();
  add_eval_flags(cmd, *o);
  cmd->callback([o, cmd]() {
    log::init();
    answer::Limits limits;
    limits.time_ms = o->time_ms;
    // --no-stop stands for --stop as far as a recipe goes.
    auto given = [cmd](const std::string& flag) {
      auto count = [cmd](const std::string& f) {
        const CLI::Option* opt = cmd->get_option_no_throw(f);
        return opt != nullptr ? opt->count() : 0;
      };
      return count(flag) > 0 || (flag == "--stop" && count("--no-stop") > 0);
    };
    if (!run_on_finished(*o, limits)) run_new(*o, limits, given);
  });
}

const Registration kRegisterEval{60, register_eval};

}  // namespace metamath::cli
