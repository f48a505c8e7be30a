#pragma once
// The hook through which extra outputs join the decoder's linear projections (LoRA adapters,
// model/lora.h): when a Model has an adapter attached (Model::set_adapter), every projection of
// every layer adds adapter->delta(layer, projection, input) to its output. The adapter is not owned
// by the model and must outlive the forward passes that use it; autograd records its delta like
// the rest of the pass.
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace metamath::model {

// The decoder's projections, in LayerWeights order.
enum class Proj : int { Q = 0, K, V, O, Gate, Up, Down };

class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  // Added to the output of projection `p` of layer `layer` for its input x ([..., in]); an
  // undefined tensor adds nothing.
  virtual at::Tensor delta(int64_t layer, Proj p, const at::Tensor& x) const = 0;
};

}  // namespace metamath::model
