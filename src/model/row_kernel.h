#pragma once
// The fused decode step's element-wise row operations (model/decode.cpp): RMSNorm, the SiLU gate,
// the residual sum, RoPE and bf16 rounding, over rows of floats, and the attention kernel's
// softmax (model/attention.cpp). Each has AVX-512, AVX2 and plain versions, chosen per call by
// kernel_isa() (core/cpu.h).
//
// A bf16 model's values are held as floats that are already bf16 numbers. With bf16 set, each
// function rounds where PyTorch's bf16 ops round: to nearest even, NaN to 0x7FC0
// (c10::BFloat16's conversion). The SiLU is PyTorch 2's: computed in float and rounded once
// (libtorch 1.13, Debian's, rounds after each of its ops). Where out_h is not null it also gets
// the bf16 bits, which the bf16-dot tiles read.
//
// exp: the vector versions call SLEEF's expf_u10 (at most 1.0 ULP). That is the function
// libtorch's own vectorized CPU kernels call: the f32 SiLU is bit for bit libtorch's. The plain
// version calls std::exp. The vector softmax sums its terms in lanes (the plain one in key order),
// as libtorch's does.
#include <cstdint>

namespace metamath::model::kernels {

// out[i] = w[i] * (x[i] * r), r = 1 / sqrt(mean(x^2) + eps), the sum of squares in double.
// bf16: out[i] = round(w[i] * round(x[i] * r)), with w as raw bf16 bits. Otherwise w is float.
void rms_norm_row(const float* x, int64_t n, const void* w, bool bf16, float eps, float* out,
                  uint16_t* out_h);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)).
// bf16: g and u are rounded first, then silu(g) is rounded, then the product is rounded.
void silu_mul_row(const float* gate, const float* up, int64_t n, bool bf16, float* out,
                  uint16_t* out_h);

// x[i] += y[i]. bf16: x[i] = round(x[i] + round(y[i])).
void add_row(float* x, const float* y, int64_t n, bool bf16);

// v[i] = round(v[i]) in place; its bits also go into h where h is not null.
void round_bf16_row(float* v, int64_t n, uint16_t* h);

// out[i] = the float value of the bf16 bits h[i].
void widen_bf16_row(const uint16_t* h, int64_t n, float* out);

// The attention probabilities of one query row over L keys, in place: s[c] (the raw score q . k_c)
// becomes round(round(s[c]) * scale) (bf16; f32: s[c] * scale), then the softmax over the keys not
// hidden[c], each probability rounded (bf16). Hidden keys get 0 (their s[c] is not read); when
// every key is hidden each key gets round(1 / L).
void softmax_row(float* s, const bool* hidden, int64_t L, float scale, bool bf16);

// Rotate-half RoPE of one head's d values (d even) in place:
//   v'[i] = v[i] * cos[i] + r[i] * sin[i], r[i] = -v[i + d/2] for i < d/2, v[i - d/2] after.
// bf16: v'[i] = round(round(v[i] * cos[i]) + round(r[i] * sin[i])), as libtorch's bf16 ops give.
void rope_row(float* v, int64_t d, const float* cos, const float* sin, bool bf16);

}  // namespace metamath::model::kernels
