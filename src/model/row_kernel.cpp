#include "model/row_kernel.h"

#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/cpu.h"

// SLEEF's exp for 8 and 16 floats. sleef.h declares these only when the whole file is built for
// AVX2 / AVX-512; this file is built with default flags and marks its vector functions instead,
// so they are declared here with the same targets (so that __m256 / __m512 pass in registers).
#define MM_TARGET __attribute__((target("avx2,fma")))
#define MM512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
extern "C" {
MM_TARGET __m256 Sleef_expf8_u10avx2(__m256);
MM512_TARGET __m512 Sleef_expf16_u10avx512f(__m512);
}

namespace metamath::model::kernels {

namespace {

// Why hand-written: these run on one token's rows between the products of a decode step, where
// libtorch's per-call cost (microseconds) would exceed the work. Masked forms with every lane set
// stand for some plain AVX-512 intrinsics: GCC 12's unmasked ones start from an "undefined"
// vector that -Werror=uninitialized rejects.

inline float round_bf16(float f) { return static_cast<float>(c10::BFloat16(f)); }
inline uint16_t bf16_bits(float f) { return c10::BFloat16(f).x; }
inline float bf16_value(uint16_t h) { return c10::BFloat16(h, c10::BFloat16::from_bits()); }

// ---- plain ----

void rms_norm_plain(const float* x, int64_t n, const void* w, bool bf16, float r, float* out,
                    uint16_t* out_h) {
  for (int64_t i = 0; i < n; ++i) {
    if (bf16) {
      out[i] = round_bf16(bf16_value(static_cast<const uint16_t*>(w)[i]) * round_bf16(x[i] * r));
      if (out_h) out_h[i] = bf16_bits(out[i]);
    } else {
      out[i] = static_cast<const float*>(w)[i] * (x[i] * r);
    }
  }
}

void silu_mul_plain(const float* gate, const float* up, int64_t n, bool bf16, float* out,
                    uint16_t* out_h) {
  for (int64_t i = 0; i < n; ++i) {
    if (bf16) {
      const float g = round_bf16(gate[i]), u = round_bf16(up[i]);
      out[i] = round_bf16(round_bf16(g / (1.0f + std::exp(-g))) * u);
      if (out_h) out_h[i] = bf16_bits(out[i]);
    } else {
      out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
    }
  }
}

void add_plain(float* x, const float* y, int64_t n, bool bf16) {
  for (int64_t i = 0; i < n; ++i) x[i] = bf16 ? round_bf16(x[i] + round_bf16(y[i])) : x[i] + y[i];
}

void round_plain(float* v, int64_t n, uint16_t* h) {
  for (int64_t i = 0; i < n; ++i) {
    v[i] = round_bf16(v[i]);
    if (h) h[i] = bf16_bits(v[i]);
  }
}

void widen_plain(const uint16_t* h, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_value(h[i]);
}

// One half of a head: out[i] = v[i] * c[i] + sign * w[i] * sn[i] (w the other half).
void rope_half_plain(const float* v, const float* w, float sign, const float* c, const float* sn,
                     int64_t n, bool bf16, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float r = sign * w[i];
    out[i] = bf16 ? round_bf16(round_bf16(v[i] * c[i]) + round_bf16(r * sn[i]))
                  : v[i] * c[i] + r * sn[i];
  }
}

// Step 2 of softmax_row for every form: max is -inf only when every key is hidden.
bool all_hidden(float* s, int64_t L, float max, bool bf16) {
  if (max != -std::numeric_limits<float>::infinity()) return false;
  const float u = 1.0f / static_cast<float>(L);
  std::fill(s, s + L, bf16 ? round_bf16(u) : u);
  return true;
}

void softmax_plain(float* s, const bool* hidden, int64_t L, float scale, bool bf16) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t c = 0; c < L; ++c) {
    if (hidden[c]) continue;
    s[c] = bf16 ? round_bf16(round_bf16(s[c]) * scale) : s[c] * scale;
    max = std::max(max, s[c]);
  }
  if (all_hidden(s, L, max, bf16)) return;
  float sum = 0;
  for (int64_t c = 0; c < L; ++c) {
    s[c] = hidden[c] ? 0.0f : std::exp(s[c] - max);
    sum += s[c];
  }
  const float inv = 1.0f / sum;
  for (int64_t c = 0; c < L; ++c) s[c] = bf16 ? round_bf16(s[c] * inv) : s[c] * inv;
}

// ---- AVX2: blocks of 8; the last partial block goes through padded copies ----

// c10::BFloat16's rounding on 8 lanes: add 0x7FFF plus the lowest kept bit, clear the low half;
// NaN lanes become 0x7FC0 (a quiet NaN).
MM_TARGET inline __m256 round8(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r =
      _mm256_and_si256(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))),
                       _mm256_set1_epi32(static_cast<int>(0xFFFF0000u)));
  const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
  return _mm256_blendv_ps(_mm256_castsi256_ps(r),
                          _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)), nan);
}
MM_TARGET inline __m256 maybe_round8(__m256 v, bool bf16) { return bf16 ? round8(v) : v; }
// The bf16 bits of 8 lanes that are already bf16 numbers.
MM_TARGET inline void store_bits8(uint16_t* h, __m256 v) {
  const __m256i hi = _mm256_srli_epi32(_mm256_castps_si256(v), 16);
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(hi, hi), 0x08);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h), _mm256_castsi256_si128(packed));
}
MM_TARGET inline __m256 load_bf16_8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

MM_TARGET void rms_norm_block8(const float* x, const void* w, bool bf16, __m256 r, float* out,
                               uint16_t* out_h) {
  const __m256 xr = _mm256_mul_ps(_mm256_loadu_ps(x), r);
  __m256 o;
  if (bf16) {
    o = round8(_mm256_mul_ps(load_bf16_8(static_cast<const uint16_t*>(w)), round8(xr)));
    if (out_h) store_bits8(out_h, o);
  } else {
    o = _mm256_mul_ps(_mm256_loadu_ps(static_cast<const float*>(w)), xr);
  }
  _mm256_storeu_ps(out, o);
}

MM_TARGET void rms_norm_avx2(const float* x, int64_t n, const void* w, bool bf16, float r,
                             float* out, uint16_t* out_h) {
  const __m256 rv = _mm256_set1_ps(r);
  const size_t es = bf16 ? 2 : 4;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    rms_norm_block8(x + i, static_cast<const char*>(w) + i * es, bf16, rv, out + i,
                    out_h ? out_h + i : nullptr);
  if (i == n) return;
  float xt[8] = {}, wt[8] = {}, ot[8];
  uint16_t ht[8];
  std::memcpy(xt, x + i, (n - i) * sizeof(float));
  std::memcpy(wt, static_cast<const char*>(w) + i * es, (n - i) * es);
  rms_norm_block8(xt, wt, bf16, rv, ot, ht);
  std::memcpy(out + i, ot, (n - i) * sizeof(float));
  if (out_h) std::memcpy(out_h + i, ht, (n - i) * sizeof(uint16_t));
}

MM_TARGET double sum_squares_avx2(const float* x, int64_t n) {
  __m256d a = _mm256_setzero_pd(), b = a;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
    const __m256d hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
    a = _mm256_fmadd_pd(lo, lo, a);
    b = _mm256_fmadd_pd(hi, hi, b);
  }
  double lanes[4];
  _mm256_storeu_pd(lanes, _mm256_add_pd(a, b));
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  return sum;
}

MM_TARGET __m256 silu_mul8(__m256 g, __m256 u, bool bf16) {
  g = maybe_round8(g, bf16);
  u = maybe_round8(u, bf16);
  const __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
  const __m256 s = maybe_round8(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), bf16);
  return maybe_round8(_mm256_mul_ps(s, u), bf16);
}

MM_TARGET void silu_mul_avx2(const float* gate, const float* up, int64_t n, bool bf16, float* out,
                             uint16_t* out_h) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 a = silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i), bf16);
    _mm256_storeu_ps(out + i, a);
    if (out_h) store_bits8(out_h + i, a);
  }
  if (i == n) return;
  float gt[8] = {}, ut[8] = {}, ot[8];
  uint16_t ht[8];
  std::memcpy(gt, gate + i, (n - i) * sizeof(float));
  std::memcpy(ut, up + i, (n - i) * sizeof(float));
  const __m256 a = silu_mul8(_mm256_loadu_ps(gt), _mm256_loadu_ps(ut), bf16);
  _mm256_storeu_ps(ot, a);
  store_bits8(ht, a);
  std::memcpy(out + i, ot, (n - i) * sizeof(float));
  if (out_h) std::memcpy(out_h + i, ht, (n - i) * sizeof(uint16_t));
}

MM_TARGET void add_avx2(float* x, const float* y, int64_t n, bool bf16) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 s =
        _mm256_add_ps(_mm256_loadu_ps(x + i), maybe_round8(_mm256_loadu_ps(y + i), bf16));
    _mm256_storeu_ps(x + i, maybe_round8(s, bf16));
  }
  add_plain(x + i, y + i, n - i, bf16);  // the same two roundings, exactly (no exp here)
}

MM_TARGET void round_avx2(float* v, int64_t n, uint16_t* h) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 r = round8(_mm256_loadu_ps(v + i));
    _mm256_storeu_ps(v + i, r);
    if (h) store_bits8(h + i, r);
  }
  round_plain(v + i, n - i, h ? h + i : nullptr);
}

MM_TARGET void widen_avx2(const uint16_t* h, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load_bf16_8(h + i));
  widen_plain(h + i, n - i, out + i);
}

MM_TARGET void rope_half_avx2(const float* v, const float* w, float sign, const float* c,
                              const float* sn, int64_t n, bool bf16, float* out) {
  const __m256 sg = _mm256_set1_ps(sign);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 a =
        maybe_round8(_mm256_mul_ps(_mm256_loadu_ps(v + i), _mm256_loadu_ps(c + i)), bf16);
    const __m256 r = _mm256_mul_ps(sg, _mm256_loadu_ps(w + i));
    const __m256 b = maybe_round8(_mm256_mul_ps(r, _mm256_loadu_ps(sn + i)), bf16);
    _mm256_storeu_ps(out + i, maybe_round8(_mm256_add_ps(a, b), bf16));
  }
  rope_half_plain(v + i, w + i, sign, c + i, sn + i, n - i, bf16, out + i);
}

// All ones in the lanes whose key is visible (hidden[c] false), of 8 keys.
MM_TARGET inline __m256 visible8(const bool* hidden) {
  int64_t bytes;
  std::memcpy(&bytes, hidden, 8);
  const __m256i h = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes));
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(h, _mm256_setzero_si256()));
}

// Sums (and the max) in 8 lanes; a partial last block goes through padded copies (its padding
// hidden).
MM_TARGET void softmax_avx2(float* s, const bool* hidden, int64_t L, float scale, bool bf16) {
  const int64_t full = L / 8 * 8;
  float st[8] = {};
  bool ht[8] = {true, true, true, true, true, true, true, true};
  std::memcpy(st, s + full, (L - full) * sizeof(float));
  std::memcpy(ht, hidden + full, (L - full) * sizeof(bool));
  auto block = [&](int64_t i, float*& p, const bool*& h) {
    p = i < full ? s + i : st;
    h = i < full ? hidden + i : ht;
  };
  const __m256 sc = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
  __m256 mx = ninf;
  for (int64_t i = 0; i < L; i += 8) {
    float* p;
    const bool* h;
    block(i, p, h);
    const __m256 x = maybe_round8(_mm256_mul_ps(maybe_round8(_mm256_loadu_ps(p), bf16), sc), bf16);
    _mm256_storeu_ps(p, x);
    mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, x, visible8(h)));
  }
  float lanes8[8];
  _mm256_storeu_ps(lanes8, mx);
  const float max = *std::max_element(lanes8, lanes8 + 8);
  if (all_hidden(s, L, max, bf16)) return;
  const __m256 m = _mm256_set1_ps(max);
  __m256 sum = _mm256_setzero_ps();
  for (int64_t i = 0; i < L; i += 8) {
    float* p;
    const bool* h;
    block(i, p, h);
    const __m256 e =
        _mm256_and_ps(Sleef_expf8_u10avx2(_mm256_sub_ps(_mm256_loadu_ps(p), m)), visible8(h));
    _mm256_storeu_ps(p, e);
    sum = _mm256_add_ps(sum, e);
  }
  _mm256_storeu_ps(lanes8, sum);
  float total = 0;
  for (float v : lanes8) total += v;
  const __m256 inv = _mm256_set1_ps(1.0f / total);
  for (int64_t i = 0; i < L; i += 8) {
    float* p;
    const bool* h;
    block(i, p, h);
    _mm256_storeu_ps(p, maybe_round8(_mm256_mul_ps(_mm256_loadu_ps(p), inv), bf16));
  }
  std::memcpy(s + full, st, (L - full) * sizeof(float));
}

// ---- AVX-512: blocks of 16; the last partial block is masked (masked lanes load as 0) ----

MM512_TARGET inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}
MM512_TARGET inline __m512 round16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb =
      _mm512_and_si512(_mm512_maskz_srli_epi32(0xFFFF, u, 16), _mm512_set1_epi32(1));
  const __m512i r =
      _mm512_and_si512(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))),
                       _mm512_set1_epi32(static_cast<int>(0xFFFF0000u)));
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_blend_ps(nan, _mm512_castsi512_ps(r),
                              _mm512_castsi512_ps(_mm512_set1_epi32(0x7FC00000)));
}
MM512_TARGET inline __m512 maybe_round16(__m512 v, bool bf16) { return bf16 ? round16(v) : v; }
MM512_TARGET inline void store_bits16(uint16_t* h, __m512 v, __mmask16 m) {
  const __m512i hi = _mm512_maskz_srli_epi32(0xFFFF, _mm512_castps_si512(v), 16);
  _mm256_mask_storeu_epi16(h, m, _mm512_maskz_cvtepi32_epi16(0xFFFF, hi));
}
MM512_TARGET inline __m512 load_bf16_16(const uint16_t* p, __mmask16 m) {
  const __m512i h = _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_maskz_loadu_epi16(m, p));
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, h, 16));
}

MM512_TARGET double sum_squares_avx512(const float* x, int64_t n) {
  __m512d a = _mm512_setzero_pd(), b = a;
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(lanes(n - i), x + i);
    const __m512d lo = _mm512_maskz_cvtps_pd(0xFF, _mm512_maskz_extractf32x8_ps(0xFF, v, 0));
    const __m512d hi = _mm512_maskz_cvtps_pd(0xFF, _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
    a = _mm512_fmadd_pd(lo, lo, a);
    b = _mm512_fmadd_pd(hi, hi, b);
  }
  double l[8];
  _mm512_storeu_pd(l, _mm512_add_pd(a, b));
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

MM512_TARGET void rms_norm_avx512(const float* x, int64_t n, const void* w, bool bf16, float r,
                                  float* out, uint16_t* out_h) {
  const __m512 rv = _mm512_set1_ps(r);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    const __m512 xr = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), rv);
    __m512 o;
    if (bf16) {
      o = round16(_mm512_mul_ps(load_bf16_16(static_cast<const uint16_t*>(w) + i, m), round16(xr)));
      if (out_h) store_bits16(out_h + i, o, m);
    } else {
      o = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + i), xr);
    }
    _mm512_mask_storeu_ps(out + i, m, o);
  }
}

MM512_TARGET void silu_mul_avx512(const float* gate, const float* up, int64_t n, bool bf16,
                                  float* out, uint16_t* out_h) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    const __m512 g = maybe_round16(_mm512_maskz_loadu_ps(m, gate + i), bf16);
    const __m512 u = maybe_round16(_mm512_maskz_loadu_ps(m, up + i), bf16);
    const __m512 e = Sleef_expf16_u10avx512f(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 s = maybe_round16(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), bf16);
    const __m512 a = maybe_round16(_mm512_mul_ps(s, u), bf16);
    _mm512_mask_storeu_ps(out + i, m, a);
    if (out_h) store_bits16(out_h + i, a, m);
  }
}

MM512_TARGET void add_avx512(float* x, const float* y, int64_t n, bool bf16) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    const __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i),
                                   maybe_round16(_mm512_maskz_loadu_ps(m, y + i), bf16));
    _mm512_mask_storeu_ps(x + i, m, maybe_round16(s, bf16));
  }
}

MM512_TARGET void round_avx512(float* v, int64_t n, uint16_t* h) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    const __m512 r = round16(_mm512_maskz_loadu_ps(m, v + i));
    _mm512_mask_storeu_ps(v + i, m, r);
    if (h) store_bits16(h + i, r, m);
  }
}

MM512_TARGET void widen_avx512(const uint16_t* h, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    _mm512_mask_storeu_ps(out + i, m, load_bf16_16(h + i, m));
  }
}

MM512_TARGET void rope_half_avx512(const float* v, const float* w, float sign, const float* c,
                                   const float* sn, int64_t n, bool bf16, float* out) {
  const __m512 sg = _mm512_set1_ps(sign);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    const __m512 a = maybe_round16(
        _mm512_mul_ps(_mm512_maskz_loadu_ps(m, v + i), _mm512_maskz_loadu_ps(m, c + i)), bf16);
    const __m512 r = _mm512_mul_ps(sg, _mm512_maskz_loadu_ps(m, w + i));
    const __m512 b = maybe_round16(_mm512_mul_ps(r, _mm512_maskz_loadu_ps(m, sn + i)), bf16);
    _mm512_mask_storeu_ps(out + i, m, maybe_round16(_mm512_add_ps(a, b), bf16));
  }
}

// The lanes (of n, up to 16) whose key is visible.
MM512_TARGET inline __mmask16 visible16(const bool* hidden, __mmask16 m) {
  const __m128i h = _mm_maskz_loadu_epi8(m, hidden);
  return static_cast<__mmask16>(_mm_testn_epi8_mask(h, h) & m);
}

MM512_TARGET void softmax_avx512(float* s, const bool* hidden, int64_t L, float scale, bool bf16) {
  const __m512 sc = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
  __m512 mx = ninf;
  for (int64_t i = 0; i < L; i += 16) {
    const __mmask16 m = lanes(L - i), v = visible16(hidden + i, m);
    const __m512 x = maybe_round16(
        _mm512_mul_ps(maybe_round16(_mm512_maskz_loadu_ps(v, s + i), bf16), sc), bf16);
    _mm512_mask_storeu_ps(s + i, v, x);
    mx = _mm512_mask_max_ps(mx, v, mx, x);
  }
  float l[16];
  _mm512_storeu_ps(l, mx);
  const float max = *std::max_element(l, l + 16);
  if (all_hidden(s, L, max, bf16)) return;
  const __m512 mv = _mm512_set1_ps(max);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < L; i += 16) {
    const __mmask16 m = lanes(L - i), v = visible16(hidden + i, m);
    const __m512 x = _mm512_maskz_sub_ps(v, _mm512_maskz_loadu_ps(v, s + i), mv);
    const __m512 e = _mm512_maskz_mov_ps(v, Sleef_expf16_u10avx512f(x));
    _mm512_mask_storeu_ps(s + i, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  _mm512_storeu_ps(l, sum);
  float total = 0;
  for (float x : l) total += x;
  const __m512 inv = _mm512_set1_ps(1.0f / total);
  for (int64_t i = 0; i < L; i += 16) {
    const __mmask16 m = lanes(L - i);
    _mm512_mask_storeu_ps(s + i, m,
                          maybe_round16(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + i), inv), bf16));
  }
}

}  // namespace

void rms_norm_row(const float* x, int64_t n, const void* w, bool bf16, float eps, float* out,
                  uint16_t* out_h) {
  const Isa isa = kernel_isa();
  double sum = 0;
  if (isa == Isa::avx512)
    sum = sum_squares_avx512(x, n);
  else if (isa == Isa::avx2)
    sum = sum_squares_avx2(x, n);
  else
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float r = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
  if (isa == Isa::avx512)
    rms_norm_avx512(x, n, w, bf16, r, out, out_h);
  else if (isa == Isa::avx2)
    rms_norm_avx2(x, n, w, bf16, r, out, out_h);
  else
    rms_norm_plain(x, n, w, bf16, r, out, out_h);
}

void silu_mul_row(const float* gate, const float* up, int64_t n, bool bf16, float* out,
                  uint16_t* out_h) {
  const Isa isa = kernel_isa();
  if (isa == Isa::avx512)
    silu_mul_avx512(gate, up, n, bf16, out, out_h);
  else if (isa == Isa::avx2)
    silu_mul_avx2(gate, up, n, bf16, out, out_h);
  else
    silu_mul_plain(gate, up, n, bf16, out, out_h);
}

void add_row(float* x, const float* y, int64_t n, bool bf16) {
  const Isa isa = kernel_isa();
  if (isa == Isa::avx512)
    add_avx512(x, y, n, bf16);
  else if (isa == Isa::avx2)
    add_avx2(x, y, n, bf16);
  else
    add_plain(x, y, n, bf16);
}

void round_bf16_row(float* v, int64_t n, uint16_t* h) {
  const Isa isa = kernel_isa();
  if (isa == Isa::avx512)
    round_avx512(v, n, h);
  else if (isa == Isa::avx2)
    round_avx2(v, n, h);
  else
    round_plain(v, n, h);
}

void widen_bf16_row(const uint16_t* h, int64_t n, float* out) {
  const Isa isa = kernel_isa();
  if (isa == Isa::avx512)
    widen_avx512(h, n, out);
  else if (isa == Isa::avx2)
    widen_avx2(h, n, out);
  else
    widen_plain(h, n, out);
}

void softmax_row(float* s, const bool* hidden, int64_t L, float scale, bool bf16) {
  const Isa isa = kernel_isa();
  if (isa == Isa::avx512)
    softmax_avx512(s, hidden, L, scale, bf16);
  else if (isa == Isa::avx2)
    softmax_avx2(s, hidden, L, scale, bf16);
  else
    softmax_plain(s, hidden, L, scale, bf16);
}

void rope_row(float* v, int64_t d, const float* cos, const float* sin, bool bf16) {
  const int64_t half = d / 2;
  const Isa isa = kernel_isa();
  const auto rope_half = isa == Isa::avx512 ? rope_half_avx512
                         : isa == Isa::avx2 ? rope_half_avx2
                                            : rope_half_plain;
  float first[256];  // the first half as it was (on the heap past 256: no model has such heads)
  std::vector<float> wide;
  float* lo = first;
  if (half > 256) {
    wide.resize(half);
    lo = wide.data();
  }
  std::memcpy(lo, v, half * sizeof(float));
  rope_half(v, v + half, -1.0f, cos, sin, half, bf16, v);
  rope_half(v + half, lo, 1.0f, cos + half, sin + half, half, bf16, v + half);
}

}  // namespace metamath::model::kernels
