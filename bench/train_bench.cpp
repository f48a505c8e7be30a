// train_bench: training-step throughput of `metamath train`'s step against a PyTorch reference.
//
// A random LLaMA model (default: the "small" preset with a 32000 vocabulary: hidden 768, 12
// layers, 12 heads / 4 KV heads, intermediate 1536, ~110M parameters, untied lm_head) is written
// once as an HF folder, with one random micro-batch (default 8 x 512 tokens, every next token a
// label). Each side runs WARMUP + STEPS full optimizer steps on that micro-batch (forward, loss,
// backward, clip 1.0, AdamW), fp32 and bf16 (bf16 compute on casts of fp32 master weights), with
// the same thread count:
//
//   ours       train::train_step on model::Model (this program re-run as a worker process);
//   reference  bench/reference/train_bench_reference.py under /usr/bin/python3: the pure-PyTorch
//              model of tests/reference/llama_reference.py, torch.optim.AdamW, clip_grad_norm_.
//
// Ours runs as `metamath` does, with keep_freed_memory() (core/memory.h: glibc keeps freed tensor
// memory for reuse instead of unmapping it). --reference-tuned adds a reference run with the same
// glibc setting (MALLOC_MMAP_MAX_=0, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_ in its environment),
// so the share of the ratio that comes from the allocator is visible. --checkpointing adds a run
// of ours with activation checkpointing per decoder layer (its peak RSS is the point).
//
// Each measurement runs in its own process, so its peak RSS (ru_maxrss) is its own. Reported:
// tokens/s, peak RSS, and model FLOPs utilisation: (6 * matmul parameters + 12 * layers * T *
// hidden) FLOPs per token, against the best measured GEMM rate (2048^3 at::mm, same thread count)
// of the dtype, or of f32 when that is faster (bf16 on CPUs without AVX-512).
//
//   train_bench [--config small|FILE] [--micro-batch 8] [--seq 512] [--warmup 1] [--steps 2]
//               [--dtypes f32,bf16] [--threads N] [--dir DIR] [--no-reference] [--python EXE]
//               [--reference-tuned] [--checkpointing] [--repeats N] [--profile FILE]
//
// --repeats N runs every side N times, interleaved with the order rotating each round (the machine
// may be shared); tokens/s and the ratio use each side's best step over all rounds (median in
// brackets). The ratio is metamath's tokens/s over that side's. --profile FILE writes a chrome
// trace (libtorch's profiler) of our last timed step; with it, run `--no-reference`.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/jsonl.h"
#include "core/memory.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "train/optim.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
namespace mm = metamath::model;
namespace mt = metamath::train;
using metamath::json;

namespace {

struct Args {
  std::string config = "small";
  int64_t micro = 8, seq = 512, warmup = 1, steps = 2;
  std::vector<std::string> dtypes = {"f32", "bf16"};
  int threads = 0;
  fs::path dir = fs::temp_directory_path() / "metamath_train_bench";
  bool reference = true;
  std::string python = "/usr/bin/python3";
  bool reference_tuned = false, checkpointing = false;
  int64_t repeats = 1;
  std::string worker;  // internal: run our side for this dtype
  bool worker_ckpt = false;
  std::string profile;  // --profile FILE: chrome trace of our last step (libtorch's profiler)
};

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

long peak_rss_kb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

int run_worker(const Args& a) {
  metamath::keep_freed_memory();
  at::set_num_threads(a.threads);
  mm::Model model = mm::Model::load(a.dir / "model");
  model.set_recompute_layers(a.worker_ckpt);
  mm::NamedTensors params = mt::trainable_model_parameters(model);
  mt::AdamW opt(params, {});
  auto f = mm::SafetensorsFile::open(a.dir / "batch.safetensors");
  mt::Batch b = mt::batch_from_tensors(f->get("input_ids").clone(), f->get("targets").clone());
  mt::StepOptions so;
  so.lr = 2e-5;
  std::optional<mm::Model> shadow;
  if (a.worker == "bf16") {
    shadow.emplace(mt::make_bf16_shadow(model));
    so.bf16_shadow = &*shadow;
  }
  std::vector<double> times;
  double loss = 0;
  for (int64_t i = 0; i < a.warmup + a.steps; ++i) {
    std::optional<torch::autograd::profiler::RecordProfile> prof;
    if (!a.profile.empty() && i + 1 == a.warmup + a.steps) prof.emplace(a.profile);
    const double t0 = now();
    loss = mt::train_step(model, opt, {b}, b.label_tokens, so).loss;
    if (i >= a.warmup) times.push_back(now() - t0);
  }
  std::printf("%s\n", json{{"step_s", times},
                           {"tokens", b.input_ids.numel()},
                           {"loss", loss},
                           {"peak_rss_kb", peak_rss_kb()}}
                          .dump()
                          .c_str());
  return 0;
}

json run_json(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  auto pos = out.rfind("\n{");
  std::string line = out.substr(pos == std::string::npos ? 0 : pos + 1);
  if (rc != 0 || line.empty() || line[0] != '{') {
    std::fprintf(stderr, "failed (%d): %s\n%s\n", rc, cmd.c_str(), out.c_str());
    return {};
  }
  return json::parse(line);
}

double load_average() {
  double l[1] = {0};
  return getloadavg(l, 1) == 1 ? l[0] : -1;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Best of several 2048^3 matrix products, FLOP/s.
double gemm_peak(at::ScalarType dt) {
  const int64_t n = 2048;
  at::Tensor a = at::randn({n, n}).to(dt), b = at::randn({n, n}).to(dt);
  double best = 1e30;
  at::mm(a, b);
  for (int i = 0; i < 4; ++i) {
    const double t0 = now();
    at::Tensor c = at::mm(a, b);
    best = std::min(best, now() - t0);
  }
  return 2.0 * n * n * n / best;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--config")
      a.config = next();
    else if (k == "--micro-batch")
      a.micro = std::stoll(next());
    else if (k == "--seq")
      a.seq = std::stoll(next());
    else if (k == "--warmup")
      a.warmup = std::stoll(next());
    else if (k == "--steps")
      a.steps = std::stoll(next());
    else if (k == "--threads")
      a.threads = std::stoi(next());
    else if (k == "--dir")
      a.dir = next();
    else if (k == "--python")
      a.python = next();
    else if (k == "--no-reference")
      a.reference = false;
    else if (k == "--worker")
      a.worker = next();
    else if (k == "--profile")
      a.profile = next();
    else if (k == "--worker-ckpt")
      a.worker_ckpt = true;
    else if (k == "--repeats")
      a.repeats = std::max<int64_t>(1, std::stoll(next()));
    else if (k == "--reference-tuned")
      a.reference_tuned = true;
    else if (k == "--checkpointing")
      a.checkpointing = true;
    else if (k == "--dtypes") {
      a.dtypes.clear();
      std::string s = next();
      for (std::size_t p = 0; p <= s.size();) {
        std::size_t c = s.find(',', p);
        if (c == std::string::npos) c = s.size();
        if (c > p) a.dtypes.push_back(s.substr(p, c - p));
        p = c + 1;
      }
    } else {
      std::fprintf(stderr, "unknown option %s (see the header of bench/train_bench.cpp)\n",
                   k.c_str());
      return 2;
    }
  }
  if (a.threads <= 0) a.threads = at::get_num_threads();
  if (!a.worker.empty()) return run_worker(a);
  at::set_num_threads(a.threads);

  // Model and batch, written once per configuration.
  mm::ModelConfig c = a.config == "small" || a.config == "tiny"
                          ? mm::preset_config(a.config, mm::Arch::Llama, 32000)
                          : mm::load_config(fs::path(a.config));
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  const fs::path model_dir = a.dir / "model";
  if (!fs::exists(model_dir / "config.json") ||
      mm::load_config(model_dir).num_parameters() != c.num_parameters()) {
    fs::remove_all(a.dir);
    mm::Model::init_random(c, 0).save(model_dir);
  }
  {
    at::Generator g = at::detail::createCPUGenerator(1);
    at::Tensor ids = at::randint(3, c.vocab_size, {a.micro, a.seq}, g, at::kLong);
    at::Tensor tg = at::full({a.micro, a.seq}, mt::kIgnoreIndex, at::kLong);
    tg.narrow(1, 0, a.seq - 1).copy_(ids.narrow(1, 1, a.seq - 1));
    mm::save_safetensors(a.dir / "batch.safetensors", {{"input_ids", ids}, {"targets", tg}});
  }
  int64_t matmul_params = c.num_parameters() - c.vocab_size * c.hidden_size -
                          (2 * c.num_hidden_layers + 1) * c.hidden_size;
  if (c.tie_word_embeddings) matmul_params += c.vocab_size * c.hidden_size;
  const double flops_per_token =
      6.0 * static_cast<double>(matmul_params) +
      12.0 * static_cast<double>(c.num_hidden_layers * a.seq * c.num_attention_heads * c.head_dim);
  std::printf(
      "train_bench: %s, %.1fM parameters, micro-batch %lld x %lld, %d threads, %lld+%lld "
      "steps\n",
      a.config.c_str(), static_cast<double>(c.num_parameters()) / 1e6,
      static_cast<long long>(a.micro), static_cast<long long>(a.seq), a.threads,
      static_cast<long long>(a.warmup), static_cast<long long>(a.steps));
  std::printf(
      "| dtype | side | tokens/s best (median) | step s best (median) | peak RSS (MB) | MFU (best) "
      "| loss | metamath vs it, best (median) |\n"
      "|---|---|---:|---:|---:|---:|---:|---:|\n");
  const std::string self = fs::canonical("/proc/self/exe").string();
  const fs::path ref_script =
      fs::path(METAMATH_SOURCE_DIR) / "bench" / "reference" / "train_bench_reference.py";
  for (const std::string& dt : a.dtypes) {
    // MFU is against the fastest GEMM this machine offers for the work: the dtype's own, or f32
    // (where libtorch's bf16 GEMM is slow, bf16 training runs its products as f32 GEMMs).
    const double dtype_peak = gemm_peak(dt == "bf16" ? at::kBFloat16 : at::kFloat);
    const double peak = dt == "bf16" ? std::max(dtype_peak, gemm_peak(at::kFloat)) : dtype_peak;
    auto common = fmt::format(
        " --dir {} --threads {} --warmup {} --steps {} --micro-batch {} "
        "--seq {} --config {}",
        a.dir.string(), a.threads, a.warmup, a.steps, a.micro, a.seq, a.config);
    if (!a.profile.empty()) common += " --profile " + a.profile;
    struct Side {
      Side(std::string n, std::string c) : name(std::move(n)), cmd(std::move(c)) {}
      std::string name, cmd;
      std::vector<double> steps;  // every timed step of every round
      double rss_kb = 0, loss = 0, tokens = 0;
    };
    std::vector<Side> sides;
    sides.emplace_back("metamath", self + " --worker " + dt + common);
    if (a.checkpointing)
      sides.emplace_back("metamath, activation checkpointing",
                         self + " --worker " + dt + " --worker-ckpt" + common);
    const std::string ref_args =
        fmt::format("{} {} {} {} {} {} {} {}", a.python, ref_script.string(), model_dir.string(),
                    (a.dir / "batch.safetensors").string(), dt, a.warmup, a.steps, a.threads);
    if (a.reference) sides.emplace_back("PyTorch reference", ref_args);
    if (a.reference && a.reference_tuned)
      sides.emplace_back("PyTorch reference, glibc malloc tuned like ours",
                         "MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 "
                         "MALLOC_TOP_PAD_=268435456 " +
                             ref_args);
    // Interleaved rounds; the order rotates each round so no side always runs first.
    for (int64_t round = 0; round < a.repeats; ++round)
      for (std::size_t k = 0; k < sides.size(); ++k) {
        Side& sd = sides[(k + static_cast<std::size_t>(round)) % sides.size()];
        json r = run_json(sd.cmd);
        if (r.is_null()) continue;
        for (double t : r["step_s"].get<std::vector<double>>()) sd.steps.push_back(t);
        sd.rss_kb = std::max(sd.rss_kb, r["peak_rss_kb"].get<double>());
        sd.loss = r["loss"].get<double>();
        sd.tokens = r["tokens"].get<double>();
        std::fprintf(
            stderr, "  round %lld %s: %s s (load %.2f)\n", static_cast<long long>(round + 1),
            sd.name.c_str(),
            fmt::format("{:.2f}", fmt::join(r["step_s"].get<std::vector<double>>(), ", ")).c_str(),
            load_average());
      }
    auto best = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
    const double ours_best = sides[0].steps.empty() ? 0 : best(sides[0].steps);
    const double ours_median = sides[0].steps.empty() ? 0 : median(sides[0].steps);
    for (const Side& sd : sides) {
      if (sd.steps.empty()) continue;
      const double step = best(sd.steps), med = median(sd.steps);
      const double rate = sd.tokens / step;
      const double mfu = rate * flops_per_token / peak;
      std::string ratio = "";
      if (sd.name.rfind("PyTorch", 0) == 0 && ours_best > 0)
        ratio = fmt::format("{:.2f}x ({:.2f}x)", step / ours_best, med / ours_median);
      std::printf("| %s | %s | %.0f (%.0f) | %.2f (%.2f) | %.0f | %.1f%% | %.4f | %s |\n",
                  dt.c_str(), sd.name.c_str(), rate, sd.tokens / med, step, med, sd.rss_kb / 1024.0,
                  100.0 * mfu, sd.loss, ratio.c_str());
      std::fflush(stdout);
    }
    std::printf("| %s | GEMM peak (2048^3) | %.1f GFLOP/s | | | | | |\n", dt.c_str(),
                dtype_peak / 1e9);
    if (peak != dtype_peak)
      std::printf("| %s | f32 GEMM peak, the MFU base | %.1f GFLOP/s | | | | | |\n", dt.c_str(),
                  peak / 1e9);
  }
  return 0;
}
