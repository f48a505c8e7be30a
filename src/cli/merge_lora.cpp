// `metamath merge-lora`: fold a LoRA adapter (PEFT folder) into its base model.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/log.h"
#include "model/lora.h"

namespace metamath::cli {

void register_merge_lora(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "merge-lora",
      "Write a Hugging Face model folder whose weights are the base model's plus the LoRA "
      "adapter's (alpha / r) * B A, loadable without PEFT.");
  auto o = std::make_shared<model::MergeLoraOptions>();
  auto dtype = std::make_shared<std::string>("f32");
  cmd->add_option("--base,-m", o->base, "base HF model folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--adapter,-a", o->adapter,
                  "PEFT adapter folder (adapter_config.json + adapter_model.safetensors)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out,-o", o->out, "output folder")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer files to copy (default: the base's)");
  cmd->add_option("--dtype", *dtype, "stored dtype: f32 or bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->callback([o, dtype]() {
    log::init();
    o->bf16 = *dtype == "bf16";
    const model::LoraConfig c = model::merge_lora(*o);
    std::fputs(fmt::format("merged {} (r {}, alpha {}, {}) into {}\n", o->adapter.string(), c.r,
                           c.alpha, fmt::join(c.target_modules, ","), o->out.string())
                   .c_str(),
               stdout);
  });
}

const Registration kRegisterMergeLora{55, register_merge_lora};

}  // namespace metamath::cli
