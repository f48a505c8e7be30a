// Training against golden files from plain PyTorch (tests/reference/train_reference.py): the loss
// and every gradient of a global batch of two micro-batches, and the weights after 10 AdamW steps
// with the cosine-with-warmup schedule, gradient clipping and weight decay, for a full fine-tune
// (under both loss reductions: token mean and micro-batch mean) and for LoRA, on a GQA LLaMA and a
// Qwen2 (bias, tied embeddings) tiny model.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

#include "core/atomic_file.h"
#include "core/jsonl.h"
#include "golden_tolerance.h"
#include "model/lora.h"
#include "model/model.h"
#include "test_util.h"
#include "train/optim.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
namespace mm = metamath::model;
namespace mt = metamath::train;
using metamath::json;

namespace {

const fs::path kFixtures = fs::path(METAMATH_SOURCE_DIR) / "tests/train/fixtures";

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

struct Golden {
  json meta;
  std::shared_ptr<mm::SafetensorsFile> tensors;
  std::vector<mt::Batch> micro;
  int64_t label_tokens = 0;
};

Golden load_golden(const std::string& name) {
  Golden g;
  g.meta = json::parse(metamath::read_file(kFixtures / name / "golden.json"));
  g.tensors = mm::SafetensorsFile::open(kFixtures / name / "golden.safetensors");
  for (const json& mb : g.meta["micro_batches"]) {
    auto rows = mb["input_ids"].get<std::vector<std::vector<int64_t>>>();
    auto tg = mb["targets"].get<std::vector<std::vector<int64_t>>>();
    const auto B = static_cast<int64_t>(rows.size()), T = static_cast<int64_t>(rows[0].size());
    at::Tensor ids = at::empty({B, T}, at::kLong), t = at::empty({B, T}, at::kLong);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < T; ++j) {
        ids[b][j] = rows[b][j];
        t[b][j] = tg[b][j];
      }
    g.micro.push_back(mt::batch_from_tensors(ids, t));
    g.label_tokens += g.micro.back().label_tokens;
  }
  return g;
}

// Tolerances are the reference's own rounding, measured (tests/golden_tolerance.h). AdamW is why
// a fixed bound cannot work: where a gradient is near zero, the step m / (sqrt(v) + eps) is set by
// rounding noise, so weights after ten steps (Qwen2's k_proj.bias) differ between CPUs by 8e-5 of
// their size where their gradients differ by 2e-7, and the envelope shows the same.
double golden_tolerance(const Golden& g, const std::string& key) {
  return metamath::testing::golden_tolerance(g.tensors->get(key), g.tensors->get("f64." + key));
}

void expect_golden(const at::Tensor& got, const Golden& g, const std::string& key) {
  EXPECT_LE(max_diff(got, g.tensors->get(key)), golden_tolerance(g, key)) << key;
}

// A loss: meta[key] (or meta[key][step]) against its float64 twin meta["f64_" + key].
void expect_golden_loss(double got, const Golden& g, const std::string& key, int step = -1) {
  json want = g.meta[key], want64 = g.meta["f64_" + key];
  if (step >= 0) want = want[step], want64 = want64[step];
  const double w = want.get<double>();
  const double tol = metamath::testing::golden_tolerance(w, want64.get<double>());
  EXPECT_NEAR(got, w, tol) << key << (step >= 0 ? " step " + std::to_string(step) : "");
}

mt::AdamW make_opt(const json& hp, const mm::NamedTensors& params) {
  mt::AdamWOptions o;
  o.beta1 = hp["beta1"];
  o.beta2 = hp["beta2"];
  o.eps = hp["eps"];
  o.weight_decay = hp["weight_decay"];
  return mt::AdamW(params, o);
}

// Runs the golden 10 steps; returns the per-step losses.
std::vector<double> run_steps(const Golden& g, const mm::Model& model, mt::AdamW& opt,
                              mt::LossReduction reduction = mt::LossReduction::Token) {
  const json& hp = g.meta["hyperparameters"];
  const int64_t steps = hp["steps"];
  const int64_t warmup = mt::warmup_steps(steps, hp["warmup_ratio"]);
  std::vector<double> losses;
  for (int64_t s = 0; s < steps; ++s) {
    mt::StepOptions so;
    so.lr = mt::cosine_lr(hp["lr"], s, steps, warmup);
    EXPECT_NEAR(so.lr, g.meta["lrs"][s].get<double>(), 1e-12) << "step " << s;
    so.max_grad_norm = hp["max_grad_norm"];
    so.reduction = reduction;
    mt::StepResult r = mt::train_step(model, opt, g.micro, g.label_tokens, so);
    EXPECT_TRUE(r.finite);
    losses.push_back(r.loss);
  }
  return losses;
}

class FullParity : public ::testing::TestWithParam<std::string> {};

TEST_P(FullParity, LossAndEveryGradient) {
  Golden g = load_golden(GetParam());
  mm::Model model = mm::Model::load(kFixtures / GetParam());
  mm::NamedTensors params = mt::trainable_model_parameters(model);
  at::Tensor loss = at::zeros({}, at::kFloat);
  for (const auto& b : g.micro) loss = loss + mt::batch_loss_sum(model, b);
  loss = loss / static_cast<double>(g.label_tokens);
  loss.backward();
  expect_golden_loss(loss.item<double>(), g, "loss");
  ASSERT_FALSE(params.empty());
  for (auto& [name, p] : params) {
    ASSERT_TRUE(p.grad().defined()) << name;
    expect_golden(p.grad(), g, "grad." + name);
  }
  // Every golden gradient has a counterpart (no parameter forgotten).
  int golden_grads = 0;
  for (auto& n : g.tensors->names()) golden_grads += n.rfind("grad.", 0) == 0;
  EXPECT_EQ(golden_grads, static_cast<int>(params.size()));
}

TEST_P(FullParity, TenAdamWStepsWithCosineSchedule) {
  Golden g = load_golden(GetParam());
  mm::Model model = mm::Model::load(kFixtures / GetParam());
  mm::NamedTensors params = mt::trainable_model_parameters(model);
  mt::AdamW opt = make_opt(g.meta["hyperparameters"], params);
  std::vector<double> losses = run_steps(g, model, opt);
  for (std::size_t s = 0; s < losses.size(); ++s)
    expect_golden_loss(losses[s], g, "losses", static_cast<int>(s));
  for (auto& [name, p] : params) {
    at::Tensor want = g.tensors->get("step10." + name);
    expect_golden(p, g, "step10." + name);
    // The weights did move (the comparison is not vacuous).
    EXPECT_GT(max_diff(want, mm::ShardedWeights::open(kFixtures / GetParam()).get(name)), 1e-3)
        << name;
  }
  EXPECT_EQ(opt.steps(), 10);
}

// The loss and gradients train_step leaves at the initial weights under a reduction (a step with
// learning rate 0 on an optimizer of its own moves nothing).
double first_step_gradients(const Golden& g, const mm::Model& model, const mm::NamedTensors& params,
                            mt::LossReduction reduction) {
  mt::AdamW probe(params, {});
  mt::StepOptions so;
  so.lr = 0;
  so.max_grad_norm = 0;
  so.reduction = reduction;
  return mt::train_step(model, probe, g.micro, g.label_tokens, so).loss;
}

TEST_P(FullParity, MicroBatchReductionLossGradientsAndTenSteps) {
  // Hugging Face Trainer's reduction: each micro-batch's token mean, the micro-batches weighted
  // equally. The golden micro-batches hold different numbers of label tokens (9 and 4), so it is
  // not the token mean: each reduction must give its own golden loss, gradients and weights.
  Golden g = load_golden(GetParam());
  ASSERT_EQ(g.micro.size(), 2u);
  ASSERT_NE(g.micro[0].label_tokens, g.micro[1].label_tokens);
  // The goldens of the two reductions are far apart next to the tolerance, so a swap is caught.
  const double tol = metamath::testing::golden_tolerance(g.meta["mb_loss"].get<double>(),
                                                         g.meta["f64_mb_loss"].get<double>());
  EXPECT_GT(std::abs(g.meta["mb_loss"].get<double>() - g.meta["loss"].get<double>()), 1000 * tol);

  mm::Model model = mm::Model::load(kFixtures / GetParam());
  mm::NamedTensors params = mt::trainable_model_parameters(model);
  const double mb = first_step_gradients(g, model, params, mt::LossReduction::MicroBatch);
  expect_golden_loss(mb, g, "mb_loss");
  for (auto& [name, p] : params) expect_golden(p.grad(), g, "mb.grad." + name);
  const double token = first_step_gradients(g, model, params, mt::LossReduction::Token);
  expect_golden_loss(token, g, "loss");
  for (auto& [name, p] : params) expect_golden(p.grad(), g, "grad." + name);

  mt::AdamW opt = make_opt(g.meta["hyperparameters"], params);
  std::vector<double> losses = run_steps(g, model, opt, mt::LossReduction::MicroBatch);
  for (std::size_t s = 0; s < losses.size(); ++s)
    expect_golden_loss(losses[s], g, "mb_losses", static_cast<int>(s));
  for (auto& [name, p] : params) expect_golden(p, g, "mb.step10." + name);
}

TEST(LossReduction, ParseAndName) {
  EXPECT_EQ(mt::parse_loss_reduction("token"), mt::LossReduction::Token);
  EXPECT_EQ(mt::parse_loss_reduction("micro-batch"), mt::LossReduction::MicroBatch);
  EXPECT_EQ(mt::loss_reduction_name(mt::LossReduction::MicroBatch), "micro-batch");
  const std::string err = metamath::testing::error_of([] { mt::parse_loss_reduction("mean"); });
  EXPECT_NE(err.find("unknown loss reduction 'mean' (known: token, micro-batch)"),
            std::string::npos)
      << err;
}

TEST_P(FullParity, LoraGradientsAndTenSteps) {
  Golden g = load_golden(GetParam());
  mm::Model model = mm::Model::load(kFixtures / GetParam());
  mm::LoraConfig lc;
  lc.r = g.meta["lora"]["r"];
  lc.alpha = g.meta["lora"]["alpha"];
  lc.dropout = 0;
  lc.target_modules = g.meta["lora"]["targets"].get<std::vector<std::string>>();
  mm::LoraAdapter lora = mm::LoraAdapter::init(model, lc, 1);
  mm::NamedTensors params = lora.named_parameters();
  ASSERT_EQ(params.size(), 2 * lc.target_modules.size() * 2);  // A and B, 2 layers
  {
    at::NoGradGuard ng;
    for (auto& [name, t] : params) t.copy_(g.tensors->get("lora_init." + name));
  }
  for (auto& [name, t] : params) t.requires_grad_(true);
  model.set_adapter(&lora);
  lora.set_training(true);

  at::Tensor loss = at::zeros({}, at::kFloat);
  for (const auto& b : g.micro) loss = loss + mt::batch_loss_sum(model, b);
  loss = loss / static_cast<double>(g.label_tokens);
  loss.backward();
  expect_golden_loss(loss.item<double>(), g, "lora_loss");
  for (auto& [name, p] : params) expect_golden(p.grad(), g, "lora_grad." + name);
  // The base model received no gradient.
  for (auto& [name, p] : model.named_parameters()) EXPECT_FALSE(p.grad().defined()) << name;

  mt::AdamW opt = make_opt(g.meta["hyperparameters"], params);
  std::vector<double> losses = run_steps(g, model, opt);
  for (std::size_t s = 0; s < losses.size(); ++s)
    expect_golden_loss(losses[s], g, "lora_losses", static_cast<int>(s));
  for (auto& [name, p] : params) expect_golden(p, g, "lora_step10." + name);
}

TEST_P(FullParity, Bf16ComputeTracksFp32Golden) {
  // bf16 forward/backward on casts of fp32 master weights: the loss is the golden fp32 loss to
  // bf16 accuracy and the fp32 master gradients point the same way.
  Golden g = load_golden(GetParam());
  mm::Model model = mm::Model::load(kFixtures / GetParam());
  mm::NamedTensors params = mt::trainable_model_parameters(model);
  mm::Model shadow = mt::make_bf16_shadow(model);
  EXPECT_EQ(shadow.layers[0].q_w.scalar_type(), at::kBFloat16);
  mt::AdamW opt(params, {});
  mt::StepOptions so;
  so.lr = 0;
  so.max_grad_norm = 0;
  so.bf16_shadow = &shadow;
  mt::StepResult r = mt::train_step(model, opt, g.micro, g.label_tokens, so);
  // bf16 keeps 8 significant bits (unit roundoff 2^-9 = 0.2%): the loss within 0.5% of the
  // float32 golden, about two bf16 roundings of it.
  EXPECT_NEAR(r.loss, g.meta["loss"].get<double>(), 5e-3 * g.meta["loss"].get<double>());
  for (auto& [name, p] : params) {
    ASSERT_EQ(p.grad().scalar_type(), at::kFloat) << name;
    at::Tensor a = p.grad().flatten().to(at::kDouble);
    at::Tensor b = g.tensors->get("grad." + name).flatten().to(at::kDouble);
    const double cos = (a.dot(b) / (a.norm() * b.norm() + 1e-30)).item<double>();
    EXPECT_GT(cos, 0.99) << name;
  }
}

// The loss and every full-model gradient of `batches` (the golden sequences, however laid out)
// against the golden values.
void expect_golden_gradients(const Golden& g, mm::Model& model,
                             const std::vector<mt::Batch>& batches) {
  mm::NamedTensors params = mt::trainable_model_parameters(model);
  at::Tensor loss = at::zeros({}, at::kFloat);
  int64_t labels = 0;
  for (const auto& b : batches) {
    loss = loss + mt::batch_loss_sum(model, b);
    labels += b.label_tokens;
  }
  ASSERT_EQ(labels, g.label_tokens);
  loss = loss / static_cast<double>(labels);
  loss.backward();
  expect_golden_loss(loss.item<double>(), g, "loss");
  for (auto& [name, p] : params) {
    ASSERT_TRUE(p.grad().defined()) << name;
    expect_golden(p.grad(), g, "grad." + name);
  }
}

// The golden rows (each [T_i] with its padding) packed: all but the last back to back in row 0,
// the last one in row 1 followed by padding (segment 0).
mt::Batch pack_golden_rows(const Golden& g) {
  std::vector<at::Tensor> ids, tg;
  for (const auto& b : g.micro)
    for (int64_t r = 0; r < b.input_ids.size(0); ++r) {
      ids.push_back(b.input_ids[r]);
      tg.push_back(b.targets[r]);
    }
  EXPECT_GE(ids.size(), 3u);
  const std::size_t n = ids.size();
  int64_t T0 = 0;
  for (std::size_t i = 0; i + 1 < n; ++i) T0 += ids[i].size(0);
  at::Tensor in = at::zeros({2, T0}, at::kLong), seg = at::zeros({2, T0}, at::kLong);
  at::Tensor tgt = at::full({2, T0}, mt::kIgnoreIndex, at::kLong);
  int64_t at_ = 0;
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const int64_t len = ids[i].size(0);
    in[0].narrow(0, at_, len).copy_(ids[i]);
    tgt[0].narrow(0, at_, len).copy_(tg[i]);
    seg[0].narrow(0, at_, len).fill_(static_cast<int64_t>(i + 1));
    at_ += len;
  }
  const int64_t len = ids[n - 1].size(0);
  EXPECT_LT(len, T0);  // row 1 ends in real padding
  in[1].narrow(0, 0, len).copy_(ids[n - 1]);
  tgt[1].narrow(0, 0, len).copy_(tg[n - 1]);
  seg[1].narrow(0, 0, len).fill_(1);
  mt::Batch b = mt::batch_from_tensors(in, tgt);
  b.segment_ids = seg;
  return b;
}

TEST_P(FullParity, PackedRowsGiveTheGoldenLossAndGradients) {
  // The reference ran every sequence in a row of its own; packed, each sequence must see only
  // itself and restart its positions (RoPE) at 0.
  Golden g = load_golden(GetParam());
  mm::Model model = mm::Model::load(kFixtures / GetParam());
  expect_golden_gradients(g, model, {pack_golden_rows(g)});
}

TEST_P(FullParity, PackingIsNotJustConcatenation) {
  // Without segment ids the same packed row gives another loss (sequences see each other), so the
  // test above checks the segment masking and positions.
  Golden g = load_golden(GetParam());
  mm::Model model = mm::Model::load(kFixtures / GetParam());
  mt::Batch b = pack_golden_rows(g);
  b.segment_ids = at::Tensor();
  at::NoGradGuard ng;
  const double loss = mt::batch_loss_sum(model, b).item<double>() / g.label_tokens;
  EXPECT_GT(std::abs(loss - g.meta["loss"].get<double>()), 1e-3);
}

TEST_P(FullParity, CheckpointedLayersGiveTheGoldenGradients) {
  Golden g = load_golden(GetParam());
  mm::Model model = mm::Model::load(kFixtures / GetParam());
  model.set_recompute_layers(true);
  expect_golden_gradients(g, model, g.micro);
}

TEST_P(FullParity, CheckpointedPackedRowsGiveTheGoldenGradients) {
  Golden g = load_golden(GetParam());
  mm::Model model = mm::Model::load(kFixtures / GetParam());
  model.set_recompute_layers(true);
  expect_golden_gradients(g, model, {pack_golden_rows(g)});
}

// LoRA gradients of the golden batch with the golden initial adapters, given dropout and
// checkpointing; the generator is seeded the same way each time.
mm::NamedTensors lora_gradients(const Golden& g, const std::string& fixture, double dropout,
                                bool checkpoint, double* loss_out = nullptr) {
  mm::Model model = mm::Model::load(kFixtures / fixture);
  model.set_recompute_layers(checkpoint);
  mm::LoraConfig lc;
  lc.r = g.meta["lora"]["r"];
  lc.alpha = g.meta["lora"]["alpha"];
  lc.dropout = dropout;
  lc.target_modules = g.meta["lora"]["targets"].get<std::vector<std::string>>();
  auto lora = std::make_shared<mm::LoraAdapter>(mm::LoraAdapter::init(model, lc, 1));
  mm::NamedTensors params = lora->named_parameters();
  {
    at::NoGradGuard ng;
    for (auto& [name, t] : params) t.copy_(g.tensors->get("lora_init." + name));
  }
  for (auto& [name, t] : params) t.requires_grad_(true);
  model.set_adapter(lora.get());
  lora->set_training(true);
  at::manual_seed(1234);
  at::Tensor loss = at::zeros({}, at::kFloat);
  for (const auto& b : g.micro) loss = loss + mt::batch_loss_sum(model, b);
  loss = loss / static_cast<double>(g.label_tokens);
  loss.backward();
  if (loss_out) *loss_out = loss.item<double>();
  for (auto& [name, p] : model.named_parameters()) EXPECT_FALSE(p.grad().defined()) << name;
  mm::NamedTensors grads;
  for (auto& [name, p] : params) grads.emplace_back(name, p.grad().clone());
  return grads;
}

TEST_P(FullParity, CheckpointedLoraGivesTheGoldenGradients) {
  Golden g = load_golden(GetParam());
  double loss = 0;
  mm::NamedTensors grads = lora_gradients(g, GetParam(), 0.0, true, &loss);
  expect_golden_loss(loss, g, "lora_loss");
  for (auto& [name, gr] : grads) expect_golden(gr, g, "lora_grad." + name);
}

TEST_P(FullParity, CheckpointingReplaysLoraDropout) {
  // The recomputed layer must draw the dropout masks of the first pass: with checkpointing the
  // gradients equal those of the run that kept its activations.
  Golden g = load_golden(GetParam());
  mm::NamedTensors plain = lora_gradients(g, GetParam(), 0.3, false);
  mm::NamedTensors ckpt = lora_gradients(g, GetParam(), 0.3, true);
  mm::NamedTensors no_dropout = lora_gradients(g, GetParam(), 0.0, false);
  ASSERT_EQ(plain.size(), ckpt.size());
  double moved = 0;
  for (std::size_t i = 0; i < plain.size(); ++i) {
    // Recomputed layers accumulate their gradients in another order: equal up to float32
    // rounding, of the size the golden (dropout-free) gradients carry.
    EXPECT_LE(max_diff(plain[i].second, ckpt[i].second),
              golden_tolerance(g, "lora_grad." + plain[i].first))
        << plain[i].first;
    moved = std::max(moved, max_diff(plain[i].second, no_dropout[i].second));
  }
  EXPECT_GT(moved, 1e-4);  // dropout did change the gradients
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FullParity, ::testing::Values("llama", "qwen2"));

TEST(Schedule, CosineWithWarmupHandChecked) {
  // 100 steps, warmup ceil(100 * 0.03) = 3: 0, 1/3, 2/3 of the base, then the cosine from 1.
  EXPECT_EQ(mt::warmup_steps(100, 0.03), 3);
  EXPECT_DOUBLE_EQ(mt::cosine_lr(2e-5, 0, 100, 3), 0.0);
  EXPECT_DOUBLE_EQ(mt::cosine_lr(2e-5, 1, 100, 3), 2e-5 / 3);
  EXPECT_DOUBLE_EQ(mt::cosine_lr(2e-5, 3, 100, 3), 2e-5);
  // Halfway through the decay: cos(pi/2) = 0 -> half the base.
  EXPECT_NEAR(mt::cosine_lr(1.0, 3 + 48, 100, 3), 0.5, 0.02);
  EXPECT_NEAR(mt::cosine_lr(1.0, 100, 100, 3), 0.0, 1e-12);
}

}  // namespace
