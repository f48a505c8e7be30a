// The int8-dot candidates of model::linear (--dtype q8-dot: activations quantized to int8 blocks
// of 32, int8 weights) side by side on prefill and batched-decode shapes: the AMX-INT8 tiles
// (amx-int8, src/model/amx_kernel.h) against the AVX512_VNNI tiles (avx512-vnni) and the AVX2 ones
// (avx2-i8dot), each through model::linear_using (so the activation quantization and packing
// are included), candidates interleaved within each round, best of N rounds. Enough distinct
// weights (>= 64 MiB) that each call reads its weight from memory, as a model's forward pass does.
// Prints GMAC/s (multiply-adds per second) of each, the ratio to avx512-vnni, and the process CPU
// time over the wall time of the whole run (a loaded machine shows up as CPU < threads x wall).
//
//   build/bench/q8dot_bench [THREADS...]   (default: 1 2)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "model/linear.h"

namespace {

namespace mm = metamath::model;
using Clock = std::chrono::steady_clock;

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

void q8dot_case(int64_t M, int64_t K, int64_t N, int rounds) {
  c10::InferenceMode guard;
  const int64_t count = std::max<int64_t>(2, (int64_t{64} << 20) / (K * N));
  std::vector<mm::QuantizedWeight> weights;
  for (int64_t i = 0; i < count; ++i) weights.push_back(mm::quantize_q8(at::randn({N, K})));
  const at::Tensor x = at::randn({M, K});
  std::vector<std::string> names;
  for (const std::string& n :
       mm::linear_candidates(x, weights[0].q, {}, weights[0].scale, /*int8_activations=*/true))
    if (mm::quantizes_activations(n)) names.push_back(n);
  std::vector<double> best(names.size(), 1e30);
  const double wall0 = std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
  const double cpu0 = cpu_seconds();
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < names.size(); ++i) {
      const auto t0 = Clock::now();
      for (const auto& w : weights) (void)mm::linear_using(names[i], x, w.q, {}, w.scale, true);
      best[i] = std::min(best[i], std::chrono::duration<double>(Clock::now() - t0).count());
    }
  const double wall =
      std::chrono::duration<double>(Clock::now().time_since_epoch()).count() - wall0;
  const double cpu = cpu_seconds() - cpu0;
  const double gmac = 1e-9 * M * K * N * count;
  double vnni = 0;
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == "avx512-vnni") vnni = best[i];
  std::printf("t%d M %4ld K %4ld N %4ld:", at::get_num_threads(), M, K, N);
  for (size_t i = 0; i < names.size(); ++i) {
    std::printf("  %s %6.1f GMAC/s", names[i].c_str(), gmac / best[i]);
    if (vnni > 0) std::printf(" (%.2fx)", vnni / best[i]);
  }
  std::printf("  [cpu %.2f s / wall %.2f s]\n", cpu, wall);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> threads;
  for (int i = 1; i < argc; ++i) threads.push_back(std::stoi(argv[i]));
  if (threads.empty()) threads = {1, 2};
  std::printf("q8dot_bench; CPU: %s; flags: %s\n", metamath::cpu_model_name().c_str(),
              metamath::cpu_flags_line().c_str());
  for (int t : threads) {
    at::set_num_threads(t);
    for (int64_t M : {32, 128}) {
      q8dot_case(M, 768, 768, 7);
      q8dot_case(M, 768, 2048, 7);
    }
  }
  return 0;
}
