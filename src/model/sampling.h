#pragma once
// Next-token selection: greedy, or temperature + top-k + top-p (nucleus) sampling from a
// per-sequence seeded generator, so a sequence's samples do not depend on what else is in the
// batch.
#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace metamath::model {

// Greedy choice: the index of the largest of x[0, n) exactly as libtorch 1.13's at::argmax picks
// it: the first NaN when there is one, else the first of the largest values (-0.0 and 0.0 tie,
// -inf everywhere gives 0). n >= 1. Vector code under kernel_isa() (core/cpu.h): at::argmax's
// scalar pair-reduction took ~120 us of each decode step over a 32000-token vocabulary.
int64_t argmax(const float* x, int64_t n);
// The greedy token of each row of logits (the last dimension is the vocabulary; rows in order):
// logits.argmax(-1) read out, through argmax() above for a contiguous CPU float32 tensor (a
// decode step's logits), else through libtorch (which also reports an empty vocabulary).
std::vector<int64_t> greedy_tokens(const at::Tensor& logits);

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  float top_p = 1.0f;        // keep the smallest set of tokens whose probability reaches top_p
  int top_k = 0;             // 0: no limit
  std::uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  ~Sampler();
  Sampler(Sampler&&) noexcept;
  Sampler& operator=(Sampler&&) noexcept;
  // logits: a 1-D float tensor over the vocabulary (any dtype/device; computed in fp32).
  std::int64_t next(const at::Tensor& logits);
  // The same over n float32 values read in place (a row of a step's CPU logits).
  std::int64_t next(const float* logits, std::size_t n);
  bool greedy() const { return params_.temperature <= 0.0f; }

 private:
  struct Impl;
  SamplingParams params_;
  Impl* impl_ = nullptr;
};

}  // namespace metamath::model
