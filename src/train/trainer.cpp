#include "train/trainer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/log.h"
#include "core/progress.h"
#include "model/matmul.h"
#include "model/tokenizer.h"

namespace metamath::train {

namespace fs = std::filesystem;

namespace {

// Every weight slot of a model, in a fixed order.
template <typename M, typename F>
void for_each_slot(M& m, F&& f) {
  f(m.embed_tokens);
  f(m.final_norm);
  f(m.lm_head);
  for (auto& L : m.layers)
    for (auto* t : {&L.input_norm, &L.post_norm, &L.q_w, &L.k_w, &L.v_w, &L.o_w, &L.q_b, &L.k_b,
                    &L.v_b, &L.o_b, &L.gate_w, &L.up_w, &L.down_w, &L.gate_b, &L.up_b, &L.down_b})
      f(*t);
}

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::optional<int64_t> checkpoint_step(const fs::path& p) {
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

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& out) {
  std::vector<std::pair<int64_t, fs::path>> v;
  if (!fs::is_directory(out)) return v;
  for (const auto& e : fs::directory_iterator(out)) {
    if (!e.is_directory()) continue;
    auto s = checkpoint_step(e.path());
    if (s && fs::exists(e.path() / "trainer_state.json")) v.emplace_back(*s, e.path());
  }
  std::sort(v.begin(), v.end());
  return v;
}

struct Setup {
  std::optional<model::Model> model;
  std::optional<model::LoraAdapter> lora;
  model::NamedTensors params;
  fs::path tokenizer_dir;
};

}  // namespace

std::optional<fs::path> latest_checkpoint(const fs::path& out) {
  auto v = list_checkpoints(out);
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

at::Tensor batch_loss_sum(const model::Model& model, const Batch& batch) {
  const c10::Device dev = model.device();
  model::ForwardInput in;
  // Right padding needs no attention mask: causal attention never lets a real token see the
  // padding after it, and padding positions carry no label.
  in.input_ids = batch.input_ids.to(dev);
  if (batch.segment_ids.defined()) in.segment_ids = batch.segment_ids;
  at::Tensor h = model.forward_hidden(in);  // [B, T, H]
  const int64_t H = h.size(-1);
  at::Tensor sel = h.reshape({-1, H}).index_select(0, batch.label_index.to(dev));
  at::Tensor logits = model::linear_recorded(sel, model.lm_head, {}).to(at::kFloat);
  return at::cross_entropy_loss(logits, batch.label_targets.to(dev), {}, at::Reduction::Sum,
                                kIgnoreIndex);
}

model::Model make_bf16_shadow(const model::Model& master) {
  model::ModelConfig c = master.config();
  c.initializer_range = 0.0;
  model::Model shadow = model::Model::init_random(c, 0, at::kBFloat16, master.device());
  bind_bf16_shadow(shadow, master);
  return shadow;
}

void bind_bf16_shadow(model::Model& shadow, const model::Model& master) {
  std::vector<at::Tensor> src;
  for_each_slot(master, [&](const at::Tensor& t) { src.push_back(t); });
  std::size_t i = 0;
  for_each_slot(shadow, [&](at::Tensor& t) {
    const at::Tensor& m = src[i++];
    t = m.defined() ? m.to(at::kBFloat16) : at::Tensor();
  });
  if (master.config().tie_word_embeddings) shadow.lm_head = shadow.embed_tokens;
  shadow.adapter = master.adapter;
  shadow.checkpoint_layers = master.checkpoint_layers;
}

model::NamedTensors trainable_model_parameters(model::Model& model) {
  model::NamedTensors ps = model.named_parameters();
  for (auto& [n, t] : ps) t.requires_grad_(true);
  // The slots hold the same tensors (named_parameters returns handles), so nothing else to do; a
  // tied lm_head aliases embed_tokens and so shares its grad.
  if (model.config().tie_word_embeddings) model.lm_head = model.embed_tokens;
  return ps;
}

StepResult train_step(const model::Model& model, AdamW& opt, const std::vector<Batch>& micro,
                      int64_t global_label_tokens, const StepOptions& so, Comm* comm) {
  if (global_label_tokens <= 0) fail("train_step: the global batch has no label tokens");
  const model::NamedTensors& params = opt.params();
  // Grads start undefined: the first backward hands its gradient over instead of adding it to
  // zeros (one memory pass less per parameter).
  for (auto& [n, p] : params) p.mutable_grad() = at::Tensor();
  double local = 0;
  for (const Batch& b : micro) {
    at::Tensor l;
    if (so.bf16_shadow) {
      bind_bf16_shadow(*so.bf16_shadow, model);
      l = batch_loss_sum(*so.bf16_shadow, b);
    } else {
      l = batch_loss_sum(model, b);
    }
    (l / static_cast<double>(global_label_tokens)).backward();
    local += l.item<double>();
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
  r.loss = total / static_cast<double>(global_label_tokens);
  if (!std::isfinite(r.loss)) {
    r.finite = false;
    return r;
  }
  // Clipping is folded into the fused AdamW pass (the grads themselves stay unclipped).
  r.grad_norm = grad_norm(params);
  opt.step(so.lr, clip_coefficient(r.grad_norm, so.max_grad_norm));
  return r;
}

namespace {

void save_training_checkpoint(const fs::path& out, int64_t step, const Setup& s, const AdamW& opt,
                              const json& state, int64_t keep_last) {
  const fs::path dir = out / fmt::format("checkpoint-{}", step);
  const fs::path tmp = out / fmt::format(".checkpoint-{}.tmp", step);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  if (s.lora) {
    s.lora->save(tmp);
  } else {
    s.model->save(tmp, s.tokenizer_dir);
  }
  model::save_safetensors(tmp / "optimizer.safetensors", opt.state());
  write_file_atomic(tmp / "trainer_state.json", state.dump(2) + "\n");
  fs::remove_all(dir);
  fs::rename(tmp, dir);
  if (keep_last > 0) {
    auto all = list_checkpoints(out);
    for (std::size_t i = 0; i + static_cast<std::size_t>(keep_last) < all.size(); ++i)
      fs::remove_all(all[i].second);
  }
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

}  // namespace

TrainSummary run_training(const TrainOptions& o) {
  if (o.out.empty()) fail("train: --out is required");
  if (o.data.empty()) fail("train: --data is required");
  if (o.global_batch <= 0 || o.micro_batch <= 0)
    fail("train: --global-batch and --micro-batch must be positive");
  if (o.epochs <= 0 && o.max_steps <= 0) fail("train: --epochs must be positive");
  const int rank = o.comm ? o.comm->rank() : 0;
  const int world = o.comm ? o.comm->world_size() : 1;
  const bool main = rank == 0;
  if (o.global_batch < world)
    fail("train: --global-batch {} is smaller than the number of processes {}", o.global_batch,
         world);

  // Resume point.
  std::optional<fs::path> resume_dir;
  json resume_state;
  if (!o.resume.empty()) {
    if (o.resume == "latest") {
      resume_dir = latest_checkpoint(o.out);
      if (!resume_dir)
        log::warn("--resume: no checkpoint in {}; starting from scratch", o.out.string());
    } else {
      resume_dir = fs::path(o.resume);
    }
    if (resume_dir) {
      const fs::path sf = *resume_dir / "trainer_state.json";
      if (!fs::exists(sf))
        fail("{}: not a training checkpoint (no trainer_state.json)", resume_dir->string());
      resume_state = json::parse(read_file(sf));
    }
  }

  // Model (+ adapters).
  Setup s;
  if (o.init == "random") {
    if (o.tokenizer.empty()) fail("train: --init random needs --tokenizer");
    s.tokenizer_dir = o.tokenizer;
  } else if (o.init == "pretrained") {
    if (o.model.empty()) fail("train: --model is required (or --init random --config ...)");
    s.tokenizer_dir = o.tokenizer.empty() ? o.model : o.tokenizer;
  } else {
    fail("train: --init must be pretrained or random (got '{}')", o.init);
  }
  std::unique_ptr<model::Tokenizer> tok = model::Tokenizer::load(s.tokenizer_dir);

  if (resume_dir && !o.lora) {
    s.model = model::Model::load(*resume_dir, at::kFloat);
  } else if (o.init == "random") {
    model::ModelConfig c;
    if (o.config == "tiny" || o.config == "small") {
      c = model::preset_config(o.config, model::parse_arch(o.arch.empty() ? "llama" : o.arch),
                               static_cast<int64_t>(tok->vocab_size()));
      if (c.arch == model::Arch::Qwen2) c.tie_word_embeddings = true;
    } else {
      c = model::load_config(fs::path(o.config));
      if (c.vocab_size < static_cast<int64_t>(tok->vocab_size()))
        fail("{}: vocab_size {} is smaller than the tokenizer's {}", o.config, c.vocab_size,
             tok->vocab_size());
    }
    if (tok->bos_id()) c.bos_token_id = *tok->bos_id();
    if (tok->eos_id()) c.eos_token_ids = {*tok->eos_id()};
    c.torch_dtype = "float32";
    c.validate(o.config);
    s.model = model::Model::init_random(c, o.seed);
  } else {
    s.model = model::Model::load(o.model, at::kFloat);
  }
  if (static_cast<int64_t>(tok->vocab_size()) > s.model->config().vocab_size)
    fail("train: the tokenizer ({} ids) does not fit the model's vocabulary ({})",
         tok->vocab_size(), s.model->config().vocab_size);
  if (o.lora) {
    if (resume_dir)
      s.lora = model::LoraAdapter::load(*resume_dir, *s.model);
    else
      s.lora = model::LoraAdapter::init(*s.model, o.lora_config, mix(o.seed, 7));
    s.params = s.lora->named_parameters();
    for (auto& [n, t] : s.params) t.requires_grad_(true);
    s.lora->set_training(true);
    s.model->adapter = &*s.lora;
  } else {
    s.params = trainable_model_parameters(*s.model);
  }
  s.model->checkpoint_layers = o.gradient_checkpointing;
  int64_t n_params = 0;
  for (auto& [n, t] : s.params) n_params += t.numel();

  // Data.
  SftDataOptions dopt;
  dopt.input = o.data;
  dopt.query_field = o.query_field;
  dopt.response_field = o.response_field;
  dopt.max_len = o.max_len;
  dopt.limit = o.limit;
  dopt.cache_dir = o.cache_dir.empty() ? o.out / ".cache" : o.cache_dir;
  dopt.tokenizer_dir = s.tokenizer_dir;
  dopt.skip_bad = o.skip_bad;
  // Rank 0 builds the cache first; the others then read it.
  SftData data;
  if (world > 1 && !main) o.comm->barrier();
  data = load_sft_data(dopt, *tok);
  if (world > 1 && main) o.comm->barrier();

  const int64_t spe = (data.size() + o.global_batch - 1) / o.global_batch;
  const int64_t total = o.max_steps > 0 ? o.max_steps : o.epochs * spe;
  const int64_t warmup = warmup_steps(total, o.warmup_ratio);
  const int64_t pad_id = tok->pad_id();

  AdamWOptions ao;
  ao.beta1 = o.beta1;
  ao.beta2 = o.beta2;
  ao.eps = o.eps;
  ao.weight_decay = o.weight_decay;
  AdamW opt(s.params, ao);

  int64_t step = 0;
  if (resume_dir) {
    const std::string where = (*resume_dir / "trainer_state.json").string();
    step = resume_state.at("global_step").get<int64_t>();
    if (resume_state.value("num_examples", int64_t{-1}) != data.size())
      fail("{}: the checkpoint was trained on {} examples, the data now has {}", where,
           resume_state.value("num_examples", int64_t{-1}), data.size());
    if (resume_state.value("global_batch", int64_t{-1}) != o.global_batch ||
        resume_state.value("total_steps", int64_t{-1}) != total)
      fail("{}: --global-batch / schedule differ from the checkpoint's (global_batch {}, {} steps)",
           where, resume_state.value("global_batch", int64_t{-1}),
           resume_state.value("total_steps", int64_t{-1}));
    auto f = model::SafetensorsFile::open(*resume_dir / "optimizer.safetensors");
    model::NamedTensors st;
    for (auto& n : f->names()) st.emplace_back(n, f->get(n));
    opt.load_state(st, f->path().string());
    log::info("resumed from {} at step {}/{}", resume_dir->string(), step, total);
  }

  fs::create_directories(o.out);
  const fs::path log_path = o.out / "train_log.jsonl";
  if (main) {
    if (resume_dir)
      trim_log(log_path, step);
    else if (fs::exists(log_path))
      fs::remove(log_path);
  }
  std::optional<JsonlWriter> logw;
  if (main) logw.emplace(log_path, JsonlWriter::Mode::Append);

  if (main)
    log::info(
        "train: {} examples ({} truncated to {}, {} dropped), {} steps ({} per epoch, warmup {}), "
        "global batch {} = {} process(es) x micro-batch {}{} x accumulation, {} trainable "
        "parameters{}{}",
        data.size(), data.truncated, o.max_len, data.dropped, total, spe, warmup, o.global_batch,
        world, o.micro_batch, o.packing ? fmt::format(" packed rows of {} tokens", o.max_len) : "",
        n_params, o.lora ? " (LoRA)" : "",
        o.gradient_checkpointing ? ", activation checkpointing per layer" : "");

  TrainSummary sum;
  sum.total_steps = total;
  sum.start_step = step;
  sum.examples = data.size();
  sum.truncated = data.truncated;
  sum.dropped = data.dropped;
  if (resume_dir) sum.last_checkpoint = resume_dir;

  auto state_json = [&](int64_t at_step) {
    return json{{"global_step", at_step},
                {"epoch", at_step / spe},
                {"step_in_epoch", at_step % spe},
                {"total_steps", total},
                {"warmup_steps", warmup},
                {"steps_per_epoch", spe},
                {"num_examples", data.size()},
                {"global_batch", o.global_batch},
                {"micro_batch", o.micro_batch},
                {"world_size", world},
                {"learning_rate", o.lr},
                {"weight_decay", o.weight_decay},
                {"max_grad_norm", o.max_grad_norm},
                {"seed", o.seed},
                {"group_by_length", o.group_by_length},
                {"packing", o.packing},
                {"lora", o.lora},
                {"data_order", "epoch_batches(seed, epoch): seeded shuffle + length grouping"},
                {"rng", "dropout generator reseeded each step from (seed, step, rank)"}};
  };

  std::optional<Progress> bar;
  if (main && o.progress) bar.emplace("train", static_cast<uint64_t>(total));
  if (bar) bar->tick(static_cast<uint64_t>(step));
  const auto t0 = std::chrono::steady_clock::now();
  int64_t tokens_seen = 0;
  StepOptions so;
  so.max_grad_norm = o.max_grad_norm;
  std::optional<model::Model> shadow;
  if (o.bf16) {
    shadow.emplace(make_bf16_shadow(*s.model));
    so.bf16_shadow = &*shadow;
  }

  std::vector<std::vector<int64_t>> batches;
  int64_t batches_epoch = -1;
  while (step < total) {
    const int64_t epoch = step / spe, i = step % spe;
    if (epoch != batches_epoch) {
      batches = epoch_batches(data, o.global_batch, o.seed, epoch, o.group_by_length);
      batches_epoch = epoch;
    }
    const std::vector<int64_t>& gb = batches[i];
    int64_t label_tokens = 0, batch_tokens = 0;
    for (int64_t e : gb) {
      label_tokens += data.label_tokens(e);
      batch_tokens += data.length(e);
    }
    std::vector<Batch> micro;
    if (o.packing) {
      for (auto& rows : rank_packed_micro_batches(data, gb, o.micro_batch, o.max_len, rank, world))
        micro.push_back(make_packed_batch(data, rows, pad_id));
    } else {
      for (auto& mb : rank_micro_batches(gb, o.micro_batch, rank, world))
        micro.push_back(make_batch(data, mb, pad_id));
    }
    int64_t rows = 0, positions = 0;  // this rank's forward rows and positions incl. padding
    for (const Batch& b : micro) {
      rows += b.input_ids.size(0);
      positions += b.input_ids.numel();
    }
    at::manual_seed(mix(mix(o.seed, static_cast<uint64_t>(step)), static_cast<uint64_t>(rank)));
    so.lr = cosine_lr(o.lr, step, total, warmup);
    const auto ts = std::chrono::steady_clock::now();
    StepResult r = train_step(*s.model, opt, micro, label_tokens, so, o.comm);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    if (!r.finite) {
      std::string last = sum.last_checkpoint ? sum.last_checkpoint->string() : "none";
      if (logw) {
        logw->write(json{{"step", step + 1},
                         {"error", "non-finite loss"},
                         {"loss", std::isnan(r.loss) ? "nan" : "inf"}});
        logw->commit();
      }
      if (bar) bar->finish();
      fail(
          "train: the loss is {} at step {} (lr {:.3g}); stopped without updating. Last good "
          "checkpoint: {}",
          r.loss, step + 1, so.lr, last);
    }
    ++step;
    tokens_seen += batch_tokens;
    sum.losses.push_back(r.loss);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (logw) {
      logw->write(json{{"step", step},
                       {"epoch", static_cast<double>(step) / static_cast<double>(spe)},
                       {"loss", r.loss},
                       {"lr", so.lr},
                       {"grad_norm", r.grad_norm},
                       {"tokens", batch_tokens},
                       {"label_tokens", label_tokens},
                       {"rank0_rows", rows},
                       {"rank0_positions", positions},
                       {"tokens_per_s", static_cast<double>(batch_tokens) / std::max(dt, 1e-9)},
                       {"elapsed_s", elapsed}});
      logw->commit();
    }
    if (bar) {
      bar->set_postfix(fmt::format("loss {:.4f} lr {:.3g} {:.0f} tok/s", r.loss, so.lr,
                                   static_cast<double>(tokens_seen) / std::max(elapsed, 1e-9)));
      bar->tick();
    }
    if (o.save_steps > 0 && step % o.save_steps == 0 && step < total) {
      if (main) save_training_checkpoint(o.out, step, s, opt, state_json(step), o.keep_last);
      sum.last_checkpoint = o.out / fmt::format("checkpoint-{}", step);
      if (world > 1) o.comm->barrier();
    }
    if (o.stop_after > 0 && step >= o.stop_after && step < total) {
      if (bar) bar->finish();
      sum.steps_done = step;
      return sum;
    }
  }
  if (bar) bar->finish();
  if (main) {
    save_training_checkpoint(o.out, step, s, opt, state_json(step), o.keep_last);
    if (s.lora) {
      s.lora->save(o.out, o.init == "pretrained" ? o.model.string() : "");
    } else {
      s.model->save(o.out, s.tokenizer_dir);
    }
    log::info("train: done, {} steps; model in {}", step, o.out.string());
  }
  if (world > 1) o.comm->barrier();
  sum.last_checkpoint = o.out / fmt::format("checkpoint-{}", step);
  sum.final_dir = o.out;
  sum.steps_done = step;
  return sum;
}

}  // namespace metamath::train
