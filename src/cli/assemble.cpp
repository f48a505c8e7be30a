// `metamath assemble`: bootstrap shards -> MetaMathQA JSONL with the paper's mixture.
#include "bootstrap/assemble.h"

#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/log.h"

namespace metamath::cli {

void register_assemble(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "assemble",
      "Merge bootstrap outputs (one folder per shard) into MetaMathQA JSONL (query, response, "
      "type, original_question): per-type targets (the paper's mixture times --scale), exact and "
      "near-duplicate removal, test-set contamination check, stats table.");
  struct Opts {
    std::vector<std::string> inputs, targets;
    std::string out, test_gsm8k, test_math;
    double scale = 1.0, symbolic_share = -1;
    bool no_near = false, no_contamination = false, no_symbolic = false;
    uint64_t seed = 1;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("inputs", o->inputs, "bootstrap --out folders (or records.jsonl files)")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_option("--out,-o", o->out, "output MetaMathQA JSONL")->required();
  cmd->add_option("--scale", o->scale,
                  "multiply the paper's targets (GSM 80K/80K/40K/40K, MATH 75K/50K/15K/15K)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--target", o->targets, "TYPE=N: override one target, e.g. GSM_SV=1000");
  cmd->add_option(
      "--test-gsm8k", o->test_gsm8k,
      "GSM8K test JSONL for the contamination check (default: $METAMATH_DATA/gsm8k/test.jsonl)");
  cmd->add_option(
      "--test-math", o->test_math,
      "MATH test JSONL for the contamination check (default: $METAMATH_DATA/math/test.jsonl)");
  cmd->add_flag("--no-contamination-check", o->no_contamination, "skip the test-set check");
  cmd->add_flag("--no-near-dedup", o->no_near, "keep near duplicates (normalised text equal)");
  cmd->add_option("--seed", o->seed, "seed for which records fill a target")->capture_default_str();
  cmd->add_option("--symbolic-share", o->symbolic_share,
                  "share of each type's target reserved for symbolic records (bootstrap "
                  "--methods symbolic), the rest for LLM-made ones; a pool that runs short is "
                  "filled from the other (default: both compete alike)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--no-symbolic", o->no_symbolic, "leave symbolic records out");
  cmd->callback([o]() {
    log::init();
    bootstrap::AssembleOptions a;
    for (const auto& i : o->inputs) a.inputs.push_back(i);
    a.out = o->out;
    a.targets = bootstrap::parse_targets(o->scale, o->targets);
    a.near_dedup = !o->no_near;
    a.seed = o->seed;
    a.symbolic_share = o->symbolic_share;
    a.no_symbolic = o->no_symbolic;
    if (!o->no_contamination) bootstrap::add_test_sets(a, o->test_gsm8k, o->test_math);
    bootstrap::AssembleReport r = bootstrap::assemble(a);
    std::fputs(bootstrap::format_report(r).c_str(), stdout);
    for (const std::string& line : bootstrap::shortfalls(r)) log::warn("target not met: {}", line);
    log::info("{} records written to {} ({} test questions checked)", r.total().kept, o->out,
              r.test_questions);
  });
}

const Registration kRegisterAssemble{45, register_assemble};

}  // namespace metamath::cli
