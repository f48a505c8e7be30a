#include "llm/local_backend.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <random>

#include "core/error.h"
#include "core/log.h"
#include "llm/mailbox.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace metamath::llm {

namespace {

// The n samples of one request, gathered into one Result (touched only by the engine thread).
struct Gather {
  Result result;
  int remaining = 0;
};

double physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<double>(pages) * static_cast<double>(size) : 0.0;
}

}  // namespace

struct LocalBackend::Impl {
  BackendOptions opts;
  model::Model model;
  std::unique_ptr<model::Tokenizer> tok;
  std::unique_ptr<model::BatchEngine> engine;
  std::string name;
  int max_len = 0;
  std::mt19937_64 seeds{std::random_device{}()};
  std::mutex seeds_mu;

  explicit Impl(const BackendOptions& o)
      : opts(o), model(load(o)), tok(model::Tokenizer::load(o.model)) {
    name = std::filesystem::path(o.model).filename().string();
    if (name.empty()) name = std::filesystem::path(o.model).parent_path().filename().string();
    max_len =
        static_cast<int>(std::min<int64_t>(o.max_len, model.config().max_position_embeddings));
    const ModelCacheSize size = cache_size(o.max_batch, max_len);
    log::info(
        "local backend: {} ({} layers, hidden {}), KV cache {:.2f} GiB for {} sequences x {} "
        "tokens",
        name, model.config().num_hidden_layers, model.config().hidden_size, size.gib, o.max_batch,
        max_len);
    const double phys = physical_memory_bytes();
    if (model.device().is_cpu() && phys > 0 && size.gib * (1ull << 30) > 0.75 * phys)
      fail(
          "local backend: the KV cache would need {:.1f} GiB ({} sequences x {} tokens) but the "
          "machine has "
          "{:.1f} GiB; lower --max-batch or --max-len",
          size.gib, o.max_batch, max_len, phys / (1ull << 30));
    model::GeneratorOptions g;
    g.max_batch = o.max_batch;
    g.max_len = max_len;
    engine = std::make_unique<model::BatchEngine>(model, tok.get(), g);
  }

  static model::Model load(const BackendOptions& o) {
    if (o.model.empty()) fail("the local backend needs --model DIR (a Hugging Face model folder)");
    return model::Model::load(o.model, model::parse_dtype(o.dtype), model::parse_device(o.device));
  }

  struct ModelCacheSize {
    double gib;
  };
  ModelCacheSize cache_size(int slots, int len) const {
    const auto& c = model.config();
    const double elem = static_cast<double>(c10::elementSize(model.dtype()));
    const double bytes = 2.0 * static_cast<double>(c.num_hidden_layers) * slots * len *
                         static_cast<double>(c.num_key_value_heads * c.head_dim) * elem;
    return {bytes / static_cast<double>(1ull << 30)};
  }

  uint64_t fresh_seed() {
    std::lock_guard<std::mutex> lock(seeds_mu);
    return seeds();
  }
};

LocalBackend::LocalBackend(const BackendOptions& opts) : impl_(std::make_unique<Impl>(opts)) {}

LocalBackend::~LocalBackend() {
  if (impl_ && impl_->engine) impl_->engine->shutdown();
}

std::string LocalBackend::model_name() const { return impl_->name; }

int LocalBackend::context_length() const { return impl_->max_len; }

void LocalBackend::generate(const std::vector<Request>& requests, const ResultCallback& on_result) {
  if (requests.empty()) return;
  auto box = std::make_shared<Mailbox<Result>>();
  Usage& usage = usage_;
  for (const Request& r : requests) {
    const int n = std::max(1, r.sampling.n);
    model::GenRequest g;
    try {
      if (r.is_chat()) {
        std::vector<model::ChatMessage> msgs;
        for (const auto& m : r.messages) msgs.push_back({m.role, m.content});
        if (impl_->tok->chat_format() == model::ChatFormat::None)
          fail(
              "this model has no chat template (tokenizer_config.json); send a raw prompt to "
              "/v1/completions instead");
        g.prompt = impl_->tok->apply_chat(msgs);
        g.add_bos = false;  // the chat format writes BOS itself
      } else {
        g.prompt = r.prompt;
        g.add_bos = impl_->tok->add_bos_token();
      }
      if (r.sampling.n < 1) fail("n must be >= 1");
    } catch (const Error& e) {
      Result res;
      res.id = r.id;
      res.error_kind = ErrorKind::BadRequest;
      res.error = e.what();
      usage.requests.fetch_add(1);
      usage.failed.fetch_add(1);
      box->put(std::move(res));
      continue;
    }
    g.max_new_tokens = r.sampling.max_tokens > 0 ? r.sampling.max_tokens : impl_->max_len;
    g.sampling.temperature = static_cast<float>(r.sampling.temperature);
    g.sampling.top_p = static_cast<float>(r.sampling.top_p);
    g.sampling.seed =
        r.sampling.seed ? *r.sampling.seed : (r.sampling.temperature > 0 ? impl_->fresh_seed() : 0);
    g.n = n;
    g.stop = r.sampling.stop;
    g.stop_at_eos = true;

    auto gather = std::make_shared<Gather>();
    gather->result.id = r.id;
    gather->result.choices.resize(static_cast<std::size_t>(n));
    gather->remaining = n;
    auto on_gen = [gather, box, &usage](model::GenResult gr) {
      Result& res = gather->result;
      res.prompt_tokens = gr.prompt_tokens;
      if (gr.finish_reason == "error") {
        if (res.ok()) {
          const bool engine_failed = gr.error.rfind("generation failed", 0) == 0;
          res.error_kind = engine_failed ? ErrorKind::Fatal : ErrorKind::BadRequest;
          res.error = gr.error;
        }
      } else {
        res.completion_tokens += gr.completion_tokens;
        auto& c = res.choices[static_cast<std::size_t>(gr.sample)];
        c.text = std::move(gr.text);
        c.finish_reason = gr.finish_reason;
        c.completion_tokens = gr.completion_tokens;
      }
      if (--gather->remaining > 0) return;
      if (!res.ok()) {
        res.choices.clear();
        usage.failed.fetch_add(1);
      }
      usage.requests.fetch_add(1);
      usage.prompt_tokens.fetch_add(static_cast<uint64_t>(res.prompt_tokens));
      usage.completion_tokens.fetch_add(static_cast<uint64_t>(res.completion_tokens));
      box->put(std::move(res));
    };
    std::function<void(int, std::string_view)> on_delta;
    if (r.on_delta) {
      const Request* rp = &r;  // generate() waits for every request, so r outlives the engine's use
      on_delta = [rp](int sample, std::string_view d) { rp->on_delta(sample, std::string(d)); };
    }
    impl_->engine->submit(g, std::move(on_gen), std::move(on_delta));
  }
  box->deliver(requests.size(), on_result);
}

std::vector<std::vector<float>> LocalBackend::embed(const std::vector<std::string>& texts) {
  uint64_t tokens = 0;
  auto out = mean_pooled_embeddings(impl_->model, *impl_->tok, texts, impl_->max_len, &tokens);
  usage_.prompt_tokens.fetch_add(tokens);
  return out;
}

std::vector<std::vector<float>> mean_pooled_embeddings(const model::Model& model,
                                                       const model::Tokenizer& tok,
                                                       const std::vector<std::string>& texts,
                                                       int max_len, uint64_t* tokens) {
  constexpr std::size_t kChunk = 16;
  c10::InferenceMode guard;
  std::vector<std::vector<float>> out;
  out.reserve(texts.size());
  for (std::size_t start = 0; start < texts.size(); start += kChunk) {
    const std::size_t end = std::min(texts.size(), start + kChunk);
    std::vector<std::vector<int32_t>> ids;
    std::size_t T = 1;
    for (std::size_t i = start; i < end; ++i) {
      ids.push_back(tok.encode(texts[i], tok.add_bos_token() && tok.bos_id().has_value()));
      if (ids.back().empty()) fail("embeddings: input {} is empty", i);
      if (static_cast<int>(ids.back().size()) > max_len)
        fail("embeddings: input {} has {} tokens; the limit is {}", i, ids.back().size(), max_len);
      T = std::max(T, ids.back().size());
    }
    const auto B = static_cast<int64_t>(ids.size());
    at::Tensor in_ids = at::zeros({B, static_cast<int64_t>(T)}, at::kLong);
    at::Tensor mask = at::zeros({B, static_cast<int64_t>(T)}, at::kLong);
    auto ia = in_ids.accessor<int64_t, 2>();
    auto ma = mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b)
      for (std::size_t t = 0; t < ids[b].size(); ++t) {  // right padding
        ia[b][static_cast<int64_t>(t)] = ids[b][t];
        ma[b][static_cast<int64_t>(t)] = 1;
      }
    model::ForwardInput fin;
    fin.input_ids = in_ids.to(model.device());
    fin.attention_mask = mask.to(model.device());
    at::Tensor h = model.forward_hidden(fin).to(at::kCPU).to(at::kFloat);  // [B, T, H]
    at::Tensor m = mask.to(at::kFloat).unsqueeze(-1);
    // Padding positions are unspecified (maybe NaN): zero them rather than multiply.
    at::Tensor mean = h.masked_fill(m == 0, 0.0).sum(1) / m.sum(1);  // [B, H]
    mean = mean.contiguous();
    for (int64_t b = 0; b < B; ++b) {
      const float* p = mean[b].data_ptr<float>();
      out.emplace_back(p, p + mean.size(1));
    }
    if (tokens)
      for (const auto& x : ids) *tokens += x.size();
  }
  return out;
}

}  // namespace metamath::llm
