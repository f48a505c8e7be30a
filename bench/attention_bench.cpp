// attention_bench: model::attend_in_place() (src/model/attention.h) against the batched-matmul
// path Model::run uses otherwise (q·Kᵀ with at::matmul, ATen's fused masked softmax, ·V), on the
// KV cache's narrowed views, for T query positions per head after `--past` cached positions.
// It sets kInPlaceMaxRows in src/model/model.cpp: the largest g×T at which the in-place kernel
// still wins.
//
//   attention_bench [--threads N] [--batch 32] [--heads 12] [--head-dim 64] [--past 128]
//                   [--rows 1,2,4,8,16,32,64,128] [--repeats 15]
//
// Each point: one warm-up call of each, then --repeats alternating calls; the best time of each.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "model/attention.h"

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void usage(const std::string& msg, int code = 2) {
  (code ? std::cerr : std::cout)
      << (msg.empty() ? "" : "attention_bench: " + msg + "\n")
      << "usage: attention_bench [--threads N] [--batch B] [--heads H] [--head-dim D]\n"
         "                       [--past P] [--rows 1,2,4,...] [--repeats N]\n"
         "Times model::attend_in_place against the at::matmul + masked softmax path for T query\n"
         "rows per head after P cached positions (causal mask), on narrowed cache views.\n";
  std::exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, repeats = 15;
  int64_t B = 32, H = 12, d = 64, past = 128;
  std::vector<int64_t> rows = {1, 2, 4, 8, 16, 32, 64, 128};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value for " + a);
      return argv[++i];
    };
    try {
      if (a == "--threads")
        threads = std::stoi(next());
      else if (a == "--batch")
        B = std::stoll(next());
      else if (a == "--heads")
        H = std::stoll(next());
      else if (a == "--head-dim")
        d = std::stoll(next());
      else if (a == "--past")
        past = std::stoll(next());
      else if (a == "--repeats")
        repeats = std::max(1, std::stoi(next()));
      else if (a == "--rows") {
        rows.clear();
        std::string s = next();
        for (std::size_t p = 0; p <= s.size();) {
          const std::size_t q = std::min(s.find(',', p), s.size());
          rows.push_back(std::stoll(s.substr(p, q - p)));
          p = q + 1;
        }
      } else if (a == "--help" || a == "-h")
        usage("", 0);
      else
        usage("unknown flag " + a);
    } catch (const std::logic_error&) {
      usage("bad number in " + a);
    }
  }
  if (B < 1 || H < 1 || d < 1 || past < 0) usage("sizes must be positive");
  for (auto r : rows)
    if (r < 1) usage("--rows must be >= 1");
  if (threads > 0) at::set_num_threads(threads);
  c10::InferenceMode guard;
  at::manual_seed(1);
  const int64_t max_t = *std::max_element(rows.begin(), rows.end());
  const int64_t cap = past + max_t + 64;  // the cache's max length: K/V are narrowed views
  at::Tensor ck = at::randn({B, H, cap, d}), cv = at::randn({B, H, cap, d});
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::printf(
      "attention_bench: batch %ld, %ld heads, head_dim %ld, %ld cached positions, %d "
      "threads, f32, best of %d\n\n",
      static_cast<long>(B), static_cast<long>(H), static_cast<long>(d), static_cast<long>(past),
      at::get_num_threads(), repeats);
  std::printf(
      "| rows T | keys L | in place ms | matmul path ms | matmul / in place |\n"
      "|---:|---:|---:|---:|---:|\n");
  for (int64_t T : rows) {
    const int64_t L = past + T;
    at::Tensor K = ck.narrow(2, 0, L), V = cv.narrow(2, 0, L);
    at::Tensor q = at::randn({B, H, T, d});
    // Causal: query t (position past + t) sees keys 0..past + t.
    at::Tensor hidden = (at::arange(L).view({1, 1, L}) > (at::arange(T) + past).view({1, T, 1}))
                            .expand({B, T, L})
                            .contiguous();
    auto in_place = [&] { return metamath::model::attend_in_place(q, K, V, hidden, T, scale); };
    auto matmul_path = [&] {
      at::Tensor s = at::matmul(q, K.transpose(-1, -2)) * scale;
      at::Tensor p = at::_masked_softmax(s, hidden.view({B, 1, T, L}).expand(s.sizes()), 3, 2);
      return at::matmul(p, V);
    };
    const double err = (in_place() - matmul_path()).abs().max().item<double>();
    if (!(err < 1e-3)) {
      std::fprintf(stderr, "attention_bench: the two paths disagree by %g at T=%ld\n", err,
                   static_cast<long>(T));
      return 1;
    }
    double best_a = 1e30, best_b = 1e30;
    for (int r = 0; r < repeats; ++r) {
      auto t0 = Clock::now();
      in_place();
      best_a = std::min(best_a, std::chrono::duration<double>(Clock::now() - t0).count());
      t0 = Clock::now();
      matmul_path();
      best_b = std::min(best_b, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::printf("| %ld | %ld | %.2f | %.2f | %.2f |\n", static_cast<long>(T), static_cast<long>(L),
                best_a * 1e3, best_b * 1e3, best_b / best_a);
  }
  return 0;
}
