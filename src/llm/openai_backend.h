#pragma once
// The openai backend: any OpenAI-compatible server (OpenAI, vLLM, llama.cpp server, Ollama,
// `metamath serve`) over HTTP/1.1 keep-alive with libcurl's multi interface on one worker thread.
//
// - /v1/completions for raw prompts (or /v1/chat/completions with opts.chat), /v1/chat/completions
//   for chat messages, /v1/embeddings for embed().
// - Up to opts.concurrency requests in flight across every generate() call of this backend.
// - Retries on 429, 408, 5xx, timeouts, connection failures/resets and unparsable or truncated
//   JSON, with exponential backoff (base * 2^(attempt-1), capped) and jitter (a uniform draw in
//   [delay/2, delay]), waiting at least a 429/503's Retry-After; after opts.max_attempts the
//   request fails with its last reason. 400/404/413/422 fail at once (BadRequest), 401/403 too
//   (Fatal).
// - Optional requests-per-minute and tokens-per-minute limits (token buckets; tokens are estimated
//   as prompt bytes / 4 + max_tokens * n before sending).
// - The API key (opts.api_key, else $OPENAI_API_KEY) is only ever put in the Authorization header;
//   it never appears in logs or error messages.
// Results are handed to the caller's thread, which runs on_result one at a time.
#include <memory>

#include "llm/backend.h"

namespace metamath::llm {

class OpenAIBackend : public Backend {
 public:
  explicit OpenAIBackend(const BackendOptions& opts);
  ~OpenAIBackend() override;
  void generate(const std::vector<Request>& requests, const ResultCallback& on_result) override;
  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts) override;
  std::string model_name() const override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace metamath::llm
