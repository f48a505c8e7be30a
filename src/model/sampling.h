#pragma once
// Next-token selection: greedy, or temperature + top-k + top-p (nucleus) sampling from a
// per-sequence seeded generator, so a sequence's samples do not depend on what else is in the
// batch.
#include <cstdint>

namespace at {
class Tensor;
}

namespace metamath::model {

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
  bool greedy() const { return params_.temperature <= 0.0f; }

 private:
  struct Impl;
  SamplingParams params_;
  Impl* impl_ = nullptr;
};

}  // namespace metamath::model
