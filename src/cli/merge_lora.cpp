// `metamath merge-lora`: fold a LoRA adapter (PEFT folder) into its base model.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/log.h"
#include "model/lora.h"
#include "model/model.h"

namespace metamath::cli {

void register_merge_lora(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "merge-lora",
      "Write a Hugging Face model folder whose weights are the base model's plus the LoRA "
      "adapter's (alpha / r) * B A, loadable without PEFT.");
  struct Opts {
    std::string base, adapter, out, tokenizer, dtype = "f32";
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--base,-m", o->base, "base HF model folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--adapter,-a", o->adapter,
                  "PEFT adapter folder (adapter_config.json + adapter_model.safetensors)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out,-o", o->out, "output folder")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer files to copy (default: the base's)");
  cmd->add_option("--dtype", o->dtype, "stored dtype: f32 or bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->callback([o]() {
    log::init();
    model::Model m = model::Model::load(o->base, at::kFloat);
    model::LoraAdapter lora = model::LoraAdapter::load(o->adapter, m);
    lora.merge_into(m);
    const std::string tok = o->tokenizer.empty() ? o->base : o->tokenizer;
    m.save(o->out, tok);
    // bf16: re-read the merged fp32 folder as bf16 and store that.
    if (o->dtype == "bf16") model::Model::load(o->out, at::kBFloat16).save(o->out, tok);
    std::fputs(
        fmt::format("merged {} (r {}, alpha {}, {}) into {}\n", o->adapter, lora.config().r,
                    lora.config().alpha, fmt::join(lora.config().target_modules, ","), o->out)
            .c_str(),
        stdout);
  });
}

const Registration kRegisterMergeLora{55, register_merge_lora};

}  // namespace metamath::cli
