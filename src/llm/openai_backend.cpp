#include "llm/openai_backend.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "llm/mailbox.h"

namespace metamath::llm {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// One logical HTTP call (a completion request or an embeddings chunk), retried until it succeeds
// or runs out of attempts. `accept` turns a 200 body into the caller's result and returns "" or a
// reason to retry (truncated/invalid JSON); `give_up` reports the final failure. Both run on the
// worker thread.
struct Call {
  std::string path;                   // "/completions", ...
  std::function<std::string()> body;  // built when first sent (saves memory for big batches)
  std::string body_cache;
  double est_tokens = 0;
  int attempts = 0;
  Clock::time_point not_before{};
  std::function<std::string(const json&)> accept;
  std::function<void(ErrorKind, const std::string&)> give_up;
};

struct Transfer {
  CURL* easy = nullptr;
  std::shared_ptr<Call> call;
  std::string response;
  std::string retry_after;
  curl_slist* headers = nullptr;
};

size_t write_cb(char* ptr, size_t size, size_t n, void* user) {
  static_cast<Transfer*>(user)->response.append(ptr, size * n);
  return size * n;
}

size_t header_cb(char* ptr, size_t size, size_t n, void* user) {
  std::string_view line(ptr, size * n);
  constexpr std::string_view key = "retry-after:";
  if (line.size() > key.size()) {
    std::string head(line.substr(0, key.size()));
    std::transform(head.begin(), head.end(), head.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (head == key) {
      std::string v(line.substr(key.size()));
      while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
      while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.erase(0, 1);
      static_cast<Transfer*>(user)->retry_after = v;
    }
  }
  return size * n;
}

// Retry-After as seconds (a number or an HTTP date); negative when absent or unparsable.
double parse_retry_after(const std::string& v) {
  if (v.empty()) return -1;
  char* end = nullptr;
  const double s = std::strtod(v.c_str(), &end);
  if (end && *end == '\0' && end != v.c_str()) return std::max(0.0, s);
  const time_t t = curl_getdate(v.c_str(), nullptr);
  if (t < 0) return -1;
  return std::max(0.0, std::difftime(t, std::time(nullptr)));
}

std::string error_message_of(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  std::string msg;
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    const json& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string())
      msg = e["message"].get<std::string>();
    else if (e.is_string())
      msg = e.get<std::string>();
  }
  if (msg.empty()) msg = body;
  if (msg.size() > 300) msg = msg.substr(0, 300) + "...";
  return msg;
}

// A token bucket: `rate` units per second, holding at most `capacity`.
class Bucket {
 public:
  Bucket(double per_minute)
      : rate_(per_minute / 60.0), capacity_(std::max(1.0, per_minute / 60.0)), level_(capacity_) {}
  bool enabled() const { return rate_ > 0; }
  // Seconds until `amount` can be taken (0 = now). A request bigger than the capacity waits for a
  // full bucket and takes it into debt.
  double wait(double amount, Clock::time_point now) {
    refill(now);
    const double need = std::min(amount, capacity_);
    return level_ >= need ? 0.0 : (need - level_) / rate_;
  }
  void take(double amount) { level_ -= amount; }
  void give_back(double amount) { level_ = std::min(capacity_, level_ + amount); }

 private:
  void refill(Clock::time_point now) {
    const double dt = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    level_ = std::min(capacity_, level_ + dt * rate_);
  }
  double rate_, capacity_, level_;
  Clock::time_point last_ = Clock::now();
};

std::string strip_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

struct OpenAIBackend::Impl {
  BackendOptions opts;
  Usage& usage;
  std::string base, auth_header;
  CURLM* multi = nullptr;
  std::thread worker;
  std::mutex mu;
  std::vector<std::shared_ptr<Call>> inbox;
  bool stopping = false;
  Bucket rpm, tpm;
  std::mt19937_64 rng{std::random_device{}()};

  Impl(const BackendOptions& o, Usage& u)
      : opts(o), usage(u), rpm(o.requests_per_minute), tpm(o.tokens_per_minute) {
    base = strip_slash(opts.base_url);
    if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0)
      fail("--base-url must start with http:// or https://, got '{}'", opts.base_url);
    if (opts.model.empty())
      fail("the openai backend needs --model (the model name the server knows)");
    std::string key = opts.api_key;
    if (key.empty()) {
      if (const char* env = std::getenv("OPENAI_API_KEY")) key = env;
    }
    if (!key.empty()) auth_header = "Authorization: Bearer " + key;
    static std::once_flag curl_once;
    std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    multi = curl_multi_init();
    if (!multi) fail("libcurl: curl_multi_init failed");
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(opts.concurrency));
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(opts.concurrency));
    worker = std::thread([this] { loop(); });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    curl_multi_wakeup(multi);
    if (worker.joinable()) worker.join();
    curl_multi_cleanup(multi);
  }

  void submit(std::vector<std::shared_ptr<Call>> calls) {
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& c : calls) inbox.push_back(std::move(c));
    }
    curl_multi_wakeup(multi);
  }

  double backoff(int attempt) {
    const double d = std::min(opts.backoff_max_s, opts.backoff_base_s * std::pow(2.0, attempt - 1));
    std::uniform_real_distribution<double> u(0.5, 1.0);
    return d * u(rng);
  }

  void start(Transfer& t) {
    Call& c = *t.call;
    if (c.body_cache.empty()) c.body_cache = c.body();
    ++c.attempts;
    CURL* e = t.easy;
    curl_easy_reset(e);
    const std::string url = base + c.path;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c.body_cache.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(c.body_cache.size()));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(opts.timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min(opts.timeout_s, 30.0) * 1000));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_slist* h = nullptr;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");  // no 100-continue round trip for large bodies
    if (!auth_header.empty()) h = curl_slist_append(h, auth_header.c_str());
    t.headers = h;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    t.response.clear();
    t.retry_after.clear();
    curl_multi_add_handle(multi, e);
  }

  // Decides what a finished attempt means: done, retry (requeued with a delay) or failed.
  void finished(Transfer& t, CURLcode code, std::vector<std::shared_ptr<Call>>& ready) {
    auto call = std::move(t.call);
    long status = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    std::string reason;
    bool retry = false;
    ErrorKind kind = ErrorKind::Transient;
    if (code != CURLE_OK) {
      reason = code == CURLE_OPERATION_TIMEDOUT
                   ? fmt::format("timed out after {} s", opts.timeout_s)
                   : fmt::format("connection error: {}", curl_easy_strerror(code));
      retry = code != CURLE_URL_MALFORMAT && code != CURLE_UNSUPPORTED_PROTOCOL;
      if (!retry) kind = ErrorKind::Fatal;
    } else if (status == 200) {
      json j = json::parse(t.response, nullptr, false);
      if (j.is_discarded()) {
        reason = fmt::format("invalid JSON in the response ({} bytes)", t.response.size());
        retry = true;
      } else {
        reason = call->accept(j);
        if (reason.empty()) return;
        retry = true;
      }
    } else {
      reason = fmt::format("HTTP {}: {}", status, error_message_of(t.response));
      if (status == 429 || status == 408 || status == 409 || status >= 500) {
        retry = true;
      } else if (status == 401 || status == 403) {
        kind = ErrorKind::Fatal;
      } else {
        kind = ErrorKind::BadRequest;
      }
    }
    if (retry && call->attempts < opts.max_attempts) {
      double delay = backoff(call->attempts);
      const double ra = parse_retry_after(t.retry_after);
      if (ra >= 0) delay = std::max(delay, std::min(ra, 600.0));
      call->not_before = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(delay));
      usage.retries.fetch_add(1);
      log::debug("openai: retry {} of a {} call in {:.2f} s: {}", call->attempts, call->path, delay,
                 reason);
      ready.push_back(std::move(call));
      return;
    }
    if (retry) reason = fmt::format("gave up after {} attempts; last: {}", call->attempts, reason);
    call->give_up(kind, reason);
  }

  void loop() {
    std::vector<std::shared_ptr<Call>> ready;  // waiting to be sent (maybe not before a time)
    std::vector<std::unique_ptr<Transfer>> pool;
    std::vector<Transfer*> idle;
    int running_count = 0;
    const auto concurrency = static_cast<std::size_t>(opts.concurrency);
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        for (auto& c : inbox) ready.push_back(std::move(c));
        inbox.clear();
        if (stopping && ready.empty() && running_count == 0) break;
      }
      // Start whatever may start now, earliest first.
      const auto now = Clock::now();
      double wait_s = 1.0;
      if (!ready.empty() && static_cast<std::size_t>(running_count) < concurrency) {
        std::stable_sort(ready.begin(), ready.end(), [](const auto& a, const auto& b) {
          return a->not_before < b->not_before;
        });
        std::size_t taken = 0;
        for (; taken < ready.size() && static_cast<std::size_t>(running_count) < concurrency;
             ++taken) {
          Call& c = *ready[taken];
          if (c.not_before > now) {
            wait_s = std::min(wait_s, std::chrono::duration<double>(c.not_before - now).count());
            break;
          }
          if (rpm.enabled()) {
            const double w = rpm.wait(1, now);
            if (w > 0) {
              wait_s = std::min(wait_s, w);
              break;
            }
          }
          if (tpm.enabled()) {
            const double w = tpm.wait(c.est_tokens, now);
            if (w > 0) {
              wait_s = std::min(wait_s, w);
              break;
            }
          }
          if (rpm.enabled()) rpm.take(1);
          if (tpm.enabled()) tpm.take(c.est_tokens);
          Transfer* t;
          if (idle.empty()) {
            pool.push_back(std::make_unique<Transfer>());
            t = pool.back().get();
            t->easy = curl_easy_init();
            if (!t->easy) fail("libcurl: curl_easy_init failed");
          } else {
            t = idle.back();
            idle.pop_back();
          }
          t->call = ready[taken];
          start(*t);
          ++running_count;
        }
        ready.erase(ready.begin(), ready.begin() + static_cast<std::ptrdiff_t>(taken));
      } else if (!ready.empty()) {
        wait_s = 1.0;
      }
      int still = 0;
      curl_multi_perform(multi, &still);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
        if (m->msg != CURLMSG_DONE) continue;
        Transfer* t = nullptr;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &t);
        const CURLcode code = m->data.result;
        curl_multi_remove_handle(multi, m->easy_handle);
        curl_slist_free_all(t->headers);
        t->headers = nullptr;
        --running_count;
        finished(*t, code, ready);
        idle.push_back(t);
      }
      if (!ready.empty() && static_cast<std::size_t>(running_count) < concurrency) {
        // Something may be startable right now (a retry with no delay, a freed slot).
        const auto first = std::min_element(
            ready.begin(), ready.end(),
            [](const auto& a, const auto& b) { return a->not_before < b->not_before; });
        const double until =
            std::chrono::duration<double>((*first)->not_before - Clock::now()).count();
        wait_s = std::min(wait_s, std::max(0.0, until));
      }
      const int timeout_ms = static_cast<int>(std::ceil(std::max(0.0, wait_s) * 1000));
      curl_multi_poll(multi, nullptr, 0, timeout_ms, nullptr);
    }
    for (auto& t : pool) curl_easy_cleanup(t->easy);
  }
};

namespace {

json request_body(const Request& r, const BackendOptions& o, bool chat) {
  json b{{"model", o.model}};
  if (chat) {
    json msgs = json::array();
    if (r.is_chat()) {
      for (const auto& m : r.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
    } else {
      msgs.push_back({{"role", "user"}, {"content", r.prompt}});
    }
    b["messages"] = std::move(msgs);
  } else {
    b["prompt"] = r.prompt;
  }
  const Sampling& s = r.sampling;
  if (s.max_tokens > 0) b["max_tokens"] = s.max_tokens;
  b["temperature"] = s.temperature;
  b["top_p"] = s.top_p;
  if (s.n != 1) b["n"] = s.n;
  if (!s.stop.empty()) b["stop"] = s.stop;
  if (s.seed) b["seed"] = *s.seed;
  return b;
}

// Fills `out` from a completions/chat response; returns "" or why the body is unusable.
std::string parse_choices(const json& j, bool chat, int n, Result& out) {
  if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array())
    return "response has no 'choices' array";
  const json& ch = j["choices"];
  if (static_cast<int>(ch.size()) != n)
    return fmt::format("response has {} choices, expected {}", ch.size(), n);
  std::vector<Choice> choices(static_cast<std::size_t>(n));
  std::vector<bool> seen(static_cast<std::size_t>(n), false);
  for (std::size_t k = 0; k < ch.size(); ++k) {
    const json& c = ch[k];
    if (!c.is_object()) return "a choice is not an object";
    std::size_t idx = k;
    if (c.contains("index") && c["index"].is_number_integer()) idx = c["index"].get<std::size_t>();
    if (idx >= choices.size() || seen[idx]) return "choice indices are not 0..n-1";
    seen[idx] = true;
    const json* text = nullptr;
    if (chat) {
      if (!c.contains("message") || !c["message"].is_object()) return "a choice has no 'message'";
      const json& m = c["message"];
      if (m.contains("content")) text = &m["content"];
    } else if (c.contains("text")) {
      text = &c["text"];
    }
    if (text && text->is_string()) {
      choices[idx].text = text->get<std::string>();
    } else if (!(text && text->is_null() && chat)) {
      return chat ? "a choice's 'message.content' is not a string"
                  : "a choice's 'text' is not a string";
    }
    const std::string fr = c.contains("finish_reason") && c["finish_reason"].is_string()
                               ? c["finish_reason"].get<std::string>()
                               : "stop";
    choices[idx].finish_reason = fr == "length" ? "length" : "stop";
  }
  out.choices = std::move(choices);
  if (j.contains("usage") && j["usage"].is_object()) {
    const json& u = j["usage"];
    out.prompt_tokens = u.value("prompt_tokens", 0);
    out.completion_tokens = u.value("completion_tokens", 0);
    if (out.choices.size() == 1 && u.contains("completion_tokens"))
      out.choices[0].completion_tokens = out.completion_tokens;
  }
  return "";
}

}  // namespace

OpenAIBackend::OpenAIBackend(const BackendOptions& opts)
    : impl_(std::make_unique<Impl>(opts, usage_)) {}

OpenAIBackend::~OpenAIBackend() = default;

std::string OpenAIBackend::model_name() const { return impl_->opts.model; }

void OpenAIBackend::generate(const std::vector<Request>& requests,
                             const ResultCallback& on_result) {
  if (requests.empty()) return;
  auto box = std::make_shared<Mailbox<Result>>();
  std::vector<std::shared_ptr<Call>> calls;
  calls.reserve(requests.size());
  const BackendOptions& o = impl_->opts;
  Usage& usage = usage_;
  for (const Request& r : requests) {
    const bool chat = r.is_chat() || o.chat;
    auto c = std::make_shared<Call>();
    c->path = chat ? "/chat/completions" : "/completions";
    const Request* rp = &r;  // `requests` outlives every call: generate() waits for all of them
    c->body = [rp, &o, chat] { return request_body(*rp, o, chat).dump(); };
    std::size_t prompt_bytes = r.prompt.size();
    for (const auto& m : r.messages) prompt_bytes += m.content.size();
    c->est_tokens =
        static_cast<double>(prompt_bytes) / 4.0 +
        static_cast<double>(std::max(r.sampling.max_tokens, 0) * std::max(r.sampling.n, 1));
    const uint64_t id = r.id;
    const int n = std::max(1, r.sampling.n);
    Call* raw = c.get();
    c->accept = [box, id, chat, n, raw, &usage, rp](const json& j) {
      Result res;
      res.id = id;
      std::string why = parse_choices(j, chat, n, res);
      if (!why.empty()) return why;
      res.attempts = raw->attempts;
      usage.requests.fetch_add(1);
      usage.prompt_tokens.fetch_add(static_cast<uint64_t>(std::max(0, res.prompt_tokens)));
      usage.completion_tokens.fetch_add(static_cast<uint64_t>(std::max(0, res.completion_tokens)));
      if (rp->on_delta)
        for (std::size_t k = 0; k < res.choices.size(); ++k)
          rp->on_delta(static_cast<int>(k), res.choices[k].text);
      box->put(std::move(res));
      return std::string();
    };
    c->give_up = [box, id, raw, &usage](ErrorKind kind, const std::string& reason) {
      Result res;
      res.id = id;
      res.error_kind = kind;
      res.error = reason;
      res.attempts = raw->attempts;
      usage.requests.fetch_add(1);
      usage.failed.fetch_add(1);
      box->put(std::move(res));
    };
    calls.push_back(std::move(c));
  }
  impl_->submit(std::move(calls));
  box->deliver(requests.size(), on_result);
}

std::vector<std::vector<float>> OpenAIBackend::embed(const std::vector<std::string>& texts) {
  constexpr std::size_t kChunk = 128;
  std::vector<std::vector<float>> out(texts.size());
  struct Done {
    std::size_t chunk;
    std::string error;
  };
  auto box = std::make_shared<Mailbox<Done>>();
  std::vector<std::shared_ptr<Call>> calls;
  const BackendOptions& o = impl_->opts;
  Usage& usage = usage_;
  for (std::size_t start = 0; start < texts.size(); start += kChunk) {
    const std::size_t end = std::min(texts.size(), start + kChunk);
    auto c = std::make_shared<Call>();
    c->path = "/embeddings";
    c->body = [&texts, &o, start, end] {
      json b{{"model", o.model}, {"input", json::array()}};
      for (std::size_t i = start; i < end; ++i) b["input"].push_back(texts[i]);
      return b.dump();
    };
    for (std::size_t i = start; i < end; ++i)
      c->est_tokens += static_cast<double>(texts[i].size()) / 4.0;
    c->accept = [box, &out, start, end, &usage](const json& j) -> std::string {
      if (!j.is_object() || !j.contains("data") || !j["data"].is_array())
        return "response has no 'data' array";
      const json& d = j["data"];
      if (d.size() != end - start)
        return fmt::format("response has {} embeddings, expected {}", d.size(), end - start);
      std::vector<std::vector<float>> got(end - start);
      for (std::size_t k = 0; k < d.size(); ++k) {
        const json& e = d[k];
        const std::size_t idx = e.contains("index") && e["index"].is_number_integer()
                                    ? e["index"].get<std::size_t>()
                                    : k;
        if (idx >= got.size() || !e.contains("embedding") || !e["embedding"].is_array())
          return "an embedding entry is malformed";
        try {
          got[idx] = e["embedding"].get<std::vector<float>>();
        } catch (const json::exception&) {
          return "an embedding is not an array of numbers";
        }
      }
      for (std::size_t k = 0; k < got.size(); ++k) out[start + k] = std::move(got[k]);
      if (j.contains("usage") && j["usage"].is_object())
        usage.prompt_tokens.fetch_add(j["usage"].value("prompt_tokens", 0));
      box->put({start, ""});
      return "";
    };
    c->give_up = [box, start](ErrorKind, const std::string& reason) { box->put({start, reason}); };
    calls.push_back(std::move(c));
  }
  const std::size_t n_calls = calls.size();
  impl_->submit(std::move(calls));
  std::string first_error;
  for (std::size_t i = 0; i < n_calls; ++i) {
    Done d = box->take();
    if (!d.error.empty() && first_error.empty())
      first_error = fmt::format("embeddings for texts {}..: {}", d.chunk, d.error);
  }
  if (!first_error.empty()) fail("openai backend: {}", first_error);
  return out;
}

}  // namespace metamath::llm
