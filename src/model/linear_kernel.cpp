// Small-M GEMM against [out, in] weights: AVX2/FMA, AVX-512 and AVX512_BF16 tiles, and the int8-dot
// tiles (AVX512_VNNI, AVX2) with their activation quantizer (see linear_kernel.h).
//
// Why hand-written: no library that libtorch 1.13 ships does small-M GEMM against [out, in]
// weights well on these CPUs. OpenBLAS 0.3.21 sgemm packs the whole weight for every call and
// libtorch's bf16 matmul has no AVX2 kernel (oneDNN's bf16 path needs AVX-512). Measured at 32 rows
// on 2 Zen 3 cores (busy machine, load 3-4, so noisy): f32 38-63 GFLOP/s here against 9-54 for
// at::linear (1.1-4.9x, typically ~2x); bf16 56-63 against 1.5; one row: 1.1-4x at::linear and
// on par with at::mv (bench/README.md, "Model decoding"; the AVX-512 tiles: "AVX-512 kernel
// paths").
// Dot-product tiles read the [out, in] weight in place (no packing), widen bf16 / int8 in
// registers (or, with AVX512_BF16, multiply bf16 pairs directly), and stream each weight from
// memory once per call.
//
// Only the functions marked MM_TARGET / MM512_TARGET / BF16_TARGET / VNNI_TARGET use AVX2/FMA /
// AVX-512 / AVX512_BF16 / AVX512_VNNI instructions, so the file builds with the project's default
// flags; callers pick the set at run time (model/linear.cpp).
#include "model/linear_kernel.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "model/amx_kernel.h"
#include "model/amx_split_kernel.h"

namespace metamath::model::kernels {

namespace {

#define MM_TARGET __attribute__((target("avx2,fma")))

constexpr int kMaxMR = 4, kMaxNR = 8;

inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, NaN to the quiet NaN 0x7FC0: c10::BFloat16's conversion.
inline uint16_t float_to_bf16(float f) {
  if (std::isnan(f)) return 0x7FC0;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

template <WeightType kW>
inline float w_at(const void* w, int64_t i) {
  if constexpr (kW == WeightType::bf16)
    return bf16_to_float(static_cast<const uint16_t*>(w)[i]);
  else if constexpr (kW == WeightType::i8)
    return static_cast<float>(static_cast<const int8_t*>(w)[i]);
  else
    return static_cast<const float*>(w)[i];
}

constexpr int64_t weight_size(WeightType t) {
  return t == WeightType::f32 ? 4 : t == WeightType::bf16 ? 2 : 1;
}

// Prefetches byte `offset` of weight rows NR..2NR-1 (the next tile's, row_bytes apart) into L1,
// and with kAlsoAfter of rows 2NR..3NR-1 (the tile after) into L2: a tile reads NR rows side by
// side, which the hardware prefetchers follow poorly (measured at one row, K = 768, int8 weights
// from memory, one thread of a 2-core AVX512_VNNI Xeon: 24-28 GB/s with the prefetch against
// 17-21 without). Past the matrix's end a prefetch is harmless.
// The tile after pays where a tile is little work for its bytes: int8 rows (a quarter of f32's
// bytes, so one tile ahead is a quarter of the time ahead), and one activation row (GEMV, tiles
// of at most 8 KiB: gemv_rows) of any weight type. decode_bench --worker, batch 1, 128+128
// tokens, 2 threads, alternating runs on the 2-core Sapphire Rapids Xeon, one tile ahead -> two:
// bf16 0.893 -> 0.862 s (avx512-bf16dot), f32 1.876 -> 1.806 s, q8-dot 0.482 -> 0.418 s; under
// METAMATH_ISA=avx2 bf16 1.100 -> 0.976 s, f32 1.956 -> 1.904 s. With 32 rows f32 it lost.
template <int NR, bool kAlsoAfter>
inline __attribute__((always_inline)) void prefetch_next_rows(const void* w, int64_t row_bytes,
                                                              int64_t offset) {
  const char* p = static_cast<const char*>(w) + offset;
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) {
    _mm_prefetch(p + (NR + j) * row_bytes, _MM_HINT_T0);
    if constexpr (kAlsoAfter) _mm_prefetch(p + (2 * NR + j) * row_bytes, _MM_HINT_T1);
  }
}

template <WeightType kW>
MM_TARGET inline __m256 load_w(const void* w, int64_t i) {
  if constexpr (kW == WeightType::bf16) {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else if constexpr (kW == WeightType::i8) {
    const __m128i q =
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const int8_t*>(w) + i));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
  } else {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  }
}

// The four horizontal sums of a, b, c, d.
MM_TARGET inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 ab = _mm256_hadd_ps(a, b);
  const __m256 cd = _mm256_hadd_ps(c, d);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// out[i * kMaxNR + j] = sum_k x[i, k] * w[j, k] for i < MR, j < NR.
template <int MR, int NR, WeightType kW>
MM_TARGET void tile(const void* xp, int64_t ldx, const void* w, int64_t K, float* out) {
  const float* x = static_cast<const float*>(xp);
  __m256 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  // Steps of 8 along K, a cache line of each weight row apart the next tile's rows prefetched.
  constexpr int64_t kLine = 64 / (8 * weight_size(kW));
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    if (k % (8 * kLine) == 0)
      prefetch_next_rows<NR, MR == 1 || kW == WeightType::i8>(w, K * weight_size(kW),
                                                              k * weight_size(kW));
    if constexpr (MR <= NR) {
      // Activation vectors held, weight vectors streamed (each used MR times).
      __m256 xv[MR];
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) xv[i] = _mm256_loadu_ps(x + i * ldx + k);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) {
        const __m256 wv = load_w<kW>(w, j * K + k);
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
      }
    } else {
      __m256 wv[NR];
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) wv[j] = load_w<kW>(w, j * K + k);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 xv = _mm256_loadu_ps(x + i * ldx + k);
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
      }
    }
  }
  const __m256 z = _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 2
    for (int j0 = 0; j0 < NR; j0 += 4) {
      const __m128 s = hsum4(acc[i][j0], j0 + 1 < NR ? acc[i][j0 + 1] : z,
                             j0 + 2 < NR ? acc[i][j0 + 2] : z, j0 + 3 < NR ? acc[i][j0 + 3] : z);
      _mm_storeu_ps(out + i * kMaxNR + j0, s);
    }
  }
  for (; k < K; ++k)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) out[i * kMaxNR + j] += x[i * ldx + k] * w_at<kW>(w, j * K + k);
}

// AVX-512: the same tiles 16 lanes wide; the K tail (K % 16) is one masked step instead of a
// scalar loop. 32 zmm registers allow a 4 x 6 tile (24 accumulators + 4 activation vectors + 1
// weight vector). Where a masked form with every lane set stands for a plain intrinsic: GCC 12's
// unmasked AVX-512 intrinsics start from an "undefined" vector that -Werror=uninitialized rejects.
#define MM512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

template <WeightType kW, bool kMasked>
MM512_TARGET inline __attribute__((always_inline)) __m512 load_w16(const void* w, int64_t i,
                                                                   __mmask16 mask) {
  if constexpr (kW == WeightType::bf16) {
    const uint16_t* p = static_cast<const uint16_t*>(w) + i;
    const __m256i h = kMasked ? _mm256_maskz_loadu_epi16(mask, p)
                              : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(
        _mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
  } else if constexpr (kW == WeightType::i8) {
    const int8_t* p = static_cast<const int8_t*>(w) + i;
    const __m128i q = kMasked ? _mm_maskz_loadu_epi8(mask, p)
                              : _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_cvtepi8_epi32(0xFFFF, q));
  } else {
    const float* p = static_cast<const float*>(w) + i;
    return kMasked ? _mm512_maskz_loadu_ps(mask, p) : _mm512_loadu_ps(p);
  }
}

template <bool kMasked>
MM512_TARGET inline __attribute__((always_inline)) __m512 load_x16(const float* p, __mmask16 mask) {
  return kMasked ? _mm512_maskz_loadu_ps(mask, p) : _mm512_loadu_ps(p);
}

// One 16-wide step along K at k (masked lanes load as 0 and add nothing).
template <int MR, int NR, WeightType kW, bool kMasked>
MM512_TARGET inline __attribute__((always_inline)) void step512(const float* x, int64_t ldx,
                                                                const void* w, int64_t K, int64_t k,
                                                                __mmask16 mask,
                                                                __m512 (&acc)[MR][NR]) {
  if constexpr (MR <= NR) {
    __m512 xv[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) xv[i] = load_x16<kMasked>(x + i * ldx + k, mask);
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      const __m512 wv = load_w16<kW, kMasked>(w, j * K + k, mask);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
    }
  } else {
    __m512 wv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = load_w16<kW, kMasked>(w, j * K + k, mask);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 xv = load_x16<kMasked>(x + i * ldx + k, mask);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
}

// The two halves of v added.
MM512_TARGET inline __m256 fold(__m512 v) {
  return _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xFF, v, 0),
                       _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
}

// out[i * kMaxNR + j] = the sum of acc[i][j]'s 16 lanes, for i < MR, j < NR.
template <int MR, int NR>
MM512_TARGET inline __attribute__((always_inline)) void store_sums(__m512 (&acc)[MR][NR],
                                                                   float* out) {
  const __m256 z = _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 2
    for (int j0 = 0; j0 < NR; j0 += 4) {
      const __m128 s =
          hsum4(fold(acc[i][j0]), j0 + 1 < NR ? fold(acc[i][j0 + 1]) : z,
                j0 + 2 < NR ? fold(acc[i][j0 + 2]) : z, j0 + 3 < NR ? fold(acc[i][j0 + 3]) : z);
      _mm_storeu_ps(out + i * kMaxNR + j0, s);
    }
  }
}

// out[i * kMaxNR + j] = sum_k x[i, k] * w[j, k] for i < MR, j < NR.
template <int MR, int NR, WeightType kW>
MM512_TARGET void tile512(const void* xp, int64_t ldx, const void* w, int64_t K, float* out) {
  const float* x = static_cast<const float*>(xp);
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  // Steps of one cache line of each weight row, the next tile's rows prefetched as they go.
  constexpr int64_t kLine = 64 / (16 * weight_size(kW));
  int64_t k = 0;
  for (; k + 16 * kLine <= K; k += 16 * kLine) {
    prefetch_next_rows<NR, MR == 1 || kW == WeightType::i8>(w, K * weight_size(kW),
                                                            k * weight_size(kW));
#pragma GCC unroll 4
    for (int64_t s = 0; s < kLine; ++s)
      step512<MR, NR, kW, false>(x, ldx, w, K, k + 16 * s, 0xFFFF, acc);
  }
  for (; k + 16 <= K; k += 16) step512<MR, NR, kW, false>(x, ldx, w, K, k, 0xFFFF, acc);
  if (k < K) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (K - k)) - 1);
    step512<MR, NR, kW, true>(x, ldx, w, K, k, mask, acc);
  }
  store_sums<MR, NR>(acc, out);
}

// AVX512_BF16: bf16 activations and weights, 32 of each per step; vdpbf16ps adds each pair of
// exact products into a 16-lane f32 accumulator (round to nearest even; bf16 subnormal inputs
// count as zero, as in oneDNN's bf16 kernels). The K tail (K % 32) is one masked step.
#define BF16_TARGET \
  __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

template <bool kMasked>
BF16_TARGET inline __attribute__((always_inline)) __m512i load_h32(const uint16_t* p,
                                                                   __mmask32 mask) {
  return kMasked ? _mm512_maskz_loadu_epi16(mask, p) : _mm512_loadu_si512(p);
}

template <int MR, int NR, bool kMasked>
BF16_TARGET inline __attribute__((always_inline)) void step_dot(const uint16_t* x, int64_t ldx,
                                                                const uint16_t* w, int64_t K,
                                                                int64_t k, __mmask32 mask,
                                                                __m512 (&acc)[MR][NR]) {
  __m512i xv[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) xv[i] = load_h32<kMasked>(x + i * ldx + k, mask);
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) {
    const __m512i wv = load_h32<kMasked>(w + j * K + k, mask);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)xv[i], (__m512bh)wv);
  }
}

// out[i * kMaxNR + j] = sum_k x[i, k] * w[j, k] for i < MR, j < NR (x and w bf16).
template <int MR, int NR, WeightType>
BF16_TARGET void tile_dot(const void* xp, int64_t ldx, const void* wp, int64_t K, float* out) {
  const uint16_t* x = static_cast<const uint16_t*>(xp);
  const uint16_t* w = static_cast<const uint16_t*>(wp);
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    prefetch_next_rows<NR, MR == 1>(w, 2 * K, 2 * k);
    step_dot<MR, NR, false>(x, ldx, w, K, k, ~__mmask32{0}, acc);
  }
  if (k < K) {
    const __mmask32 mask = static_cast<__mmask32>((uint64_t{1} << (K - k)) - 1);
    step_dot<MR, NR, true>(x, ldx, w, K, k, mask, acc);
  }
  store_sums<MR, NR>(acc, out);
}

// Int8 dot products (Tiles::avx2_i8dot, Tiles::avx512_vnni): int8 weights times activations that
// quantize_rows_q8 turned into int8 blocks of 32 with one f32 scale each. Per block the integer
// dot is exact in int32; it is converted to f32, multiplied by the block's activation scale and
// added to an f32 accumulator (the weight row's scale and the bias come in columns()' epilogue).
// Both instruction sets multiply unsigned bytes by signed bytes, so the activation enters as |x|
// and each weight takes the sign of its activation: x * w = |x| * (sign(x) * w), with |x| and
// |w| <= 127 (the weights' documented range) so neither side overflows a byte (the AVX-512 tiles
// for several rows use an offset instead, see step_vnni_offset).

// Quantized activations for the tiles: rows at xq + i * ldxq, block scales at xs + i * ldxs.
struct QRows {
  const int8_t* xq;
  int64_t ldxq;
  const float* xs;
  int64_t ldxs;
};

// Both prefetch the weight rows of the next tile as they read their own, and for one activation
// row also the tile after (prefetch_next_rows).

// AVX2: one 32-byte block per step. vpmaddubsw adds pairs of u8 x s8 products into int16, which
// cannot saturate here: |a0 b0 + a1 b1| <= 2 * 127 * 127 = 32258 < 32767. vpmaddwd with ones then
// adds pairs of those into int32 (8 lanes, 4 products each).
template <bool kTail>
MM_TARGET inline __attribute__((always_inline)) __m256i load_w32(const int8_t* p, int64_t avail) {
  if constexpr (kTail) {
    // The last, partial block: only `avail` bytes of the weight row remain (the matrix may end).
    alignas(32) int8_t buf[32] = {};
    std::memcpy(buf, p, static_cast<size_t>(avail));
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
  } else {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
}

template <int MR, int NR, bool kTail>
MM_TARGET inline __attribute__((always_inline)) void step_i8dot(const QRows& x, const int8_t* w,
                                                                int64_t K, int64_t blk,
                                                                __m256 (&acc)[MR][NR]) {
  const int64_t k = blk * kQ8Block;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i xv[MR], xa[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    xv[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.xq + i * x.ldxq + k));
    xa[i] = _mm256_sign_epi8(xv[i], xv[i]);  // |x|
  }
  prefetch_next_rows<NR, MR == 1>(w, K, k);
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) {
    const __m256i wv = load_w32<kTail>(w + j * K + k, K - k);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256i ws = _mm256_sign_epi8(wv, xv[i]);  // sign(x) * w (0 where x = 0)
      const __m256i d = _mm256_madd_epi16(_mm256_maddubs_epi16(xa[i], ws), ones);
      acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d),
                                  _mm256_broadcast_ss(x.xs + i * x.ldxs + blk), acc[i][j]);
    }
  }
}

// out[i * kMaxNR + j] = sum_blocks xs[i, blk] * dot(xq[i, blk], w[j, blk]) for i < MR, j < NR.
template <int MR, int NR>
MM_TARGET void tile_i8dot(const QRows& x, const int8_t* w, int64_t K, float* out) {
  __m256 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  const int64_t full = K / kQ8Block;
  for (int64_t blk = 0; blk < full; ++blk) step_i8dot<MR, NR, false>(x, w, K, blk, acc);
  if (full * kQ8Block < K) step_i8dot<MR, NR, true>(x, w, K, full, acc);
  const __m256 z = _mm256_setzero_ps();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 2
    for (int j0 = 0; j0 < NR; j0 += 4) {
      const __m128 s = hsum4(acc[i][j0], j0 + 1 < NR ? acc[i][j0 + 1] : z,
                             j0 + 2 < NR ? acc[i][j0 + 2] : z, j0 + 3 < NR ? acc[i][j0 + 3] : z);
      _mm_storeu_ps(out + i * kMaxNR + j0, s);
    }
  }
}

// AVX512_VNNI: two blocks (64 bytes) per step; vpdpbusd adds groups of four u8 x s8 products into
// int32 lanes (exact), lanes 0-7 from the first block and 8-15 from the second, so each lane is
// scaled by its own block's scale. One row: the sign goes onto the weights with a masked
// subtract (0 - w where x < 0); more rows: step_vnni_offset below. Rows of xq are zero-padded to
// 64-byte multiples and their scales to an even count (q8_row_bytes / q8_row_blocks); a partial
// last step masks the weight load, since the weight matrix may end there.
#define VNNI_TARGET \
  __attribute__((target("avx512vnni,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

// Row i's scales of blocks blk and blk + 1 (one 64-byte step), in lanes 0-7 and 8-15 (the int32
// sums of vpdpbusd: lanes 0-7 cover bytes 0-31).
VNNI_TARGET inline __m512 block_pair_scales(const QRows& x, int i, int64_t blk) {
  const float* s = x.xs + i * x.ldxs + blk;
  return _mm512_mask_broadcastss_ps(_mm512_set1_ps(s[0]), 0xFF00, _mm_set_ss(s[1]));
}

template <int MR, int NR, bool kMasked>
VNNI_TARGET inline __attribute__((always_inline)) void step_vnni(const QRows& x, const int8_t* w,
                                                                 int64_t K, int64_t k,
                                                                 __mmask64 mask,
                                                                 __m512 (&acc)[MR][NR]) {
  const __m512i zero = _mm512_setzero_si512();
  const int64_t blk = k / kQ8Block;
  __m512i xa[MR];
  __mmask64 neg[MR];
  __m512 sv[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    const __m512i xv = _mm512_loadu_si512(x.xq + i * x.ldxq + k);
    neg[i] = _mm512_movepi8_mask(xv);
    xa[i] = _mm512_maskz_abs_epi8(~__mmask64{0}, xv);
    sv[i] = block_pair_scales(x, i, blk);
  }
  prefetch_next_rows<NR, MR == 1>(w, K, k);
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) {
    const int8_t* p = w + j * K + k;
    const __m512i wv = kMasked ? _mm512_maskz_loadu_epi8(mask, p) : _mm512_loadu_si512(p);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i ws = _mm512_mask_sub_epi8(wv, neg[i], zero, wv);
      const __m512i d = _mm512_dpbusd_epi32(zero, xa[i], ws);
      acc[i][j] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, d), sv[i], acc[i][j]);
    }
  }
}

// Several rows: the sign trick would cost one masked subtract per (row, weight vector) pair.
// Instead the activation enters as x + 128 (u8, x XOR 0x80) and each weight vector's accumulator
// starts at -128 * (sum of its weights per lane), one vpdpbusd per weight vector shared by the
// rows: (x + 128) . w - 128 sum(w) = x . w, in int32 exactly (|each lane| <= 4 * 255 * 127).
// Measured at 32 rows, K = N = 768, weights in cache, one thread of the same Xeon: 92-94 GMAC/s
// against 70-75 with the sign trick. (AVX2's vpmaddubsw would saturate on x + 128, so it keeps the
// sign trick.)
template <int MR, int NR, bool kMasked>
VNNI_TARGET inline __attribute__((always_inline)) void step_vnni_offset(const QRows& x,
                                                                        const int8_t* w, int64_t K,
                                                                        int64_t k, __mmask64 mask,
                                                                        __m512 (&acc)[MR][NR]) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i offset = _mm512_set1_epi8(static_cast<char>(0x80));
  const int64_t blk = k / kQ8Block;
  __m512i xu[MR];
  __m512 sv[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    xu[i] = _mm512_xor_si512(_mm512_loadu_si512(x.xq + i * x.ldxq + k), offset);
    sv[i] = block_pair_scales(x, i, blk);
  }
  prefetch_next_rows<NR, MR == 1>(w, K, k);
#pragma GCC unroll 8
  for (int j = 0; j < NR; ++j) {
    const int8_t* p = w + j * K + k;
    const __m512i wv = kMasked ? _mm512_maskz_loadu_epi8(mask, p) : _mm512_loadu_si512(p);
    const __m512i start = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, offset, wv));
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i d = _mm512_dpbusd_epi32(start, xu[i], wv);
      acc[i][j] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, d), sv[i], acc[i][j]);
    }
  }
}

// One row takes the sign trick (step_vnni: no per-weight compensation to pay), more rows the
// offset (step_vnni_offset).
template <int MR, int NR, bool kMasked>
VNNI_TARGET inline __attribute__((always_inline)) void step_vnni_rows(const QRows& x,
                                                                      const int8_t* w, int64_t K,
                                                                      int64_t k, __mmask64 mask,
                                                                      __m512 (&acc)[MR][NR]) {
  if constexpr (MR == 1)
    step_vnni<MR, NR, kMasked>(x, w, K, k, mask, acc);
  else
    step_vnni_offset<MR, NR, kMasked>(x, w, K, k, mask, acc);
}

template <int MR, int NR>
VNNI_TARGET void tile_vnni(const QRows& x, const int8_t* w, int64_t K, float* out) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) step_vnni_rows<MR, NR, false>(x, w, K, k, ~__mmask64{0}, acc);
  if (k < K) {
    const __mmask64 mask = (uint64_t{1} << (K - k)) - 1;
    step_vnni_rows<MR, NR, true>(x, w, K, k, mask, acc);
  }
  store_sums<MR, NR>(acc, out);
}

using TileFn = void (*)(const void*, int64_t, const void*, int64_t, float*);
using TileTable = std::array<std::array<TileFn, kMaxNR + 1>, kMaxMR + 1>;

template <int MR, int NR, WeightType kW>
struct Avx2Tile {
  static constexpr TileFn fn = &tile<MR, NR, kW>;
};
template <int MR, int NR, WeightType kW>
struct Avx512Tile {
  static constexpr TileFn fn = &tile512<MR, NR, kW>;
};
template <int MR, int NR, WeightType kW>
struct DotTile {
  static constexpr TileFn fn = &tile_dot<MR, NR, kW>;
};

template <template <int, int, WeightType> class Tile, int MR, WeightType kW>
constexpr std::array<TileFn, kMaxNR + 1> row_of_tiles() {
  return {nullptr,
          Tile<MR, 1, kW>::fn,
          Tile<MR, 2, kW>::fn,
          Tile<MR, 3, kW>::fn,
          Tile<MR, 4, kW>::fn,
          Tile<MR, 5, kW>::fn,
          Tile<MR, 6, kW>::fn,
          Tile<MR, 7, kW>::fn,
          Tile<MR, 8, kW>::fn};
}

template <template <int, int, WeightType> class Tile, WeightType kW>
constexpr TileTable tiles() {
  return {std::array<TileFn, kMaxNR + 1>{}, row_of_tiles<Tile, 1, kW>(),
          row_of_tiles<Tile, 2, kW>(), row_of_tiles<Tile, 3, kW>(), row_of_tiles<Tile, 4, kW>()};
}

constexpr TileTable kAvx2F32 = tiles<Avx2Tile, WeightType::f32>();
constexpr TileTable kAvx2BF16 = tiles<Avx2Tile, WeightType::bf16>();
constexpr TileTable kAvx2I8 = tiles<Avx2Tile, WeightType::i8>();
constexpr TileTable kAvx512F32 = tiles<Avx512Tile, WeightType::f32>();
constexpr TileTable kAvx512BF16 = tiles<Avx512Tile, WeightType::bf16>();
constexpr TileTable kAvx512I8 = tiles<Avx512Tile, WeightType::i8>();
constexpr TileTable kDotBF16 = tiles<DotTile, WeightType::bf16>();

using Q8TileFn = void (*)(const QRows&, const int8_t*, int64_t, float*);
using Q8TileTable = std::array<std::array<Q8TileFn, kMaxNR + 1>, kMaxMR + 1>;

template <template <int, int> class Tile, int MR>
constexpr std::array<Q8TileFn, kMaxNR + 1> row_of_q8_tiles() {
  return {nullptr,         Tile<MR, 1>::fn, Tile<MR, 2>::fn, Tile<MR, 3>::fn, Tile<MR, 4>::fn,
          Tile<MR, 5>::fn, Tile<MR, 6>::fn, Tile<MR, 7>::fn, Tile<MR, 8>::fn};
}

template <template <int, int> class Tile>
constexpr Q8TileTable q8_tiles() {
  return {std::array<Q8TileFn, kMaxNR + 1>{}, row_of_q8_tiles<Tile, 1>(),
          row_of_q8_tiles<Tile, 2>(), row_of_q8_tiles<Tile, 3>(), row_of_q8_tiles<Tile, 4>()};
}

template <int MR, int NR>
struct I8DotTile {
  static constexpr Q8TileFn fn = &tile_i8dot<MR, NR>;
};
template <int MR, int NR>
struct VnniTile {
  static constexpr Q8TileFn fn = &tile_vnni<MR, NR>;
};

constexpr Q8TileTable kI8Dot = q8_tiles<I8DotTile>();
constexpr Q8TileTable kVnni = q8_tiles<VnniTile>();

// Rows of x kept hot in L2 while a block of weight rows sits in L1 (Zen 3: 512 KiB L2 per core).
constexpr int64_t kXBlockBytes = 320 * 1024;
// The largest weight tile widened to f32 for several row tiles (gemm_nt_columns): beside the
// block of x, within a Zen 3 L2.
constexpr int64_t kWidePanelBytes = 128 * 1024;

template <WeightType kW>
MM_TARGET void widen_n(const void* w, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load_w<kW>(w, i));
  for (; i < n; ++i) out[i] = w_at<kW>(w, i);
}

// n consecutive weights of type t as f32 (exact); callers hold AVX2 (every tile set does).
void widen_to_f32(const void* w, WeightType t, int64_t n, float* out) {
  if (t == WeightType::bf16) return widen_n<WeightType::bf16>(w, n, out);
  if (t == WeightType::i8) return widen_n<WeightType::i8>(w, n, out);
  std::memcpy(out, w, static_cast<size_t>(n) * 4);
}

// Columns [n0, n1) of every row in MR x NR tiles: tile(m, mr, nr, wn, out) writes the raw sums of
// rows [m, m + mr) against weight rows wn[0, nr) to out (kMaxNR apart); this adds scale and bias
// and stores. x_row_bytes (one activation row's size) sets how many rows stay hot in L2.
template <class TileCall>
void columns(const GemmNT& a, int64_t MR, int64_t NR, int64_t x_row_bytes, int64_t n0, int64_t n1,
             const TileCall& tile) {
  const int64_t K = a.K, wsize = weight_size(a.w_type);
  int64_t mc = std::max<int64_t>(MR, kXBlockBytes / std::max<int64_t>(1, x_row_bytes));
  mc = std::max<int64_t>(MR, mc / MR * MR);
  float out[kMaxMR * kMaxNR];
  for (int64_t m0 = 0; m0 < a.M; m0 += mc) {
    const int64_t m1 = std::min(a.M, m0 + mc);
    for (int64_t n = n0; n < n1; n += NR) {
      const int64_t nr = std::min(NR, n1 - n);
      const void* wn = static_cast<const char*>(a.w) + n * K * wsize;
      float bias[kMaxNR], scale[kMaxNR];
      epilogue_factors(a, n, nr, scale, bias);
      for (int64_t m = m0; m < m1; m += MR) {
        const int64_t mr = std::min(MR, m1 - m);
        tile(m, mr, nr, wn, out);
        for (int64_t i = 0; i < mr; ++i)
          store_outputs(a, m + i, n, nr, out + i * kMaxNR, 1, scale, bias);
      }
    }
  }
}

const TileTable& table_for(Tiles tiles, WeightType w) {
  switch (tiles) {
    case Tiles::avx2:
      return w == WeightType::f32 ? kAvx2F32 : w == WeightType::bf16 ? kAvx2BF16 : kAvx2I8;
    case Tiles::avx512:
      return w == WeightType::f32 ? kAvx512F32 : w == WeightType::bf16 ? kAvx512BF16 : kAvx512I8;
    case Tiles::avx512_bf16:
      if (w != WeightType::bf16) fail("gemm_nt_columns: the bf16-dot tiles need bf16 weights");
      return kDotBF16;
    case Tiles::avx2_i8dot:
    case Tiles::avx512_vnni:
    case Tiles::amx_int8:
    case Tiles::amx_bf16x3:
      break;
  }
  fail("gemm_nt_columns: unknown tile set");
}

// Activation quantization: one block of 32 values v (zeros past the row's end) into q; returns
// the block's scale (see quantize_rows_q8 in linear_kernel.h). Blocks whose largest magnitude is
// below this are stored as zeros (1 / scale could overflow).
constexpr float kQ8TinyMax = 0x1p-96f;

float quantize_block_scalar(const float* v, int8_t* q) {
  float amax = 0;
  bool finite = true;
  for (int64_t k = 0; k < kQ8Block; ++k) {
    const float a = std::fabs(v[k]);
    finite = finite && a <= std::numeric_limits<float>::max();
    amax = std::max(amax, a);
  }
  std::memset(q, 0, kQ8Block);
  if (!finite) return std::numeric_limits<float>::quiet_NaN();  // NaN / inf: the outputs are NaN
  if (amax < kQ8TinyMax) return 0;
  const float scale = amax / 127.0f, inv = 1.0f / scale;
  for (int64_t k = 0; k < kQ8Block; ++k)
    q[k] = static_cast<int8_t>(std::clamp(std::nearbyint(v[k] * inv), -127.0f, 127.0f));
  return scale;
}

// The same block with AVX2 (the same arithmetic: |x| max, one f32 division each for the scale and
// its inverse, products rounded to nearest even).
MM_TARGET float quantize_block_avx2(const float* v, int8_t* q) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 fmax = _mm256_set1_ps(std::numeric_limits<float>::max());
  __m256 x[4], amax = _mm256_setzero_ps();
  int bad = 0;
  for (int i = 0; i < 4; ++i) {
    x[i] = _mm256_loadu_ps(v + 8 * i);
    const __m256 a = _mm256_and_ps(x[i], abs_mask);
    bad |= _mm256_movemask_ps(_mm256_cmp_ps(a, fmax, _CMP_NLE_UQ));  // NaN or inf
    amax = _mm256_max_ps(amax, a);
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
  const float amax1 = _mm_cvtss_f32(m4);
  if (bad || amax1 < kQ8TinyMax) {
    std::memset(q, 0, kQ8Block);
    return bad ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
  }
  const float scale = amax1 / 127.0f, inv = 1.0f / scale;
  const __m256 iv = _mm256_set1_ps(inv);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  __m256i n[4];
  for (int i = 0; i < 4; ++i) {
    const __m256 r =
        _mm256_round_ps(_mm256_mul_ps(x[i], iv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    n[i] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(r), lo), hi);
  }
  // packs works within 128-bit lanes: the dwords come out as a0 b0 c0 d0 a1 b1 c1 d1 (each four
  // bytes of one source vector); the permutation puts them back in order.
  const __m256i bytes =
      _mm256_packs_epi16(_mm256_packs_epi32(n[0], n[1]), _mm256_packs_epi32(n[2], n[3]));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), _mm256_permutevar8x32_epi32(bytes, order));
  return scale;
}

void columns_q8(const GemmNT& a, Tiles tiles, int64_t n0, int64_t n1) {
  if (a.w_type != WeightType::i8) fail("gemm_nt_columns: the int8-dot tiles need int8 weights");
  if (!a.xq || !a.xq_scale)
    fail("gemm_nt_columns: the int8-dot tiles need quantized activations (GemmNT::xq, xq_scale)");
  // One row: 8 weight rows per AVX-512 tile (8 accumulators), 4 per AVX2 tile (16 ymm: 4
  // accumulators, x and |x|, ones, the scale and temporaries). More rows: 4 x 4 for AVX-512 (16
  // accumulators, 4 |x| and 4 scale vectors, weight temporaries), 2 x 4 for AVX2.
  const bool vnni = tiles == Tiles::avx512_vnni;
  const Q8TileTable& table = vnni ? kVnni : kI8Dot;
  const int64_t MR = a.M == 1 ? 1 : vnni ? 4 : 2;
  const int64_t NR = a.M == 1 ? (vnni ? 8 : 4) : 4;
  const int64_t row_bytes = q8_row_bytes(a.K) + 4 * q8_row_blocks(a.K);
  columns(
      a, MR, NR, row_bytes, n0, n1,
      [&](int64_t m, int64_t mr, int64_t nr, const void* wn, float* out) {
        const QRows rows{a.xq + m * a.ldxq, a.ldxq, a.xq_scale + m * a.ldxq_scale, a.ldxq_scale};
        table[mr][nr](rows, static_cast<const int8_t*>(wn), a.K, out);
      });
}

}  // namespace

void epilogue_factors(const GemmNT& a, int64_t n, int64_t nr, float* scale, float* bias) {
  for (int64_t j = 0; j < nr; ++j) {
    bias[j] = !a.b       ? 0.0f
              : a.b_bf16 ? w_at<WeightType::bf16>(a.b, n + j)
                         : w_at<WeightType::f32>(a.b, n + j);
    scale[j] = a.w_scale ? a.w_scale[n + j] : 1.0f;
  }
}

void store_outputs(const GemmNT& a, int64_t m, int64_t n, int64_t nr, const float* sums,
                   int64_t step, const float* scale, const float* bias) {
  if (a.y_bf16) {
    uint16_t* y = static_cast<uint16_t*>(a.y) + m * a.ldy + n;
    for (int64_t j = 0; j < nr; ++j) y[j] = float_to_bf16(sums[j * step] * scale[j] + bias[j]);
  } else {
    float* y = static_cast<float*>(a.y) + m * a.ldy + n;
    for (int64_t j = 0; j < nr; ++j) y[j] = sums[j * step] * scale[j] + bias[j];
  }
}

bool quantizes_activations(Tiles tiles) {
  return tiles == Tiles::avx2_i8dot || tiles == Tiles::avx512_vnni || tiles == Tiles::amx_int8;
}

int64_t q8_row_blocks(int64_t K) { return ((K + kQ8Block - 1) / kQ8Block + 1) / 2 * 2; }

int64_t q8_row_bytes(int64_t K) { return q8_row_blocks(K) * kQ8Block; }

void quantize_rows_q8(const void* x, bool x_bf16, int64_t ldx, int64_t M, int64_t K, int8_t* xq,
                      int64_t ldxq, float* xs, int64_t ldxs) {
  const bool avx2 = kernel_isa() >= Isa::avx2;
  const int64_t blocks = (K + kQ8Block - 1) / kQ8Block, padded = q8_row_blocks(K);
  float buf[kQ8Block];
  for (int64_t m = 0; m < M; ++m) {
    int8_t* q = xq + m * ldxq;
    float* s = xs + m * ldxs;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t k0 = blk * kQ8Block, n = std::min(kQ8Block, K - k0);
      const float* v = buf;
      if (!x_bf16 && n == kQ8Block) {
        v = static_cast<const float*>(x) + m * ldx + k0;
      } else {
        for (int64_t k = 0; k < kQ8Block; ++k)
          buf[k] = k >= n   ? 0.0f
                   : x_bf16 ? w_at<WeightType::bf16>(x, m * ldx + k0 + k)
                            : w_at<WeightType::f32>(x, m * ldx + k0 + k);
      }
      s[blk] = avx2 ? quantize_block_avx2(v, q + k0) : quantize_block_scalar(v, q + k0);
    }
    for (int64_t blk = blocks; blk < padded; ++blk) {
      s[blk] = 0;
      std::memset(q + blk * kQ8Block, 0, kQ8Block);
    }
  }
}

void gemm_nt_columns(const GemmNT& a, Tiles tiles, int64_t n0, int64_t n1) {
  if (tiles == Tiles::amx_int8) return amx_columns(a, n0, n1);
  if (quantizes_activations(tiles)) return columns_q8(a, tiles, n0, n1);
  if (tiles == Tiles::amx_bf16x3) return amx_split_columns(a, n0, n1);
  // One row (GEMV): up to 8 weight rows per tile (gemv_rows), each used once. More rows: a 4 x 3
  // register tile for AVX2 (12 accumulators + 3 weight vectors + 1 activation vector = the 16 ymm
  // registers), 4 x 6 for AVX-512 (32 zmm registers).
  const int64_t MR = a.M == 1 ? 1 : 4;
  const int64_t NR = a.M == 1 ? gemv_rows(a.K, a.w_type) : tiles == Tiles::avx2 ? 3 : 6;
  const int64_t x_bytes = tiles == Tiles::avx512_bf16 ? 2 : 4;
  // Where several row tiles share each weight tile, its bf16 / int8 rows are widened to f32 once
  // (exactly: the same products and sums as widening in registers) and every row tile runs the
  // f32 tile on them. That takes the widening out of the inner loop (a 16-deep step of the
  // AVX-512 4 x 6 int8 tile: 24 vector uops instead of 36), while the panel stays in L1/L2.
  const bool widen = a.M > MR && a.w_type != WeightType::f32 && tiles != Tiles::avx512_bf16 &&
                     NR * a.K * 4 <= kWidePanelBytes;
  const TileTable& table = table_for(tiles, widen ? WeightType::f32 : a.w_type);
  thread_local std::vector<float> panel;
  const void* widened = nullptr;  // the weight tile now in panel
  columns(a, MR, NR, a.K * 4, n0, n1,
          [&](int64_t m, int64_t mr, int64_t nr, const void* wn, float* out) {
            if (widen) {
              if (wn != widened) {
                panel.resize(static_cast<size_t>(NR * a.K));
                widen_to_f32(wn, a.w_type, nr * a.K, panel.data());
                widened = wn;
              }
              wn = panel.data();
            }
            table[mr][nr](static_cast<const char*>(a.x) + m * a.ldx * x_bytes, a.ldx, wn, a.K, out);
          });
}

// Measured at batch 1 on the 2-core AVX-512 Xeon (decode_bench --worker, bench model, 128+128
// tokens, 4-6 alternating runs): f32, whose 8-row tiles were 24 KiB (K = 768) and 64 KiB
// (K = 2048), decoded in 1.69-1.79 s with 2 and 1 rows against 1.81-1.89 s with 8; bf16 (4 and 2
// rows instead of 8) and q8 (4 rows at K = 2048) were unchanged within noise.
constexpr int64_t kGemvTileBytes = 8 * 1024;

int64_t gemv_rows(int64_t K, WeightType w) {
  if (w == WeightType::i8) return kMaxNR;
  int64_t nr = kMaxNR;
  while (nr > 1 && nr * K * weight_size(w) > kGemvTileBytes) nr /= 2;
  return nr;
}

std::vector<int64_t> column_bounds(int64_t N, int64_t M, int64_t K, int64_t threads) {
  const int64_t share = 2 * std::max<int64_t>(1, threads);
  const int64_t least = (int64_t{1} << 16) / std::max<int64_t>(1, M * K) + 1;
  std::vector<int64_t> b{0};
  while (b.back() < N) {
    const int64_t chunk = std::max(least, (N - b.back() + share - 1) / share);
    b.push_back(std::min(N, b.back() + (chunk + 23) / 24 * 24));
  }
  return b;
}

}  // namespace metamath::model::kernels
