// Training recipes (train/recipe.h) against the MetaMath paper's numbers (appendix B, "Training
// Details") and the official run.sh / train_math.py, written here by hand: each recipe sets them,
// a flag given explicitly wins over the recipe, an unknown name lists the known ones, and
// `metamath train --recipe` prints the effective settings and records them in train_run.json.
#include "train/recipe.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "test_util.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
namespace mt = metamath::train;
using metamath::json;

namespace {

const auto kNothingGiven = [](const std::string&) { return false; };

// Options far from every recipe value, so a setting the recipe forgets shows.
mt::TrainOptions scrambled() {
  mt::TrainOptions o;
  o.epochs = 9;
  o.max_steps = 77;
  o.lr = 0.5;
  o.global_batch = 3;
  o.micro_batch = 1;
  o.warmup_ratio = 0.5;
  o.weight_decay = 0.3;
  o.max_grad_norm = 7;
  o.max_len = 33;
  o.bf16 = false;
  o.seed = 1;
  o.group_by_length = true;
  o.packing = true;
  o.prompt_style = metamath::data::PromptStyle::Plain;
  o.reduction = mt::LossReduction::Token;
  o.lora = false;
  o.lora_config.r = 2;
  o.lora_config.alpha = 3;
  o.lora_config.dropout = 0.4;
  o.lora_config.target_modules = {"q_proj"};
  return o;
}

void expect_full_finetune(const mt::TrainOptions& o) {
  EXPECT_EQ(o.epochs, 3);
  EXPECT_EQ(o.max_steps, 0);
  EXPECT_EQ(o.global_batch, 128);
  EXPECT_EQ(o.micro_batch, 4);  // run.sh: 4 per device x 4 accumulation steps x 8 GPUs
  EXPECT_EQ(o.weight_decay, 0.0);
  EXPECT_EQ(o.max_grad_norm, 1.0);
  EXPECT_EQ(o.max_len, 512);
  EXPECT_TRUE(o.bf16);
  EXPECT_EQ(o.seed, 42u);
  EXPECT_FALSE(o.group_by_length);
  EXPECT_FALSE(o.packing);
  EXPECT_EQ(o.prompt_style, metamath::data::PromptStyle::Official);
  EXPECT_EQ(o.reduction, mt::LossReduction::MicroBatch);
  EXPECT_DOUBLE_EQ(o.beta1, 0.9);
  EXPECT_DOUBLE_EQ(o.beta2, 0.999);
  EXPECT_DOUBLE_EQ(o.eps, 1e-8);
}

TEST(Recipe, SevenAndThirteenBAreThePapersFullFinetune) {
  for (const char* name : {"metamath-7b", "metamath-13b"}) {
    SCOPED_TRACE(name);
    mt::TrainOptions o = scrambled();
    mt::RecipeUse use = mt::apply_train_recipe(mt::find_train_recipe(name), o, kNothingGiven);
    expect_full_finetune(o);
    EXPECT_DOUBLE_EQ(o.lr, 2e-5);
    EXPECT_DOUBLE_EQ(o.warmup_ratio, 0.03);
    EXPECT_FALSE(o.lora);
    EXPECT_EQ(use.name, name);
    EXPECT_EQ(o.recipe.name, name);
    EXPECT_TRUE(use.overridden.empty());
  }
}

TEST(Recipe, SeventyBIsLoraStandingInForThePapersQlora) {
  mt::TrainOptions o = scrambled();
  mt::apply_train_recipe(mt::find_train_recipe("metamath-70b"), o, kNothingGiven);
  expect_full_finetune(o);
  EXPECT_DOUBLE_EQ(o.lr, 1e-4);
  EXPECT_EQ(o.warmup_ratio, 0.0);
  EXPECT_TRUE(o.lora);
  EXPECT_EQ(o.lora_config.r, 96);
  EXPECT_DOUBLE_EQ(o.lora_config.alpha, 16.0);
  EXPECT_DOUBLE_EQ(o.lora_config.dropout, 0.05);
  // "appended in both the attention layer and the mlp layer": every projection.
  EXPECT_EQ(std::set<std::string>(o.lora_config.target_modules.begin(),
                                  o.lora_config.target_modules.end()),
            (std::set<std::string>{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                   "down_proj"}));
}

TEST(Recipe, FlagsGivenExplicitlyWin) {
  mt::TrainOptions o = scrambled();
  const std::set<std::string> given = {"--lr", "--lora-targets", "--precision"};
  mt::RecipeUse use =
      mt::apply_train_recipe(mt::find_train_recipe("metamath-70b"), o,
                             [&](const std::string& flag) { return given.count(flag) > 0; });
  EXPECT_DOUBLE_EQ(o.lr, 0.5);
  EXPECT_EQ(o.lora_config.target_modules, std::vector<std::string>{"q_proj"});
  EXPECT_FALSE(o.bf16);
  EXPECT_EQ(o.lora_config.r, 96);  // the rest is the recipe's
  EXPECT_EQ(std::set<std::string>(use.overridden.begin(), use.overridden.end()), given);
  for (const auto& [flag, value] : use.applied) EXPECT_EQ(given.count(flag), 0u) << flag;
}

TEST(Recipe, UnknownNameListsTheKnownOnes) {
  const std::string err = metamath::testing::error_of([] { mt::find_train_recipe("metamath-8b"); });
  EXPECT_NE(err.find("unknown recipe 'metamath-8b' (known: metamath-7b, metamath-13b, "
                     "metamath-70b)"),
            std::string::npos)
      << err;
}

fs::path write_toy_data(const fs::path& dir) {
  std::string body;
  for (int i = 0; i < 8; ++i)
    body += json{{"query", fmt::format("Sam has {} pens and finds {} more. How many now?", i, 2)},
                 {"response", fmt::format("{} + 2 = {}. The answer is: {}", i, i + 2, i + 2)}}
                .dump() +
            "\n";
  metamath::write_file_atomic(dir / "toy.jsonl", body);
  return dir / "toy.jsonl";
}

TEST(RecipeCli, SettingsArePrintedAndRecordedAndFlagsOverride) {
  METAMATH_REQUIRE_TOKENIZER();
  const fs::path dir = metamath::testing::temp_dir("train_recipe_cli");
  const std::string base = metamath::testing::metamath_bin() + " train -q --data " +
                           write_toy_data(dir).string() +
                           " --init random --config tiny --tokenizer " +
                           metamath::testing::llama2_tokenizer_dir()->string();
  auto run = metamath::testing::run_command(
      base +
      " --recipe metamath-7b --max-steps 1 --global-batch 4 --lr 1e-3 --precision f32 "
      "--out " +
      (dir / "out").string() + " 2>&1");
  ASSERT_EQ(run.code, 0) << run.output;
  const json rec = metamath::read_json_file(dir / "out" / "train_run.json");
  const json& opt = rec["options"];
  // Given explicitly: the flags' values.
  EXPECT_EQ(opt["max_steps"], 1);
  EXPECT_EQ(opt["global_batch"], 4);
  EXPECT_DOUBLE_EQ(opt["lr"].get<double>(), 1e-3);
  EXPECT_EQ(opt["precision"], "f32");
  // The rest: the recipe's.
  EXPECT_EQ(opt["micro_batch"], 4);
  EXPECT_EQ(opt["max_len"], 512);
  EXPECT_DOUBLE_EQ(opt["warmup_ratio"].get<double>(), 0.03);
  EXPECT_EQ(opt["weight_decay"], 0.0);
  EXPECT_EQ(opt["seed"], 42);
  EXPECT_EQ(opt["group_by_length"], false);
  EXPECT_EQ(opt["prompt_style"], "official");
  EXPECT_EQ(opt["loss_reduction"], "micro-batch");
  EXPECT_EQ(rec["recipe"]["name"], "metamath-7b");
  EXPECT_FALSE(rec["recipe"]["applied"].contains("--lr"));
  EXPECT_EQ(rec["recipe"]["applied"]["--loss-reduction"], "micro-batch");
  EXPECT_EQ(
      std::set<std::string>(rec["recipe"]["overridden"].begin(), rec["recipe"]["overridden"].end()),
      (std::set<std::string>{"--max-steps", "--global-batch", "--lr", "--precision"}));
  // One block at start naming every setting and where it came from.
  const std::string& out = run.output;
  EXPECT_NE(out.find("train settings (recipe metamath-7b"), std::string::npos) << out;
  EXPECT_NE(out.find("loss_reduction           \"micro-batch\"  (recipe metamath-7b)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("lr                       0.001  (flag, over the recipe)"), std::string::npos)
      << out;

  auto bad = metamath::testing::run_command(base + " --recipe llama-7b --out " +
                                            (dir / "bad").string() + " 2>&1");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("unknown recipe 'llama-7b' (known: metamath-7b, metamath-13b, "
                            "metamath-70b)"),
            std::string::npos)
      << bad.output;
}

}  // namespace
