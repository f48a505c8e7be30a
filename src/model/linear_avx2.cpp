// AVX2/FMA small-M GEMM against [out, in] weights (see linear_avx2.h).
//
// Why hand-written: no library that libtorch 1.13 ships does small-M GEMM against [out, in]
// weights well on this AVX2 CPU. OpenBLAS 0.3.21 sgemm packs the whole weight for every call and
// libtorch's bf16 matmul has no AVX2 kernel (oneDNN's bf16 path needs AVX-512). Measured at 32 rows
// on 2 Zen 3 cores (busy machine, load 3-4, so noisy): f32 38-63 GFLOP/s here against 9-54 for
// at::linear (1.1-4.9x, typically ~2x); bf16 56-63 against 1.5; one row: 1.1-4x at::linear and
// on par with at::mv (bench/README.md, "Model decoding").
// Dot-product tiles read the [out, in] weight in place (no packing), widen bf16 in registers, and
// stream each weight from memory once per call.
//
// Only the functions marked MM_TARGET use AVX2/FMA instructions, so the file builds with the
// project's default flags; callers dispatch at run time on avx2_fma_available().
#include "model/linear_avx2.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

namespace metamath::model::kernels {

bool avx2_fma_available() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}

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

using TileFn = void (*)(const float*, int64_t, const void*, int64_t, float*);

template <int MR, bool kBF16>
constexpr std::array<TileFn, kMaxNR + 1> row_of_tiles() {
  return {nullptr,
          &tile<MR, 1, kBF16>,
          &tile<MR, 2, kBF16>,
          &tile<MR, 3, kBF16>,
          &tile<MR, 4, kBF16>,
          &tile<MR, 5, kBF16>,
          &tile<MR, 6, kBF16>,
          &tile<MR, 7, kBF16>,
          &tile<MR, 8, kBF16>};
}

template <bool kBF16>
constexpr std::array<std::array<TileFn, kMaxNR + 1>, kMaxMR + 1> tiles() {
  return {std::array<TileFn, kMaxNR + 1>{}, row_of_tiles<1, kBF16>(), row_of_tiles<2, kBF16>(),
          row_of_tiles<3, kBF16>(), row_of_tiles<4, kBF16>()};
}

constexpr auto kTilesF32 = tiles<false>();
constexpr auto kTilesBF16 = tiles<true>();

// Rows of x kept hot in L2 while a block of weight rows sits in L1 (Zen 3: 512 KiB L2 per core).
constexpr int64_t kXBlockBytes = 320 * 1024;

}  // namespace

void gemm_nt_columns(const GemmNT& a, int64_t n0, int64_t n1) {
  const auto& table = a.w_bf16 ? kTilesBF16 : kTilesF32;
  // One row (GEMV): wide tiles, each weight row used once. More rows: a 4 x 3 register tile
  // (12 accumulators + 3 weight vectors + 1 activation vector = the 16 ymm registers).
  const int64_t MR = a.M == 1 ? 1 : 4, NR = a.M == 1 ? 8 : 3;
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

}  // namespace metamath::model::kernels
