// Small-M GEMM against [out, in] weights, AVX2/FMA and AVX-512 tiles (see linear_kernel.h).
//
// Why hand-written: no library that libtorch 1.13 ships does small-M GEMM against [out, in]
// weights well on these CPUs. OpenBLAS 0.3.21 sgemm packs the whole weight for every call and
// libtorch's bf16 matmul has no AVX2 kernel (oneDNN's bf16 path needs AVX-512). Measured at 32 rows
// on 2 Zen 3 cores (busy machine, load 3-4, so noisy): f32 38-63 GFLOP/s here against 9-54 for
// at::linear (1.1-4.9x, typically ~2x); bf16 56-63 against 1.5; one row: 1.1-4x at::linear and
// on par with at::mv (bench/README.md, "Model decoding"; the AVX-512 tiles: "AVX-512 kernel
// paths").
// Dot-product tiles read the [out, in] weight in place (no packing), widen bf16 in registers, and
// stream each weight from memory once per call.
//
// Only the functions marked MM_TARGET / MM512_TARGET use AVX2/FMA / AVX-512 instructions, so the
// file builds with the project's default flags; callers pick the set with kernel_isa().
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

template <bool kBF16>
inline float w_at(const void* w, int64_t i) {
  if constexpr (kBF16)
    return bf16_to_float(static_cast<const uint16_t*>(w)[i]);
  else
    return static_cast<const float*>(w)[i];
}

template <bool kBF16>
MM_TARGET inline __m256 load_w(const void* w, int64_t i) {
  if constexpr (kBF16) {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
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
template <int MR, int NR, bool kBF16>
MM_TARGET void tile(const float* x, int64_t ldx, const void* w, int64_t K, float* out) {
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
        const __m256 wv = load_w<kBF16>(w, j * K + k);
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
      }
    } else {
      __m256 wv[NR];
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) wv[j] = load_w<kBF16>(w, j * K + k);
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
      for (int j = 0; j < NR; ++j)
        out[i * kMaxNR + j] += x[i * ldx + k] * w_at<kBF16>(w, j * K + k);
}

// AVX-512: the same tiles 16 lanes wide; the K tail (K % 16) is one masked step instead of a
// scalar loop. 32 zmm registers allow a 4 x 6 tile (24 accumulators + 4 activation vectors + 1
// weight vector). Where a masked form with every lane set stands for a plain intrinsic: GCC 12's
// unmasked AVX-512 intrinsics start from an "undefined" vector that -Werror=uninitialized rejects.
#define MM512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

template <bool kBF16, bool kMasked>
MM512_TARGET inline __attribute__((always_inline)) __m512 load_w16(const void* w, int64_t i,
                                                                   __mmask16 mask) {
  if constexpr (kBF16) {
    const uint16_t* p = static_cast<const uint16_t*>(w) + i;
    const __m256i h = kMasked ? _mm256_maskz_loadu_epi16(mask, p)
                              : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(
        _mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
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
template <int MR, int NR, bool kBF16, bool kMasked>
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
      const __m512 wv = load_w16<kBF16, kMasked>(w, j * K + k, mask);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
    }
  } else {
    __m512 wv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = load_w16<kBF16, kMasked>(w, j * K + k, mask);
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

// out[i * kMaxNR + j] = sum_k x[i, k] * w[j, k] for i < MR, j < NR.
template <int MR, int NR, bool kBF16>
MM512_TARGET void tile512(const float* x, int64_t ldx, const void* w, int64_t K, float* out) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) step512<MR, NR, kBF16, false>(x, ldx, w, K, k, 0xFFFF, acc);
  if (k < K) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (K - k)) - 1);
    step512<MR, NR, kBF16, true>(x, ldx, w, K, k, mask, acc);
  }
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

using TileFn = void (*)(const float*, int64_t, const void*, int64_t, float*);
using TileTable = std::array<std::array<TileFn, kMaxNR + 1>, kMaxMR + 1>;

template <int MR, int NR, bool kBF16>
struct Avx2Tile {
  static constexpr TileFn fn = &tile<MR, NR, kBF16>;
};
template <int MR, int NR, bool kBF16>
struct Avx512Tile {
  static constexpr TileFn fn = &tile512<MR, NR, kBF16>;
};

template <template <int, int, bool> class Tile, int MR, bool kBF16>
constexpr std::array<TileFn, kMaxNR + 1> row_of_tiles() {
  return {nullptr,
          Tile<MR, 1, kBF16>::fn,
          Tile<MR, 2, kBF16>::fn,
          Tile<MR, 3, kBF16>::fn,
          Tile<MR, 4, kBF16>::fn,
          Tile<MR, 5, kBF16>::fn,
          Tile<MR, 6, kBF16>::fn,
          Tile<MR, 7, kBF16>::fn,
          Tile<MR, 8, kBF16>::fn};
}

template <template <int, int, bool> class Tile, bool kBF16>
constexpr TileTable tiles() {
  return {std::array<TileFn, kMaxNR + 1>{}, row_of_tiles<Tile, 1, kBF16>(),
          row_of_tiles<Tile, 2, kBF16>(), row_of_tiles<Tile, 3, kBF16>(),
          row_of_tiles<Tile, 4, kBF16>()};
}

constexpr TileTable kAvx2F32 = tiles<Avx2Tile, false>();
constexpr TileTable kAvx2BF16 = tiles<Avx2Tile, true>();
constexpr TileTable kAvx512F32 = tiles<Avx512Tile, false>();
constexpr TileTable kAvx512BF16 = tiles<Avx512Tile, true>();

// Rows of x kept hot in L2 while a block of weight rows sits in L1 (Zen 3: 512 KiB L2 per core).
constexpr int64_t kXBlockBytes = 320 * 1024;

// Columns [n0, n1) of every row in MR x NR tiles taken from `table`.
void columns(const GemmNT& a, const TileTable& table, int64_t MR, int64_t NR, int64_t n0,
             int64_t n1) {
  const int64_t K = a.K, wsize = a.w_bf16 ? 2 : 4;
  int64_t mc = std::max<int64_t>(MR, kXBlockBytes / std::max<int64_t>(1, K * 4));
  mc = std::max<int64_t>(MR, mc / MR * MR);
  float out[kMaxMR * kMaxNR];
  for (int64_t m0 = 0; m0 < a.M; m0 += mc) {
    const int64_t m1 = std::min(a.M, m0 + mc);
    for (int64_t n = n0; n < n1; n += NR) {
      const int64_t nr = std::min(NR, n1 - n);
      const void* wn = static_cast<const char*>(a.w) + n * K * wsize;
      float bias[kMaxNR] = {};
      if (a.b)
        for (int64_t j = 0; j < nr; ++j)
          bias[j] = a.w_bf16 ? w_at<true>(a.b, n + j) : w_at<false>(a.b, n + j);
      for (int64_t m = m0; m < m1; m += MR) {
        const int64_t mr = std::min(MR, m1 - m);
        table[mr][nr](a.x + m * a.ldx, a.ldx, wn, K, out);
        for (int64_t i = 0; i < mr; ++i) {
          if (a.y_bf16) {
            uint16_t* y = static_cast<uint16_t*>(a.y) + (m + i) * a.ldy + n;
            for (int64_t j = 0; j < nr; ++j) y[j] = float_to_bf16(out[i * kMaxNR + j] + bias[j]);
          } else {
            float* y = static_cast<float*>(a.y) + (m + i) * a.ldy + n;
            for (int64_t j = 0; j < nr; ++j) y[j] = out[i * kMaxNR + j] + bias[j];
          }
        }
      }
    }
  }
}

}  // namespace

void gemm_nt_columns(const GemmNT& a, Isa isa, int64_t n0, int64_t n1) {
  // One row (GEMV): wide tiles, each weight row used once. More rows: a 4 x 3 register tile for
  // AVX2 (12 accumulators + 3 weight vectors + 1 activation vector = the 16 ymm registers), 4 x 6
  // for AVX-512 (32 zmm registers).
  const int64_t MR = a.M == 1 ? 1 : 4;
  switch (isa) {
    case Isa::avx2:
      return columns(a, a.w_bf16 ? kAvx2BF16 : kAvx2F32, MR, a.M == 1 ? 8 : 3, n0, n1);
    case Isa::avx512:
      return columns(a, a.w_bf16 ? kAvx512BF16 : kAvx512F32, MR, a.M == 1 ? 8 : 6, n0, n1);
    case Isa::scalar:
      break;
  }
  fail("gemm_nt_columns: no tiles for instruction set {}", isa_name(isa));
}

}  // namespace metamath::model::kernels
