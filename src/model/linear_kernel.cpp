// Small-M GEMM against [out, in] weights: AVX2/FMA, AVX-512 and AVX512_BF16 tiles (see
// linear_kernel.h).
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
// Only the functions marked MM_TARGET / MM512_TARGET / BF16_TARGET use AVX2/FMA / AVX-512 /
// AVX512_BF16 instructions, so the file builds with the project's default flags; callers pick the
// set at run time (model/linear.cpp).
#include "model/linear_kernel.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "core/error.h"

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
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
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
  int64_t k = 0;
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
  for (; k + 32 <= K; k += 32) step_dot<MR, NR, false>(x, ldx, w, K, k, ~__mmask32{0}, acc);
  if (k < K) {
    const __mmask32 mask = static_cast<__mmask32>((uint64_t{1} << (K - k)) - 1);
    step_dot<MR, NR, true>(x, ldx, w, K, k, mask, acc);
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

// Rows of x kept hot in L2 while a block of weight rows sits in L1 (Zen 3: 512 KiB L2 per core).
constexpr int64_t kXBlockBytes = 320 * 1024;

int64_t weight_bytes(WeightType t) {
  switch (t) {
    case WeightType::f32:
      return 4;
    case WeightType::bf16:
      return 2;
    case WeightType::i8:
      return 1;
  }
  return 4;
}

// Columns [n0, n1) of every row in MR x NR tiles taken from `table`; x elements of x_bytes bytes.
void columns(const GemmNT& a, const TileTable& table, int64_t MR, int64_t NR, int64_t x_bytes,
             int64_t n0, int64_t n1) {
  const int64_t K = a.K, wsize = weight_bytes(a.w_type);
  int64_t mc = std::max<int64_t>(MR, kXBlockBytes / std::max<int64_t>(1, K * 4));
  mc = std::max<int64_t>(MR, mc / MR * MR);
  float out[kMaxMR * kMaxNR];
  for (int64_t m0 = 0; m0 < a.M; m0 += mc) {
    const int64_t m1 = std::min(a.M, m0 + mc);
    for (int64_t n = n0; n < n1; n += NR) {
      const int64_t nr = std::min(NR, n1 - n);
      const void* wn = static_cast<const char*>(a.w) + n * K * wsize;
      float bias[kMaxNR] = {}, scale[kMaxNR];
      for (int64_t j = 0; j < nr; ++j) {
        if (a.b)
          bias[j] =
              a.b_bf16 ? w_at<WeightType::bf16>(a.b, n + j) : w_at<WeightType::f32>(a.b, n + j);
        scale[j] = a.w_scale ? a.w_scale[n + j] : 1.0f;
      }
      for (int64_t m = m0; m < m1; m += MR) {
        const int64_t mr = std::min(MR, m1 - m);
        table[mr][nr](static_cast<const char*>(a.x) + m * a.ldx * x_bytes, a.ldx, wn, K, out);
        for (int64_t i = 0; i < mr; ++i) {
          if (a.y_bf16) {
            uint16_t* y = static_cast<uint16_t*>(a.y) + (m + i) * a.ldy + n;
            for (int64_t j = 0; j < nr; ++j)
              y[j] = float_to_bf16(out[i * kMaxNR + j] * scale[j] + bias[j]);
          } else {
            float* y = static_cast<float*>(a.y) + (m + i) * a.ldy + n;
            for (int64_t j = 0; j < nr; ++j) y[j] = out[i * kMaxNR + j] * scale[j] + bias[j];
          }
        }
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
  }
  fail("gemm_nt_columns: unknown tile set");
}

}  // namespace

void gemm_nt_columns(const GemmNT& a, Tiles tiles, int64_t n0, int64_t n1) {
  // One row (GEMV): wide tiles, each weight row used once. More rows: a 4 x 3 register tile for
  // AVX2 (12 accumulators + 3 weight vectors + 1 activation vector = the 16 ymm registers), 4 x 6
  // for AVX-512 (32 zmm registers).
  const int64_t MR = a.M == 1 ? 1 : 4;
  const int64_t NR = a.M == 1 ? 8 : tiles == Tiles::avx2 ? 3 : 6;
  const int64_t x_bytes = tiles == Tiles::avx512_bf16 ? 2 : 4;
  columns(a, table_for(tiles, a.w_type), MR, NR, x_bytes, n0, n1);
}

}  // namespace metamath::model::kernels
