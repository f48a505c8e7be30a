// `metamath ppl`: perplexity of each response given its query, under the training prompt.
#include "analysis/ppl.h"

#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/log.h"

namespace metamath::cli {

void register_ppl(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "ppl",
      "Perplexity of each response given its query under the Alpaca training prompt, over exactly "
      "the tokens `metamath train` learns (response + EOS). Writes ppl.jsonl (per record: id, "
      "type, tokens, mean NLL, ppl), ppl.json and by_type.csv (per type and overall).");
  auto o = std::make_shared<analysis::PplOptions>();
  auto quiet = std::make_shared<bool>(false);
  cmd->add_option("--model,-m", o->model, "HF model folder")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--tokenizer,-t", o->tokenizer, "tokenizer folder (default: the model folder)");
  cmd->add_option("--data,-d", o->data, "JSONL records (query, response, type)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out,-o", o->out, "output folder")->required();
  cmd->add_option("--query-field", o->query_field, "field rendered into the Alpaca prompt")
      ->capture_default_str();
  cmd->add_option("--response-field", o->response_field, "field whose tokens are scored")
      ->capture_default_str();
  cmd->add_option("--prompt-style", o->prompt_style,
                  "training prompt: official (split at the query's first newline into "
                  "instruction and input, as MetaMath's train_math.py) or plain (the whole query "
                  "as the instruction); default: the style the model was trained with (its "
                  "train_run.json), else official")
      ->check(CLI::IsMember({"official", "plain"}));
  cmd->add_option("--type-field", o->type_field, "field grouped in the summary")
      ->capture_default_str();
  cmd->add_option("--id-field", o->id_field, "field copied into each row as id")
      ->capture_default_str();
  cmd->add_option("--max-len", o->max_len, "tokens per example, as `metamath train --max-len`")
      ->capture_default_str();
  cmd->add_option("--limit", o->limit, "score only the first N records (0 = all)");
  cmd->add_option("--batch-tokens", o->batch_tokens,
                  "padded tokens per forward pass (examples are batched longest first)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "f32, bf16 or f16")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--quiet,-q", *quiet, "no progress bars");
  cmd->callback([o, quiet]() {
    log::init();
    o->progress = !*quiet;
    const analysis::PplResult r = analysis::run_ppl(*o);
    std::string out =
        fmt::format("ppl {:.4f} (mean NLL {:.4f}) over {} examples, {} tokens\n", r.overall.ppl,
                    r.overall.mean_nll, r.overall.examples, r.overall.tokens);
    for (const auto& g : r.by_type)
      out += fmt::format("  {:<16} {:>8} examples  ppl {:.4f}  mean NLL {:.4f}\n", g.type,
                         g.examples, g.ppl, g.mean_nll);
    if (r.dropped > 0 || r.truncated > 0)
      out += fmt::format("{} records dropped (prompt fills --max-len), {} truncated\n", r.dropped,
                         r.truncated);
    out += fmt::format("written to {}\n", o->out.string());
    std::fputs(out.c_str(), stdout);
  });
}

const Registration kRegisterPpl{68, register_ppl};

}  // namespace metamath::cli
