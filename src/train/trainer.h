#pragma once
// Supervised fine-tuning: full or LoRA, from a Hugging Face checkpoint or from scratch, single
// process or data-parallel over c10d.
//
// Loss (--loss-reduction). The loss of an optimizer step is a weighted sum of the token
// cross-entropies -log p over the response tokens of its global batch; gradients are summed over
// micro-batches (accumulation) and over ranks (all-reduce).
//   token        every response token of the global batch weighs the same: each micro-batch
//                contributes sum(-log p) / (label tokens of the whole global batch). The result
//                does not depend on how the global batch is cut into micro-batches or ranks.
//   micro-batch  every micro-batch weighs the same: each contributes its own token mean
//                sum(-log p) / (its label tokens), divided by the number of micro-batches of the
//                global batch (all ranks). This is Hugging Face Trainer's loss with gradient
//                accumulation over data-parallel ranks (each micro-batch's mean loss divided by
//                the accumulation steps, gradients averaged over ranks), which MetaMath's
//                train_math.py ran: a token of a short micro-batch weighs more than one of a
//                long micro-batch, so the result depends on --micro-batch and on the order.
//                (A global batch cut short at the end of an epoch divides by its own number of
//                micro-batches.)
//
// Step: zero grads -> forward/backward per micro-batch -> all-reduce -> stop if the loss is not
// finite -> clip to max_grad_norm -> AdamW with the cosine-with-warmup learning rate.
//
// Training checkpoints: OUT/checkpoint-<step>/ holds an HF-format model folder (config,
// safetensors, tokenizer files; for LoRA the PEFT adapter folder) plus optimizer.safetensors (AdamW
// moments and step) and trainer_state.json (step, epoch, schedule, data order). Data order and
// dropout RNG are functions of (seed, epoch, step, rank), so a resumed run repeats exactly what an
// uninterrupted one does. A checkpoint folder is written under a temporary name and renamed when
// complete. OUT/train_log.jsonl gets one row per step (rank 0): loss, lr, grad_norm, tokens and
// label_tokens of the global batch, rank0_rows / rank0_positions (rank 0's forward rows and
// positions, padding included: what packing saves), tokens_per_s, elapsed_s. At the end the final
// model goes to OUT/.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/lora.h"
#include "model/model.h"
#include "train/distributed.h"
#include "train/optim.h"
#include "train/recipe.h"
#include "train/sft_data.h"

namespace metamath::train {

inline constexpr int64_t kIgnoreIndex = -100;

enum class LossReduction { Token, MicroBatch };
// "token" or "micro-batch"; anything else is an error naming both.
LossReduction parse_loss_reduction(std::string_view name);
std::string_view loss_reduction_name(LossReduction r);

// A padded micro-batch. targets[b, t] is the token to predict at position t (the next token), or
// kIgnoreIndex.
struct Batch {
  at::Tensor input_ids;      // [B, T] int64, right-padded
  at::Tensor segment_ids;    // [B, T] packed rows (model.h), or undefined: one example per row
  at::Tensor targets;        // [B, T] int64
  at::Tensor label_index;    // [N] flat positions (b * T + t) of the targets that count
  at::Tensor label_targets;  // [N]
  int64_t tokens = 0;        // real (non-padding) tokens
  int64_t label_tokens = 0;  // N
};

// Batch of dataset examples, padded on the right with pad_id.
Batch make_batch(const SftData& data, const std::vector<int64_t>& examples, int64_t pad_id);
// Packed batch: each row holds the listed examples back to back (segments 1, 2, ...), padded on
// the right with pad_id (segment 0). Targets stay within each example.
Batch make_packed_batch(const SftData& data, const std::vector<std::vector<int64_t>>& rows,
                        int64_t pad_id);
// Batch from explicit tensors (targets as above; tokens = every position).
Batch batch_from_tensors(const at::Tensor& input_ids, const at::Tensor& targets);

// Sum over the batch's label positions of -log softmax(logits)[target], float32 scalar that
// autograd can differentiate.
at::Tensor batch_loss_sum(const model::Model& model, const Batch& batch);
// The terms of that sum one by one: -log softmax(logits)[target] at each label position, in
// label_index order, float32 [N] (evaluation: `metamath ppl`; call it under c10::InferenceMode).
at::Tensor batch_token_losses(const model::Model& model, const Batch& batch);

// bf16 training with fp32 master weights: a bfloat16 model whose weight slots are casts of the
// master's fp32 tensors recorded by autograd (Model::cast_of), so its forward runs in bf16 (HF's
// bf16 semantics: norms and softmax in fp32) while gradients and AdamW stay in fp32.
// bind_bf16_shadow re-casts (Model::recast_from, once per micro-batch; the adapter pointer and the
// recompute setting are shared).
model::Model make_bf16_shadow(const model::Model& master);
void bind_bf16_shadow(model::Model& shadow, const model::Model& master);

struct StepOptions {
  double lr = 2e-5;
  double max_grad_norm = 1.0;
  model::Model* bf16_shadow = nullptr;  // set: forward through it (make_bf16_shadow)
  LossReduction reduction = LossReduction::Token;
  // Micro-batches of the whole global batch, every rank's (reduction MicroBatch). 0: this rank's
  // (allowed only in a single process).
  int64_t global_micro_batches = 0;
};
struct StepResult {
  double loss = 0;       // the global batch's loss under the reduction (see the header comment)
  double grad_norm = 0;  // before clipping
  bool finite = true;    // false: nothing was updated
};
// One optimizer step over this rank's micro-batches of a global batch holding
// global_label_tokens label tokens in all.
StepResult train_step(const model::Model& model, AdamW& opt, const std::vector<Batch>& micro,
                      int64_t global_label_tokens, const StepOptions& so, Comm* comm = nullptr);

// Marks tensors as trainable leaves (requires_grad) and returns them; for a full fine-tune, every
// model parameter (a tied lm_head is the embedding, listed once).
model::NamedTensors trainable_model_parameters(model::Model& model);

struct TrainOptions {
  // data
  std::filesystem::path data;
  std::string query_field = "query", response_field = "response";
  data::PromptStyle prompt_style = data::PromptStyle::Official;  // data/prompt.h
  int64_t limit = 0;
  int64_t max_len = 512;
  std::filesystem::path cache_dir;  // empty: OUT/.cache
  bool skip_bad = false;
  // model
  std::string init = "pretrained";  // "pretrained" (from `model`) or "random"
  std::filesystem::path model;      // HF folder (init=pretrained)
  std::string config = "tiny";      // init=random: tiny | small | config.json
  std::filesystem::path tokenizer;  // default: the model folder
  std::string arch;                 // init=random with a preset: llama (default), mistral, qwen2
  // optimisation (defaults: the MetaMath paper)
  double lr = 2e-5;
  int64_t epochs = 3;
  int64_t max_steps = 0;  // > 0: total steps instead of epochs * steps per epoch
  int64_t global_batch = 128;
  int64_t micro_batch = 4;
  double warmup_ratio = 0.03;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  uint64_t seed = 42;
  bool group_by_length = true;
  bool bf16 = false;  // bf16 forward/backward with fp32 master weights and optimizer
  // Pack each rank's examples into rows of max_len tokens (micro_batch = rows per forward pass)
  // instead of padding micro_batch examples per row. Same loss, fewer padding tokens.
  bool packing = false;
  bool gradient_checkpointing = false;  // recompute each decoder layer in the backward pass
  LossReduction reduction = LossReduction::Token;
  // LoRA
  bool lora = false;
  model::LoraConfig lora_config;
  // output
  std::filesystem::path out;
  int64_t save_steps = 0;  // 0: only at the end
  int64_t keep_last = 0;   // 0: keep every checkpoint
  std::string resume;      // "" no; "latest" = newest OUT/checkpoint-*; or a checkpoint folder
  int64_t stop_after = 0;  // > 0: stop after this global step without a final save (tests)
  bool progress = true;
  Comm* comm = nullptr;  // data-parallel group (nullptr: single process)
  // The recipe these options came from (train/recipe.h), recorded in OUT/train_run.json.
  RecipeUse recipe;
};

struct TrainSummary {
  int64_t steps_done = 0;  // global step reached
  int64_t total_steps = 0;
  int64_t start_step = 0;           // > 0 after a resume
  std::vector<double> losses;       // per step run in this call
  std::filesystem::path final_dir;  // empty when stopped early
  std::optional<std::filesystem::path> last_checkpoint;
  int64_t examples = 0, truncated = 0, dropped = 0;
};

// The whole `metamath train` job. Throws metamath::Error on bad input, and when the loss becomes
// NaN/inf (after logging it; the last good checkpoint stays).
TrainSummary run_training(const TrainOptions& opts);

// `metamath train` as one call: when torchrun's environment says WORLD_SIZE > 1, joins the group
// over Gloo (train/distributed.h; progress bars on rank 0 only), then run_training. `rank0` tells
// the caller whether this process prints the summary.
struct TrainRun {
  TrainSummary summary;
  bool rank0 = true;
};
TrainRun train_main(TrainOptions opts);

// Newest training checkpoint OUT/checkpoint-<N> holding trainer_state.json, if any.
std::optional<std::filesystem::path> latest_training_checkpoint(const std::filesystem::path& out);

}  // namespace metamath::train
