#include "model/generate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <string_view>

#include "core/error.h"
#include "model/model.h"
#include "model/stop.h"
#include "model/tokenizer.h"

namespace metamath::model {

// One sample being generated (internal to this file).
struct Seq {
  std::vector<std::int32_t> prompt;
  int64_t slot = -1;
  int max_new = 0;
  bool stop_at_eos = true;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<StopMatcher> stops;
  std::unique_ptr<StreamDecoder> decoder;
  GenResult result;
  std::int32_t last = 0;
  std::size_t streamed = 0;  // bytes of text already passed to on_delta
  std::shared_ptr<const SeqCallbacks> cb;
};

namespace {

// Checks a request and encodes its prompt; returns the error, or "" with ids filled in.
std::string prepare(const GenRequest& q, const Tokenizer* tok, const Model& model, int max_len,
                    std::vector<std::int32_t>& ids) {
  ids = q.prompt_ids;
  if (ids.empty()) {
    if (!tok) return "a text prompt needs a tokenizer";
    ids = tok->encode(q.prompt, q.add_bos && tok->bos_id().has_value());
  }
  if (ids.empty()) return "empty prompt";
  if (!q.stop.empty() && !tok) return "stop strings need a tokenizer";
  if (static_cast<int>(ids.size()) >= max_len)
    return fmt::format("prompt has {} tokens; the limit is {} (prompt + completion)", ids.size(),
                       max_len);
  if (q.max_new_tokens < 1) return "max_new_tokens must be >= 1";
  if (q.n < 1) return "n must be >= 1";
  for (const auto id : ids)
    if (id < 0 || id >= model.config().vocab_size)
      return fmt::format("token id {} is outside the vocabulary", id);
  return "";
}

}  // namespace

// The continuous-batching core shared by Generator (one call, all requests known) and BatchEngine
// (requests arrive from other threads while it runs). Not thread-safe itself.
class BatchCore {
 public:
  BatchCore(const Model& model, const Tokenizer* tok, const GeneratorOptions& opts,
            int64_t num_slots)
      : model_(model), tok_(tok), opts_(opts), cache_(model.make_cache(num_slots, opts.max_len)) {
    if (tok_) {
      eos_ids_ = tok_->stop_ids();
      if (tok_->eos_id() && !is_eos(*tok_->eos_id())) eos_ids_.push_back(*tok_->eos_id());
    }
    for (auto id : model_.config().eos_token_ids)
      if (!is_eos(static_cast<std::int32_t>(id))) eos_ids_.push_back(static_cast<std::int32_t>(id));
  }

  // Queues the n samples of a request (request index `index`); an invalid request finishes at once
  // with finish_reason "error".
  void add(const GenRequest& q, std::size_t index, std::shared_ptr<const SeqCallbacks> cb) {
    std::vector<std::int32_t> ids;
    const std::string error = prepare(q, tok_, model_, opts_.max_len, ids);
    for (int i = 0; i < std::max(1, q.n); ++i) {
      auto s = std::make_unique<Seq>();
      s->cb = cb;
      s->result.request = index;
      s->result.sample = i;
      s->result.prompt_tokens = static_cast<int>(ids.size());
      if (!error.empty()) {
        s->result.error = error;
        finish(*s, "error");
        continue;
      }
      s->prompt = ids;
      s->max_new = q.max_new_tokens;
      s->stop_at_eos = q.stop_at_eos;
      SamplingParams sp = q.sampling;
      sp.seed += static_cast<std::uint64_t>(i);
      s->sampler = std::make_unique<Sampler>(sp);
      if (tok_) {
        s->stops = std::make_unique<StopMatcher>(q.stop);
        s->decoder = std::make_unique<StreamDecoder>(*tok_, /*skip_special=*/true,
                                                     /*at_text_start=*/false);
      }
      waiting_.push_back(std::move(s));
    }
  }

  bool idle() const { return waiting_.empty() && active_.empty(); }
  std::size_t finished() const { return finished_; }
  std::size_t tokens() const { return tokens_; }

  // One unit of work: prefills newly admitted sequences (when slots are free) or runs one decode
  // step over every active sequence.
  void step() {
    c10::InferenceMode guard;
    std::vector<std::unique_ptr<Seq>> fresh;
    while (!waiting_.empty() && static_cast<int>(fresh.size()) < opts_.max_prefill) {
      auto slot = cache_.acquire();
      if (!slot) break;
      waiting_.front()->slot = *slot;
      fresh.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
    if (!fresh.empty()) {
      prefill(fresh);
      // Fill every free slot before the next decode step.
      if (!waiting_.empty() && cache_.free_slots() > 0) return;
    }
    if (!active_.empty()) decode();
  }

  // Ends every queued and running sequence with an error (after a failed forward pass).
  void fail_all(const std::string& error) {
    auto end = [&](std::unique_ptr<Seq>& s) {
      if (s->slot >= 0) cache_.release(s->slot);
      s->result.error = error;
      finish(*s, "error");
    };
    for (auto& s : active_) end(s);
    for (auto& s : waiting_) end(s);
    active_.clear();
    waiting_.clear();
    cache_.reset();
  }

 private:
  bool is_eos(std::int32_t id) const {
    return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
  }

  void stream(Seq& s, std::size_t upto) {
    if (!s.cb->on_delta || upto <= s.streamed) return;
    s.cb->on_delta(s.result.sample,
                   std::string_view(s.stops->text()).substr(s.streamed, upto - s.streamed));
    s.streamed = upto;
  }

  void finish(Seq& s, std::string reason) {
    if (s.decoder) {
      std::string tail = s.decoder->finish();
      if (s.stops && !s.stops->stopped()) s.stops->append(tail);
    }
    if (s.stops) {
      if (reason != "error") stream(s, s.stops->text().size());
      s.result.text = s.stops->text();
      if (s.stops->stopped()) {
        reason = "stop";
        s.result.stop = s.stops->matched();
      }
    }
    s.result.finish_reason = std::move(reason);
    s.result.completion_tokens = static_cast<int>(s.result.ids.size());
    ++finished_;
    s.cb->on_result(std::move(s.result));
  }

  // Takes a sampled token for s; returns true when s is finished (its slot is then released).
  bool accept(Seq& s, std::int32_t tok) {
    ++tokens_;
    bool done = false;
    if (s.stop_at_eos && is_eos(tok)) {
      finish(s, "stop");
      done = true;
    } else {
      s.result.ids.push_back(tok);
      s.last = tok;
      if (s.decoder && s.stops->append(s.decoder->push(tok))) {
        finish(s, "stop");
        done = true;
      } else if (static_cast<int>(s.result.ids.size()) >= s.max_new ||
                 cache_.length(s.slot) + 1 >= opts_.max_len) {
        finish(s, "length");
        done = true;
      } else if (s.stops) {
        stream(s, s.stops->safe_length());
      }
    }
    if (done) cache_.release(s.slot);
    return done;
  }

  // Samples the next token of each row of `batch` from logits [B, 1, V] and keeps the sequences
  // that go on in active_. Rows of contiguous float32 CPU logits (the fused decode step's) are
  // read in place instead of through ~6 libtorch ops each.
  void advance(std::vector<std::unique_ptr<Seq>>& batch, const at::Tensor& logits) {
    const bool in_place = logits.is_cpu() && logits.scalar_type() == at::kFloat &&
                          logits.is_contiguous() && logits.dim() == 3 && logits.size(1) == 1;
    const int64_t V = logits.size(-1);
    for (std::size_t b = 0; b < batch.size(); ++b) {
      Seq& s = *batch[b];
      const auto row = static_cast<int64_t>(b);
      const float* values = in_place ? logits.data_ptr<float>() + row * V : nullptr;
      const std::int64_t tok = values ? s.sampler->next(values, static_cast<std::size_t>(V))
                                      : s.sampler->next(logits[row][0]);
      if (!accept(s, static_cast<std::int32_t>(tok))) active_.push_back(std::move(batch[b]));
    }
  }

  // Prefills new sequences together (left padded) into their slots.
  void prefill(std::vector<std::unique_ptr<Seq>>& fresh) {
    int64_t T = 0;
    for (auto& s : fresh) T = std::max<int64_t>(T, static_cast<int64_t>(s->prompt.size()));
    const int64_t B = static_cast<int64_t>(fresh.size());
    at::Tensor ids = at::zeros({B, T}, at::kLong), mask = at::zeros({B, T}, at::kLong);
    auto ids_a = ids.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<int64_t, 2>();
    ForwardInput in;
    for (int64_t b = 0; b < B; ++b) {
      const auto& p = fresh[b]->prompt;
      const int64_t off = T - static_cast<int64_t>(p.size());
      for (std::size_t t = 0; t < p.size(); ++t) {
        ids_a[b][off + static_cast<int64_t>(t)] = p[t];
        mask_a[b][off + static_cast<int64_t>(t)] = 1;
      }
      in.slots.push_back(fresh[b]->slot);
    }
    in.input_ids = ids.to(model_.device());
    in.attention_mask = mask.to(model_.device());
    // Until the forward pass succeeds the fresh sequences are "active" for fail_all().
    const std::size_t mark = active_.size();
    for (auto& s : fresh) active_.push_back(std::move(s));
    at::Tensor logits = model_.forward(in, &cache_, LogitsMode::Last).to(at::kCPU);
    for (std::size_t i = 0; i < fresh.size(); ++i) fresh[i] = std::move(active_[mark + i]);
    active_.resize(mark);
    advance(fresh, logits);
  }

  // One decode step over all active sequences, each in its own slot at its own length.
  void decode() {
    const int64_t B = static_cast<int64_t>(active_.size());
    at::Tensor ids = at::empty({B, 1}, at::kLong);
    auto ids_a = ids.accessor<int64_t, 2>();
    ForwardInput in;
    for (int64_t b = 0; b < B; ++b) {
      ids_a[b][0] = active_[b]->last;
      in.slots.push_back(active_[b]->slot);
    }
    in.input_ids = model_.device().is_cpu() ? ids : ids.to(model_.device());
    at::Tensor logits = model_.forward(in, &cache_, LogitsMode::Last);
    if (!logits.is_cpu()) logits = logits.to(at::kCPU);
    std::vector<std::unique_ptr<Seq>> batch = std::move(active_);
    active_.clear();
    advance(batch, logits);
  }

  const Model& model_;
  const Tokenizer* tok_;
  GeneratorOptions opts_;
  KVCache cache_;
  std::vector<std::int32_t> eos_ids_;
  std::deque<std::unique_ptr<Seq>> waiting_;
  std::vector<std::unique_ptr<Seq>> active_;
  std::size_t finished_ = 0, tokens_ = 0;
};

namespace {
void check_options(const GeneratorOptions& o) {
  if (o.max_batch < 1) fail("generate: max_batch must be >= 1, got {}", o.max_batch);
  if (o.max_len < 2) fail("generate: max_len must be >= 2, got {}", o.max_len);
}
}  // namespace

Generator::Generator(const Model& model, const Tokenizer* tokenizer, GeneratorOptions opts)
    : model_(model), tok_(tokenizer), opts_(opts) {
  check_options(opts_);
  opts_.max_prefill = std::max(1, opts_.max_prefill);
}

void Generator::run(const std::vector<GenRequest>& requests,
                    const std::function<void(GenResult)>& on_result,
                    const std::function<void(std::size_t, std::size_t)>& on_step) {
  std::size_t samples = 0;
  for (const auto& q : requests) samples += static_cast<std::size_t>(std::max(1, q.n));
  BatchCore core(model_, tok_, opts_,
                 std::min<int64_t>(opts_.max_batch, static_cast<int64_t>(samples) + 1));
  auto cb = std::make_shared<SeqCallbacks>();
  cb->on_result = on_result;
  for (std::size_t r = 0; r < requests.size(); ++r) core.add(requests[r], r, cb);
  if (on_step) on_step(core.finished(), core.tokens());
  while (!core.idle()) {
    core.step();
    if (on_step) on_step(core.finished(), core.tokens());
  }
}

BatchEngine::BatchEngine(const Model& model, const Tokenizer* tokenizer, GeneratorOptions opts)
    : opts_(opts) {
  check_options(opts_);
  opts_.max_prefill = std::max(1, opts_.max_prefill);
  core_ = std::make_unique<BatchCore>(model, tokenizer, opts_, opts_.max_batch);
  thread_ = std::thread([this] { loop(); });
}

BatchEngine::~BatchEngine() { shutdown(); }

void BatchEngine::submit(const GenRequest& request, std::function<void(GenResult)> on_result,
                         std::function<void(int, std::string_view)> on_delta) {
  auto cb = std::make_shared<SeqCallbacks>();
  cb->on_result = std::move(on_result);
  cb->on_delta = std::move(on_delta);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) fail("generate: the engine is shutting down");
    inbox_.push_back({request, std::move(cb)});
  }
  cv_.notify_one();
}

void BatchEngine::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::size_t BatchEngine::tokens() const { return tokens_.load(); }

void BatchEngine::loop() {
  for (;;) {
    std::vector<Pending> incoming;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !inbox_.empty() || !core_->idle(); });
      if (stopping_ && inbox_.empty() && core_->idle()) return;
      incoming.swap(inbox_);
    }
    for (auto& p : incoming) core_->add(p.request, 0, p.cb);
    if (core_->idle()) continue;
    try {
      core_->step();
    } catch (const std::exception& e) {
      core_->fail_all(std::string("generation failed: ") + e.what());
    }
    tokens_.store(core_->tokens());
  }
}

// ---------------------------------------------------------------------------------------------
// Greedy generation

std::vector<std::vector<int64_t>> greedy_generate(const Model& model,
                                                  const std::vector<std::vector<int64_t>>& prompts,
                                                  const GreedyOptions& opts) {
  c10::InferenceMode guard;
  const int64_t N = static_cast<int64_t>(prompts.size());
  std::vector<std::vector<int64_t>> out(N);
  if (N == 0 || opts.max_new_tokens <= 0) return out;
  int64_t tmax = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (prompts[i].empty())
      fail("greedy_generate: prompt {} is empty (need at least one token)", i);
    tmax = std::max<int64_t>(tmax, prompts[i].size());
  }
  std::vector<int64_t> stops = opts.stop_ids;
  if (opts.stop_at_eos)
    stops.insert(stops.end(), model.config().eos_token_ids.begin(),
                 model.config().eos_token_ids.end());
  KVCache cache = model.make_cache(N, tmax + opts.max_new_tokens);

  // Prefill, left padded.
  at::Tensor ids = at::zeros({N, tmax}, at::kLong), mask = at::zeros({N, tmax}, at::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < N; ++i) {
    const int64_t n = prompts[i].size(), off = tmax - n;
    for (int64_t t = 0; t < n; ++t) {
      ids_a[i][off + t] = prompts[i][t];
      mask_a[i][off + t] = 1;
    }
  }
  ForwardInput in;
  in.input_ids = ids;
  in.attention_mask = mask;
  const std::vector<int64_t> next = greedy_tokens(model.forward(in, &cache, LogitsMode::Last));
  std::vector<int64_t> active;
  std::vector<int64_t> last(N);
  for (int64_t i = 0; i < N; ++i) {
    int64_t tok = next[i];
    out[i].push_back(tok);
    last[i] = tok;
    bool stop = std::find(stops.begin(), stops.end(), tok) != stops.end();
    if (!stop && opts.max_new_tokens > 1) active.push_back(i);
  }
  // Each step's ids [A, 1], rewritten in place (a step reads them only during its forward pass):
  // the loop between two steps makes no libtorch call while the batch keeps its size.
  at::Tensor step;
  while (!active.empty()) {
    const int64_t A = active.size();
    if (!step.defined() || step.size(0) != A) step = at::empty({A, 1}, at::kLong);
    for (int64_t a = 0; a < A; ++a) step.data_ptr<int64_t>()[a] = last[active[a]];
    ForwardInput s;
    s.input_ids = step;
    s.slots = active;  // sequence i lives in slot i
    const std::vector<int64_t> nx = greedy_tokens(model.forward(s, &cache, LogitsMode::Last));
    std::vector<int64_t> still;
    for (int64_t a = 0; a < A; ++a) {
      const int64_t i = active[a];
      int64_t tok = nx[a];
      out[i].push_back(tok);
      last[i] = tok;
      bool stop = std::find(stops.begin(), stops.end(), tok) != stops.end();
      if (!stop && static_cast<int64_t>(out[i].size()) < opts.max_new_tokens) still.push_back(i);
    }
    active = std::move(still);
  }
  return out;
}

}  // namespace metamath::model

#include "core/jsonl.h"
#include "core/progress.h"

namespace metamath::model {

std::vector<json> run_generate_job(const GenerateJob& job) {
  std::vector<json> ids;  // the id kept for each prompt
  std::vector<GenRequest> reqs;
  auto add = [&](std::string prompt, json id) {
    GenRequest r = job.params;
    r.prompt = std::move(prompt);
    r.prompt_ids.clear();
    reqs.push_back(std::move(r));
    ids.push_back(std::move(id));
  };
  for (const auto& p : job.prompts) add(p, json(ids.size()));
  if (!job.prompts_file.empty()) {
    JsonlReader reader(job.prompts_file);
    json rec;
    while (reader.next(rec)) {
      std::string prompt = require_string(rec, job.prompt_field.c_str(), reader.where());
      add(std::move(prompt), rec.contains("id") ? rec["id"] : json(ids.size()));
    }
  }
  if (reqs.empty()) fail("generate: no prompts (give --prompt or --prompts FILE.jsonl)");

  Model model = Model::load(job.model, parse_dtype(job.dtype), parse_device(job.device));
  auto tok = Tokenizer::load(job.model);
  Generator gen(model, tok.get(), job.engine);
  const std::size_t n = static_cast<std::size_t>(std::max(1, job.params.n));
  std::vector<json> rows(reqs.size() * n);
  std::unique_ptr<Progress> bar;
  if (job.progress) bar = std::make_unique<Progress>("generate", rows.size());
  std::size_t last_done = 0;
  gen.run(
      reqs,
      [&](GenResult r) {
        json row{{"id", ids[r.request]},
                 {"sample", r.sample},
                 {"prompt", reqs[r.request].prompt},
                 {"completion", r.text},
                 {"finish_reason", r.finish_reason},
                 {"prompt_tokens", r.prompt_tokens},
                 {"completion_tokens", r.completion_tokens}};
        if (!r.stop.empty()) row["stop"] = r.stop;
        if (!r.error.empty()) row["error"] = r.error;
        rows[r.request * n + static_cast<std::size_t>(r.sample)] = std::move(row);
      },
      [&](std::size_t done, std::size_t tokens) {
        if (!bar) return;
        bar->set_postfix(fmt::format("{} tokens", tokens));
        bar->tick(done - last_done);
        last_done = done;
      });
  if (bar) bar->finish();
  if (!job.out.empty()) {
    JsonlWriter w(job.out);
    for (const auto& r : rows) w.write(r);
    w.commit();
  }
  return rows;
}

}  // namespace metamath::model
