// The training job end to end on tiny models with the real LLaMA-2 tokenizer: exact resume (and
// its refusal of another prompt style or loss reduction), --keep-last, NaN stop, LoRA +
// merge-lora, 2-process Gloo data parallel against 1 process (token mean and micro-batch mean),
// and learning on real GSM8K train data with a save -> load round trip.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "model/init.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "test_util.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
namespace mt = metamath::train;
namespace mm = metamath::model;
using metamath::json;

namespace {

// Small arithmetic word problems in MetaMathQA's shape.
fs::path write_toy_data(const fs::path& dir, int n) {
  std::string body;
  for (int i = 0; i < n; ++i) {
    const int a = 3 + i, b = 2 * i + 1;
    body += json{{"query", fmt::format("Tom has {} apples and buys {} more. How many now?", a, b)},
                 {"response", fmt::format("Tom has {} + {} = {} apples. The answer is: {}", a, b,
                                          a + b, a + b)}}
                .dump() +
            "\n";
  }
  fs::path p = dir / "toy.jsonl";
  metamath::write_file_atomic(p, body);
  return p;
}

mt::TrainOptions tiny_options(const fs::path& data, const fs::path& out) {
  mt::TrainOptions o;
  o.data = data;
  o.init = "random";
  o.config = "tiny";
  o.tokenizer = *metamath::testing::llama2_tokenizer_dir();
  o.out = out;
  o.lr = 1e-3;
  o.global_batch = 4;
  o.micro_batch = 2;
  o.max_steps = 6;
  o.warmup_ratio = 0.2;
  o.max_len = 64;
  o.progress = false;
  return o;
}

// A field of every step in <out>/train_log.jsonl.
std::vector<double> logged(const fs::path& out, const char* key) {
  std::vector<double> v;
  for (const json& r : metamath::read_jsonl(out / "train_log.jsonl")) v.push_back(r[key]);
  return v;
}
std::vector<double> logged_losses(const fs::path& out) { return logged(out, "loss"); }

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(Train, ResumeAfterKillGivesBitIdenticalLosses) {
  METAMATH_REQUIRE_TOKENIZER();
  fs::path dir = metamath::testing::temp_dir("train_resume");
  fs::path data = write_toy_data(dir, 20);
  mt::TrainOptions a = tiny_options(data, dir / "a");
  a.save_steps = 2;
  a.keep_last = 2;
  mt::TrainSummary sa = mt::run_training(a);
  ASSERT_EQ(sa.losses.size(), 6u);
  EXPECT_EQ(logged_losses(dir / "a"), sa.losses);
  // --keep-last 2: checkpoint-2 was removed, 4 and the final 6 remain.
  EXPECT_FALSE(fs::exists(dir / "a" / "checkpoint-2"));
  EXPECT_TRUE(fs::exists(dir / "a" / "checkpoint-4" / "optimizer.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "a" / "checkpoint-6" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "a" / "model.safetensors"));

  // "Killed" after step 3 (the last checkpoint is step 2), then resumed.
  mt::TrainOptions b = tiny_options(data, dir / "b");
  b.save_steps = 2;
  b.stop_after = 3;
  mt::TrainSummary sb = mt::run_training(b);
  EXPECT_EQ(sb.steps_done, 3);
  EXPECT_TRUE(sb.final_dir.empty());
  b.stop_after = 0;
  b.resume = "latest";
  mt::TrainSummary sr = mt::run_training(b);
  EXPECT_EQ(sr.start_step, 2);
  ASSERT_EQ(sr.losses.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(sr.losses[i], sa.losses[2 + i]) << "step " << 3 + i;
  // The log has each step once, with the same losses as the uninterrupted run.
  EXPECT_EQ(logged_losses(dir / "b"), sa.losses);
  auto wa = mm::ShardedWeights::open(dir / "a"), wb = mm::ShardedWeights::open(dir / "b");
  for (auto& n : wa.names()) EXPECT_TRUE(at::equal(wa.get(n), wb.get(n))) << n;
  fs::remove_all(dir);
}

TEST(Train, PackingAndCheckpointingKeepTheLosses) {
  // The loss of a step is the mean over its global batch's response tokens, so packing the
  // examples into rows and recomputing layers in the backward pass change only the summation
  // order: the same losses to float accuracy, step after step.
  METAMATH_REQUIRE_TOKENIZER();
  fs::path dir = metamath::testing::temp_dir("train_packing");
  fs::path data = write_toy_data(dir, 20);
  mt::TrainOptions a = tiny_options(data, dir / "plain");
  a.global_batch = 8;
  a.micro_batch = 4;
  a.max_len = 160;  // a toy example is ~75 tokens: two fit in a packed row
  mt::TrainSummary sa = mt::run_training(a);
  mt::TrainOptions p = a;
  p.out = dir / "packed";
  p.packing = true;
  p.micro_batch = 1;  // one packed row of 160 tokens per forward pass
  mt::TrainSummary sp = mt::run_training(p);
  mt::TrainOptions c = a;
  c.out = dir / "ckpt";
  c.packing = true;
  c.gradient_checkpointing = true;
  mt::TrainSummary sc = mt::run_training(c);
  ASSERT_EQ(sa.losses.size(), 6u);
  ASSERT_EQ(sp.losses.size(), 6u);
  ASSERT_EQ(sc.losses.size(), 6u);
  // Relative 1e-6 (16 float32 roundings of the loss): the mean of a few hundred f32 log-probs
  // summed in another order (measured: at most 1e-7 of the loss, on Zen 4); a sequence seeing its
  // packed neighbour moves it by far more (FullParity.PackingIsNotJustConcatenation).
  for (int i = 0; i < 6; ++i) {
    EXPECT_NEAR(sp.losses[i], sa.losses[i], 1e-6 * std::abs(sa.losses[i])) << "step " << i + 1;
    EXPECT_NEAR(sc.losses[i], sa.losses[i], 1e-6 * std::abs(sa.losses[i])) << "step " << i + 1;
  }
  EXPECT_LT(sa.losses.back(), sa.losses.front() - 0.1);  // it trained
  // Packing did pack: fewer rows and fewer computed positions (less padding) per step.
  auto log_sum = [](const fs::path& out, const char* key) {
    int64_t n = 0;
    for (const json& r : metamath::read_jsonl(out / "train_log.jsonl")) n += r[key].get<int64_t>();
    return n;
  };
  // 6 steps over 20 examples, global batch 8: batches of 8, 8, 4, 8, 8, 4 examples; packed two
  // to a row.
  EXPECT_EQ(log_sum(dir / "plain", "rank0_rows"), 40);
  EXPECT_EQ(log_sum(dir / "packed", "rank0_rows"), 20);
  EXPECT_LT(log_sum(dir / "packed", "rank0_positions"), log_sum(dir / "plain", "rank0_positions"));
  fs::remove_all(dir);
}

TEST(Train, NonFiniteLossStopsAndKeepsLastGoodCheckpoint) {
  METAMATH_REQUIRE_TOKENIZER();
  fs::path dir = metamath::testing::temp_dir("train_nan");
  fs::path data = write_toy_data(dir, 8);
  mt::TrainOptions o = tiny_options(data, dir / "out");
  o.lr = 1e36;  // the first update throws every weight to ~1e36: the next loss overflows
  o.warmup_ratio = 0;
  o.max_grad_norm = 0;
  o.save_steps = 1;
  std::string err = metamath::testing::error_of([&] { mt::run_training(o); });
  EXPECT_NE(err.find("the loss is"), std::string::npos) << err;
  EXPECT_NE(err.find("checkpoint-1"), std::string::npos) << err;
  EXPECT_TRUE(fs::exists(dir / "out" / "checkpoint-1" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "out" / "checkpoint-2"));
  EXPECT_FALSE(fs::exists(dir / "out" / "model.safetensors"));  // no final model
  auto rows = metamath::read_jsonl(dir / "out" / "train_log.jsonl");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["error"], "non-finite loss");
  fs::remove_all(dir);
}

TEST(Train, LoraTrainsOnlyAdaptersAndMergeMatchesAdapterForward) {
  METAMATH_REQUIRE_TOKENIZER();
  fs::path dir = metamath::testing::temp_dir("train_lora");
  fs::path data = write_toy_data(dir, 8);
  auto init = mm::init_model(
      {"tiny", *metamath::testing::llama2_tokenizer_dir(), dir / "base", 3, "", "f32"});
  mt::TrainOptions o = tiny_options(data, dir / "lora");
  o.init = "pretrained";
  o.model = dir / "base";
  o.lora = true;
  o.lora_config.r = 4;
  o.lora_config.dropout = 0.1;
  o.lora_config.target_modules = mm::parse_lora_targets("q,v,down");
  o.max_steps = 3;
  o.lr = 1e-2;
  mt::run_training(o);
  ASSERT_TRUE(fs::exists(dir / "lora" / "adapter_config.json"));
  json cfg = json::parse(metamath::read_file(dir / "lora" / "adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], 4);
  auto f = mm::SafetensorsFile::open(dir / "lora" / "adapter_model.safetensors");
  EXPECT_TRUE(f->contains("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
  EXPECT_EQ(f->names().size(), 2u * 2 * 3);
  EXPECT_GT(f->get("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
                .abs()
                .max()
                .item<double>(),
            0);

  auto r = metamath::testing::run_command(
      metamath::testing::metamath_bin() + " merge-lora --base " + (dir / "base").string() +
      " --adapter " + (dir / "lora").string() + " --out " + (dir / "merged").string());
  ASSERT_EQ(r.code, 0) << r.output;
  mm::Model base = mm::Model::load(dir / "base");
  mm::LoraAdapter lora = mm::LoraAdapter::load(dir / "lora", base);
  base.set_adapter(&lora);
  mm::Model merged = mm::Model::load(dir / "merged");
  at::Tensor ids = at::tensor({1, 450, 1234, 29889, 3148, 7, 99}, at::kLong).view({1, -1});
  at::NoGradGuard ng;
  at::Tensor with_adapter = base.forward(ids), with_merged = merged.forward(ids);
  // Merging rounds each W + s*B*A once to float32, so logits differ by a few roundings of the
  // largest one (measured: 4); allow 1e-5 of it (~170), well below what the adapter changes.
  const double scale = with_merged.abs().max().item<double>();
  EXPECT_LE(max_diff(with_adapter, with_merged), 1e-5 * scale);
  base.set_adapter(nullptr);
  EXPECT_GT(max_diff(base.forward(ids), with_merged), 1e-4 * scale);  // the adapter did something
  fs::remove_all(dir);
}

// `metamath train` over 2 Gloo processes against 1 process, same flags (plus `extra`), on `data`;
// the output folders are dir/one and dir/two.
void expect_two_processes_match_one(const fs::path& dir, const fs::path& data,
                                    const std::string& extra) {
  const std::string common = metamath::testing::metamath_bin() + " train -q --data " +
                             data.string() + " --init random --config tiny --tokenizer " +
                             metamath::testing::llama2_tokenizer_dir()->string() +
                             " --lr 1e-3 --max-steps 5 --global-batch 8 --micro-batch 2 "
                             "--max-len 64 --warmup-ratio 0.2 --seed 5" +
                             extra;
  auto one = metamath::testing::run_command(common + " --out " + (dir / "one").string());
  ASSERT_EQ(one.code, 0) << one.output;
  std::random_device rd;
  const int port = 20000 + static_cast<int>(rd() % 30000);
  std::string env =
      fmt::format("MASTER_ADDR=127.0.0.1 MASTER_PORT={} WORLD_SIZE=2 LOCAL_RANK=0", port);
  // Rank 1 in the background, rank 0 in the foreground; both logs kept.
  std::string cmd = fmt::format(
      "( {env} RANK=1 {c} --out {o} > {d}/rank1.log 2>&1 & {env} RANK=0 {c} --out {o} > "
      "{d}/rank0.log 2>&1; r0=$?; wait $!; r1=$?; cat {d}/rank0.log {d}/rank1.log; "
      "test $r0 -eq 0 -a $r1 -eq 0 )",
      fmt::arg("env", env), fmt::arg("c", common), fmt::arg("o", (dir / "two").string()),
      fmt::arg("d", dir.string()));
  auto two = metamath::testing::run_command(cmd);
  ASSERT_EQ(two.code, 0) << two.output;
  EXPECT_NE(two.output.find("rank 1 of 2"), std::string::npos) << two.output;
  auto w1 = mm::ShardedWeights::open(dir / "one"), w2 = mm::ShardedWeights::open(dir / "two");
  ASSERT_EQ(w1.names(), w2.names());
  auto init = mm::Model::init_random(mm::load_config(dir / "one"), 5);
  double moved = 0;
  for (auto& n : w1.names()) {
    // The all-reduce adds the ranks' gradients in another order than one process's accumulation:
    // weights after 5 steps differ by about one float32 rounding of the largest (measured 1.2 on
    // Zen 4). 1e-5 of it (~170 roundings) leaves room for AdamW's amplification of rounding in
    // near-zero gradients (tests/train/parity_test.cpp); a rank's batch lost or counted twice
    // moves weights by 1e-3 of their size or more.
    EXPECT_LE(max_diff(w1.get(n), w2.get(n)), 1e-5 * w1.get(n).abs().max().item<double>()) << n;
    if (n == "model.layers.0.self_attn.q_proj.weight")
      moved = max_diff(w1.get(n), init.layers[0].q_w);
  }
  EXPECT_GT(moved, 1e-3);  // training did change the weights
  // AdamW (with clipping) is nearly blind to a uniform scale of the gradients, so the weights
  // alone would not notice an all-reduce that averages where it should sum: the logged
  // gradient norms and losses must agree too (the same rounding argument, 1e-5 relative).
  const auto norms1 = logged(dir / "one", "grad_norm"), norms2 = logged(dir / "two", "grad_norm");
  const auto losses1 = logged_losses(dir / "one"), losses2 = logged_losses(dir / "two");
  ASSERT_EQ(norms1.size(), norms2.size());
  ASSERT_EQ(losses1.size(), losses2.size());
  for (std::size_t s = 0; s < norms1.size(); ++s) {
    EXPECT_NEAR(norms2[s], norms1[s], 1e-5 * norms1[s]) << "step " << s + 1;
    EXPECT_NEAR(losses2[s], losses1[s], 1e-5 * losses1[s]) << "step " << s + 1;
  }
}

TEST(Train, TwoGlooProcessesMatchOneProcess) {
  METAMATH_REQUIRE_TOKENIZER();
  fs::path dir = metamath::testing::temp_dir("train_ddp");
  expect_two_processes_match_one(dir, write_toy_data(dir, 24), "");
  fs::remove_all(dir);
}

// Toy records whose responses differ a lot in length, so that micro-batches hold different
// numbers of label tokens.
fs::path write_uneven_data(const fs::path& dir, int n) {
  std::string body;
  for (int i = 0; i < n; ++i) {
    std::string steps;
    for (int k = 0; k <= (i * 5) % 9; ++k) steps += fmt::format("Step {}: add {}. ", k, k + i);
    body += json{{"query", fmt::format("Count up from {} in steps.", i)},
                 {"response", steps + fmt::format("The answer is: {}", i)}}
                .dump() +
            "\n";
  }
  fs::path p = dir / "uneven.jsonl";
  metamath::write_file_atomic(p, body);
  return p;
}

TEST(Train, MicroBatchMeanOverTwoGlooProcessesMatchesOneProcess) {
  // Each rank holds half of the global batch's micro-batches: the micro-batch mean must divide
  // by the global count (8 examples / micro-batch 2 = 4), not by the rank's own (2), or the two
  // runs' losses and gradient norms differ by 2x.
  METAMATH_REQUIRE_TOKENIZER();
  fs::path dir = metamath::testing::temp_dir("train_ddp_mb");
  const fs::path data = write_uneven_data(dir, 24);
  expect_two_processes_match_one(dir, data, " --loss-reduction micro-batch");
  EXPECT_EQ(metamath::read_json_file(dir / "two" / "train_run.json")["options"]["loss_reduction"],
            "micro-batch");
  // The reduction did change the optimisation: a token-mean run with the same init, data order
  // and steps takes other steps. At random init every token's loss is close to ln(vocab), so the
  // losses differ little; the gradient norms differ by about 1% (measured 0.9% at step 3; float32
  // rounding moves them by ~1e-6).
  mt::TrainOptions t = tiny_options(data, dir / "token");
  t.global_batch = 8;
  t.max_steps = 5;
  t.seed = 5;
  mt::run_training(t);
  const auto micro = logged(dir / "one", "grad_norm"), token = logged(dir / "token", "grad_norm");
  ASSERT_EQ(micro.size(), token.size());
  double most = 0;
  for (std::size_t s = 0; s < micro.size(); ++s)
    most = std::max(most, std::abs(micro[s] - token[s]) / token[s]);
  EXPECT_GT(most, 1e-3);
  fs::remove_all(dir);
}

TEST(Train, ResumeRefusesAnotherPromptStyleOrLossReduction) {
  METAMATH_REQUIRE_TOKENIZER();
  fs::path dir = metamath::testing::temp_dir("train_resume_style");
  mt::TrainOptions a = tiny_options(write_toy_data(dir, 12), dir / "a");
  a.save_steps = 2;
  a.stop_after = 2;
  mt::run_training(a);
  a.stop_after = 0;
  a.resume = "latest";
  mt::TrainOptions plain = a;
  plain.prompt_style = metamath::data::PromptStyle::Plain;
  std::string err = metamath::testing::error_of([&] { mt::run_training(plain); });
  EXPECT_NE(err.find("trained with --prompt-style official, this run asks for plain"),
            std::string::npos)
      << err;
  mt::TrainOptions micro = a;
  micro.reduction = mt::LossReduction::MicroBatch;
  err = metamath::testing::error_of([&] { mt::run_training(micro); });
  EXPECT_NE(err.find("trained with --loss-reduction token, this run asks for micro-batch"),
            std::string::npos)
      << err;
  fs::remove_all(dir);
}

// A tiny model trained from scratch on 2,000 GSM8K train problems (question -> answer) for 25
// steps of 16 examples: the mean loss of the last 5 steps is at least 3 nats below the first
// step's (ln 32000 = 10.4 at the start). Then save -> load gives identical logits.
TEST(Train, LearnsGsm8kFromScratchAndSaveLoadKeepsLogits) {
  METAMATH_REQUIRE_TOKENIZER();
  METAMATH_REQUIRE_DATA(data_root);
  fs::path dir = metamath::testing::temp_dir("train_learns");
  mt::TrainOptions o;
  o.data = data_root / "gsm8k" / "train.jsonl";
  o.query_field = "question";
  o.response_field = "answer";
  o.limit = 2000;
  o.init = "random";
  o.config = "tiny";
  o.tokenizer = *metamath::testing::llama2_tokenizer_dir();
  o.out = dir / "out";
  o.lr = 3e-3;
  o.global_batch = 16;
  o.micro_batch = 8;
  o.max_steps = 25;
  o.max_len = 128;
  o.progress = false;
  mt::TrainSummary s = mt::run_training(o);
  EXPECT_EQ(s.examples + s.dropped, 2000);  // dropped: the question alone fills --max-len
  EXPECT_GT(s.examples, 1500);
  ASSERT_EQ(s.losses.size(), 25u);
  double last = 0;
  for (int i = 20; i < 25; ++i) last += s.losses[i] / 5;
  EXPECT_GT(s.losses[0], 9.5);
  EXPECT_LT(last, s.losses[0] - 3.0) << "first " << s.losses[0] << " last5 " << last;
  std::cerr << "losses:";
  for (double l : s.losses) std::cerr << " " << l;
  std::cerr << "\n";

  mm::Model m = mm::Model::load(o.out);
  m.save(dir / "copy");
  mm::Model m2 = mm::Model::load(dir / "copy");
  auto tok = mm::Tokenizer::load(o.out);
  auto ids32 = tok->encode("Natalia sold clips to 48 of her friends in April.", true);
  std::vector<int64_t> ids(ids32.begin(), ids32.end());
  at::Tensor t = at::tensor(ids, at::kLong).view({1, -1});
  at::NoGradGuard ng;
  EXPECT_TRUE(at::equal(m.forward(t), m2.forward(t)));
  fs::remove_all(dir);
}

}  // namespace
