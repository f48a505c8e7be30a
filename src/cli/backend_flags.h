#pragma once
// The backend flags shared by every subcommand that generates (bootstrap, eval, serve, ...).
#include <CLI/CLI.hpp>
#include <cstdlib>

#include "llm/backend.h"

namespace metamath::cli {

// with_api_key=false leaves --api-key to the caller (serve uses it for its own clients).
inline void add_backend_flags(CLI::App* cmd, llm::BackendOptions& o, bool with_api_key = true) {
  cmd->add_option("--backend", o.kind,
                  "local (in-process model) or openai (any OpenAI-compatible server)")
      ->check(CLI::IsMember({"local", "openai"}))
      ->capture_default_str();
  cmd->add_option("--model", o.model,
                  "local: a Hugging Face model folder; openai: the model name sent to the server");
  cmd->add_option("--base-url", o.base_url,
                  "openai: server base URL, e.g. https://api.openai.com/v1")
      ->capture_default_str();
  if (with_api_key)
    cmd->add_option("--api-key", o.api_key,
                    "openai: API key (default: $OPENAI_API_KEY); never logged");
  cmd->add_option("--concurrency", o.concurrency, "openai: parallel HTTP requests")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--timeout", o.timeout_s, "openai: seconds per HTTP attempt")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option(
         "--max-attempts", o.max_attempts,
         "openai: attempts per request (retries on 429/5xx/timeouts/resets) before it fails")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd->add_option("--rpm", o.requests_per_minute, "openai: requests-per-minute limit (0 = none)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--tpm", o.tokens_per_minute, "openai: tokens-per-minute limit (0 = none)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--chat", o.chat, "openai: send prompts to /v1/chat/completions as a user message");
  cmd->add_option("--price", o.price,
                  "dollars per million tokens as PROMPT,COMPLETION; shows the running cost");
  cmd->add_option(
         "--dtype", o.dtype,
         "local: f32, bf16, f16, q8 (int8 weights) or q8-dot (int8 weights and activations)")
      ->capture_default_str();
  cmd->add_option("--device", o.device, "local: cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--max-batch", o.max_batch, "local: sequences decoded together")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--max-len", o.max_len, "local: prompt + completion tokens per sequence")
      ->check(CLI::Range(16, 1 << 20))
      ->capture_default_str();
}

}  // namespace metamath::cli
