#pragma once
// The small-M matrix product behind model::linear() (internal to src/model/; no torch here):
// y[m, n] = s[n] * sum_k x[m, k] * w[n, k] (+ b[n]) with f32 accumulation, for weights stored
// [N, K] row-major as f32, bf16, or int8 with a per-row scale s (weight-only quantization, s = 1
// otherwise), f32 (or, for the bf16-dot tiles, bf16) activations, f32 or bf16 output. Three tile
// sets (Tiles below): AVX2 + FMA and AVX-512 (F/BW/VL/DQ), which widen the weights to f32 in
// registers, and AVX512_BF16, which multiplies bf16 activations by bf16 weights with vdpbf16ps
// (each product exact in f32, pairs summed in f32). There is no scalar version: without AVX2,
// model::linear() uses libtorch instead.
#include <cstdint>

#include "core/cpu.h"

namespace metamath::model::kernels {

enum class WeightType { f32, bf16, i8 };

enum class Tiles {
  avx2,         // needs kernel_isa() >= avx2
  avx512,       // needs kernel_isa() == avx512
  avx512_bf16,  // needs kernel_isa() == avx512 and cpu_has_avx512_bf16(); bf16 x and w only
};

struct GemmNT {
  const void* x = nullptr;  // [M, K] float (bf16 raw bits for Tiles::avx512_bf16), row m at
  int64_t ldx = 0;          // x + m * ldx elements (unit stride along K)
  int64_t M = 0, K = 0, N = 0;
  const void* w = nullptr;  // [N, K] contiguous: float, bf16 (raw uint16 bits) or int8
  WeightType w_type = WeightType::f32;
  const float* w_scale = nullptr;  // [N] for int8 weights, else null
  const void* b = nullptr;         // [N] or null: float, or bf16 when b_bf16
  bool b_bf16 = false;
  void* y = nullptr;  // [M, N], row m at y + m * ldy; float, or bf16 rounded to nearest even
  int64_t ldy = 0;
  bool y_bf16 = false;
};

// Computes the output columns [n0, n1) for every row (one thread's share) with `tiles`, which
// the CPU must support (read kernel_isa() once per product so that every thread takes the same
// path). Weights are read from memory once per call when M * K * 4 bytes fit the per-core L2
// budget (rows are processed in blocks otherwise).
void gemm_nt_columns(const GemmNT& a, Tiles tiles, int64_t n0, int64_t n1);

}  // namespace metamath::model::kernels
