#include "train/trainer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/log.h"
#include "core/progress.h"
#include "model/matmul.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"
#include "train/distributed.h"
#include "train/run_record.h"

namespace metamath::train {

namespace fs = std::filesystem;

namespace {

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The step of a training checkpoint folder named checkpoint-<step>.
std::optional<int64_t> training_checkpoint_step(const fs::path& p) {
  const std::string name = p.filename().string();
  const std::string prefix = "checkpoint-";
  if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size()) return std::nullopt;
  int64_t v = 0;
  for (std::size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    v = v * 10 + (name[i] - '0');
  }
  return v;
}

// OUT's complete training checkpoints (those holding trainer_state.json), by step.
std::vector<std::pair<int64_t, fs::path>> list_training_checkpoints(const fs::path& out) {
  std::vector<std::pair<int64_t, fs::path>> v;
  if (!fs::is_directory(out)) return v;
  for (const auto& e : fs::directory_iterator(out)) {
    if (!e.is_directory()) continue;
    auto s = training_checkpoint_step(e.path());
    if (s && fs::exists(e.path() / "trainer_state.json")) v.emplace_back(*s, e.path());
  }
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

LossReduction parse_loss_reduction(std::string_view name) {
  if (name == "token") return LossReduction::Token;
  if (name == "micro-batch") return LossReduction::MicroBatch;
  fail("unknown loss reduction '{}' (known: token, micro-batch)", name);
}

std::string_view loss_reduction_name(LossReduction r) {
  return r == LossReduction::Token ? "token" : "micro-batch";
}

std::optional<fs::path> latest_training_checkpoint(const fs::path& out) {
  auto v = list_training_checkpoints(out);
  if (v.empty()) return std::nullopt;
  return v.back().second;
}

namespace {

// The flat positions and tokens of the targets that count.
void index_labels(Batch& b) {
  at::Tensor flat = b.targets.view({-1});
  b.label_index = flat.ne(kIgnoreIndex).nonzero().view({-1});
  b.label_targets = flat.index_select(0, b.label_index);
  b.label_tokens = b.label_index.size(0);
}

// Rows of examples laid back to back, right-padded with pad_id; with `segments`, the batch carries
// each example's segment id (1, 2, ... within its row; padding 0).
Batch fill_rows(const SftData& data, const std::vector<std::vector<int64_t>>& rows, int64_t pad_id,
                bool segments) {
  const auto B = static_cast<int64_t>(rows.size());
  int64_t T = 0;
  for (const auto& r : rows) {
    int64_t n = 0;
    for (int64_t e : r) n += data.length(e);
    T = std::max(T, n);
  }
  at::Tensor ids = at::full({B, T}, pad_id, at::kLong);
  at::Tensor seg = at::zeros({B, T}, at::kLong);
  at::Tensor tg = at::full({B, T}, kIgnoreIndex, at::kLong);
  auto ia = ids.accessor<int64_t, 2>();
  auto sa = seg.accessor<int64_t, 2>();
  auto ta = tg.accessor<int64_t, 2>();
  Batch b;
  for (int64_t r = 0; r < B; ++r) {
    int64_t at_ = 0, k = 0;
    for (int64_t e : rows[r]) {
      const int64_t n = data.length(e), p = data.prompt_len[e];
      const int32_t* x = data.ids(e);
      ++k;
      for (int64_t t = 0; t < n; ++t) {
        ia[r][at_ + t] = x[t];
        sa[r][at_ + t] = k;
      }
      // Position t predicts token t + 1; response tokens are those at index >= prompt_len.
      for (int64_t t = std::max<int64_t>(p, 1); t < n; ++t) ta[r][at_ + t - 1] = x[t];
      at_ += n;
      b.tokens += n;
    }
  }
  b.input_ids = ids;
  if (segments) b.segment_ids = seg;
  b.targets = tg;
  index_labels(b);
  return b;
}

}  // namespace

Batch make_batch(const SftData& data, const std::vector<int64_t>& examples, int64_t pad_id) {
  if (examples.empty()) fail("make_batch: empty micro-batch");
  std::vector<std::vector<int64_t>> rows;
  for (int64_t e : examples) rows.push_back({e});
  return fill_rows(data, rows, pad_id, /*segments=*/false);
}

Batch make_packed_batch(const SftData& data, const std::vector<std::vector<int64_t>>& rows,
                        int64_t pad_id) {
  if (rows.empty()) fail("make_packed_batch: empty micro-batch");
  return fill_rows(data, rows, pad_id, /*segments=*/true);
}

Batch batch_from_tensors(const at::Tensor& input_ids, const at::Tensor& targets) {
  if (input_ids.dim() != 2 || targets.sizes() != input_ids.sizes())
    fail("batch_from_tensors: input_ids and targets must both be [B, T]");
  Batch b;
  b.input_ids = input_ids.to(at::kLong).contiguous();
  b.targets = targets.to(at::kLong).contiguous();
  index_labels(b);
  b.tokens = input_ids.numel();
  return b;
}

namespace {

// Float32 logits at the batch's label positions, [N, V].
at::Tensor label_logits(const model::Model& model, const Batch& batch) {
  const c10::Device dev = model.device();
  model::ForwardInput in;
  // Right padding needs no attention mask: causal attention never lets a real token see the
  // padding after it, and padding positions carry no label.
  in.input_ids = batch.input_ids.to(dev);
  if (batch.segment_ids.defined()) in.segment_ids = batch.segment_ids;
  at::Tensor h = model.forward_hidden(in);  // [B, T, H]
  const int64_t H = h.size(-1);
  at::Tensor sel = h.reshape({-1, H}).index_select(0, batch.label_index.to(dev));
  return model::linear_recorded(sel, model.lm_head, {}).to(at::kFloat);
}

}  // namespace

at::Tensor batch_loss_sum(const model::Model& model, const Batch& batch) {
  return at::cross_entropy_loss(label_logits(model, batch), batch.label_targets.to(model.device()),
                                {}, at::Reduction::Sum, kIgnoreIndex);
}

at::Tensor batch_token_losses(const model::Model& model, const Batch& batch) {
  return at::cross_entropy_loss(label_logits(model, batch), batch.label_targets.to(model.device()),
                                {}, at::Reduction::None, kIgnoreIndex);
}

model::Model make_bf16_shadow(const model::Model& master) {
  return model::Model::cast_of(master, at::kBFloat16);
}

void bind_bf16_shadow(model::Model& shadow, const model::Model& master) {
  shadow.recast_from(master);
}

model::NamedTensors trainable_model_parameters(model::Model& model) {
  model::NamedTensors ps = model.named_parameters();
  // named_parameters returns handles to the model's own tensors, so this marks the model's
  // weights; a tied lm_head is the embedding tensor itself and so shares its grad.
  for (auto& [n, t] : ps) t.requires_grad_(true);
  return ps;
}

namespace {

// What each micro-batch's loss sum is divided by in the step's loss (see the header comment).
std::vector<double> micro_batch_divisors(const std::vector<Batch>& micro,
                                         int64_t global_label_tokens, const StepOptions& so,
                                         const Comm* comm) {
  if (global_label_tokens <= 0) fail("train_step: the global batch has no label tokens");
  std::vector<double> d;
  if (so.reduction == LossReduction::Token) {
    d.assign(micro.size(), static_cast<double>(global_label_tokens));
    return d;
  }
  int64_t micro_batches = so.global_micro_batches;
  if (micro_batches <= 0) {
    if (comm && comm->world_size() > 1)
      fail("train_step: the micro-batch loss reduction needs the global number of micro-batches");
    micro_batches = static_cast<int64_t>(micro.size());
  }
  for (const Batch& b : micro) {
    if (b.label_tokens <= 0) fail("train_step: a micro-batch has no label tokens");
    d.push_back(static_cast<double>(b.label_tokens) * static_cast<double>(micro_batches));
  }
  return d;
}

}  // namespace

StepResult train_step(const model::Model& model, AdamW& opt, const std::vector<Batch>& micro,
                      int64_t global_label_tokens, const StepOptions& so, Comm* comm) {
  const std::vector<double> divisor = micro_batch_divisors(micro, global_label_tokens, so, comm);
  const model::NamedTensors& params = opt.params();
  // Grads start undefined: the first backward hands its gradient over instead of adding it to
  // zeros (one memory pass less per parameter).
  for (auto& [n, p] : params) p.mutable_grad() = at::Tensor();
  double local = 0;
  for (std::size_t i = 0; i < micro.size(); ++i) {
    at::Tensor l;
    if (so.bf16_shadow) {
      bind_bf16_shadow(*so.bf16_shadow, model);
      l = batch_loss_sum(*so.bf16_shadow, micro[i]);
    } else {
      l = batch_loss_sum(model, micro[i]);
    }
    (l / divisor[i]).backward();
    local += l.item<double>() / divisor[i];
  }
  for (auto& [n, p] : params)
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
  double total = local;
  if (comm && comm->world_size() > 1) {
    allreduce_grads(*comm, params);
    std::vector<at::Tensor> t{at::tensor({local}, at::kDouble)};
    comm->allreduce_sum(t);
    total = t[0].item<double>();
  }
  StepResult r;
  r.loss = total;
  if (!std::isfinite(r.loss)) {
    r.finite = false;
    return r;
  }
  // Clipping is folded into the fused AdamW pass (the grads themselves stay unclipped).
  r.grad_norm = grad_norm(params);
  opt.step(so.lr, clip_coefficient(r.grad_norm, so.max_grad_norm));
  return r;
}

// ---------------------------------------------------------------------------------------------
// run_training: open or resume -> model, data, optimizer -> steps (log, save) -> final model

namespace {

// Where this process sits in the data-parallel group.
struct Ranks {
  int rank = 0, world = 1;
  bool main = true;  // rank 0: writes the log, checkpoints and the final model
};

// A training checkpoint folder OUT/checkpoint-<step>/ to resume from, with its trainer_state.json.
struct TrainingCheckpoint {
  fs::path dir;
  json state;
  fs::path state_file() const { return dir / "trainer_state.json"; }
};

// The model being trained: the base model, its LoRA adapter on a LoRA run, the trainable tensors
// (the adapter's or the model's), and the tokenizer folder saved with it.
struct Trainee {
  std::optional<model::Model> model;
  std::unique_ptr<model::LoraAdapter> lora;
  model::NamedTensors params;
  fs::path tokenizer_dir;
};

struct Schedule {
  int64_t steps_per_epoch = 0, total = 0, warmup = 0;
};

// The outputs a run keeps between steps: OUT/train_log.jsonl (rank 0), the progress bar, timing.
struct TrainLog {
  std::optional<JsonlWriter> writer;
  std::optional<Progress> bar;
  std::chrono::steady_clock::time_point t0;
  int64_t tokens_seen = 0;
};

// One global batch as this rank sees it: its micro-batches and the counts the log reports.
struct GlobalBatch {
  std::vector<Batch> micro;
  int64_t label_tokens = 0, tokens = 0;  // of the whole global batch (every rank)
  int64_t micro_batches = 0;             // of the whole global batch (every rank)
  int64_t rows = 0, positions = 0;       // this rank's forward rows and positions incl. padding
};

// The epoch's global batches, remade when a step enters a new epoch.
struct DataOrder {
  std::vector<std::vector<int64_t>> batches;
  int64_t epoch = -1;
};

Ranks check_options(const TrainOptions& o) {
  if (o.out.empty()) fail("train: --out is required");
  if (o.data.empty()) fail("train: --data is required");
  if (o.global_batch <= 0 || o.micro_batch <= 0)
    fail("train: --global-batch and --micro-batch must be positive");
  if (o.epochs <= 0 && o.max_steps <= 0) fail("train: --epochs must be positive");
  Ranks r;
  r.rank = o.comm ? o.comm->rank() : 0;
  r.world = o.comm ? o.comm->world_size() : 1;
  r.main = r.rank == 0;
  if (o.global_batch < r.world)
    fail("train: --global-batch {} is smaller than the number of processes {}", o.global_batch,
         r.world);
  return r;
}

// --resume: "latest" (the newest OUT/checkpoint-*, if any) or a checkpoint folder.
std::optional<TrainingCheckpoint> open_resume_checkpoint(const TrainOptions& o) {
  if (o.resume.empty()) return std::nullopt;
  std::optional<fs::path> dir;
  if (o.resume == "latest") {
    dir = latest_training_checkpoint(o.out);
    if (!dir) log::warn("--resume: no checkpoint in {}; starting from scratch", o.out.string());
  } else {
    dir = fs::path(o.resume);
  }
  if (!dir) return std::nullopt;
  TrainingCheckpoint ck{*dir, json()};
  if (!fs::exists(ck.state_file()))
    fail("{}: not a training checkpoint (no trainer_state.json)", dir->string());
  ck.state = read_json_file(ck.state_file());
  return ck;
}

fs::path tokenizer_folder(const TrainOptions& o) {
  if (o.init == "random") {
    if (o.tokenizer.empty()) fail("train: --init random needs --tokenizer");
    return o.tokenizer;
  }
  if (o.init == "pretrained") {
    if (o.model.empty()) fail("train: --model is required (or --init random --config ...)");
    return o.tokenizer.empty() ? o.model : o.tokenizer;
  }
  fail("train: --init must be pretrained or random (got '{}')", o.init);
}

// --init random: a preset or a config.json, sized for the tokenizer, stored in float32.
model::ModelConfig random_init_config(const TrainOptions& o, const model::Tokenizer& tok) {
  model::ModelConfig c;
  if (o.config == "tiny" || o.config == "small") {
    c = model::preset_config(o.config, model::parse_arch(o.arch.empty() ? "llama" : o.arch),
                             static_cast<int64_t>(tok.vocab_size()));
    if (c.arch == model::Arch::Qwen2) c.tie_word_embeddings = true;
  } else {
    c = model::load_config(fs::path(o.config));
    if (c.vocab_size < static_cast<int64_t>(tok.vocab_size()))
      fail("{}: vocab_size {} is smaller than the tokenizer's {}", o.config, c.vocab_size,
           tok.vocab_size());
  }
  if (tok.bos_id()) c.bos_token_id = *tok.bos_id();
  if (tok.eos_id()) c.eos_token_ids = {*tok.eos_id()};
  c.torch_dtype = "float32";
  c.validate(o.config);
  return c;
}

// The model (resumed, random or pretrained) and its trainable tensors: a LoRA adapter's (resumed
// or fresh) or every weight of the model.
void load_trainee(const TrainOptions& o, const std::optional<TrainingCheckpoint>& resume,
                  const model::Tokenizer& tok, Trainee& t) {
  if (resume && !o.lora)
    t.model = model::Model::load(resume->dir, at::kFloat);
  else if (o.init == "random")
    t.model = model::Model::init_random(random_init_config(o, tok), o.seed);
  else
    t.model = model::Model::load(o.model, at::kFloat);
  if (static_cast<int64_t>(tok.vocab_size()) > t.model->config().vocab_size)
    fail("train: the tokenizer ({} ids) does not fit the model's vocabulary ({})", tok.vocab_size(),
         t.model->config().vocab_size);
  if (o.lora) {
    t.lora = std::make_unique<model::LoraAdapter>(
        resume ? model::LoraAdapter::load(resume->dir, *t.model)
               : model::LoraAdapter::init(*t.model, o.lora_config, mix(o.seed, 7)));
    t.params = t.lora->named_parameters();
    for (auto& [n, p] : t.params) p.requires_grad_(true);
    t.lora->set_training(true);
    t.model->set_adapter(t.lora.get());
  } else {
    t.params = trainable_model_parameters(*t.model);
  }
  t.model->set_recompute_layers(o.gradient_checkpointing);
}

// The tokenized dataset. Rank 0 builds the cache first; the others then read it.
SftData load_data(const TrainOptions& o, const Ranks& r, const fs::path& tokenizer_dir,
                  const model::Tokenizer& tok) {
  SftDataOptions dopt;
  dopt.input = o.data;
  dopt.query_field = o.query_field;
  dopt.response_field = o.response_field;
  dopt.prompt_style = o.prompt_style;
  dopt.max_len = o.max_len;
  dopt.limit = o.limit;
  dopt.cache_dir = o.cache_dir.empty() ? o.out / ".cache" : o.cache_dir;
  dopt.tokenizer_dir = tokenizer_dir;
  dopt.skip_bad = o.skip_bad;
  SftData data;
  if (r.world > 1 && !r.main) o.comm->barrier();
  data = load_sft_data(dopt, tok);
  if (r.world > 1 && r.main) o.comm->barrier();
  return data;
}

Schedule make_schedule(const TrainOptions& o, const SftData& data) {
  Schedule s;
  s.steps_per_epoch = (data.size() + o.global_batch - 1) / o.global_batch;
  s.total = o.max_steps > 0 ? o.max_steps : o.epochs * s.steps_per_epoch;
  s.warmup = warmup_steps(s.total, o.warmup_ratio);
  return s;
}

AdamW make_optimizer(const TrainOptions& o, const model::NamedTensors& params) {
  AdamWOptions ao;
  ao.beta1 = o.beta1;
  ao.beta2 = o.beta2;
  ao.eps = o.eps;
  ao.weight_decay = o.weight_decay;
  return AdamW(params, ao);
}

// Checks that the checkpoint was trained on this data and schedule, loads the optimizer state and
// returns the step to continue from.
int64_t resume_from(const TrainingCheckpoint& ck, const TrainOptions& o, const SftData& data,
                    const Schedule& s, AdamW& opt) {
  const std::string where = ck.state_file().string();
  const json& st = ck.state;
  const int64_t step = st.at("global_step").get<int64_t>();
  if (st.value("num_examples", int64_t{-1}) != data.size())
    fail("{}: the checkpoint was trained on {} examples, the data now has {}", where,
         st.value("num_examples", int64_t{-1}), data.size());
  if (st.value("global_batch", int64_t{-1}) != o.global_batch ||
      st.value("total_steps", int64_t{-1}) != s.total)
    fail("{}: --global-batch / schedule differ from the checkpoint's (global_batch {}, {} steps)",
         where, st.value("global_batch", int64_t{-1}), st.value("total_steps", int64_t{-1}));
  // Checkpoints written before these settings existed used the plain prompt and the token mean.
  const std::string style = st.value("prompt_style", "plain");
  if (style != data::prompt_style_name(o.prompt_style))
    fail("{}: the checkpoint was trained with --prompt-style {}, this run asks for {}", where,
         style, data::prompt_style_name(o.prompt_style));
  const std::string reduction = st.value("loss_reduction", "token");
  if (reduction != loss_reduction_name(o.reduction))
    fail("{}: the checkpoint was trained with --loss-reduction {}, this run asks for {}", where,
         reduction, loss_reduction_name(o.reduction));
  auto f = model::SafetensorsFile::open(ck.dir / "optimizer.safetensors");
  model::NamedTensors state;
  for (auto& n : f->names()) state.emplace_back(n, f->get(n));
  opt.load_state(state, f->path().string());
  log::info("resumed from {} at step {}/{}", ck.dir.string(), step, s.total);
  return step;
}

// Keeps the log rows up to `step` (a resumed run re-logs the steps after its checkpoint).
void trim_log(const fs::path& log, int64_t step) {
  if (!fs::exists(log)) return;
  JsonlOptions jo;
  jo.skip_bad = true;
  std::string kept;
  for (const json& r : read_jsonl(log, jo))
    if (r.value("step", int64_t{0}) <= step) kept += r.dump() + "\n";
  write_file_atomic(log, kept);
}

// Creates OUT and, on rank 0, opens OUT/train_log.jsonl for appending: trimmed to `step` on a
// resumed run, else started afresh.
std::optional<JsonlWriter> open_train_log(const TrainOptions& o, const Ranks& r, bool resumed,
                                          int64_t step) {
  fs::create_directories(o.out);
  const fs::path path = o.out / "train_log.jsonl";
  if (!r.main) return std::nullopt;
  if (resumed)
    trim_log(path, step);
  else if (fs::exists(path))
    fs::remove(path);
  std::optional<JsonlWriter> w;
  w.emplace(path, JsonlWriter::Mode::Append);
  return w;
}

void log_run_start(const TrainOptions& o, const Ranks& r, const SftData& data, const Schedule& s,
                   const model::NamedTensors& params) {
  if (!r.main) return;
  int64_t n_params = 0;
  for (auto& [n, t] : params) n_params += t.numel();
  log::info(
      "train: {} examples ({} truncated to {}, {} dropped), {} steps ({} per epoch, warmup {}), "
      "global batch {} = {} process(es) x micro-batch {}{} x accumulation, {} trainable "
      "parameters{}{}",
      data.size(), data.truncated, o.max_len, data.dropped, s.total, s.steps_per_epoch, s.warmup,
      o.global_batch, r.world, o.micro_batch,
      o.packing ? fmt::format(" packed rows of {} tokens", o.max_len) : "", n_params,
      o.lora ? " (LoRA)" : "",
      o.gradient_checkpointing ? ", activation checkpointing per layer" : "");
}

// trainer_state.json of a checkpoint at `step`.
json trainer_state(const TrainOptions& o, const Ranks& r, const SftData& data, const Schedule& s,
                   int64_t step) {
  return json{{"global_step", step},
              {"epoch", step / s.steps_per_epoch},
              {"step_in_epoch", step % s.steps_per_epoch},
              {"total_steps", s.total},
              {"warmup_steps", s.warmup},
              {"steps_per_epoch", s.steps_per_epoch},
              {"num_examples", data.size()},
              {"global_batch", o.global_batch},
              {"micro_batch", o.micro_batch},
              {"world_size", r.world},
              {"learning_rate", o.lr},
              {"weight_decay", o.weight_decay},
              {"max_grad_norm", o.max_grad_norm},
              {"seed", o.seed},
              {"group_by_length", o.group_by_length},
              {"packing", o.packing},
              {"lora", o.lora},
              {"prompt_style", data::prompt_style_name(o.prompt_style)},
              {"loss_reduction", loss_reduction_name(o.reduction)},
              {"data_order", "epoch_batches(seed, epoch): seeded shuffle + length grouping"},
              {"rng", "dropout generator reseeded each step from (seed, step, rank)"}};
}

// The global batch of `step` (epoch step / steps_per_epoch, in the epoch's order), cut into this
// rank's micro-batches: padded rows of examples, or packed rows.
GlobalBatch global_batch(const TrainOptions& o, const Ranks& r, const SftData& data,
                         const Schedule& s, int64_t step, int64_t pad_id, DataOrder& order) {
  const int64_t epoch = step / s.steps_per_epoch, i = step % s.steps_per_epoch;
  if (epoch != order.epoch) {
    order.batches = epoch_batches(data, o.global_batch, o.seed, epoch, o.group_by_length);
    order.epoch = epoch;
  }
  const std::vector<int64_t>& gb = order.batches[i];
  GlobalBatch g;
  for (int64_t e : gb) {
    g.label_tokens += data.label_tokens(e);
    g.tokens += data.length(e);
  }
  if (o.packing) {
    for (auto& rows :
         rank_packed_micro_batches(data, gb, o.micro_batch, o.max_len, r.rank, r.world))
      g.micro.push_back(make_packed_batch(data, rows, pad_id));
  } else {
    for (auto& mb : rank_micro_batches(gb, o.micro_batch, r.rank, r.world))
      g.micro.push_back(make_batch(data, mb, pad_id));
  }
  g.micro_batches =
      global_micro_batch_count(data, gb, o.micro_batch, o.packing, o.max_len, r.world);
  for (const Batch& b : g.micro) {
    g.rows += b.input_ids.size(0);
    g.positions += b.input_ids.numel();
  }
  return g;
}

TrainSummary start_summary(const SftData& data, const Schedule& s, int64_t step,
                           const std::optional<TrainingCheckpoint>& resume) {
  TrainSummary sum;
  sum.total_steps = s.total;
  sum.start_step = step;
  sum.examples = data.size();
  sum.truncated = data.truncated;
  sum.dropped = data.dropped;
  if (resume) sum.last_checkpoint = resume->dir;
  return sum;
}

// The progress bar (rank 0, unless --quiet) at `step`, and the clock of tokens/s and elapsed_s.
void start_progress(const TrainOptions& o, const Ranks& r, const Schedule& s, int64_t step,
                    TrainLog& log) {
  if (r.main && o.progress) log.bar.emplace("train", static_cast<uint64_t>(s.total));
  if (log.bar) log.bar->tick(static_cast<uint64_t>(step));
  log.t0 = std::chrono::steady_clock::now();
}

// A non-finite loss: logged (rank 0), then the run stops without updating.
[[noreturn]] void fail_non_finite(TrainLog& log, const TrainSummary& sum, const StepResult& r,
                                  int64_t step, double lr) {
  std::string last = sum.last_checkpoint ? sum.last_checkpoint->string() : "none";
  if (log.writer) {
    log.writer->write(json{{"step", step + 1},
                           {"error", "non-finite loss"},
                           {"loss", std::isnan(r.loss) ? "nan" : "inf"}});
    log.writer->commit();
  }
  if (log.bar) log.bar->finish();
  fail(
      "train: the loss is {} at step {} (lr {:.3g}); stopped without updating. Last good "
      "checkpoint: {}",
      r.loss, step + 1, lr, last);
}

// One row of train_log.jsonl (rank 0) and the progress bar, after step `step` took dt seconds.
void log_step(TrainLog& log, const Schedule& s, int64_t step, const StepResult& r, double lr,
              const GlobalBatch& g, double dt) {
  log.tokens_seen += g.tokens;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - log.t0).count();
  if (log.writer) {
    log.writer->write(
        json{{"step", step},
             {"epoch", static_cast<double>(step) / static_cast<double>(s.steps_per_epoch)},
             {"loss", r.loss},
             {"lr", lr},
             {"grad_norm", r.grad_norm},
             {"tokens", g.tokens},
             {"label_tokens", g.label_tokens},
             {"rank0_rows", g.rows},
             {"rank0_positions", g.positions},
             {"tokens_per_s", static_cast<double>(g.tokens) / std::max(dt, 1e-9)},
             {"elapsed_s", elapsed}});
    log.writer->commit();
  }
  if (log.bar) {
    log.bar->set_postfix(
        fmt::format("loss {:.4f} lr {:.3g} {:.0f} tok/s", r.loss, lr,
                    static_cast<double>(log.tokens_seen) / std::max(elapsed, 1e-9)));
    log.bar->tick();
  }
}

fs::path training_checkpoint_dir(const fs::path& out, int64_t step) {
  return out / fmt::format("checkpoint-{}", step);
}

// Writes OUT/checkpoint-<step>/ (under a temporary name, renamed when complete), then removes
// all but the newest keep_last checkpoints.
void save_training_checkpoint(const fs::path& out, int64_t step, const Trainee& t, const AdamW& opt,
                              const json& state, int64_t keep_last) {
  const fs::path dir = training_checkpoint_dir(out, step);
  const fs::path tmp = out / fmt::format(".checkpoint-{}.tmp", step);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  if (t.lora) {
    t.lora->save(tmp);
  } else {
    t.model->save(tmp, t.tokenizer_dir);
  }
  model::save_safetensors(tmp / "optimizer.safetensors", opt.state());
  write_file_atomic(tmp / "trainer_state.json", state.dump(2) + "\n");
  fs::remove_all(dir);
  fs::rename(tmp, dir);
  if (keep_last > 0) {
    auto all = list_training_checkpoints(out);
    for (std::size_t i = 0; i + static_cast<std::size_t>(keep_last) < all.size(); ++i)
      fs::remove_all(all[i].second);
  }
}

// The last checkpoint and the final model in OUT (rank 0; the adapter folder on a LoRA run).
void save_final(const TrainOptions& o, int64_t step, const Trainee& t, const AdamW& opt,
                const json& state) {
  save_training_checkpoint(o.out, step, t, opt, state, o.keep_last);
  if (t.lora) {
    t.lora->save(o.out, o.init == "pretrained" ? o.model.string() : "");
  } else {
    t.model->save(o.out, t.tokenizer_dir);
  }
  log::info("train: done, {} steps; model in {}", step, o.out.string());
}

}  // namespace

TrainSummary run_training(const TrainOptions& o) {
  const Ranks ranks = check_options(o);
  const std::optional<TrainingCheckpoint> resume = open_resume_checkpoint(o);
  Trainee t;
  t.tokenizer_dir = tokenizer_folder(o);
  std::unique_ptr<model::Tokenizer> tok = model::Tokenizer::load(t.tokenizer_dir);
  load_trainee(o, resume, *tok, t);
  const SftData data = load_data(o, ranks, t.tokenizer_dir, *tok);
  const Schedule sched = make_schedule(o, data);
  const int64_t pad_id = tok->pad_id();
  AdamW opt = make_optimizer(o, t.params);
  int64_t step = resume ? resume_from(*resume, o, data, sched, opt) : 0;

  TrainLog log;
  log.writer = open_train_log(o, ranks, resume.has_value(), step);
  json record = ranks.main ? training_record(o, data, ranks.world, sched.total) : json();
  if (ranks.main) {
    write_training_record(o.out, record);
    log::info("{}", describe_training_settings(record));
  }
  log_run_start(o, ranks, data, sched, t.params);
  TrainSummary sum = start_summary(data, sched, step, resume);
  start_progress(o, ranks, sched, step, log);

  StepOptions so;
  so.max_grad_norm = o.max_grad_norm;
  so.reduction = o.reduction;
  std::optional<model::Model> shadow;  // bf16 forward over the float32 master weights
  if (o.bf16) {
    shadow.emplace(make_bf16_shadow(*t.model));
    so.bf16_shadow = &*shadow;
  }
  DataOrder order;
  while (step < sched.total) {
    const GlobalBatch g = global_batch(o, ranks, data, sched, step, pad_id, order);
    at::manual_seed(
        mix(mix(o.seed, static_cast<uint64_t>(step)), static_cast<uint64_t>(ranks.rank)));
    so.lr = cosine_lr(o.lr, step, sched.total, sched.warmup);
    so.global_micro_batches = g.micro_batches;
    const auto ts = std::chrono::steady_clock::now();
    StepResult r = train_step(*t.model, opt, g.micro, g.label_tokens, so, o.comm);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    if (!r.finite) fail_non_finite(log, sum, r, step, so.lr);
    ++step;
    sum.losses.push_back(r.loss);
    log_step(log, sched, step, r, so.lr, g, dt);
    if (o.save_steps > 0 && step % o.save_steps == 0 && step < sched.total) {
      if (ranks.main)
        save_training_checkpoint(o.out, step, t, opt, trainer_state(o, ranks, data, sched, step),
                                 o.keep_last);
      sum.last_checkpoint = training_checkpoint_dir(o.out, step);
      if (ranks.world > 1) o.comm->barrier();
    }
    if (o.stop_after > 0 && step >= o.stop_after && step < sched.total) {
      if (log.bar) log.bar->finish();
      sum.steps_done = step;
      return sum;
    }
  }
  if (log.bar) log.bar->finish();
  if (ranks.main) {
    save_final(o, step, t, opt, trainer_state(o, ranks, data, sched, step));
    record["status"] = "finished";
    record["steps_done"] = step;
    if (!sum.losses.empty()) record["final_loss"] = sum.losses.back();
    write_training_record(o.out, record);
  }
  if (ranks.world > 1) o.comm->barrier();
  sum.last_checkpoint = training_checkpoint_dir(o.out, step);
  sum.final_dir = o.out;
  sum.steps_done = step;
  return sum;
}

TrainRun train_main(TrainOptions opts) {
  std::unique_ptr<Comm> comm;
  if (auto env = dist_env_from_environment(); env && env->world_size > 1) {
    comm = connect_gloo(*env);
    opts.comm = comm.get();
    if (env->rank != 0) opts.progress = false;
    log::info("distributed: rank {} of {} (master {}:{})", env->rank, env->world_size,
              env->master_addr, env->master_port);
  }
  TrainRun r;
  r.summary = run_training(opts);
  r.rank0 = !comm || comm->rank() == 0;
  return r;
}

}  // namespace metamath::train
