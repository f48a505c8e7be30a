#pragma once
// OUT/train_run.json: what a training run was made from, for `metamath report` and for whoever
// evaluates the model later (eval copies it into its own run files, see eval/provenance.h).
//
//   {"kind": "metamath-train", "version": "0.1.0", "status": "running" | "finished",
//    "data":  {"path", "sha256", "bytes", "records" (read, after --limit), "examples" (trained
//              on: records minus dropped), "truncated", "dropped", "types" {TYPE: records}
//              (the records' "type" field; MetaMathQA's GSM_AnsAug ... MATH_FOBAR; absent
//              types are not listed), "query_field", "response_field"},
//    "model": {"init", "path" (pretrained), "config" (random), "arch", "tokenizer",
//              "lora", "lora_r"},
//    "options": the effective settings, named as the flags without "--" (train_settings below):
//               {lr, epochs, max_steps, global_batch, micro_batch, max_len, warmup_ratio,
//                weight_decay, max_grad_norm, adam_beta1, adam_beta2, adam_eps, seed, precision,
//                group_by_length, packing, gradient_checkpointing, prompt_style ("official" |
//                "plain"), loss_reduction ("token" | "micro-batch"), lora, and with LoRA lora_r,
//                lora_alpha, lora_dropout, lora_targets},
//    "recipe": {"name", "applied" {flag: value set by the recipe}, "overridden" [recipe flags the
//               user gave, whose values won]} or null (train/recipe.h),
//    "backend": {"kind": "libtorch", "device": "cpu", "world_size"},
//    "steps": total steps, "steps_done", "final_loss" (finished runs)}
//
// Written atomically by rank 0 when the data is loaded ("running") and again at the end.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "core/jsonl.h"

namespace metamath::train {

struct TrainOptions;
struct SftData;

// Records per value of the "type" field in the first `limit` records (0 = all) of a JSONL file;
// records without a string "type" are not counted. Malformed lines are skipped when skip_bad.
std::map<std::string, int64_t> count_record_types(const std::filesystem::path& file, int64_t limit,
                                                  bool skip_bad);

// The effective settings of a run: the record's "options".
json train_settings(const TrainOptions& o);

// The record's options and recipe as the one block `metamath train` prints at start: one line per
// setting, those a recipe set marked "(recipe NAME)", those the user gave over a recipe's value
// marked "(flag, over the recipe)".
std::string describe_training_settings(const json& record);

// The record of a run that has loaded its data (status "running").
json training_record(const TrainOptions& o, const SftData& data, int world_size,
                     int64_t total_steps);

// OUT/train_run.json.
std::filesystem::path training_record_path(const std::filesystem::path& out);
void write_training_record(const std::filesystem::path& out, const json& record);

}  // namespace metamath::train
