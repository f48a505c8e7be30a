#pragma once
// Training recipes: named sets of `metamath train` settings, the MetaMath paper's, in one place.
//
//   metamath-7b, metamath-13b   full fine-tune of LLaMA-2 7B / 13B as the paper (appendix B) and
//                               the official run.sh + train_math.py ran it: 3 epochs, AdamW
//                               (betas 0.9/0.999, eps 1e-8: Hugging Face's defaults), lr 2e-5,
//                               cosine schedule with 3% linear warmup, weight decay 0, gradient
//                               clipping at 1.0 (Trainer's default), global batch 128 in
//                               micro-batches of 4 (8 GPUs x 4 x 4 accumulation steps), max length
//                               512 (train_math.py's model_max_length; the README's table says
//                               2048, the command it ships does not set it), bf16, seed 42,
//                               shuffled batches without length grouping (Trainer's default),
//                               the official training prompt, Trainer's micro-batch loss mean.
//   metamath-70b                the paper's QLoRA run, with LoRA standing in for QLoRA (this
//                               project has no 4-bit base weights; the adapters and their update
//                               are the same, the frozen base is bf16/f32 instead of NF4): rank
//                               96, alpha 16, dropout 0.05, on every attention and MLP projection
//                               (q,k,v,o,gate,up,down), lr 1e-4 without warmup; the rest as 7B.
//
// A recipe is a list of (flag, value) settings. apply_train_recipe sets each one on TrainOptions
// unless the user gave that flag on the command line: explicit flags override the recipe. What
// was set and what was overridden goes into RecipeUse, which OUT/train_run.json records.
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace metamath::train {

struct TrainOptions;

struct RecipeSetting {
  std::string flag;   // the `metamath train` flag it stands for, e.g. "--lr"
  std::string value;  // as the user would write it, e.g. "2e-5" ("" for a plain switch)
  std::function<void(TrainOptions&)> apply;
};

struct TrainRecipe {
  std::string name;
  std::string summary;  // one line for --help and the settings block
  std::vector<RecipeSetting> settings;
};

// What a run took from a recipe (empty name: none).
struct RecipeUse {
  std::string name;
  std::vector<std::pair<std::string, std::string>> applied;  // flag, value: set by the recipe
  std::vector<std::string> overridden;  // recipe flags the user gave explicitly (theirs won)
};

const std::vector<TrainRecipe>& train_recipes();
// The recipe of that name; an unknown name is an error listing the known ones.
const TrainRecipe& find_train_recipe(std::string_view name);
// Applies `recipe` to `o`, skipping the flags for which given(flag) is true, and returns (and
// stores in o.recipe) what was applied and what was overridden.
RecipeUse apply_train_recipe(const TrainRecipe& recipe, TrainOptions& o,
                             const std::function<bool(const std::string& flag)>& given);

}  // namespace metamath::train
