// `metamath plan`: measure the kernel planner's candidates for a model on this CPU and print them.
#include <cstdio>

#include "cli/commands.h"
#include "core/log.h"
#include "model/plan_model.h"

namespace metamath::cli {

void register_plan(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "plan",
      "Measure, on this CPU, every candidate implementation of the products a model's prefill "
      "and decode steps use (our AVX2 / AVX-512 / AVX512_BF16 kernels, libtorch, widened bf16) "
      "and of their attention (in-place kernel or batched matmuls), "
      "save the fastest per shape to the plan file ($XDG_CACHE_HOME/metamath/plan.tsv) and print "
      "the table. Generation then uses the plan (METAMATH_PLAN=measure|cached|off; "
      "METAMATH_KERNEL=NAME forces a candidate).");
  auto o = std::make_shared<model::PlanModelOptions>();
  cmd->add_option("--model,-m", o->model, "model folder (config.json, safetensors)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--dtype", o->dtype,
                  "f32, bf16, q8 (int8 weights, f32 activations) or q8-dot (int8 activations too)")
      ->check(CLI::IsMember({"f32", "bf16", "q8", "q8-dot"}))
      ->capture_default_str();
  cmd->add_option("--batch", o->batches, "sequences decoded together (repeatable)")
      ->capture_default_str();
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prefill tokens per sequence")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads,
                  "threads (plans are kept per thread count; default: all physical cores or "
                  "$METAMATH_THREADS)");
  cmd->callback([o]() {
    log::init();
    std::fputs(model::format_plan_table(model::plan_model(*o)).c_str(), stdout);
  });
}

const Registration kRegisterPlan{95, register_plan};

}  // namespace metamath::cli
