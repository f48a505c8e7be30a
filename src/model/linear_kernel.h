#pragma once
// The small-M matrix product behind model::linear() (internal to src/model/; no torch here):
// y[m, n] = sum_k x[m, k] * w[n, k] (+ b[n]) with f32 accumulation, for f32 or bf16 weights
// stored [N, K] row-major, f32 activations, f32 or bf16 output. Vector code for two instruction
// sets (core/cpu.h): AVX2 + FMA, and AVX-512 (F/BW/VL/DQ). There is no scalar version: with
// kernel_isa() == scalar, model::linear() uses libtorch instead.
#include <cstdint>

#include "core/cpu.h"

namespace metamath::model::kernels {

struct GemmNT {
  const float* x = nullptr;  // [M, K], row m at x + m * ldx (unit stride along K)
  int64_t ldx = 0;
  int64_t M = 0, K = 0, N = 0;
  const void* w = nullptr;  // [N, K] contiguous, float or bf16 (raw uint16 bits)
  bool w_bf16 = false;
  const void* b = nullptr;  // [N], same dtype as w, or null
  void* y = nullptr;        // [M, N], row m at y + m * ldy; float, or bf16 rounded to nearest even
  int64_t ldy = 0;
  bool y_bf16 = false;
};

// Computes the output columns [n0, n1) for every row (one thread's share) with the `isa` tiles
// (Isa::avx2 or Isa::avx512, which the CPU must have: pass kernel_isa(), read once per product so
// that every thread takes the same path). Weights are read from memory once per call when
// M * K * 4 bytes fit the per-core L2 budget (rows are processed in blocks otherwise).
void gemm_nt_columns(const GemmNT& a, Isa isa, int64_t n0, int64_t n1);

}  // namespace metamath::model::kernels
