// diversity_bench: the exact nearest-neighbour search of `metamath diversity` against FAISS
// IndexFlatL2 and a NumPy brute force, on the same random data.
//
// Data: NEW x DIM and BASE x DIM float32 standard-normal vectors (default: the paper's scale with
// OpenAI-sized embeddings, 395,000 x 15,000 x 1,536). Each side computes, for every new vector, the
// minimum squared L2 distance to the base set, and the mean of those minima (the diversity gain):
//
//   ours    analysis::nearest_sq_l2: blocked float32 GEMM (libtorch -> OpenBLAS) streamed over the
//           new vectors, every candidate within the float32 error bound re-checked in float64
//           (exact minima); and the same without the re-check (float32 values, as FAISS returns);
//   faiss   faiss::IndexFlatL2::search with k = 1 (libfaiss-dev; its BLAS path for nq > 20);
//   numpy   bench/reference/diversity_numpy.py under /usr/bin/python3 (float32 GEMM per block of
//           4096, then min), reading the data from raw files.
//
// Reported per side: seconds, the GEMM work (2 * NEW * BASE * DIM FLOPs) as GFLOP/s and as a share
// of the GEMM peak measured in this process (best of at::mm at 4096 x 1536 x 8192 and 4096^3, same
// threads, in every round), the gain and its relative difference from ours, and peak RSS (ours: the
// growth of ru_maxrss during our search, over the data that all sides share; numpy: its own
// process).
//
//   diversity_bench [--new 395000] [--base 15000] [--dim 1536] [--query-block 0] [--base-block 0]
//                   [--no-faiss] [--no-numpy] [--no-float32] [--python /usr/bin/python3]
//                   [--dir /tmp] [--threads N] [--repeats 1]
//
// --repeats N runs ours and FAISS N times, interleaved (the machine may be shared), and keeps each
// side's best time. --threads sets libtorch's threads (default: the cores); OpenBLAS and FAISS's
// OpenMP use their own defaults (all cores).
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
#include <string>
#include <thread>

#include "analysis/diversity.h"
#include "core/cpu.h"
#include "core/jsonl.h"

#ifdef METAMATH_HAVE_FAISS
#include <faiss/IndexFlat.h>
#endif

namespace fs = std::filesystem;
namespace ma = metamath::analysis;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// Best at::mm rate (GFLOP/s) over the shapes the search uses and a square one.
double measure_gemm_peak(int64_t dim) {
  double best = 0;
  for (auto [m, n, k] :
       {std::tuple<int64_t, int64_t, int64_t>{4096, 8192, dim}, {4096, 4096, 4096}}) {
    at::Tensor a = at::randn({m, k}), b = at::randn({n, k}), c = at::empty({m, n});
    at::mm_out(c, a, b.t());  // warm-up
    for (int r = 0; r < 3; ++r) {
      const double t0 = now_s();
      at::mm_out(c, a, b.t());
      best = std::max(best, 2.0 * m * n * k / (now_s() - t0) / 1e9);
    }
  }
  return best;
}

struct Side {
  std::string name;
  double seconds = 0, gain = 0, rss_mb = 0, last = 0;  // best and last time
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
  f32.recheck = false;
  Side ours{"metamath (exact)"}, rough{"metamath (float32 only)"}, flat{"faiss IndexFlatL2"};
  ma::Nearest exact;
  auto best_of = [](Side& side, double seconds, double gain) {
    side.seconds = side.ran ? std::min(side.seconds, seconds) : seconds;
    side.last = seconds;
    side.gain = gain;
    side.ran = true;
  };
  double peak = 0;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const double rss0 = peak_rss_mb();
    double t0 = now_s();
    exact = ma::nearest_sq_l2(fresh.data_ptr<float>(), nq, base.data_ptr<float>(), nb, dim, no);
    best_of(ours, now_s() - t0, mean(exact.dist2));
    ours.rss_mb = std::max(ours.rss_mb, peak_rss_mb() - rss0);
    if (float32) {
      t0 = now_s();
      ma::Nearest f =
          ma::nearest_sq_l2(fresh.data_ptr<float>(), nq, base.data_ptr<float>(), nb, dim, f32);
      best_of(rough, now_s() - t0, mean(f.dist2));
    }
#ifdef METAMATH_HAVE_FAISS
    if (faiss) {
      faiss::IndexFlatL2 index(dim);
      t0 = now_s();
      index.add(nb, base.data_ptr<float>());
      std::vector<float> D(static_cast<std::size_t>(nq));
      std::vector<faiss::Index::idx_t> I(static_cast<std::size_t>(nq));
      index.search(nq, fresh.data_ptr<float>(), 1, D.data(), I.data());
      best_of(flat, now_s() - t0, mean(std::vector<double>(D.begin(), D.end())));
      int64_t same = 0;
      for (int64_t i = 0; i < nq; ++i) same += I[i] == exact.index[i];
      std::printf("  (faiss: same nearest index as ours for %.4f%% of the new vectors)\n",
                  100.0 * static_cast<double>(same) / static_cast<double>(nq));
    }
#endif
    // Each round (the machine may be shared: the best of every round is the peak), and after
    // our search, so that ru_maxrss growth during ours is ours (these operands are bigger).
    peak = std::max(peak, measure_gemm_peak(dim));
    std::printf(
        "  round %d: ours %.2f s, float32 only %.2f s, faiss %.2f s, GEMM peak so far %.0f "
        "GFLOP/s\n",
        r + 1, ours.last, rough.last, flat.last, peak);
  }
#ifndef METAMATH_HAVE_FAISS
  if (faiss) std::printf("  (faiss: not built in; install libfaiss-dev and reconfigure)\n");
#endif
  std::printf("  (re-checked %lld candidate pairs, %lld rows rescanned)\n",
              static_cast<long long>(exact.candidates), static_cast<long long>(exact.rescanned));
  std::printf("measured GEMM peak (at::mm, f32, best of every round): %.1f GFLOP/s\n", peak);
  for (const Side* s : {&ours, &rough, &flat})
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
      sides.push_back({"numpy brute force", j["seconds"], j["gain"], j["peak_rss_mb"], true});
    }
  }

  std::printf("\n%-26s %10s %10s %9s %12s %12s %12s\n", "side", "seconds", "GFLOP/s", "% peak",
              "gain", "rel. diff", "ours faster");
  for (const Side& s : sides) {
    const double rate = flops / s.seconds / 1e9;
    std::printf("%-26s %10.2f %10.1f %8.1f%% %12.6f %12.2e %11.2fx\n", s.name.c_str(), s.seconds,
                rate, 100 * rate / peak, s.gain, (s.gain - ours.gain) / ours.gain,
                s.seconds / ours.seconds);
  }
  std::printf("\npeak RSS: process %.0f MB (data: %.0f MB); our search's growth %.0f MB",
              peak_rss_mb(), (nq + nb) * dim * 4.0 / (1 << 20), ours.rss_mb);
  for (const Side& s : sides)
    if (s.name == "numpy brute force") std::printf("; numpy process %.0f MB", s.rss_mb);
  std::printf("\n");
  return 0;
}
