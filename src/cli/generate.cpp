// `metamath generate`: complete prompts with an in-process model.
#include "model/generate.h"

#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/log.h"

namespace metamath::cli {

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "generate",
      "Complete prompts with a Hugging Face-format LLaMA-family model folder (continuous batching, "
      "greedy or sampled). Prints completions, or writes JSONL rows (id, sample, prompt, "
      "completion, finish_reason, prompt_tokens, completion_tokens) with --out.");
  auto job = std::make_shared<model::GenerateJob>();
  job->params.max_new_tokens = 256;
  cmd->add_option("--model,-m", job->model, "model folder (config.json, safetensors, tokenizer)")
      ->required()
      ->check(CLI::ExistingDirectory);
  auto* p = cmd->add_option("--prompt,-p", job->prompts, "a prompt (repeatable)");
  auto* f = cmd->add_option("--prompts", job->prompts_file, "JSONL file of prompts")
                ->check(CLI::ExistingFile);
  p->excludes(f);
  cmd->add_option("--prompt-field", job->prompt_field, "field of --prompts rows holding the prompt")
      ->capture_default_str();
  cmd->add_option("--out,-o", job->out, "write JSONL results here (atomically)");
  cmd->add_option("--max-new-tokens", job->params.max_new_tokens,
                  "new tokens per completion at most")
      ->capture_default_str();
  cmd->add_option("--temperature", job->params.sampling.temperature, "0 = greedy")
      ->capture_default_str();
  cmd->add_option("--top-p", job->params.sampling.top_p, "nucleus sampling mass")
      ->capture_default_str();
  cmd->add_option("--top-k", job->params.sampling.top_k, "0 = no limit")->capture_default_str();
  cmd->add_option("--seed", job->params.sampling.seed, "seed of sample 0 (sample i uses seed + i)")
      ->capture_default_str();
  cmd->add_option("-n", job->params.n, "samples per prompt")->capture_default_str();
  cmd->add_option("--stop", job->params.stop,
                  "stop string (repeatable); not included in the output");
  cmd->add_flag("!--no-eos", job->params.stop_at_eos, "keep generating past the EOS token");
  cmd->add_option("--dtype", job->dtype,
                  "f32, bf16, q8 (int8 weights, f32 activations) or q8-dot (int8 weights and int8 "
                  "activations: integer dot products, llama.cpp q8_0's arithmetic)")
      ->capture_default_str();
  cmd->add_option("--device", job->device, "cpu, cuda or cuda:N (CUDA builds of libtorch)")
      ->capture_default_str();
  cmd->add_option("--max-batch", job->engine.max_batch,
                  "sequences decoded together (KV-cache slots)")
      ->capture_default_str();
  cmd->add_option("--max-len", job->engine.max_len, "prompt + completion tokens per sequence")
      ->capture_default_str();
  cmd->add_flag("!--no-progress", job->progress, "no progress bar");
  cmd->callback([job]() {
    log::init();
    auto rows = model::run_generate_job(*job);
    if (job->out.empty()) {
      for (const auto& r : rows) {
        if (r.contains("error"))
          std::fprintf(stderr, "prompt %s: error: %s\n", r["id"].dump().c_str(),
                       r["error"].get<std::string>().c_str());
        else
          std::printf("%s\n", r["completion"].get<std::string>().c_str());
      }
    } else {
      log::info("{} completions written to {}", rows.size(), job->out.string());
    }
  });
}

const Registration kRegisterGenerate{30, register_generate};

}  // namespace metamath::cli
