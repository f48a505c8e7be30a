#pragma once
// Inference attention for a few query rows per head, reading K/V where they lie (the KV cache's
// narrowed views) instead of going through libtorch's batched matmul and softmax.
//
// Why hand-written: libtorch 1.13's CPU bmm dispatches every (batch, head) matrix separately
// (a select, an as_strided and a tiny GEMM each: 384 of them per product at batch 32 with 12
// heads), which made the attention of a batch-32 decode step cost more than all its projections
// (bench/README.md, "Model decoding"). One parallel region here does scores, softmax and the
// weighted sum of V for every (batch, KV head) pair.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "core/cpu.h"

namespace metamath::model {

// True when attend_in_place() takes these tensors: CPU, strided, q/K/V all f32 or all bf16, unit
// stride along head_dim, and no autograd recording (grad mode off or nothing requires grad).
bool attend_in_place_applies(const at::Tensor& q, const at::Tensor& K, const at::Tensor& V);

// softmax(q K^T * scale, hidden keys excluded) V, per (batch, KV head), with Hugging Face's
// numerics: the scores are rounded to the model dtype (then scaled, then rounded again), the
// softmax runs in f32 and its probabilities are rounded to the model dtype, and the weighted sum
// accumulates in f32 before one rounding to the model dtype. Accumulation order differs from a
// BLAS product, so f32 results agree with one within rounding, not bit for bit.
//   q       [B, nkv, g*T, d]: the g query heads sharing a KV head folded into the rows (row r
//           is query position r % T);
//   K, V    [B, nkv, L, d], any strides with unit stride along d; or, with `rows`, the whole
//           cache [S, nkv, L, d] of which batch row b reads slot rows[b] (no gathered copy);
//   hidden  [B, T, L] bool: true where key j is hidden from query position t. A row with every
//           key hidden attends uniformly to all L keys (what a softmax over scores filled with
//           the dtype's lowest value gives).
// Returns [B, nkv, g*T, d], contiguous, in q's dtype.
at::Tensor attend_in_place(const at::Tensor& q, const at::Tensor& K, const at::Tensor& V,
                           const at::Tensor& hidden, int64_t T, double scale,
                           const std::vector<int64_t>& rows = {});

// The same kernel on raw pointers for one query position, for the fused decode step
// (model/decode.h), which calls it from inside its own parallel region: the g query rows of one
// KV head against that head's L cached keys, with attend_in_place's numerics.
struct AttendRows {
  const void* q = nullptr;  // [g, d] contiguous, model dtype (float or bf16 bits)
  const void* k = nullptr;  // key row j at k + j * ldk elements (unit stride along d)
  const void* v = nullptr;  // value row j at v + j * ldv
  int64_t ldk = 0, ldv = 0;
  const bool* hidden = nullptr;  // [L]: true where key j is hidden from the query
  int64_t g = 0, L = 0, d = 0;   // L >= 1
  float scale = 1;
  bool bf16 = false;    // model dtype bf16 (else float)
  Isa isa = Isa::avx2;  // attend_rows_isa(g), read once per step so every thread takes one path
  void* out = nullptr;  // [g, d] contiguous, model dtype
};
Isa attend_rows_isa(int64_t g);
// Floats of scratch attend_rows needs.
int64_t attend_rows_scratch(int64_t g, int64_t L, int64_t d);
void attend_rows(const AttendRows& a, float* scratch);

}  // namespace metamath::model
