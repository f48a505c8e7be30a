#include "model/linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/cpu.h"
#include "model/linear_kernel.h"

namespace metamath::model {

namespace {

// Up to this many rows the AVX2 kernel (model/linear_kernel.cpp) beats libtorch on this CPU
// (measured on 2 Zen 3 cores: see bench/README.md, "Model decoding").
constexpr int64_t kKernelMaxRows = 64;
// Widened f32 copies of a bf16 weight are made in column chunks of at most this many elements.
constexpr int64_t kWidenChunk = int64_t{8} << 20;

std::vector<int64_t> out_shape(const at::Tensor& x, int64_t n) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = n;
  return shape;
}

// x as [M, K] float rows with unit stride along K (a view when possible, else a copy).
at::Tensor float_rows(const at::Tensor& x, int64_t M, int64_t K) {
  at::Tensor x2 = x.reshape({M, K});
  if (x2.scalar_type() != at::kFloat) return x2.to(at::kFloat).contiguous();
  if (x2.stride(1) != 1 && K > 1) return x2.contiguous();
  return x2;
}

// The `isa` kernel (avx2 or avx512) over all rows, output columns split across
// at::get_num_threads() threads.
at::Tensor kernel_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t M,
                         int64_t K, int64_t N, Isa isa) {
  at::Tensor xf = float_rows(x, M, K);
  at::Tensor y = at::empty({M, N}, x.options());
  kernels::GemmNT a;
  a.x = xf.data_ptr<float>();
  a.ldx = M > 1 ? xf.stride(0) : K;
  a.M = M;
  a.K = K;
  a.N = N;
  a.w = w.data_ptr();
  a.w_bf16 = w.scalar_type() == at::kBFloat16;
  a.b = b.defined() ? b.data_ptr() : nullptr;
  a.y = y.data_ptr();
  a.ldy = N;
  a.y_bf16 = y.scalar_type() == at::kBFloat16;
  // Output columns in chunks claimed dynamically by the at::parallel_for threads, so a thread
  // that starts late (a busy machine) takes fewer chunks instead of leaving a fixed half for the
  // others to wait on. At least ~64K multiply-adds per chunk; a multiple of 24 columns (the
  // kernel's tile widths 3, 6 and 8); ~8 chunks per thread for balance.
  const int64_t threads = at::in_parallel_region() ? 1 : std::max(1, at::get_num_threads());
  const int64_t min_cols = (int64_t{1} << 16) / std::max<int64_t>(1, M * K) + 1;
  int64_t chunk = std::max(min_cols, (N + threads * 8 - 1) / (threads * 8));
  chunk = (chunk + 23) / 24 * 24;
  const int64_t nchunks = (N + chunk - 1) / chunk;
  if (threads == 1 || nchunks == 1) {
    kernels::gemm_nt_columns(a, isa, 0, N);
  } else {
    std::atomic<int64_t> next{0};
    at::parallel_for(0, std::min(threads, nchunks), 1, [&](int64_t, int64_t) {
      for (int64_t c = next++; c < nchunks; c = next++)
        kernels::gemm_nt_columns(a, isa, c * chunk, std::min(N, (c + 1) * chunk));
    });
  }
  return y.view(out_shape(x, N));
}

// bf16 weights, many rows (or no vector kernel): libtorch 1.13's bf16 GEMM has no AVX2 kernel, so
// widen the weight to f32 (in column chunks), multiply in f32 (BLAS), and round the result to bf16.
at::Tensor widened_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t M,
                          int64_t K, int64_t N) {
  at::Tensor xf = float_rows(x, M, K);
  const int64_t cols = std::max<int64_t>(1, kWidenChunk / K);
  std::vector<at::Tensor> parts;
  for (int64_t n0 = 0; n0 < N; n0 += cols) {
    const int64_t nc = std::min(cols, N - n0);
    at::Tensor wf = w.narrow(0, n0, nc).to(at::kFloat);
    parts.push_back(b.defined() ? at::addmm(b.narrow(0, n0, nc).to(at::kFloat), xf, wf.t())
                                : at::mm(xf, wf.t()));
  }
  at::Tensor y = parts.size() == 1 ? parts[0] : at::cat(parts, 1);
  return y.to(x.scalar_type()).view(out_shape(x, N));
}

bool fast_dtype(at::ScalarType t) { return t == at::kFloat || t == at::kBFloat16; }

}  // namespace

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  // Fast paths: CPU, f32/bf16 (x, w, b all one dtype), plain [out, in] weight, and no autograd
  // recording (training and LoRA keep at::linear so backward works).
  const bool recorded = at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() ||
                                                       (b.defined() && b.requires_grad()));
  if (!recorded && x.is_cpu() && w.is_cpu() && x.layout() == at::kStrided &&
      w.layout() == at::kStrided && fast_dtype(w.scalar_type()) &&
      x.scalar_type() == w.scalar_type() && w.dim() == 2 && w.is_contiguous() && x.dim() >= 1 &&
      x.size(-1) == w.size(1) &&
      (!b.defined() ||
       (b.is_cpu() && b.layout() == at::kStrided && b.scalar_type() == w.scalar_type() &&
        b.dim() == 1 && b.size(0) == w.size(0) && b.is_contiguous()))) {
    const int64_t K = w.size(1), N = w.size(0);
    const int64_t M = K > 0 ? x.numel() / K : 0;
    if (M > 0 && K > 0 && N > 0) {
      const Isa isa = kernel_isa();  // once per product: every thread takes the same path
      if (isa != Isa::scalar && M <= kKernelMaxRows) return kernel_linear(x, w, b, M, K, N, isa);
      // bf16 otherwise (many rows, or no vector kernel): libtorch's own bf16 linear is slow
      // without AVX-512 and, for strided or 3-d inputs, several bf16 ulps off.
      if (w.scalar_type() == at::kBFloat16) return widened_linear(x, w, b, M, K, N);
      if (isa == Isa::scalar && M == 1) {
        // No vector kernel: a single f32 row still goes through a matrix-vector product (BLAS
        // gemm with one row packs the whole weight before using it once, ~3x slower).
        at::Tensor y = at::mv(w, x.reshape({-1}));
        if (b.defined()) y = y + b;
        return y.view(out_shape(x, N));
      }
    }
  }
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

}  // namespace metamath::model
