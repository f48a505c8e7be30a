#pragma once
// Matrix products that autograd records, with a fast route for bfloat16 on CPUs where libtorch's
// bf16 GEMM is slow.
//
// libtorch 1.13 runs a bf16 matmul through oneDNN only when the CPU has AVX-512 (BW/VL/DQ);
// elsewhere (e.g. AVX2-only machines) it falls back to a scalar loop at 1-3 GFLOP/s. There, a bf16
// product is computed as float32 GEMM on the exactly widened inputs, rounded back to bf16 once:
// the arithmetic of a bf16 GEMM with float32 accumulation (only the summation order differs), at
// the float32 GEMM's speed. Built from differentiable ATen ops, so the backward pass gets the same
// treatment (gradients widened, float32 GEMMs, rounded to bf16).
#include <ATen/core/Tensor.h>

namespace metamath::model {

// True when `t` is a CPU bf16 tensor and this CPU lacks the AVX-512 oneDNN path.
bool bf16_gemm_via_f32(const at::Tensor& t);

// at::matmul(a, b) (any ranks), through float32 when bf16_gemm_via_f32(a).
at::Tensor batched_matmul(const at::Tensor& a, const at::Tensor& b);

// at::linear(x, w, b) for autograd-recorded passes (training), through float32 when
// bf16_gemm_via_f32(x).
at::Tensor linear_recorded(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

}  // namespace metamath::model
