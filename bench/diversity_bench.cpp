// diversity_bench: the exact nearest-neighbour search of `metamath diversity` against FAISS
// IndexFlatL2 and a NumPy brute force, on the same random data.
//
// Data: NEW x DIM and BASE x DIM float32 standard-normal vectors (default: the paper's scale with
// OpenAI-sized embeddings, 395,000 x 15,000 x 1,536). Each side computes, for every new vector, the
// minimum squared L2 distance to the base set, and the mean of those minima (the diversity gain):
//
//   ours    analysis::nearest_sq_l2 with each kernel of --kernels: amx-bf16 (bfloat16 AMX tiles,
//           row minimum fused into the tile loop, analysis/nn_kernel.h), avx512-bf16 (the same
//           blocks through vdpbf16ps, for CPUs without AMX), auto, and f32 (blocked float32
//           GEMM through libtorch -> OpenBLAS), both streamed over the new vectors with every
//           candidate within the kernel's error bound re-checked in float64 (exact minima, the
//           same bits from both); and f32 without the re-check (float32 values, as FAISS returns);
//   faiss   faiss::IndexFlatL2::search with k = 1 (libfaiss-dev; its BLAS path for nq > 20);
//   numpy   bench/reference/diversity_numpy.py under /usr/bin/python3 (float32 GEMM per block of
//           4096, then min), reading the data from raw files.
//
// Reported per side: wall seconds, CPU seconds (user + system of this process during the side;
// numpy: its own), the GEMM work (2 * NEW * BASE * DIM FLOPs) as GFLOP/s and as a share
// of three peaks measured in this process, same threads, best of every round: the machine's
// float32 GEMM and bfloat16 GEMM (libtorch's at::mm at 4096 x 1536 x 8192 and 4096^3: OpenBLAS,
// and oneDNN, which uses AMX where the CPU has it) and the bfloat16 unit's own inner loop on
// operands in L1 (AMX or vdpbf16ps, nn::bf16_engine_peak: no GEMM reaches it), the
// gain and its relative difference from ours, and peak RSS (ours: the growth of ru_maxrss during
// our search, over the data that all sides share; numpy: its own process).
//
//   diversity_bench [--new 395000] [--base 15000] [--dim 1536] [--query-block 0] [--base-block 0]
//                   [--no-faiss] [--no-numpy] [--no-float32] [--python /usr/bin/python3]
//                   [--dir /tmp] [--threads N] [--repeats 1] [--kernels auto,f32]
//
// --repeats N runs ours (each kernel of --kernels) and FAISS N times, interleaved (the machine may
// be shared), and keeps each side's best time. --threads sets libtorch's threads (default: the
// cores); OpenBLAS and FAISS's OpenMP use their own defaults (all cores).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "analysis/diversity.h"
#include "analysis/nn_kernel.h"
#include "core/cpu.h"
#include "core/jsonl.h"
#include "core/text.h"

#ifdef METAMATH_HAVE_FAISS
#include <faiss/IndexFlat.h>
#endif

namespace fs = std::filesystem;
namespace ma = metamath::analysis;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double cpu_s() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// Best at::mm rate (GFLOP/s) over the shapes the search uses and a square one, in float32 or
// bfloat16 (libtorch's oneDNN path, AMX where the CPU has it).
double measure_gemm_peak(int64_t dim, at::ScalarType type = at::kFloat) {
  double best = 0;
  for (auto [m, n, k] :
       {std::tuple<int64_t, int64_t, int64_t>{4096, 8192, dim}, {4096, 4096, 4096}}) {
    at::Tensor a = at::randn({m, k}).to(type), b = at::randn({n, k}).to(type),
               c = at::empty({m, n}, type);
    at::mm_out(c, a, b.t());  // warm-up
    for (int r = 0; r < 3; ++r) {
      const double t0 = now_s();
      at::mm_out(c, a, b.t());
      best = std::max(best, 2.0 * m * n * k / (now_s() - t0) / 1e9);
    }
  }
  return best;
}

// The bfloat16 unit's peak: the engine's own inner loop (nn_kernel.h: AMX tiles, else vdpbf16ps,
// operands in L1); 0 where the CPU has neither.
double measure_bf16_unit_peak() {
  namespace nn = ma::nn;
  if (nn::amx_bf16_supported()) return nn::bf16_engine_peak(nn::Bf16Engine::amx);
  if (nn::avx512_bf16_supported()) return nn::bf16_engine_peak(nn::Bf16Engine::avx512);
  return 0;
}

struct Side {
  std::string name;
  double seconds = 0, gain = 0, rss_mb = 0, last = 0;  // best and last time
  double cpu = 0;                                      // CPU seconds of the best round
  bool ran = false;
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

void write_raw(const fs::path& p, const at::Tensor& t) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(t.data_ptr<float>()),
            static_cast<std::streamsize>(t.numel() * sizeof(float)));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

}  // namespace

int main(int argc, char** argv) {
  int64_t nq = 395000, nb = 15000, dim = 1536, qb = 0, bb = 0;
  int threads = static_cast<int>(std::thread::hardware_concurrency()), repeats = 1;
  bool faiss = true, numpy = true, float32 = true;
  std::string kernels = "auto,f32";
  std::string python = "/usr/bin/python3";
  fs::path dir = fs::temp_directory_path();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--new")
      nq = std::stoll(next());
    else if (a == "--base")
      nb = std::stoll(next());
    else if (a == "--dim")
      dim = std::stoll(next());
    else if (a == "--query-block")
      qb = std::stoll(next());
    else if (a == "--base-block")
      bb = std::stoll(next());
    else if (a == "--no-faiss")
      faiss = false;
    else if (a == "--no-numpy")
      numpy = false;
    else if (a == "--no-float32")
      float32 = false;
    else if (a == "--python")
      python = next();
    else if (a == "--dir")
      dir = next();
    else if (a == "--threads")
      threads = std::stoi(next());
    else if (a == "--repeats")
      repeats = std::stoi(next());
    else if (a == "--kernels")
      kernels = next();
    else {
      std::fprintf(stderr, "unknown flag %s (see the header of bench/diversity_bench.cpp)\n",
                   a.c_str());
      return 2;
    }
  }
  at::set_num_threads(std::max(1, threads));
  std::printf("diversity_bench: %lld new x %lld base x %lld dims, %d threads, cpu flags: %s\n",
              static_cast<long long>(nq), static_cast<long long>(nb), static_cast<long long>(dim),
              at::get_num_threads(), metamath::cpu_flags_line().c_str());

  auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
  const at::Tensor base = at::randn({nb, dim}, gen);
  const at::Tensor fresh = at::randn({nq, dim}, gen);
  const double flops =
      2.0 * static_cast<double>(nq) * static_cast<double>(nb) * static_cast<double>(dim);

  std::vector<Side> sides;
  ma::NearestOptions no;
  no.query_block = qb;
  no.base_block = bb;
  ma::NearestOptions f32 = no;
  f32.kernel = ma::NearestKernel::f32_gemm;
  f32.recheck = false;
  // Our exact sides: one per kernel asked for (auto = what `metamath diversity` uses here).
  std::vector<ma::NearestKernel> exact_kernels;
  for (const auto& k : metamath::text::split(kernels, ','))
    exact_kernels.push_back(ma::parse_nearest_kernel(k));
  std::vector<Side> ours(exact_kernels.size());
  Side rough{"metamath f32, float32 only"}, flat{"faiss IndexFlatL2"};
  ma::Nearest exact;
  auto best_of = [](Side& side, double seconds, double cpu, double gain) {
    if (!side.ran || seconds < side.seconds) {
      side.seconds = seconds;
      side.cpu = cpu;
    }
    side.last = seconds;
    side.gain = gain;
    side.ran = true;
  };
  // Runs f, returns {wall, CPU} seconds.
  auto timed = [](const std::function<void()>& f) {
    const double t0 = now_s(), c0 = cpu_s();
    f();
    return std::pair<double, double>{now_s() - t0, cpu_s() - c0};
  };
  double peak = 0, bf16_gemm_peak = 0, bf16_peak = 0;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    for (std::size_t k = 0; k < exact_kernels.size(); ++k) {
      ma::NearestOptions o = no;
      o.kernel = exact_kernels[k];
      const double rss0 = peak_rss_mb();
      ma::Nearest got;
      auto [wall, cpu] = timed([&] {
        got = ma::nearest_sq_l2(fresh.data_ptr<float>(), nq, base.data_ptr<float>(), nb, dim, o);
      });
      ours[k].name =
          fmt::format("metamath exact ({}: {})", ma::nearest_kernel_name(o.kernel), got.kernel);
      best_of(ours[k], wall, cpu, mean(got.dist2));
      ours[k].rss_mb = std::max(ours[k].rss_mb, peak_rss_mb() - rss0);
      std::printf("  %s: %.2f s (CPU %.2f s), %lld candidates re-checked, %lld rows rescanned\n",
                  ours[k].name.c_str(), wall, cpu, static_cast<long long>(got.candidates),
                  static_cast<long long>(got.rescanned));
      if (k == 0) {
        exact = std::move(got);
      } else if (got.dist2 != exact.dist2 || got.index != exact.index) {
        std::printf("  ERROR: kernel %s disagrees with %s\n", ours[k].name.c_str(),
                    ours[0].name.c_str());
        return 1;
      }
    }
    if (float32) {
      double gain = 0;
      auto [wall, cpu] = timed([&] {
        gain = mean(
            ma::nearest_sq_l2(fresh.data_ptr<float>(), nq, base.data_ptr<float>(), nb, dim, f32)
                .dist2);
      });
      best_of(rough, wall, cpu, gain);
    }
#ifdef METAMATH_HAVE_FAISS
    if (faiss) {
      faiss::IndexFlatL2 index(dim);
      std::vector<float> D(static_cast<std::size_t>(nq));
      std::vector<faiss::Index::idx_t> I(static_cast<std::size_t>(nq));
      auto [wall, cpu] = timed([&] {
        index.add(nb, base.data_ptr<float>());
        index.search(nq, fresh.data_ptr<float>(), 1, D.data(), I.data());
      });
      best_of(flat, wall, cpu, mean(std::vector<double>(D.begin(), D.end())));
      int64_t same = 0;
      for (int64_t i = 0; i < nq; ++i) same += I[i] == exact.index[i];
      std::printf("  (faiss: same nearest index as ours for %.4f%% of the new vectors)\n",
                  100.0 * static_cast<double>(same) / static_cast<double>(nq));
    }
#endif
    // Each round (the machine may be shared: the best of every round is the peak), and after
    // our search, so that ru_maxrss growth during ours is ours (these operands are bigger).
    peak = std::max(peak, measure_gemm_peak(dim));
    bf16_gemm_peak = std::max(bf16_gemm_peak, measure_gemm_peak(dim, at::kBFloat16));
    bf16_peak = std::max(bf16_peak, measure_bf16_unit_peak());
    std::printf("  round %d:", r + 1);
    for (const Side& s : ours) std::printf(" %s %.2f s,", s.name.c_str(), s.last);
    std::printf(
        " float32 only %.2f s, faiss %.2f s, peaks so far %.0f GFLOP/s f32 GEMM, %.0f bf16 GEMM,"
        " %.0f bf16 unit\n",
        rough.last, flat.last, peak, bf16_gemm_peak, bf16_peak);
  }
#ifndef METAMATH_HAVE_FAISS
  if (faiss) std::printf("  (faiss: not built in; install libfaiss-dev and reconfigure)\n");
#endif
  std::printf("measured GEMM peaks (at::mm, best of every round): f32 %.1f GFLOP/s, bf16 %.1f\n",
              peak, bf16_gemm_peak);
  std::printf(
      "measured bfloat16 unit peak (the AMX / vdpbf16ps inner loop on L1 operands, every round): "
      "%.1f GFLOP/s%s\n",
      bf16_peak, bf16_peak > 0 ? "" : " (no bfloat16 unit)");
  for (const Side& s : ours) sides.push_back(s);
  for (const Side* s : {&rough, &flat})
    if (s->ran) sides.push_back(*s);
  if (numpy) {
    const fs::path qf = dir / "diversity_bench_new.f32", bf = dir / "diversity_bench_base.f32";
    write_raw(qf, fresh);
    write_raw(bf, base);
    const fs::path script = fs::path(METAMATH_SOURCE_DIR) / "bench/reference/diversity_numpy.py";
    const std::string cmd =
        fmt::format("{} '{}' '{}' '{}' {}", python, script.string(), qf.string(), bf.string(), dim);
    std::string out;
    if (FILE* p = popen(cmd.c_str(), "r")) {
      char buf[4096];
      while (std::fgets(buf, sizeof buf, p)) out += buf;
      if (pclose(p) != 0) out.clear();
    }
    fs::remove(qf);
    fs::remove(bf);
    if (out.empty()) {
      std::printf("  (numpy: the reference failed: %s)\n", cmd.c_str());
    } else {
      const metamath::json j = metamath::json::parse(out);
      Side np{"numpy brute force", j["seconds"], j["gain"], j["peak_rss_mb"], 0, true};
      np.cpu = j["cpu_seconds"];
      sides.push_back(np);
    }
  }

  const Side& first = ours.front();
  std::printf("\n%-36s %8s %8s %9s %9s %9s %9s %14s %10s %8s %8s\n", "side", "wall s", "CPU s",
              "GFLOP/s", "% f32 GE", "% bf16 GE", "% bf16 u", "gain", "rel. diff", "x wall",
              "x CPU");
  for (const Side& s : sides) {
    const double rate = flops / s.seconds / 1e9;
    std::printf("%-36s %8.2f %8.2f %9.1f %8.1f%% %8.1f%% %8.1f%% %14.6f %10.2e %7.2fx %7.2fx\n",
                s.name.c_str(), s.seconds, s.cpu, rate, 100 * rate / peak,
                bf16_gemm_peak > 0 ? 100 * rate / bf16_gemm_peak : 0.0,
                bf16_peak > 0 ? 100 * rate / bf16_peak : 0.0, s.gain,
                (s.gain - first.gain) / first.gain, s.seconds / first.seconds, s.cpu / first.cpu);
  }
  std::printf(
      "(%% f32 GE, %% bf16 GE, %% bf16 u: GFLOP/s over the measured float32 GEMM, bfloat16 GEMM "
      "and bfloat16 unit peaks; the bfloat16 kernels' work is bfloat16, the others' float32)\n");
  std::printf(
      "(x wall, x CPU: the side's time over the first row's; > 1 means the first is faster)\n");
  std::printf("\npeak RSS: process %.0f MB (data: %.0f MB); our search's growth %.0f MB",
              peak_rss_mb(), (nq + nb) * dim * 4.0 / (1 << 20), first.rss_mb);
  for (const Side& s : sides)
    if (s.name == "numpy brute force") std::printf("; numpy process %.0f MB", s.rss_mb);
  std::printf("\n");
  return 0;
}
