// `metamath export`: write a model folder in another runtime's format (GGUF for llama.cpp,
// Ollama and LM Studio; docs/gguf_export.md).
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/log.h"
#include "model/gguf.h"

namespace metamath::cli {

void register_export(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "export",
      "Write a Hugging Face LLaMA-2/3, Mistral or Qwen2 folder (e.g. a MetaMath fine-tune) as a "
      "GGUF file that llama.cpp, Ollama and LM Studio load.");
  auto o = std::make_shared<model::GgufExportOptions>();
  auto format = std::make_shared<std::string>("gguf");
  cmd->add_option("--format", *format, "output format")
      ->capture_default_str()
      ->check(CLI::IsMember({"gguf"}));
  cmd->add_option("--model,-m", o->model_dir,
                  "HF model folder (config.json, safetensors, tokenizer.model or tokenizer.json)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out,-o", o->out, "output .gguf file")->required();
  cmd->add_option("--dtype", o->dtype,
                  "weight type: f32, f16, bf16 or q8_0 (norms and biases stay f32)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0"}));
  cmd->add_option("--name", o->name, "general.name (default: the model folder's name)");
  cmd->callback([o, format]() {  // format too: its option writes into it while parsing
    log::init();
    const model::GgufExportResult r = model::export_gguf(*o);
    std::string note;
    if (!r.f16_fallbacks.empty())
      note = fmt::format("; {} matrices in f16 (rows not a multiple of 32): {}",
                         r.f16_fallbacks.size(), fmt::join(r.f16_fallbacks, ","));
    std::fputs(fmt::format("wrote {} ({} bytes, {} tensors, arch {}, tokenizer {}{}, {} "
                           "tokens{})\n",
                           o->out.string(), r.bytes, r.tensors, r.architecture, r.tokenizer,
                           r.pre.empty() ? "" : "/" + r.pre, r.vocab_size, note)
                   .c_str(),
               stdout);
  });
}

const Registration kRegisterExport{58, register_export};

}  // namespace metamath::cli
