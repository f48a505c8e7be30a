#pragma once
// y = x W^T + b for the decoder's projections and the lm_head (HF nn.Linear semantics): x [...,
// in], w [out, in], b [out] or undefined. Picks the fastest path for the shape, dtype and device;
// autograd-recorded calls keep at::linear.
#include <ATen/core/Tensor.h>

namespace metamath::model {

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

}  // namespace metamath::model
