// `metamath train`: supervised fine-tuning (full or LoRA), single process or data-parallel.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/log.h"
#include "data/prompt.h"
#include "model/lora.h"
#include "train/recipe.h"
#include "train/trainer.h"

namespace metamath::cli {

void register_train(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "train",
      "Supervised fine-tuning of a Hugging Face LLaMA-family model on MetaMathQA-style JSONL "
      "(Alpaca prompt, loss on the response only). Full or LoRA; checkpoints with exact resume; "
      "data-parallel over c10d/Gloo when launched with torchrun's environment (WORLD_SIZE, RANK, "
      "MASTER_ADDR, MASTER_PORT). --recipe metamath-7b|metamath-13b|metamath-70b sets the "
      "MetaMath paper's settings (flags given explicitly override them); the effective settings "
      "are printed at start and recorded in OUT/train_run.json.");
  struct Opts {
    train::TrainOptions t;
    std::string lora_targets = "q,v";
    std::string precision = "f32";
    std::string prompt_style = "official";
    std::string loss_reduction = "token";
    std::string recipe;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto& t = o->t;
  cmd->add_option("--data,-d", t.data, "training JSONL (one record per line)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--recipe", o->recipe,
                  "the paper's settings: metamath-7b or metamath-13b (full fine-tune: 3 epochs, "
                  "lr 2e-5, global batch 128 of micro-batches of 4, 3% warmup, cosine, weight "
                  "decay 0, max length 512, bf16, official prompt, micro-batch loss mean, no "
                  "length grouping), metamath-70b (the same with LoRA r 96, alpha 16, dropout "
                  "0.05 on every projection, lr 1e-4, no warmup: LoRA standing in for the "
                  "paper's QLoRA). Flags given explicitly override the recipe's values");
  cmd->add_option("--query-field", t.query_field, "field rendered into the Alpaca prompt")
      ->capture_default_str();
  cmd->add_option("--prompt-style", o->prompt_style,
                  "training prompt: official (MetaMath's train_math.py: a query is split at its "
                  "first newline into the Alpaca prompt's instruction and input) or plain (the "
                  "whole query as the instruction)")
      ->capture_default_str()
      ->check(CLI::IsMember({"official", "plain"}));
  cmd->add_option("--response-field", t.response_field, "field the model learns to produce")
      ->capture_default_str();
  cmd->add_option("--limit", t.limit, "use only the first N records (0 = all)");
  cmd->add_option("--max-len", t.max_len, "tokens per example (longer ones are cut and counted)")
      ->capture_default_str();
  cmd->add_option("--cache-dir", t.cache_dir,
                  "where the tokenised data is cached (default OUT/.cache); reused while the "
                  "input and tokenizer are unchanged");
  cmd->add_flag("--skip-bad", t.skip_bad,
                "skip malformed JSONL lines (counted) instead of failing");
  cmd->add_option("--model,-m", t.model, "HF model folder to fine-tune");
  cmd->add_option("--init", t.init, "pretrained (from --model) or random (from --config)")
      ->capture_default_str()
      ->check(CLI::IsMember({"pretrained", "random"}));
  cmd->add_option("--config", t.config, "with --init random: tiny, small or a config.json")
      ->capture_default_str();
  cmd->add_option("--arch", t.arch, "with --init random and a preset: llama, mistral or qwen2")
      ->check(CLI::IsMember({"llama", "mistral", "qwen2"}));
  cmd->add_option("--tokenizer,-t", t.tokenizer, "tokenizer folder (default: the model folder)");
  cmd->add_option("--out,-o", t.out, "output folder (checkpoints, log, final model)")->required();
  cmd->add_option("--lr", t.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--epochs", t.epochs, "passes over the data")->capture_default_str();
  cmd->add_option("--max-steps", t.max_steps, "total optimizer steps instead of --epochs");
  cmd->add_option("--global-batch", t.global_batch, "examples per optimizer step (all processes)")
      ->capture_default_str();
  cmd->add_option("--micro-batch", t.micro_batch,
                  "examples per forward/backward (gradients accumulate up to --global-batch)")
      ->capture_default_str();
  cmd->add_option("--warmup-ratio", t.warmup_ratio, "linear warmup share of the steps")
      ->capture_default_str();
  cmd->add_option("--weight-decay", t.weight_decay, "AdamW decoupled weight decay")
      ->capture_default_str();
  cmd->add_option("--max-grad-norm", t.max_grad_norm, "gradient clipping (0 = off)")
      ->capture_default_str();
  cmd->add_option("--loss-reduction", o->loss_reduction,
                  "token: mean over every response token of the global batch; micro-batch: each "
                  "micro-batch's token mean weighted equally (Hugging Face Trainer with gradient "
                  "accumulation, as the official MetaMath training ran)")
      ->capture_default_str()
      ->check(CLI::IsMember({"token", "micro-batch"}));
  cmd->add_option("--seed", t.seed, "seed for init, data order and dropout")->capture_default_str();
  cmd->add_flag("!--no-group-by-length", t.group_by_length,
                "plain shuffled batches instead of length-grouped ones");
  cmd->add_flag("--packing", t.packing,
                "pack examples into rows of --max-len tokens (each attends only to itself, "
                "positions restart); --micro-batch then counts rows");
  cmd->add_flag(
      "--gradient-checkpointing", t.gradient_checkpointing,
      "recompute each decoder layer in the backward pass: less memory, ~1/3 more compute");
  cmd->add_option("--precision", o->precision,
                  "f32, or bf16 compute with fp32 master weights and optimizer")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_flag("--lora", t.lora, "train LoRA adapters instead of all weights");
  cmd->add_option("--lora-r", t.lora_config.r, "LoRA rank")->capture_default_str();
  cmd->add_option("--lora-alpha", t.lora_config.alpha, "LoRA alpha (scale alpha / r)")
      ->capture_default_str();
  cmd->add_option("--lora-dropout", t.lora_config.dropout, "dropout on the LoRA input")
      ->capture_default_str();
  cmd->add_option("--lora-targets", o->lora_targets,
                  "projections to adapt: any of q,k,v,o,gate,up,down, or all")
      ->capture_default_str();
  cmd->add_option("--save-steps", t.save_steps, "checkpoint every N steps (0 = only at the end)")
      ->capture_default_str();
  cmd->add_option("--keep-last", t.keep_last, "keep only the newest K checkpoints (0 = all)")
      ->capture_default_str();
  cmd->add_option("--resume", t.resume,
                  "continue from a checkpoint folder, or 'latest' (newest OUT/checkpoint-*)")
      ->expected(0, 1)
      ->default_str("latest");
  cmd->add_option("--stop-after", t.stop_after,
                  "stop after this step without the final save (as if killed; for testing resume)");
  cmd->add_flag("--quiet,-q", o->quiet, "no progress bar");
  cmd->callback([o, cmd]() {
    log::init();
    auto& t = o->t;
    t.progress = !o->quiet;
    if (cmd->count("--resume") > 0 && t.resume.empty()) t.resume = "latest";
    t.bf16 = o->precision == "bf16";
    t.lora_config.target_modules = model::parse_lora_targets(o->lora_targets);
    t.prompt_style = data::parse_prompt_style(o->prompt_style);
    t.reduction = train::parse_loss_reduction(o->loss_reduction);
    if (!o->recipe.empty())
      train::apply_train_recipe(train::find_train_recipe(o->recipe), t,
                                [cmd](const std::string& flag) {
                                  const CLI::Option* given = cmd->get_option_no_throw(flag);
                                  return given != nullptr && given->count() > 0;
                                });
    const train::TrainRun run = train::train_main(t);
    const train::TrainSummary& s = run.summary;
    if (run.rank0) {
      std::string last = s.losses.empty() ? "-" : fmt::format("{:.4f}", s.losses.back());
      std::fputs(fmt::format("trained {} steps ({} examples, {} truncated, {} dropped); final "
                             "loss {}; model in {}\n",
                             s.steps_done - s.start_step, s.examples, s.truncated, s.dropped, last,
                             s.final_dir.empty() ? "(stopped early)" : s.final_dir.string())
                     .c_str(),
                 stdout);
    }
  });
}

const Registration kRegisterTrain{50, register_train};

}  // namespace metamath::cli
