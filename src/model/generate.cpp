#include "model/generate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>

#include "core/error.h"
#include "model/model.h"
#include "model/stop.h"
#include "model/tokenizer.h"

namespace metamath::model {

namespace {

struct Seq {
  std::size_t request = 0;
  int sample = 0;
  std::vector<std::int32_t> prompt;
  int64_t slot = -1;
  int max_new = 0;
  bool stop_at_eos = true;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<StopMatcher> stops;
  std::unique_ptr<StreamDecoder> decoder;
  GenResult result;
  std::int32_t last = 0;
  bool done = false;
};

}  // namespace

Generator::Generator(const Model& model, const Tokenizer* tokenizer, GeneratorOptions opts)
    : model_(model), tok_(tokenizer), opts_(opts) {
  if (opts_.max_batch < 1) fail("generate: max_batch must be >= 1, got {}", opts_.max_batch);
  if (opts_.max_len < 2) fail("generate: max_len must be >= 2, got {}", opts_.max_len);
  opts_.max_prefill = std::max(1, opts_.max_prefill);
}

void Generator::run(const std::vector<GenRequest>& requests,
                    const std::function<void(GenResult)>& on_result,
                    const std::function<void(std::size_t, std::size_t)>& on_step) {
  c10::InferenceMode guard;
  std::vector<std::int32_t> eos_ids;
  if (tok_) {
    eos_ids = tok_->stop_ids();
    if (tok_->eos_id() && std::find(eos_ids.begin(), eos_ids.end(), *tok_->eos_id()) == eos_ids.end())
      eos_ids.push_back(*tok_->eos_id());
  }
  for (auto id : model_.config().eos_token_ids)
    if (std::find(eos_ids.begin(), eos_ids.end(), id) == eos_ids.end()) eos_ids.push_back(static_cast<std::int32_t>(id));

  std::size_t finished = 0, tokens = 0;
  auto finish = [&](Seq& s, std::string reason) {
    s.done = true;
    if (s.decoder) {
      std::string tail = s.decoder->finish();
      if (s.stops && !s.stops->stopped()) s.stops->append(tail);
    }
    if (s.stops) {
      s.result.text = s.stops->text();
      if (s.stops->stopped()) {
        reason = "stop";
        s.result.stop = s.stops->matched();
      }
    }
    s.result.finish_reason = std::move(reason);
    s.result.completion_tokens = static_cast<int>(s.result.ids.size());
    ++finished;
    on_result(std::move(s.result));
  };

  // Expand requests into samples; invalid ones finish at once with an error.
  std::deque<std::unique_ptr<Seq>> waiting;
  for (std::size_t r = 0; r < requests.size(); ++r) {
    const GenRequest& q = requests[r];
    std::vector<std::int32_t> ids = q.prompt_ids;
    std::string error;
    if (ids.empty()) {
      if (!tok_) error = "a text prompt needs a tokenizer";
      else ids = tok_->encode(q.prompt, q.add_bos && tok_->bos_id().has_value());
    }
    if (error.empty() && ids.empty()) error = "empty prompt";
    if (error.empty() && !q.stop.empty() && !tok_) error = "stop strings need a tokenizer";
    if (error.empty() && static_cast<int>(ids.size()) >= opts_.max_len)
      error = fmt::format("prompt has {} tokens; the limit is {} (prompt + completion)", ids.size(), opts_.max_len);
    if (error.empty() && q.max_new_tokens < 1) error = "max_new_tokens must be >= 1";
    if (error.empty() && q.n < 1) error = "n must be >= 1";
    for (const auto id : ids)
      if (error.empty() && (id < 0 || id >= model_.config().vocab_size)) error = fmt::format("token id {} is outside the vocabulary", id);
    for (int i = 0; i < std::max(1, q.n); ++i) {
      auto s = std::make_unique<Seq>();
      s->request = r;
      s->sample = i;
      s->result.request = r;
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
        s->decoder = std::make_unique<StreamDecoder>(*tok_, /*skip_special=*/true, /*at_text_start=*/false);
      }
      waiting.push_back(std::move(s));
    }
  }
  if (on_step) on_step(finished, tokens);

  KVCache cache = model_.make_cache(std::min<int64_t>(opts_.max_batch, static_cast<int64_t>(waiting.size()) + 1),
                                    opts_.max_len);
  std::vector<std::unique_ptr<Seq>> active;

  // Accepts a sampled token for s; returns true when s is finished.
  auto accept = [&](Seq& s, std::int32_t tok) {
    ++tokens;
    if (s.stop_at_eos && std::find(eos_ids.begin(), eos_ids.end(), tok) != eos_ids.end()) {
      finish(s, "stop");
      return true;
    }
    s.result.ids.push_back(tok);
    s.last = tok;
    if (s.decoder && s.stops->append(s.decoder->push(tok))) {
      finish(s, "stop");
      return true;
    }
    bool full = cache.length(s.slot) + 1 >= opts_.max_len;
    if (static_cast<int>(s.result.ids.size()) >= s.max_new || full) {
      finish(s, "length");
      return true;
    }
    return false;
  };

  while (!waiting.empty() || !active.empty()) {
    // Admit waiting sequences into free slots and prefill them together (left padded).
    std::vector<std::unique_ptr<Seq>> fresh;
    while (!waiting.empty() && static_cast<int>(fresh.size()) < opts_.max_prefill) {
      auto slot = cache.acquire();
      if (!slot) break;
      waiting.front()->slot = *slot;
      fresh.push_back(std::move(waiting.front()));
      waiting.pop_front();
    }
    if (!fresh.empty()) {
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
      at::Tensor logits = model_.forward(in, &cache, LogitsMode::Last).to(at::kCPU);
      for (int64_t b = 0; b < B; ++b) {
        Seq& s = *fresh[b];
        if (accept(s, static_cast<std::int32_t>(s.sampler->next(logits[b][0])))) {
          cache.release(s.slot);
        } else {
          active.push_back(std::move(fresh[b]));
        }
      }
      if (on_step) on_step(finished, tokens);
      // Fill every free slot before the next decode step.
      if (!waiting.empty() && cache.free_slots() > 0) continue;
    }
    if (active.empty()) continue;

    // One decode step over all active sequences, each in its own slot at its own length.
    const int64_t B = static_cast<int64_t>(active.size());
    at::Tensor ids = at::empty({B, 1}, at::kLong);
    auto ids_a = ids.accessor<int64_t, 2>();
    ForwardInput in;
    for (int64_t b = 0; b < B; ++b) {
      ids_a[b][0] = active[b]->last;
      in.slots.push_back(active[b]->slot);
    }
    in.input_ids = ids.to(model_.device());
    at::Tensor logits = model_.forward(in, &cache, LogitsMode::Last).to(at::kCPU);
    std::vector<std::unique_ptr<Seq>> still;
    for (int64_t b = 0; b < B; ++b) {
      Seq& s = *active[b];
      if (accept(s, static_cast<std::int32_t>(s.sampler->next(logits[b][0])))) {
        cache.release(s.slot);
      } else {
        still.push_back(std::move(active[b]));
      }
    }
    active = std::move(still);
    if (on_step) on_step(finished, tokens);
  }
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
