// `metamath init-model`: write a randomly initialised Hugging Face-format LLaMA-family model.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/log.h"
#include "model/init.h"

namespace metamath::cli {

void register_init_model(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "init-model",
      "Write a randomly initialised model folder in Hugging Face format (config.json, "
      "generation_config.json, model.safetensors, tokenizer files) for smoke tests and training "
      "from scratch. Weights: normal(0, 0.02) for linear and embedding layers, ones for norms.");
  auto o = std::make_shared<model::InitModelOptions>();
  cmd->add_option("--config,-c", o->config,
                  "tiny (hidden 64, 2 layers), small (hidden 768, 12 layers, ~110M parameters "
                  "with a 32k vocabulary) or a config.json file")
      ->capture_default_str();
  cmd->add_option("--tokenizer,-t", o->tokenizer,
                  "tokenizer folder (tokenizer.model or tokenizer.json): sets the vocabulary size "
                  "and bos/eos ids; its files are copied into the model folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out,-o", o->out, "output folder")->required();
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_option("--arch", o->arch,
                  "llama, mistral or qwen2 (default: llama for presets, the file's own for a "
                  "config.json)")
      ->check(CLI::IsMember({"llama", "mistral", "qwen2"}));
  cmd->add_option("--dtype", o->dtype, "stored weight dtype: f32 or bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->callback([o]() {
    log::init();
    model::InitModelResult r = model::init_model(*o);
    const auto& c = r.config;
    std::fputs(fmt::format("{}: {} ({} layers, hidden {}, heads {}/{} kv, vocab {}), {:.1f}M "
                           "parameters, {}\n",
                           o->out.string(), model::arch_architecture(c.arch), c.num_hidden_layers,
                           c.hidden_size, c.num_attention_heads, c.num_key_value_heads,
                           c.vocab_size, static_cast<double>(r.num_parameters) / 1e6, c.torch_dtype)
                   .c_str(),
               stdout);
    for (const auto& f : r.files) log::info("wrote {}", f.string());
  });
}

const Registration kRegisterInitModel{20, register_init_model};

}  // namespace metamath::cli
