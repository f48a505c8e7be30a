#pragma once
// Evaluation recipes: `metamath eval --recipe metamath` sets the paper's evaluation as MetaMath's
// eval_gsm8k.py and eval_math.py run it: GSM8K and MATH test, the Alpaca evaluation prompt ending
// in "### Response: Let's think step by step.", one greedy sample (temperature 0, top_p 1), at
// most 512 new tokens on GSM8K and 2048 on MATH (each benchmark's own, --max-tokens 0), the stop
// strings "Question:", "Question", "USER:", "USER", "ASSISTANT:", "ASSISTANT", "Instruction:",
// "Instruction", "Response:", "Response", and --scoring both (the official extraction and
// comparison, the paper's numbers, beside this project's checker).
//
// Not set: the batch. The official scripts hand vLLM 400 prompts per call; greedy outputs do not
// depend on how prompts are batched, and the local backend reserves a KV cache per slot
// (--max-batch), so batch size and --concurrency stay the machine's choice (noted in the record).
//
// As with training recipes (train/recipe.h), flags given on the command line override the
// recipe's values; apply_eval_recipe says what it set and what was overridden, and `metamath
// eval` records that as run.json's provenance "recipe".
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/jsonl.h"
#include "eval/runner.h"

namespace metamath::eval {

struct EvalRecipeSetting {
  std::string flag;   // the `metamath eval` flag it stands for, e.g. "--temperature"
  std::string value;  // as the user would write it
  std::function<void(EvalOptions&)> apply;
};

struct EvalRecipe {
  std::string name;
  std::string summary;
  std::vector<EvalRecipeSetting> settings;
  std::string note;  // what the recipe leaves alone, and why
};

const std::vector<EvalRecipe>& eval_recipes();
// The recipe of that name; an unknown name is an error listing the known ones.
const EvalRecipe& find_eval_recipe(std::string_view name);
// Applies `recipe` to `o`, skipping the flags for which given(flag) is true. Returns
// {"name", "applied": {flag: value}, "overridden": [flags], "note"}.
json apply_eval_recipe(const EvalRecipe& recipe, EvalOptions& o,
                       const std::function<bool(const std::string& flag)>& given);

// The effective decoding settings of a run as one block (printed at start): benchmarks with
// their max new tokens, prompt, n, temperature, top_p, stop strings, scoring; with a recipe
// (the json apply_eval_recipe returned, or null) each setting it made or that a flag overrode is
// marked.
std::string describe_eval_settings(const EvalOptions& o, const json& recipe);

}  // namespace metamath::eval
