#pragma once
// Recomputation in the backward pass (what PyTorch calls activation or gradient checkpointing)
// for one block of the network: the block runs without recording autograd, keeping only its
// input; when the backward pass reaches it, the block runs again with autograd on and is
// differentiated right there (a reentrant backward: its parameters' gradients accumulate into
// their .grad, its input's gradient flows on). The default random generator of `device` is saved
// before the first run and replayed for the second, so dropout inside the block draws the same
// mask both times. The block must be a pure function of its input, its parameters and that
// generator.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>

namespace metamath::model {

using Block = std::function<at::Tensor(const at::Tensor&)>;

// block(x), recording only one node that recomputes the block in the backward pass. Without grad
// mode, simply block(x).
at::Tensor recomputed(Block block, const at::Tensor& x, c10::Device device);

}  // namespace metamath::model
