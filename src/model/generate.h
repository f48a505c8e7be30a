#pragma once
// Generation engine: many prompts of different lengths, continuous batching over a slot KV cache
// (a sequence that finishes frees its slot and a waiting one is prefilled into it before the next
// decode step), greedy or temperature/top-p sampling with a per-sample seed, n samples per prompt,
// stop strings matched on decoded text, EOS, and max new tokens. Results are delivered by callback
// as each sample finishes. greedy_generate is the plain reference loop (a fixed batch, argmax,
// stop ids) that tests and benches hold the engine against.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "model/sampling.h"

namespace metamath::model {

class Model;
class Tokenizer;

struct GenRequest {
  std::string prompt;                    // text (encoded with the tokenizer) ...
  std::vector<std::int32_t> prompt_ids;  // ... or ids (used when non-empty)
  int max_new_tokens = 256;
  SamplingParams sampling;  // seed of sample i is sampling.seed + i
  int n = 1;
  std::vector<std::string> stop;  // stop strings (need a tokenizer)
  bool stop_at_eos = true;
  bool add_bos = true;  // when encoding text: prepend BOS if the tokenizer has one
};

struct GenResult {
  std::size_t request = 0;  // index into the request list
  int sample = 0;           // 0..n-1
  std::string text;         // completion text (without the stop string), empty without tokenizer
  std::vector<std::int32_t> ids;  // completion ids (the EOS token, when hit, is not included)
  std::string finish_reason;      // "stop" (EOS or stop string), "length", or "error"
  std::string stop;               // the stop string that matched, when any
  int prompt_tokens = 0, completion_tokens = 0;
  std::string error;  // set when finish_reason == "error" (e.g. prompt too long)
};

struct GeneratorOptions {
  int max_batch = 32;   // KV-cache slots = sequences decoded together
  int max_len = 2048;   // prompt + completion tokens per sequence
  int max_prefill = 8;  // new sequences prefilled together in one forward pass
};

// Callbacks of one request's samples: on_result once per sample when it finishes; on_delta
// (optional) with each new piece of a sample's text as soon as it is final (never inside a UTF-8
// character, never part of a stop string).
struct SeqCallbacks {
  std::function<void(GenResult)> on_result;
  std::function<void(int sample, std::string_view delta)> on_delta;
};

class BatchCore;
struct Seq;

class Generator {
 public:
  // tokenizer may be null: then requests must give prompt_ids and no stop strings.
  Generator(const Model& model, const Tokenizer* tokenizer, GeneratorOptions opts = {});
  // Runs every request to completion; on_result is called once per (request, sample) as soon as
  // it finishes, from the calling thread. on_step (optional) is called after each decode step with
  // the number of samples finished so far and the tokens generated so far.
  void run(const std::vector<GenRequest>& requests, const std::function<void(GenResult)>& on_result,
           const std::function<void(std::size_t done, std::size_t tokens)>& on_step = {});

 private:
  const Model& model_;
  const Tokenizer* tok_;
  GeneratorOptions opts_;
};

// A long-lived continuous-batching engine for requests that arrive over time from many threads
// (the local LLM backend and the server): submit() queues a request; the engine's thread admits it
// into the running batch as soon as a KV-cache slot is free. The cache holds max_batch slots of
// max_len tokens, allocated up front. Callbacks run on the engine's thread, one at a time; a
// failing forward pass ends every queued and running sequence with finish_reason "error".
class BatchEngine {
 public:
  BatchEngine(const Model& model, const Tokenizer* tokenizer, GeneratorOptions opts = {});
  ~BatchEngine();  // shutdown()
  BatchEngine(const BatchEngine&) = delete;
  BatchEngine& operator=(const BatchEngine&) = delete;

  // Thread-safe. GenResult::request is 0 (the caller knows which request it submitted).
  void submit(const GenRequest& request, std::function<void(GenResult)> on_result,
              std::function<void(int sample, std::string_view delta)> on_delta = {});
  // Stops taking requests, finishes every queued and running one, then joins the thread.
  void shutdown();
  // Tokens generated so far.
  std::size_t tokens() const;

 private:
  struct Pending {
    GenRequest request;
    std::shared_ptr<const SeqCallbacks> cb;
  };
  void loop();
  GeneratorOptions opts_;
  std::unique_ptr<BatchCore> core_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> inbox_;
  bool stopping_ = false;
  std::atomic<std::size_t> tokens_{0};
  std::thread thread_;
};

struct GreedyOptions {
  int64_t max_new_tokens = 64;
  bool stop_at_eos = false;  // stop a sequence at any of config().eos_token_ids (kept in output)
  std::vector<int64_t> stop_ids;  // extra stop ids
};

// Greedy decoding of a batch of prompts (token ids) with a KV cache: prompts are prefilled
// together (left padding), then decoded one token per step; finished sequences leave the batch.
// Returns the generated ids per prompt (without the prompt).
std::vector<std::vector<int64_t>> greedy_generate(const Model& model,
                                                  const std::vector<std::vector<int64_t>>& prompts,
                                                  const GreedyOptions& opts = {});

}  // namespace metamath::model

#include <filesystem>

namespace metamath::model {

// `metamath generate`: load a model folder, complete prompts given inline or as a JSONL file, and
// print the completions or write them as JSONL (atomically), with a progress bar.
struct GenerateJob {
  std::filesystem::path model;
  std::string dtype = "f32", device = "cpu";
  std::vector<std::string> prompts;     // inline prompts
  std::filesystem::path prompts_file;   // or a JSONL file ...
  std::string prompt_field = "prompt";  // ... with the prompt in this field (an "id" is kept)
  std::filesystem::path out;            // JSONL output; empty: results only returned
  GenRequest params;                    // sampling, n, stop, max_new_tokens (prompt ignored)
  GeneratorOptions engine;
  bool progress = true;
};
// Returns one row per (prompt, sample) in input order: id, sample, prompt, completion,
// finish_reason, stop, prompt_tokens, completion_tokens (and error when a prompt failed).
std::vector<nlohmann::json> run_generate_job(const GenerateJob& job);

}  // namespace metamath::model
