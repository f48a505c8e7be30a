#include "train/recipe.h"

#include <fmt/format.h>

#include "core/error.h"
#include "model/lora.h"
#include "train/trainer.h"

namespace metamath::train {

namespace {

using Set = std::function<void(TrainOptions&)>;

// The full fine-tune of the paper (appendix B) as the official run.sh / train_math.py ran it.
std::vector<RecipeSetting> full_finetune() {
  return {
      {"--epochs", "3", [](TrainOptions& o) { o.epochs = 3; }},
      {"--max-steps", "0", [](TrainOptions& o) { o.max_steps = 0; }},
      {"--lr", "2e-5", [](TrainOptions& o) { o.lr = 2e-5; }},
      {"--global-batch", "128", [](TrainOptions& o) { o.global_batch = 128; }},
      {"--micro-batch", "4", [](TrainOptions& o) { o.micro_batch = 4; }},
      {"--warmup-ratio", "0.03", [](TrainOptions& o) { o.warmup_ratio = 0.03; }},
      {"--weight-decay", "0", [](TrainOptions& o) { o.weight_decay = 0.0; }},
      {"--max-grad-norm", "1", [](TrainOptions& o) { o.max_grad_norm = 1.0; }},
      {"--max-len", "512", [](TrainOptions& o) { o.max_len = 512; }},
      {"--precision", "bf16", [](TrainOptions& o) { o.bf16 = true; }},
      {"--seed", "42", [](TrainOptions& o) { o.seed = 42; }},
      {"--no-group-by-length", "", [](TrainOptions& o) { o.group_by_length = false; }},
      {"--packing", "off", [](TrainOptions& o) { o.packing = false; }},
      {"--prompt-style", "official",
       [](TrainOptions& o) { o.prompt_style = data::PromptStyle::Official; }},
      {"--loss-reduction", "micro-batch",
       [](TrainOptions& o) { o.reduction = LossReduction::MicroBatch; }},
      {"--lora", "off", [](TrainOptions& o) { o.lora = false; }},
  };
}

// The paper's 70B QLoRA run with LoRA standing in for QLoRA: the full fine-tune's settings with
// LoRA on every projection and the LoRA learning rate, without warmup.
std::vector<RecipeSetting> lora_70b() {
  std::vector<RecipeSetting> v;
  for (RecipeSetting& s : full_finetune())
    if (s.flag != "--lr" && s.flag != "--warmup-ratio" && s.flag != "--lora")
      v.push_back(std::move(s));
  const std::vector<RecipeSetting> lora = {
      {"--lr", "1e-4", [](TrainOptions& o) { o.lr = 1e-4; }},
      {"--warmup-ratio", "0", [](TrainOptions& o) { o.warmup_ratio = 0.0; }},
      {"--lora", "on", [](TrainOptions& o) { o.lora = true; }},
      {"--lora-r", "96", [](TrainOptions& o) { o.lora_config.r = 96; }},
      {"--lora-alpha", "16", [](TrainOptions& o) { o.lora_config.alpha = 16.0; }},
      {"--lora-dropout", "0.05", [](TrainOptions& o) { o.lora_config.dropout = 0.05; }},
      {"--lora-targets", "all",
       [](TrainOptions& o) { o.lora_config.target_modules = model::parse_lora_targets("all"); }},
  };
  v.insert(v.end(), lora.begin(), lora.end());
  return v;
}

}  // namespace

const std::vector<TrainRecipe>& train_recipes() {
  static const std::vector<TrainRecipe> v = {
      {"metamath-7b", "MetaMath-7B: full fine-tune of LLaMA-2-7B (paper, appendix B; run.sh)",
       full_finetune()},
      {"metamath-13b", "MetaMath-13B: full fine-tune of LLaMA-2-13B (paper, appendix B; run.sh)",
       full_finetune()},
      {"metamath-70b",
       "MetaMath-70B: the paper's QLoRA run of LLaMA-2-70B, LoRA standing in for QLoRA (no 4-bit "
       "base)",
       lora_70b()},
  };
  return v;
}

const TrainRecipe& find_train_recipe(std::string_view name) {
  std::vector<std::string> known;
  for (const TrainRecipe& r : train_recipes()) {
    if (r.name == name) return r;
    known.push_back(r.name);
  }
  fail("unknown recipe '{}' (known: {})", name, fmt::join(known, ", "));
}

RecipeUse apply_train_recipe(const TrainRecipe& recipe, TrainOptions& o,
                             const std::function<bool(const std::string& flag)>& given) {
  RecipeUse use;
  use.name = recipe.name;
  for (const RecipeSetting& s : recipe.settings) {
    if (given(s.flag)) {
      use.overridden.push_back(s.flag);
      continue;
    }
    s.apply(o);
    use.applied.emplace_back(s.flag, s.value);
  }
  o.recipe = use;
  return use;
}

}  // namespace metamath::train
