// Our hand-written kernels side by side at each instruction-set level (src/core/cpu.h): the small-M
// GEMM behind model::linear, in-place attention, the fused AdamW step and the grad-norm sum of
// squares, each timed with kernels capped at AVX2 and at AVX-512 in the same process (levels
// interleaved, best of N rounds), printing both rates and the avx512 / avx2 speed ratio. This is
// the measurement behind which AVX-512 paths exist (bench/README.md, "AVX-512 kernel paths");
// rerun it on each CPU family rather than trusting one machine's numbers.
//
//   build/bench/isa_bench [all|linear|attention|optim] [THREADS=2]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "model/attention.h"
#include "model/linear.h"
#include "train/optim.h"

namespace {

using metamath::Isa;
using Clock = std::chrono::steady_clock;

const Isa kLevels[] = {Isa::avx2, Isa::avx512};

// Best time of `rounds` calls of f at each level, levels interleaved within each round.
template <typename F>
std::array<double, 2> best_of(int rounds, F f) {
  std::array<double, 2> best{1e30, 1e30};
  for (int r = 0; r < rounds; ++r)
    for (int l = 0; l < 2; ++l) {
      metamath::ScopedIsaLimit limit(kLevels[l]);
      const auto t0 = Clock::now();
      f();
      best[l] = std::min(best[l], std::chrono::duration<double>(Clock::now() - t0).count());
    }
  return best;
}

const char* dtype_name(at::ScalarType t) { return t == at::kFloat ? "f32" : "bf16"; }

void linear_case(at::ScalarType t, int64_t M, int64_t K, int64_t N) {
  c10::InferenceMode guard;
  // Enough distinct weights (>= 256 MiB) that each call streams its weight from memory.
  const int64_t bytes = K * N * (t == at::kFloat ? 4 : 2);
  const int64_t count = std::max<int64_t>(2, (int64_t{256} << 20) / bytes);
  std::vector<at::Tensor> weights;
  for (int64_t i = 0; i < count; ++i) weights.push_back(at::randn({N, K}).to(t));
  const at::Tensor x = at::randn({M, K}).to(t);
  const auto best = best_of(7, [&] {
    for (const auto& w : weights) (void)metamath::model::linear(x, w, at::Tensor());
  });
  const double gflop = 2e-9 * M * K * N * count;
  std::printf("linear %-4s %3ld x %4ld -> %4ld: avx2 %6.1f GFLOP/s, avx512 %6.1f GFLOP/s, %.2fx\n",
              dtype_name(t), M, K, N, gflop / best[0], gflop / best[1], best[0] / best[1]);
}

void attention_case(at::ScalarType t, int64_t B, int64_t H, int64_t d, int64_t past, int64_t T,
                    int rounds) {
  c10::InferenceMode guard;
  const int64_t L = past + T;
  const at::Tensor q = at::randn({B, H, T, d}).to(t), K = at::randn({B, H, L, d}).to(t),
                   V = at::randn({B, H, L, d}).to(t);
  const at::Tensor hidden =
      at::ones({L, L}, at::kBool).triu(1).narrow(0, past, T).unsqueeze(0).expand({B, T, L});
  const at::Tensor mask = hidden.contiguous();
  const auto best = best_of(rounds, [&] {
    (void)metamath::model::attend_in_place(q, K, V, mask, T, 1.0 / std::sqrt(double(d)));
  });
  std::printf(
      "attention %-4s B %ld H %ld d %ld past %ld T %ld: avx2 %.3f ms, avx512 %.3f ms, %.2fx\n",
      dtype_name(t), B, H, d, past, T, best[0] * 1e3, best[1] * 1e3, best[0] / best[1]);
}

void optim_case(int64_t n, int rounds) {
  metamath::model::NamedTensors params;
  for (int i = 0; i < 8; ++i) {
    at::Tensor p = at::randn({n / 8}).requires_grad_(true);
    p.mutable_grad() = at::randn({n / 8});
    params.emplace_back("p" + std::to_string(i), p);
  }
  metamath::train::AdamW opt(params, {});
  const auto step = best_of(rounds, [&] { opt.step(1e-5, 0.5); });
  double sink = 0;
  const auto norm = best_of(rounds, [&] { sink += metamath::train::grad_norm(params); });
  std::printf("adamw %9ld params: avx2 %.2f ms, avx512 %.2f ms, %.2fx (%.1f GB/s, 28 B/param)\n", n,
              step[0] * 1e3, step[1] * 1e3, step[0] / step[1], 28e-9 * n / step[1]);
  std::printf("grad_norm %5ld params: avx2 %.2f ms, avx512 %.2f ms, %.2fx%s\n", n, norm[0] * 1e3,
              norm[1] * 1e3, norm[0] / norm[1], sink == 42 ? " " : "");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "all";
  const int threads = argc > 2 ? std::stoi(argv[2]) : 2;
  at::set_num_threads(threads);
  std::printf("isa_bench %s %d; CPU flags: %s\n", what.c_str(), threads,
              metamath::cpu_flags_line().c_str());
  if (metamath::cpu_isa() != Isa::avx512) {
    std::printf("this CPU has no AVX-512 (F/BW/VL/DQ): only the AVX2 paths exist here\n");
    return 0;
  }
  if (what == "all" || what == "linear")
    for (auto t : {at::kFloat, at::kBFloat16})
      for (int64_t M : {1, 4, 32, 64}) {
        linear_case(t, M, 768, 2048);
        linear_case(t, M, 2048, 768);
      }
  if (what == "all" || what == "attention")
    for (auto t : {at::kFloat, at::kBFloat16}) {
      attention_case(t, 32, 12, 64, 128, 1, 15);  // decode: one query row per head
      attention_case(t, 32, 12, 64, 128, 32, 9);
      attention_case(t, 32, 12, 64, 0, 128, 7);
      attention_case(t, 8, 8, 128, 0, 128, 7);
    }
  if (what == "all" || what == "optim") {
    optim_case(int64_t{8} << 20, 7);     // 8M parameters: 224 MB touched per step
    optim_case(int64_t{64} << 10, 200);  // 64K parameters: cache-resident
  }
  return 0;
}
