#pragma once
// y = x W^T + b for the decoder's projections and the lm_head (HF nn.Linear semantics): x [...,
// in], w [out, in], b [out] or undefined. Autograd-recorded calls keep at::linear; the others go
// to one of several implementations (candidates), picked per dtype and shape by the kernel planner
// (model/plan.h: measured on this CPU at first use, or the fixed rule):
//   avx512, avx2      our small-M tiles (model/linear_kernel.h), weights widened in registers
//   avx512-bf16dot    bf16 x and w multiplied with vdpbf16ps (CPUs with AVX512_BF16)
//   avx512-vnni,      int8 weights, and only when the call allows int8 activations (q8-dot): x
//   avx2-i8dot,       quantized to int8 per block of 32 along K (one f32 scale each), integer
//   amx-int8          dot products (vpdpbusd with AVX512_VNNI; vpmaddubsw with AVX2; TDPBSSD
//                     tiles with AMX-INT8, from 9 rows on: model/amx_kernel.h), so each
//                     activation is also off by up to half its block's step
//   amx-bf16x3        int8 weights, f32 activations, 9+ rows, CPUs with AMX-BF16: x split into
//                     three bf16 planes (exact to f32 level), AMX tiles (model/amx_split_kernel.h)
//   torch             at::linear (BLAS for f32; oneDNN for bf16, listed only with AVX-512)
//   torch-mv          at::mv, one f32 row
//   widened           bf16 or int8 weights widened to f32 in column chunks, then BLAS
// Weight-only int8 (q8): w is int8 [out, in] with w_scale [out] float (row n of the weight is
// w_scale[n] * w[n]); x and b are f32 or bf16 (the output's dtype); see quantize_q8().
#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

namespace metamath::model {

namespace kernels {
enum class Tiles;  // model/linear_kernel.h
}

// int8_activations (int8 weights only): also lists the candidates that quantize x (avx512-vnni,
// avx2-i8dot, amx-int8); a model loaded with --dtype q8-dot asks for them, --dtype q8 keeps x in
// f32.
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                  const at::Tensor& w_scale = {}, bool int8_activations = false);

// The candidates model::linear may use for this call on this CPU (under kernel_isa()), the fixed
// rule's choice first; empty when the call takes at::linear (autograd, other dtypes or devices).
std::vector<std::string> linear_candidates(const at::Tensor& x, const at::Tensor& w,
                                           const at::Tensor& b, const at::Tensor& w_scale = {},
                                           bool int8_activations = false);
// The candidate model::linear runs for this call (planning its key first when it is new, as the
// call itself would); "" when the call takes at::linear. The fused decode step (model/decode.h)
// asks this to run the same kernels on raw buffers.
std::string linear_choice(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                          const at::Tensor& w_scale = {}, bool int8_activations = false);
// model::linear through the named candidate (one of linear_candidates(); throws otherwise).
at::Tensor linear_using(const std::string& candidate, const at::Tensor& x, const at::Tensor& w,
                        const at::Tensor& b, const at::Tensor& w_scale = {},
                        bool int8_activations = false);

// The tile set (model/linear_kernel.h) behind a candidate of ours ("avx512", "avx2",
// "avx512-bf16dot", "avx512-vnni", "avx2-i8dot", "amx-int8", "amx-bf16x3"); nullopt for libtorch
// and the widened path. The fused decode step (model/decode.h) runs the planner's choice through
// it.
std::optional<kernels::Tiles> candidate_tiles(const std::string& name);

// True for the candidates that quantize the activations as well (avx512-vnni, avx2-i8dot,
// amx-int8): their results differ from the exact product of x and the dequantized weight by more
// than f32 rounding (see model/linear_kernel.h, quantize_rows_q8).
bool quantizes_activations(const std::string& candidate);

// Weight-only int8 quantization of a [out, in] weight (any float dtype), per row: scale[n] =
// max_k |w[n, k]| / 127 in f32 (1 for an all-zero row), q[n, k] = w[n, k] / scale[n] in f32,
// rounded half to even, clamped to [-127, 127]. Each weight is then off by at most scale[n] / 2.
// A row holding NaN gets scale 1, and NaN weights (and inf / inf) give 0: what libtorch's
// round / clamp / to(int8) gave. q comes from `arena` when given (a model's int8 weights).
struct QuantizedWeight {
  at::Tensor q;      // int8 [out, in]
  at::Tensor scale;  // float [out]
};
class HugePageArena;
QuantizedWeight quantize_q8(const at::Tensor& w, HugePageArena* arena = nullptr);

}  // namespace metamath::model
