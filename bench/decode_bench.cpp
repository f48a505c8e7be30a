// decode_bench: decoding speed of the model engine against a PyTorch reference.
//
// A random LLaMA model (default: hidden 768, 12 layers, 12 heads, intermediate 2048, vocab 32000,
// 134M parameters, untied lm_head) is written once as an HF-format folder (safetensors, f32). For
// each dtype (f32, bf16) and batch size (1, 32) both sides greedily generate --new-tokens tokens
// (no EOS stop) after the same random --prompt-len-token prompts, with the same thread count:
//
//   ours       Model + KVCache: one prefill pass over the batch, then one token per step
//              (the loop of model::greedy_generate without its stop checks), timed in two phases;
//   generator  (--generator) the continuous-batching Generator of model/generate.h, total only;
//   reference  bench/reference/decode_reference.py under /usr/bin/python3: the pure-PyTorch model
//              of tests/reference/llama_reference.py driven by a Hugging Face-style greedy loop
//              (prefill, then torch.cat onto per-layer K/V caches every step);
//   llama.cpp  (--llama-cpp) bench/reference/decode_llama_cpp.mjs: llama.cpp through npm's
//              node-llama-cpp (tests/model/llama_cpp) on the same weights exported by model/gguf.h
//              (`metamath export --format gguf`, the file cached beside the model as
//              model.<dtype>.gguf), B sequences of one context decoded together, F32 KV cache.
//              Its f32 and bf16 rows read the same weight bits as ours; its q8 row runs the
//              q8_0 export (blocks of 32 with an f16 scale; ours: int8 rows with one f32 scale,
//              q8 with f32 activations, q8-dot with activations in int8 blocks of 32 as q8_0's),
//              and f16 runs on llama.cpp alone (ours has no such weights).
//
// Every measurement runs in its own child process (this program re-runs itself with --worker), so
// each side's peak RSS (getrusage) is its own. Rounds are interleaved (--repeats rounds, the side
// that goes first alternates) because the machine may be shared; the best and the median of the
// rounds are reported. Rates:
//   decode tok/s  batch * (new_tokens - 1) / time of the steps after the prefill pass;
//   total tok/s   batch * new_tokens / (prefill + decode), cache allocation included.
// The batch-1 bandwidth roofline: bytes read per token (every weight but the embedding table, plus
// one embedding row, plus the KV cache a step reads on average) times the decode rate, against a
// measured multi-threaded memcpy rate (bytes copied per second) and a measured read rate (bytes
// summed per second, the better of one stream and 16 prefetched streams per thread), and the tok/s
// each would allow. A shared machine's speed drifts within minutes (every side, and the probe, by
// 10-20%), so the read rate is also measured in each round just before its batch-1 runs, and the
// share of it is reported per round (best and median), next to the one measured at the end.
//
//   decode_bench [--model DIR] [--fresh] [--threads N] [--batches 1,32] [--dtypes f32,bf16]
//                [--prompt-len N] [--new-tokens N] [--bf16-new-tokens N] [--bf16-prompt-len N]
//                [--repeats N] [--generator] [--no-reference] [--python EXE]
//                [--reference SCRIPT] [--seed N] [--short] [--profile FILE]
//                [--llama-cpp] [--llama-cpp-threads N] [--tokenizer DIR] [--node EXE]
//
// Each round of ours also prints the host time per decode step (model/decode.h
// fused_decode_times): inside the fused step around its parallel region, and all of a step
// outside that region (the loop's argmax and bookkeeping included).
//
// --profile FILE writes a chrome trace (libtorch's profiler) of our last 4 decode steps of each
// batch size (FILE gets the batch size inserted before its extension); run it with
// --no-reference --repeats 1.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/memory.h"
#include "model/config.h"
#include "model/decode.h"
#include "model/generate.h"
#include "model/gguf.h"
#include "model/model.h"
#include "model/sampling.h"

namespace fs = std::filesystem;
namespace mm = metamath::model;
using metamath::fail;
using metamath::json;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Options {
  fs::path model;
  bool fresh = false;
  int threads = 0;
  std::vector<int64_t> batches = {1, 32};
  std::vector<std::string> dtypes = {"f32", "bf16"};
  int64_t prompt_len = 128, new_tokens = 128;
  int64_t bf16_prompt_len = 0, bf16_new_tokens = 0;  // 0: same as f32
  int repeats = 3;
  bool generator = false;
  bool reference = true;
  std::string python = "/usr/bin/python3";
  fs::path reference_script;
  bool llama_cpp = false;
  int llama_cpp_threads = 0;  // 0: --threads
  std::string node = "node";
  fs::path llama_cpp_script, tokenizer;
  uint64_t seed = 20230919;
  bool short_mode = false;
  // Worker mode (internal): one measurement, one JSON line on stdout.
  bool worker = false;
  std::string engine = "loop";  // loop | generator
  std::string dtype = "f32";
  fs::path prompts;
  std::string profile;  // --profile FILE (worker: the exact trace path)
};

[[noreturn]] void usage(const std::string& msg, int code = 2) {
  (code ? std::cerr : std::cout)
      << (msg.empty() ? "" : "decode_bench: " + msg + "\n")
      << "usage: decode_bench [flags]\n"
         "  --model DIR          model folder; written there (random weights) when it has no\n"
         "                       config.json (default: $TMPDIR/metamath_decode_bench[_short])\n"
         "  --fresh              rewrite the model folder even when it exists\n"
         "  --threads N          intra-op threads on both sides (default: all cores)\n"
         "  --batches LIST       batch sizes, comma separated (default 1,32)\n"
         "  --dtypes LIST        f32, bf16, q8, q8-dot (default f32,bf16; q8: ours int8\n"
         "                       weights quantized at load, f32 activations; q8-dot: int8\n"
         "                       activations too, integer dot products; llama.cpp q8_0 for\n"
         "                       both, no reference side);\n"
         "                       f16: llama.cpp only (the 16-bit type it runs fastest)\n"
         "  --prompt-len N       prompt tokens (default 128)\n"
         "  --new-tokens N       generated tokens per sequence, no EOS stop (default 128)\n"
         "  --bf16-prompt-len N  prompt tokens for bf16 (default: --prompt-len)\n"
         "  --bf16-new-tokens N  generated tokens for bf16 (default: --new-tokens)\n"
         "  --repeats N          interleaved rounds per configuration (default 3)\n"
         "  --generator          also time the continuous-batching Generator (total tok/s)\n"
         "  --no-reference       only our engine\n"
         "  --python EXE         interpreter for the reference (default /usr/bin/python3)\n"
         "  --reference SCRIPT   default bench/reference/decode_reference.py\n"
         "  --llama-cpp          also time llama.cpp (node-llama-cpp of tests/model/llama_cpp) on\n"
         "                       the model exported as GGUF\n"
         "  --tokenizer DIR      tokenizer the GGUF export needs (32000 ids; default\n"
         "                       ../shared/tokenizers/llama2)\n"
         "  --node EXE           node for llama.cpp (default node)\n"
         "  --llama-cpp-threads N  llama.cpp's threads (default: --threads; ggml's threads\n"
         "                       spin at barriers, which a loaded machine punishes)\n"
         "  --seed N             prompt seed (default 20230919)\n"
         "  --short              smoke run: tiny model, batches 1,4, 16+8 tokens, 1 round\n"
         "  --profile FILE       chrome trace of our last 4 decode steps, one file per dtype and\n"
         "                       batch (FILE_<dtype>_b<batch>.json); use with --no-reference\n";
  std::exit(code);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  o.reference_script = fs::path(METAMATH_SOURCE_DIR) / "bench/reference/decode_reference.py";
  o.llama_cpp_script = fs::path(METAMATH_SOURCE_DIR) / "bench/reference/decode_llama_cpp.mjs";
  o.tokenizer = fs::path(METAMATH_SOURCE_DIR) / "../shared/tokenizers/llama2";
  bool batches_set = false, tokens_set = false, prompt_set = false, repeats_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      auto eq = a.find('=');
      if (eq != std::string::npos) return a.substr(eq + 1);
      if (i + 1 >= argc) usage("missing value for " + a);
      return argv[++i];
    };
    const std::string name = a.substr(0, a.find('='));
    try {
      if (name == "--model") {
        o.model = value();
      } else if (name == "--fresh") {
        o.fresh = true;
      } else if (name == "--threads") {
        o.threads = std::stoi(value());
      } else if (name == "--batches") {
        o.batches.clear();
        for (const auto& b : split_list(value())) o.batches.push_back(std::stoll(b));
        batches_set = true;
      } else if (name == "--dtypes") {
        o.dtypes = split_list(value());
      } else if (name == "--prompt-len") {
        o.prompt_len = std::stoll(value());
        prompt_set = true;
      } else if (name == "--new-tokens") {
        o.new_tokens = std::stoll(value());
        tokens_set = true;
      } else if (name == "--bf16-prompt-len") {
        o.bf16_prompt_len = std::stoll(value());
      } else if (name == "--bf16-new-tokens") {
        o.bf16_new_tokens = std::stoll(value());
      } else if (name == "--repeats") {
        o.repeats = std::max(1, std::stoi(value()));
        repeats_set = true;
      } else if (name == "--generator") {
        o.generator = true;
      } else if (name == "--no-reference") {
        o.reference = false;
      } else if (name == "--python") {
        o.python = value();
      } else if (name == "--reference") {
        o.reference_script = value();
      } else if (name == "--llama-cpp") {
        o.llama_cpp = true;
      } else if (name == "--tokenizer") {
        o.tokenizer = value();
      } else if (name == "--llama-cpp-threads") {
        o.llama_cpp_threads = std::stoi(value());
      } else if (name == "--node") {
        o.node = value();
      } else if (name == "--seed") {
        o.seed = std::stoull(value());
      } else if (name == "--short") {
        o.short_mode = true;
      } else if (name == "--worker") {
        o.worker = true;
      } else if (name == "--engine") {
        o.engine = value();
      } else if (name == "--dtype") {
        o.dtype = value();
      } else if (name == "--prompts") {
        o.prompts = value();
      } else if (name == "--profile") {
        o.profile = value();
      } else if (name == "--help" || name == "-h") {
        usage("", 0);
      } else {
        usage("unknown flag " + a);
      }
    } catch (const std::logic_error&) {
      usage("bad number in " + a);
    }
  }
  if (o.short_mode) {
    if (!batches_set) o.batches = {1, 4};
    if (!prompt_set) o.prompt_len = 16;
    if (!tokens_set) o.new_tokens = 8;
    if (!repeats_set) o.repeats = 1;
  }
  if (o.threads <= 0)
    o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (o.llama_cpp_threads <= 0) o.llama_cpp_threads = o.threads;
  if (o.bf16_prompt_len <= 0) o.bf16_prompt_len = o.prompt_len;
  if (o.bf16_new_tokens <= 0) o.bf16_new_tokens = o.new_tokens;
  if (o.prompt_len < 1 || o.new_tokens < 1) usage("--prompt-len and --new-tokens must be >= 1");
  for (auto b : o.batches)
    if (b < 1) usage("batch sizes must be >= 1");
  for (const auto& d : o.dtypes)
    if (d != "f32" && d != "bf16" && d != "q8" && d != "q8-dot" && (d != "f16" || !o.llama_cpp))
      usage("--dtypes takes f32, bf16, q8, q8-dot (and f16 with --llama-cpp), got " + d);
  if (o.model.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    o.model = fs::path(tmp && *tmp ? tmp : "/tmp") /
              (o.short_mode ? "metamath_decode_bench_short" : "metamath_decode_bench");
  }
  return o;
}

int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux: KiB
}

// ---------------------------------------------------------------------------------------------
// The model

mm::ModelConfig bench_config(bool short_mode) {
  mm::ModelConfig c;
  c.arch = mm::Arch::Llama;
  if (short_mode) {
    c.vocab_size = 1000;
    c.hidden_size = 128;
    c.intermediate_size = 344;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
  } else {
    c.vocab_size = 32000;
    c.hidden_size = 768;
    c.intermediate_size = 2048;
    c.num_hidden_layers = 12;
    c.num_attention_heads = 12;
  }
  c.num_key_value_heads = c.num_attention_heads;
  c.head_dim = c.hidden_size / c.num_attention_heads;
  c.max_position_embeddings = 2048;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  c.validate("decode_bench config");
  return c;
}

mm::ModelConfig ensure_model(const Options& o) {
  const bool exists = fs::exists(o.model / "config.json");
  if (exists && !o.fresh) return mm::load_config(o.model);
  mm::ModelConfig c = bench_config(o.short_mode);
  std::cout << "writing a random model (" << c.num_parameters() / 1e6 << "M parameters) to "
            << o.model.string() << " ..." << std::flush;
  const auto t0 = Clock::now();
  {
    c10::InferenceMode guard;
    mm::Model m = mm::Model::init_random(c, o.seed, at::kFloat);
    m.save(o.model);
  }
  std::cout << " " << seconds_since(t0) << " s\n";
  return c;
}

// The bench model as GGUF for llama.cpp, cached beside it as model.<dtype>.gguf and exported again
// when the weights are newer. The export needs the tokenizer (copied in from --tokenizer).
fs::path ensure_gguf(const Options& o, const std::string& dtype) {
  const fs::path out = o.model / ("model." + dtype + ".gguf");
  const fs::path weights = o.model / "model.safetensors";
  if (fs::exists(out) && fs::exists(weights) &&
      fs::last_write_time(out) >= fs::last_write_time(weights))
    return out;
  if (!fs::exists(o.model / "tokenizer.model") && !fs::exists(o.model / "tokenizer.json")) {
    if (!fs::exists(o.tokenizer / "tokenizer.model"))
      fail("--llama-cpp: {} has no tokenizer.model for the GGUF export (--tokenizer DIR)",
           o.tokenizer.string());
    fs::copy_file(o.tokenizer / "tokenizer.model", o.model / "tokenizer.model");
  }
  std::cout << "exporting " << out.string() << " ..." << std::flush;
  const auto t0 = Clock::now();
  mm::export_gguf({o.model, out, dtype, "decode_bench"});
  std::cout << " " << seconds_since(t0) << " s\n";
  return out;
}

// Bytes per weight of a dtype as a side stores it: our q8 is one byte (its per-row scales add
// under 0.2%), llama.cpp's q8_0 34 bytes per 32 weights.
double bytes_per_weight(const std::string& dtype, const std::string& side) {
  if (dtype == "f32") return 4;
  if (dtype == "q8" || dtype == "q8-dot") return side == "llama.cpp" ? 34.0 / 32 : 1;
  return 2;
}

// The GGUF type llama.cpp runs for a --dtypes entry: q8_0 for our q8.
std::string gguf_dtype(const std::string& dtype) {
  return dtype == "q8" || dtype == "q8-dot" ? "q8_0" : dtype;
}

// Bytes of weights read to decode one token at batch 1: every parameter except the embedding
// table (one row of it is read), with the lm_head counted (it is the table when tied).
int64_t weight_bytes_per_token(const mm::ModelConfig& c, double elem) {
  int64_t n = c.num_parameters();
  if (!c.tie_word_embeddings) n -= c.vocab_size * c.hidden_size;
  return static_cast<int64_t>(static_cast<double>(n + c.hidden_size) * elem);
}

// Bytes of KV cache one batch-1 decode step reads, on average over the timed steps (step s of
// new_tokens - 1 attends to prompt_len + s keys): keys and values of every layer, in the cache's
// element type (ours and the reference: the model dtype, f32 for q8; llama.cpp: F32, as
// decode_llama_cpp.mjs asks).
int64_t kv_bytes_per_token(const mm::ModelConfig& c, const std::string& dtype,
                           const std::string& side, int64_t prompt_len, int64_t new_tokens) {
  const double elem = dtype == "bf16" && side != "llama.cpp" ? 2 : 4;
  const double keys = static_cast<double>(prompt_len) + static_cast<double>(new_tokens) / 2.0;
  return static_cast<int64_t>(2.0 * static_cast<double>(c.num_hidden_layers) *
                              static_cast<double>(c.num_key_value_heads * c.head_dim) * elem *
                              keys);
}

std::vector<std::vector<int64_t>> make_prompts(int64_t batch, int64_t len, int64_t vocab,
                                               uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int64_t>> out(batch, std::vector<int64_t>(len));
  // Ids >= 3 keep clear of the usual special tokens; uniform by rejection-free modulo (the bias is
  // irrelevant here).
  for (auto& p : out)
    for (auto& t : p) t = 3 + static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab - 3));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Worker: one measurement in this process.

struct Timing {
  double prefill_s = 0, decode_s = 0;
  std::vector<std::vector<int64_t>> generated;
};

// Greedy generation through Model + KVCache: prefill all prompts (equal length, no padding
// needed, but the mask is passed as a generation engine would), then one token per step.
Timing loop_generate(const mm::Model& m, const std::vector<std::vector<int64_t>>& prompts,
                     int64_t new_tokens, const std::string& profile = {}) {
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t T = 0;
  for (const auto& p : prompts) T = std::max<int64_t>(T, static_cast<int64_t>(p.size()));
  at::Tensor ids = at::zeros({B, T}, at::kLong), mask = at::zeros({B, T}, at::kLong);
  {
    auto id = ids.accessor<int64_t, 2>();
    auto mk = mask.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = static_cast<int64_t>(prompts[b].size()), off = T - n;
      for (int64_t t = 0; t < n; ++t) {
        id[b][off + t] = prompts[b][t];
        mk[b][off + t] = 1;
      }
    }
  }
  Timing r;
  r.generated.assign(B, {});
  const auto t0 = Clock::now();
  mm::KVCache cache = m.make_cache(B, T + new_tokens);
  mm::ForwardInput in;
  in.input_ids = ids;
  in.attention_mask = mask;
  std::vector<int64_t> next = mm::greedy_tokens(m.forward(in, &cache, mm::LogitsMode::Last));
  auto take = [&](const std::vector<int64_t>& nx) {
    for (int64_t b = 0; b < B; ++b) r.generated[b].push_back(nx[b]);
  };
  take(next);
  r.prefill_s = seconds_since(t0);
  const auto t1 = Clock::now();
  mm::ForwardInput step;
  step.input_ids = at::empty({B, 1}, at::kLong);  // rewritten in place each step
  std::optional<torch::autograd::profiler::RecordProfile> prof;
  for (int64_t s = 1; s < new_tokens; ++s) {
    if (!profile.empty() && s == std::max<int64_t>(1, new_tokens - 4)) prof.emplace(profile);
    std::copy(next.begin(), next.end(), step.input_ids.data_ptr<int64_t>());
    next = mm::greedy_tokens(m.forward(step, &cache, mm::LogitsMode::Last));
    take(next);
  }
  r.decode_s = seconds_since(t1);
  prof.reset();
  return r;
}

// The continuous-batching Generator on the same prompts (all admitted in one prefill).
Timing generator_generate(const mm::Model& m, const std::vector<std::vector<int64_t>>& prompts,
                          int64_t new_tokens) {
  mm::GeneratorOptions go;
  go.max_batch = static_cast<int>(prompts.size());
  go.max_prefill = static_cast<int>(prompts.size());
  int64_t T = 0;
  for (const auto& p : prompts) T = std::max<int64_t>(T, static_cast<int64_t>(p.size()));
  go.max_len = static_cast<int>(T + new_tokens + 1);
  std::vector<mm::GenRequest> reqs;
  for (const auto& p : prompts) {
    mm::GenRequest q;
    q.prompt_ids.assign(p.begin(), p.end());
    q.max_new_tokens = static_cast<int>(new_tokens);
    q.stop_at_eos = false;
    reqs.push_back(std::move(q));
  }
  Timing r;
  r.generated.assign(prompts.size(), {});
  const auto t0 = Clock::now();
  mm::Generator gen(m, nullptr, go);
  gen.run(reqs, [&](mm::GenResult res) {
    r.generated[res.request].assign(res.ids.begin(), res.ids.end());
  });
  r.decode_s = seconds_since(t0);  // total; no phase split
  return r;
}

int run_worker(const Options& o) {
  metamath::keep_freed_memory();  // as the metamath binary does at startup (core/memory.h)
  at::set_num_threads(o.threads);
  c10::InferenceMode guard;
  json pj = json::parse(metamath::read_file(o.prompts));
  auto prompts = pj.get<std::vector<std::vector<int64_t>>>();
  if (prompts.empty()) fail("{}: no prompts", o.prompts.string());
  const auto t0 = Clock::now();
  mm::Model m = mm::Model::load(o.model, mm::parse_dtype(o.dtype));
  const double load_s = seconds_since(t0);
  const bool gen = o.engine == "generator";
  if (!gen && o.engine != "loop") fail("--engine must be loop or generator, got {}", o.engine);
  auto run = [&](int64_t n) {
    return gen ? generator_generate(m, prompts, n) : loop_generate(m, prompts, n);
  };
  run(2);  // warm-up: allocator, thread pool, first-touch of the weights
  const mm::FusedDecodeTimes before = mm::fused_decode_times();
  Timing t = gen || o.profile.empty() ? run(o.new_tokens)
                                      : loop_generate(m, prompts, o.new_tokens, o.profile);
  const mm::FusedDecodeTimes after = mm::fused_decode_times();
  json out;
  out["side"] = gen ? "generator" : "ours";
  out["threads"] = at::get_num_threads();
  out["dtype"] = o.dtype;
  out["batch"] = prompts.size();
  out["new_tokens"] = o.new_tokens;
  out["load_s"] = load_s;
  out["prefill_s"] = t.prefill_s;
  out["decode_s"] = t.decode_s;
  out["total_s"] = t.prefill_s + t.decode_s;
  out["peak_rss_bytes"] = peak_rss_bytes();
  out["generated"] = t.generated;
  // The fused steps' host work (model/decode.h): inside fused_decode around its parallel region,
  // and everything of a decode step outside that region (the loop's argmax and forward call too).
  const int64_t fused = after.steps - before.steps;
  const double region_s = after.region_s - before.region_s;
  if (!gen && fused == o.new_tokens - 1 && fused > 0) {
    out["fused_host_us"] = (after.total_s - before.total_s - region_s) / fused * 1e6;
    out["outside_layers_us"] = (t.decode_s - region_s) / fused * 1e6;
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Parent: orchestration, memcpy rate, report.

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// Runs a command, returns the last line of its stdout parsed as JSON (stderr passes through).
json run_json(const std::string& cmd) {
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) fail("cannot run: {}", cmd);
  std::string out;
  std::array<char, 65536> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  const int rc = pclose(f);
  if (rc != 0) fail("command failed (status {}): {}", rc, cmd);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  const auto nl = out.rfind('\n');
  const std::string last = nl == std::string::npos ? out : out.substr(nl + 1);
  try {
    return json::parse(last);
  } catch (const std::exception& e) {
    fail("command printed no JSON result ({}): {}", e.what(), cmd);
  }
}

// Bytes per second over `bytes` bytes split into one contiguous share per thread, each share
// handled by work(thread, offset, length) (best of 5 timed passes after one warm-up pass).
template <typename Work>
double best_rate(int threads, size_t bytes, size_t unit, Work work) {
  const size_t units = bytes / unit;
  auto pass = [&]() {
    std::vector<std::thread> ts;
    const size_t chunk = units / threads;
    const auto t0 = Clock::now();
    for (int i = 0; i < threads; ++i) {
      ts.emplace_back([&, i] {
        const size_t off = chunk * i, len = i == threads - 1 ? units - off : chunk;
        work(i, off, len);
      });
    }
    for (auto& t : ts) t.join();
    return static_cast<double>(units * unit) / seconds_since(t0);
  };
  pass();
  double best = 0;
  for (int i = 0; i < 5; ++i) best = std::max(best, pass());
  return best;
}

// A probe's buffer, on huge pages as our weights are (core/memory.h; METAMATH_HUGE_PAGES=off
// gives plain pages to both), filled with `fill`.
template <typename T>
std::shared_ptr<T[]> probe_buffer(size_t count, T fill) {
  const size_t bytes = count * sizeof(T);
  const bool huge = metamath::huge_pages_wanted();
  T* p = static_cast<T*>(huge ? metamath::alloc_huge_pages(bytes) : std::malloc(bytes));
  if (!p) fail("probe buffer: cannot allocate {} bytes", bytes);
  std::fill(p, p + count, fill);
  return std::shared_ptr<T[]>(
      p, [bytes, huge](T* q) { huge ? metamath::free_huge_pages(q, bytes) : std::free(q); });
}

// Bytes copied per second by `threads` threads each memcpy-ing its share of a 256 MiB buffer.
// Every byte is read once and written once.
double memcpy_rate(int threads) {
  const size_t bytes = size_t{256} << 20;
  auto src = probe_buffer<char>(bytes, 1), dst = probe_buffer<char>(bytes, 0);
  return best_rate(threads, bytes, 1, [&](int, size_t off, size_t len) {
    std::memcpy(dst.get() + off, src.get() + off, len);
  });
}

// Bytes read per second by `threads` threads each summing its share of a 256 MiB buffer: the
// rate a weight stream can reach at best, since a decode step reads its weights and writes almost
// nothing. The best of two access patterns: one sequential stream per thread (the hardware
// prefetchers alone), and 16 streams per thread walked side by side a cache line at a time with
// software prefetches 8 lines ahead (more misses in flight, as the kernels' tiles read several
// weight rows at once; on a 2-core Xeon the one stream read 17-19 GB/s while the decode kernels
// streamed weights at up to 28 GB/s).
double read_rate(int threads) {
  const size_t bytes = size_t{256} << 20, words = bytes / sizeof(uint64_t);
  const auto data = probe_buffer<uint64_t>(words, 1);
  const uint64_t* buf = data.get();
  std::vector<uint64_t> sums(threads);
  auto check = [&]() {
    uint64_t total = 0;
    for (auto v : sums) total += v;
    if (total != words) fail("read_rate: bad sum {}", total);  // keeps the loops from being elided
  };
  const double one_stream =
      best_rate(threads, bytes, sizeof(uint64_t), [&](int i, size_t off, size_t len) {
        uint64_t acc = 0;
        for (size_t j = 0; j < len; ++j) acc += buf[off + j];
        sums[i] = acc;
      });
  check();
  constexpr size_t kStreams = 16, kLine = 8;  // 8 words = one 64-byte line
  const double many_streams =
      best_rate(threads, bytes, sizeof(uint64_t), [&](int i, size_t off, size_t len) {
        const size_t per = len / kStreams / kLine * kLine;
        uint64_t acc[kLine] = {};
        for (size_t j = 0; j < per; j += kLine)
          for (size_t s = 0; s < kStreams; ++s) {
            const uint64_t* p = buf + off + s * per + j;
            __builtin_prefetch(p + 8 * kLine);
            for (size_t w = 0; w < kLine; ++w) acc[w] += p[w];
          }
        for (size_t j = kStreams * per; j < len; ++j) acc[0] += buf[off + j];
        uint64_t total = 0;
        for (uint64_t a : acc) total += a;
        sums[i] = total;
      });
  check();
  return std::max(one_stream, many_streams);
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      auto c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  return "unknown";
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string fmt1(double v, int prec = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double best(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

struct Series {
  std::vector<double> decode, total, prefill_s;
  std::vector<double> read_rate;  // batch 1: the round's read rate, one per decode rate
  int64_t peak_rss = 0;
  json generated;
};

// Rates of one worker or reference result.
void add_result(Series& s, const json& j, int64_t batch, int64_t new_tokens) {
  double pre = 0, dec = 0;
  if (j.contains("runs")) {  // the reference (one run per invocation here)
    pre = j["runs"][0]["prefill_s"].get<double>();
    dec = j["runs"][0]["decode_s"].get<double>();
  } else {
    pre = j["prefill_s"].get<double>();
    dec = j["decode_s"].get<double>();
  }
  const bool split = j.value("side", "") != "generator";
  if (split && new_tokens > 1 && dec > 0)
    s.decode.push_back(static_cast<double>(batch * (new_tokens - 1)) / dec);
  s.total.push_back(static_cast<double>(batch * new_tokens) / (pre + dec));
  if (split) s.prefill_s.push_back(pre);
  s.peak_rss = std::max<int64_t>(s.peak_rss, j["peak_rss_bytes"].get<int64_t>());
  s.generated = j["generated"];
}

// Positions where two sides' greedy tokens agree, counted up to each row's first divergence.
std::pair<int64_t, int64_t> agreement(const json& a, const json& b) {
  int64_t same = 0, all = 0;
  for (size_t r = 0; r < std::min(a.size(), b.size()); ++r) {
    const auto& x = a[r];
    const auto& y = b[r];
    size_t i = 0;
    while (i < x.size() && i < y.size() && x[i] == y[i]) ++i;
    same += static_cast<int64_t>(i);
    all += static_cast<int64_t>(std::max(x.size(), y.size()));
  }
  return {same, all};
}

int run_parent(const Options& o, const std::string& self) {
  std::cout << "decode_bench: cpu '" << cpu_model() << "', " << std::thread::hardware_concurrency()
            << " cores, threads " << o.threads << ", load average " << load_average() << "\n";
  const mm::ModelConfig c = ensure_model(o);
  std::cout << "model " << o.model.string() << ": " << fmt1(c.num_parameters() / 1e6) << "M params"
            << " (hidden " << c.hidden_size << ", " << c.num_hidden_layers << " layers, "
            << c.num_attention_heads << " heads, " << c.num_key_value_heads << " kv heads"
            << ", intermediate " << c.intermediate_size << ", vocab " << c.vocab_size
            << (c.tie_word_embeddings ? ", tied" : ", untied lm_head") << ")\n";
  std::cout << "rates: best and median of " << o.repeats
            << " interleaved round(s), each in a fresh process after a 2-token warm-up\n";

  const fs::path tmp =
      fs::temp_directory_path() / ("metamath_decode_bench_" + std::to_string(::getpid()));
  fs::create_directories(tmp);

  struct Config {
    std::string dtype;
    int64_t batch, prompt_len, new_tokens;
    fs::path prompts;
  };
  std::vector<Config> configs;
  for (const auto& d : o.dtypes)
    for (auto b : o.batches) {
      Config k{d,
               b,
               d == "bf16" ? o.bf16_prompt_len : o.prompt_len,
               d == "bf16" ? o.bf16_new_tokens : o.new_tokens,
               {}};
      auto prompts = make_prompts(b, k.prompt_len, c.vocab_size, o.seed + b);
      k.prompts = tmp / (d + "_b" + std::to_string(b) + ".json");
      metamath::write_file_atomic(k.prompts, json(prompts).dump());
      configs.push_back(k);
    }
  std::map<std::string, fs::path> gguf;  // dtype -> exported file
  if (o.llama_cpp)
    for (const auto& d : o.dtypes) gguf[d] = ensure_gguf(o, gguf_dtype(d));

  std::map<std::string, Series> series;  // key: dtype/batch/side
  auto key = [](const Config& k, const std::string& side) {
    return k.dtype + "/" + std::to_string(k.batch) + "/" + side;
  };
  for (int round = 0; round < o.repeats; ++round) {
    for (const auto& k : configs) {
      const std::string common = " --model " + shell_quote(o.model.string()) + " --dtype " +
                                 k.dtype + " --threads " + std::to_string(o.threads) +
                                 " --prompts " + shell_quote(k.prompts.string()) +
                                 " --new-tokens " + std::to_string(k.new_tokens);
      std::vector<std::pair<std::string, std::string>> cmds;
      std::string prof;
      if (!o.profile.empty()) {
        const fs::path pf(o.profile);
        prof = " --profile " +
               shell_quote((pf.parent_path() / (pf.stem().string() + "_" + k.dtype + "_b" +
                                                std::to_string(k.batch) + pf.extension().string()))
                               .string());
      }
      const bool ours_too = k.dtype != "f16";  // f16: llama.cpp only
      if (ours_too)
        cmds.push_back({"ours", shell_quote(self) + " --worker --engine loop" + common + prof});
      if (o.generator && ours_too)
        cmds.push_back({"generator", shell_quote(self) + " --worker --engine generator" + common});
      if (o.llama_cpp)
        cmds.push_back({"llama.cpp", "UV_THREADPOOL_SIZE=1 " + shell_quote(o.node) + " " +
                                         shell_quote(o.llama_cpp_script.string()) + " --gguf " +
                                         shell_quote(gguf[k.dtype].string()) + " --prompts " +
                                         shell_quote(k.prompts.string()) + " --new-tokens " +
                                         std::to_string(k.new_tokens) + " --threads " +
                                         std::to_string(o.llama_cpp_threads)});
      if (o.reference && (k.dtype == "f32" || k.dtype == "bf16"))
        cmds.push_back({"reference", shell_quote(o.python) + " " +
                                         shell_quote(o.reference_script.string()) + common +
                                         " --repeats 1"});
      if (round % 2 == 1) std::reverse(cmds.begin(), cmds.end());
      std::cout << "round " << round + 1 << " " << k.dtype << " batch " << k.batch << ":";
      const double round_rate = k.batch == 1 ? read_rate(o.threads) : 0;
      if (k.batch == 1) std::cout << " read rate " << fmt1(round_rate / 1e9, 2) << " GB/s;";
      for (const auto& [side, cmd] : cmds) {
        const json j = run_json(cmd);
        Series& s = series[key(k, side)];
        add_result(s, j, k.batch, k.new_tokens);
        if (k.batch == 1 && s.read_rate.size() < s.decode.size()) s.read_rate.push_back(round_rate);
        std::cout << " " << side << " "
                  << fmt1(k.batch == 1 && !s.decode.empty() ? s.decode.back() : s.total.back())
                  << (k.batch == 1 && !s.decode.empty() ? " decode" : " total") << " tok/s;";
        if (j.contains("fused_host_us"))
          std::cout << " host " << fmt1(j["fused_host_us"].get<double>()) << " us/step in the"
                    << " fused step, " << fmt1(j["outside_layers_us"].get<double>())
                    << " outside its layers;";
        std::cout << std::flush;
      }
      std::cout << " (load " << load_average() << ")\n";
    }
  }

  const double copy_rate = memcpy_rate(o.threads);
  std::cout << "\nmemcpy rate (" << o.threads << " threads, 256 MiB): " << fmt1(copy_rate / 1e9, 2)
            << " GB/s copied (each byte read and written once)\n";
  const double rd_rate = read_rate(o.threads);
  std::cout << "read rate (" << o.threads << " threads, 256 MiB): " << fmt1(rd_rate / 1e9, 2)
            << " GB/s read\n(both probes on " << (metamath::huge_pages_wanted() ? "huge" : "4 KiB")
            << " pages, as the weights)\n\n";

  std::cout << "| dtype | batch | prompt+new | side | prefill s | decode tok/s best (median) |"
               " total tok/s best (median) | peak RSS MiB |\n"
               "|---|---:|---:|---|---:|---:|---:|---:|\n";
  for (const auto& k : configs) {
    for (const std::string side : {"ours", "generator", "reference", "llama.cpp"}) {
      auto it = series.find(key(k, side));
      if (it == series.end()) continue;
      const Series& s = it->second;
      std::cout << "| " << k.dtype << " | " << k.batch << " | " << k.prompt_len << "+"
                << k.new_tokens << " | " << side << " | "
                << (s.prefill_s.empty()
                        ? "-"
                        : fmt1(*std::min_element(s.prefill_s.begin(), s.prefill_s.end()), 2))
                << " | "
                << (s.decode.empty() ? "-"
                                     : fmt1(best(s.decode)) + " (" + fmt1(median(s.decode)) + ")")
                << " | " << fmt1(best(s.total)) << " (" << fmt1(median(s.total)) << ") | "
                << fmt1(s.peak_rss / 1048576.0, 0) << " |\n";
    }
  }
  std::cout << "\n";
  for (const auto& k : configs) {
    auto o_it = series.find(key(k, "ours")), r_it = series.find(key(k, "reference"));
    if (auto l_it = series.find(key(k, "llama.cpp"));
        o_it != series.end() && l_it != series.end()) {
      const Series &ours = o_it->second, &lc = l_it->second;
      auto [same, all] = agreement(ours.generated, lc.generated);
      std::cout << k.dtype << " batch " << k.batch << ": ours/llama.cpp decode "
                << fmt1(best(ours.decode) / best(lc.decode), 2) << "x (median "
                << fmt1(median(ours.decode) / median(lc.decode), 2) << "x), total "
                << fmt1(best(ours.total) / best(lc.total), 2) << "x (median "
                << fmt1(median(ours.total) / median(lc.total), 2) << "x); greedy tokens identical "
                << same << "/" << all << "\n";
    }
    if (o_it == series.end() || r_it == series.end()) continue;
    const Series &ours = o_it->second, &ref = r_it->second;
    const double goal = k.batch == 1 ? 1.5 : 2.0;
    auto [same, all] = agreement(ours.generated, ref.generated);
    std::cout << k.dtype << " batch " << k.batch << ": ours/reference decode "
              << fmt1(best(ours.decode) / best(ref.decode), 2) << "x (median "
              << fmt1(median(ours.decode) / median(ref.decode), 2) << "x), total "
              << fmt1(best(ours.total) / best(ref.total), 2) << "x (median "
              << fmt1(median(ours.total) / median(ref.total), 2) << "x); goal >= " << fmt1(goal)
              << "x on " << (k.batch == 1 ? "decode" : "total") << ": "
              << ((k.batch == 1 ? best(ours.decode) / best(ref.decode)
                                : best(ours.total) / best(ref.total)) >= goal
                      ? "met"
                      : "MISSED")
              << "; greedy tokens identical " << same << "/" << all << "\n";
    if (auto g = series.find(key(k, "generator")); g != series.end())
      std::cout << "  generator/reference total "
                << fmt1(best(g->second.total) / best(ref.total), 2) << "x\n";
  }
  std::cout << "\nbatch-1 bandwidth roofline (weights streamed once per token, plus the KV cache"
               " a step reads on average):\n";
  for (const auto& k : configs) {
    if (k.batch != 1) continue;
    for (const std::string side : {"ours", "reference", "llama.cpp"}) {
      const int64_t weights = weight_bytes_per_token(c, bytes_per_weight(k.dtype, side));
      const int64_t kv = kv_bytes_per_token(c, k.dtype, side, k.prompt_len, k.new_tokens);
      const int64_t wb = weights + kv;
      auto it = series.find(key(k, side));
      if (it == series.end() || it->second.decode.empty()) continue;
      const Series& s = it->second;
      const double tps = best(s.decode);
      std::vector<double> shares;  // per round: the decode rate against that round's read rate
      for (size_t i = 0; i < s.decode.size() && i < s.read_rate.size(); ++i)
        shares.push_back(100.0 * wb * s.decode[i] / s.read_rate[i]);
      std::cout << "  " << k.dtype << " " << side << ": " << fmt1(weights / 1e6) << " + "
                << fmt1(kv / 1e6) << " (KV) = " << fmt1(wb / 1e6) << " MB/token x " << fmt1(tps)
                << " tok/s = " << fmt1(wb * tps / 1e9, 2)
                << " GB/s = " << fmt1(100.0 * wb * tps / rd_rate)
                << "% of the read rate (which allows " << fmt1(rd_rate / wb) << " tok/s), "
                << fmt1(100.0 * wb * tps / copy_rate) << "% of the memcpy rate ("
                << fmt1(copy_rate / wb) << " tok/s)\n";
      if (!shares.empty())
        std::cout << "    against each round's own read rate: best " << fmt1(best(shares))
                  << "%, median " << fmt1(median(shares)) << "%\n";
    }
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse_args(argc, argv);
    if (o.worker) return run_worker(o);
    return run_parent(o, fs::read_symlink("/proc/self/exe").string());
  } catch (const std::exception& e) {
    std::cerr << "decode_bench: error: " << e.what() << "\n";
    return 1;
  }
}
