#pragma once
// The LLM backend contract (DESIGN.md): everything that generates — bootstrap, eval, analysis,
// serve — goes through a Backend.
//
// - A Request is a raw prompt or chat messages, with sampling parameters (max_tokens,
//   temperature, top_p, n, stop, seed).
// - generate() takes many requests at once and calls on_result once per request as soon as that
//   request is done, so a job store can record it at once and a kill loses only what was in
//   flight. Callbacks are never run concurrently with each other within one generate() call.
//   generate() returns when every request has had its callback.
// - generate() may be called from several threads at once (the server does); the backend owns
//   concurrency: parallel HTTP connections (openai) or continuous batching of every request of
//   every caller (local).
// - Each Result carries the n choices (text + finish reason) and token counts, or an error with a
//   reason after the backend gave up — never a silent empty string.
// - embed(texts) returns one vector per text (OpenAI /v1/embeddings, or mean-pooled last hidden
//   states locally).
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace metamath::llm {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct Sampling {
  int max_tokens = 512;      // <= 0: as many as the context allows
  double temperature = 0.0;  // 0 = greedy
  double top_p = 1.0;
  int n = 1;
  std::vector<std::string> stop;
  std::optional<uint64_t> seed;  // sample i of a request uses seed + i (local backend)
};

struct Request {
  uint64_t id = 0;                    // the caller's id, echoed in the Result
  std::string prompt;                 // a raw completion prompt ...
  std::vector<ChatMessage> messages;  // ... or chat messages (used when non-empty)
  Sampling sampling;
  // Optional streaming: called with (choice index, text delta) as text is produced. The local
  // backend streams token by token; the openai backend calls it once per choice with the whole
  // text. Called from a backend thread; must be cheap and thread-safe.
  std::function<void(int, const std::string&)> on_delta;

  bool is_chat() const { return !messages.empty(); }
};

struct Choice {
  std::string text;
  std::string finish_reason;  // "stop" or "length"
  // This choice's completion tokens when the backend knows them (local: always; openai: when
  // n = 1, from the usage block); -1 otherwise (Result::completion_tokens has the request's total).
  int completion_tokens = -1;
};

enum class ErrorKind {
  None,
  BadRequest,  // the request itself is invalid (prompt too long, bad parameter): do not retry
  Transient,   // gave up after retries on 429/5xx/timeouts/resets/bad JSON
  Fatal,       // auth failure, unknown model, backend shut down
};
const char* to_string(ErrorKind k);

struct Result {
  uint64_t id = 0;
  std::vector<Choice> choices;  // n entries on success
  int prompt_tokens = 0, completion_tokens = 0;
  ErrorKind error_kind = ErrorKind::None;
  std::string error;  // the reason, when error_kind != None
  int attempts = 1;   // HTTP attempts made (1 for local)

  bool ok() const { return error_kind == ErrorKind::None; }
};

using ResultCallback = std::function<void(Result)>;

// Running totals, safe to read while generate() runs (e.g. for a progress bar).
struct Usage {
  std::atomic<uint64_t> requests{0}, failed{0}, retries{0};
  std::atomic<uint64_t> prompt_tokens{0}, completion_tokens{0};
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual void generate(const std::vector<Request>& requests, const ResultCallback& on_result) = 0;
  virtual std::vector<std::vector<float>> embed(const std::vector<std::string>& texts) = 0;
  // The model name reported to clients (openai: --model; local: the folder's name).
  virtual std::string model_name() const = 0;
  // Longest prompt + completion in tokens, when known (0 = unknown).
  virtual int context_length() const { return 0; }
  const Usage& usage() const { return usage_; }
  // Cost in dollars of the tokens so far under the price table (0 without one).
  double cost() const;

  // Dollars per million tokens (the --price flag: "PROMPT,COMPLETION").
  double price_prompt_per_m = 0, price_completion_per_m = 0;

 protected:
  Usage usage_;
};

// Everything needed to make either backend (shared CLI flags: src/cli/backend_flags.h).
struct BackendOptions {
  std::string kind = "local";  // "local" or "openai"

  // openai
  std::string base_url = "http://127.0.0.1:8000/v1";
  std::string model;    // model name sent to the server (local: a model folder)
  std::string api_key;  // default: $OPENAI_API_KEY; never printed or logged
  int concurrency = 32;
  double timeout_s = 600;  // per HTTP attempt
  int max_attempts = 6;    // then the request fails with its last reason
  double backoff_base_s = 1.0, backoff_max_s = 60.0;
  double requests_per_minute = 0, tokens_per_minute = 0;  // 0 = unlimited
  bool chat = false;  // send raw prompts to /v1/chat/completions as one user message

  // local
  std::string dtype = "f32", device = "cpu";
  int max_batch = 32;  // sequences decoded together
  int max_len = 4096;  // prompt + completion tokens per sequence

  std::string price;  // "PROMPT,COMPLETION" dollars per million tokens, optional
};

std::unique_ptr<Backend> make_backend(const BackendOptions& opts);

// "12.3k tok, $0.42, 3 retries, 1 failed": running totals for a progress bar.
std::string usage_summary(const Backend& b);

// Request/Result <-> OpenAI JSON (shared by the openai backend and the server).
// Parses a /v1/completions or /v1/chat/completions body into a Request; throws metamath::Error
// with a message naming the field on bad input.
Request request_from_openai_json(const nlohmann::json& body, bool chat);

}  // namespace metamath::llm
