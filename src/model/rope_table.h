#pragma once
// RoPE's cos and sin by position, kept for the fused decode step (model/decode.h), which then
// copies its rows' rows instead of building them through ~8 libtorch ops every step.
//
// Exactness: every value is the one rope_cos_sin (model/model.h) gives a decode step of up to
// kMaxElements values (head_dim x rows), rounded to the model dtype and widened to float. The
// table is filled by rope_cos_sin itself, a few whole positions per call. libtorch computes cos
// and sin with SLEEF's vector functions, which pick their argument reduction per vector (a slower,
// differently rounded one when any lane is 125 or more), so a value can depend on the other
// values in its vector: a row of the table equals the row of a step's call only when both calls
// put the same columns of that position into each vector. Both do when head_dim is a multiple of
// 16 (the widest vector, AVX-512) and each call is one contiguous run of at most kMaxElements
// values (libtorch splits only larger ones across threads), so rows_exact() holds only then; the
// fused step computes the other steps as before. tests/model/rope_table_test.cpp checks every
// position of realistic tables against one-position and several-row calls.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace metamath::model {

class RopeTable {
 public:
  // The largest call (rows x head_dim values) whose rows the table reproduces.
  static constexpr int64_t kMaxElements = 2048;

  // inv_freq: [head_dim / 2] float32 on the CPU (rope_inv_freq's); dtype: the model's.
  RopeTable(const at::Tensor& inv_freq, at::ScalarType dtype);

  // Whether rows() equals rope_cos_sin for a call of `rows` positions (see above).
  bool rows_exact(int64_t rows) const;
  // cos and sin of each of the n positions (>= 0; head_dim floats per position, in order) as
  // rope_cos_sin(pos, inv_freq, dtype) gives them, widened to float; the table grows to cover
  // the largest position. Thread-safe.
  void rows(const int64_t* positions, int64_t n, float* cos, float* sin);

  bool matches(const at::Tensor& inv_freq, at::ScalarType dtype) const;
  int64_t head_dim() const { return d_; }

 private:
  void grow_to(int64_t positions);

  std::vector<float> inv_freq_;
  at::Tensor inv_freq_tensor_;
  at::ScalarType dtype_;
  int64_t d_ = 0;
  std::mutex mu_;
  int64_t positions_ = 0;  // rows filled
  std::vector<float> cos_, sin_;
};

// The process's table for this inv_freq and dtype (the last few asked for are kept).
std::shared_ptr<RopeTable> rope_table(const at::Tensor& inv_freq, at::ScalarType dtype);

}  // namespace metamath::model
