// Weight-only int8 (q8) products with f32 activations: the "amx-bf16x3" candidate (AMX bf16 tiles,
// x split into three bf16 planes; src/model/amx_split_kernel.h) against the "avx512" tiles (int8
// widened to f32, f32 FMA) and "widened" (int8 -> f32, then libtorch's f32 GEMM), through
// model::linear_using at M = 32 and 512 rows on the 134M model's shapes. Prints GFLOP/s (2 M N K
// per product) by wall time and by process CPU time, and amx-bf16x3's ratio to avx512.
//   amx_split_bench [--threads T] [--seconds S]   (defaults: 2 threads, 0.5 s per candidate)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "model/linear.h"

namespace mm = metamath::model;

namespace {

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

struct Rate {
  double wall_gflops = 0, cpu_gflops = 0;
};

// Runs the candidate for about `seconds` (after one warm-up call); the best of 3 rounds' rates.
Rate measure(const std::string& name, const at::Tensor& x, const mm::QuantizedWeight& q,
             double seconds) {
  const double flop = 2.0 * static_cast<double>(x.size(0) * q.q.size(0) * q.q.size(1));
  mm::linear_using(name, x, q.q, {}, q.scale);
  Rate best;
  for (int round = 0; round < 3; ++round) {
    int64_t calls = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    double wall = 0;
    while (wall < seconds / 3) {
      mm::linear_using(name, x, q.q, {}, q.scale);
      ++calls;
      wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    const double cpu = cpu_seconds() - c0;
    best.wall_gflops = std::max(best.wall_gflops, flop * calls / wall * 1e-9);
    best.cpu_gflops = std::max(best.cpu_gflops, flop * calls / cpu * 1e-9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  double seconds = 0.5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
  }
  at::set_num_threads(threads);
  c10::InferenceMode guard;
  at::manual_seed(1);
  struct Shape {
    int64_t K, N;
  };
  const std::vector<Shape> shapes = {{768, 768}, {768, 2048}, {2048, 768}};
  std::printf("q8 (int8 weights, f32 activations), %d threads; GFLOP/s wall (cpu)\n", threads);
  for (int64_t M : {32, 512})
    for (const Shape& s : shapes) {
      const mm::QuantizedWeight q = mm::quantize_q8(at::randn({s.N, s.K}) * 0.02);
      const at::Tensor x = at::randn({M, s.K});
      const std::vector<std::string> listed = mm::linear_candidates(x, q.q, {}, q.scale);
      auto has = [&](const char* n) {
        return std::find(listed.begin(), listed.end(), n) != listed.end();
      };
      std::printf("M %4ld K %4ld N %4ld:", M, s.K, s.N);
      Rate avx512, amx;
      for (const char* name : {"avx512", "widened", "amx-bf16x3"}) {
        if (!has(name)) {
          std::printf("  %s n/a", name);
          continue;
        }
        const Rate r = measure(name, x, q, seconds);
        if (!std::strcmp(name, "avx512")) avx512 = r;
        if (!std::strcmp(name, "amx-bf16x3")) amx = r;
        std::printf("  %s %7.1f (%7.1f)", name, r.wall_gflops, r.cpu_gflops);
      }
      if (avx512.wall_gflops > 0 && amx.wall_gflops > 0)
        std::printf("  amx/avx512 %.2fx", amx.wall_gflops / avx512.wall_gflops);
      std::printf("\n");
      std::fflush(stdout);
    }
  return 0;
}
