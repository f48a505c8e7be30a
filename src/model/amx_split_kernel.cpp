#include "model/amx_split_kernel.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"

// GCC 12's unmasked AVX-512 intrinsics (shuffles, unpacks, conversions, reduce) start from an
// "undefined" vector that its -Wuninitialized flags once inlined at -O3: false positives.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace metamath::model::kernels {

namespace {

#define AMX_TARGET \
  __attribute__((  \
      target("amx-tile,amx-bf16,avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
#define SPLIT_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
#define CONVERT_TARGET \
  __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

constexpr int64_t kRows = 16;   // rows (and columns) of a tile
constexpr int64_t kDepth = 32;  // bf16 values along K per tile row (64 bytes)
constexpr int64_t kTile = 512;  // uint16 values per tile (1 KiB)
constexpr int kPlanes = 3;
// Weight panel per thread: at most this many bytes of converted weights (it stays in L2 while
// every row tile passes over it), but always at least two column tiles.
constexpr int64_t kPanelBytes = 1024 << 10;
constexpr int kMaxExponent = 120;  // clamp of the per-row power-of-two scaling

int64_t row_tiles(int64_t M) { return (M + kRows - 1) / kRows; }
int64_t k_tiles(int64_t K) { return (K + kDepth - 1) / kDepth; }
// uint16 values of one row tile's planes.
int64_t row_tile_values(int64_t K) { return k_tiles(K) * kPlanes * kTile; }

const float* row_factors(const void* split, int64_t M, int64_t K) {
  return reinterpret_cast<const float*>(static_cast<const uint16_t*>(split) +
                                        row_tiles(M) * row_tile_values(K));
}

// The high 16 bits of each float of a (elements 0-15) and b (16-31): 32 bf16 values in order.
SPLIT_TARGET inline __m512i high_halves(__m512 a, __m512 b) {
  const __m512i odd =
      _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27,
                       25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  return _mm512_permutex2var_epi16(_mm512_castps_si512(a), odd, _mm512_castps_si512(b));
}

// Transposes a 16 x 16 matrix of 32-bit elements held one row per register.
SPLIT_TARGET void transpose16(__m512i r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    const __m512 a = _mm512_castsi512_ps(r[2 * i]), b = _mm512_castsi512_ps(r[2 * i + 1]);
    t[2 * i] = _mm512_unpacklo_ps(a, b);      // per 128-bit lane: a0 b0 a1 b1
    t[2 * i + 1] = _mm512_unpackhi_ps(a, b);  // a2 b2 a3 b3
  }
  for (int j = 0; j < 4; ++j) {
    u[4 * j + 0] = _mm512_shuffle_ps(t[4 * j], t[4 * j + 2], 0x44);  // a0 b0 c0 d0
    u[4 * j + 1] = _mm512_shuffle_ps(t[4 * j], t[4 * j + 2], 0xEE);  // a1 b1 c1 d1
    u[4 * j + 2] = _mm512_shuffle_ps(t[4 * j + 1], t[4 * j + 3], 0x44);
    u[4 * j + 3] = _mm512_shuffle_ps(t[4 * j + 1], t[4 * j + 3], 0xEE);
  }
  // u[4j + c], 128-bit lane L: rows 4j..4j+3 of column 4L + c.
  for (int c = 0; c < 4; ++c) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);  // lanes 0, 2 of each
    const __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);  // lanes 1, 3
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_castps_si512(_mm512_shuffle_f32x4(v0, v2, 0x88));
    r[8 + c] = _mm512_castps_si512(_mm512_shuffle_f32x4(v0, v2, 0xDD));
    r[4 + c] = _mm512_castps_si512(_mm512_shuffle_f32x4(v1, v3, 0x88));
    r[12 + c] = _mm512_castps_si512(_mm512_shuffle_f32x4(v1, v3, 0xDD));
  }
}

__mmask16 first_lanes(int64_t n) {
  return n >= 16 ? 0xffff : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
}

// frexp's exponent of the row's largest |x|, clamped; 0 for a zero row or one holding a NaN or an
// infinity.
SPLIT_TARGET int row_exponent(const float* x, int64_t K) {
  __m512 amax = _mm512_setzero_ps();
  __mmask16 nan = 0;  // max_ps may drop a NaN (it returns its second operand): tracked apart
  for (int64_t k = 0; k < K; k += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(first_lanes(K - k), x + k);
    amax = _mm512_max_ps(amax, _mm512_abs_ps(v));
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  }
  const float big = _mm512_reduce_max_ps(amax);
  if (nan || !(big > 0) || !std::isfinite(big)) return 0;
  int e = 0;
  std::frexp(big, &e);
  return std::clamp(e, -kMaxExponent, kMaxExponent);
}

// One row tile (rows m0 .. m0 + 15, those past M zero) into its planes and row factors.
SPLIT_TARGET void split_row_tile(const float* x, int64_t ldx, int64_t M, int64_t K, int64_t m0,
                                 uint16_t* out, float* factors) {
  const int64_t rows = std::min(kRows, M - m0);
  float inv[kRows];
  for (int64_t r = 0; r < kRows; ++r) {
    const int e = r < rows ? row_exponent(x + (m0 + r) * ldx, K) : 0;
    inv[r] = std::ldexp(1.0f, -e);
    factors[r] = std::ldexp(1.0f, e);
  }
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t kt = 0; kt < k_tiles(K); ++kt) {
    const int64_t k0 = kt * kDepth;
    const __mmask16 lo_mask = first_lanes(K - k0), hi_mask = first_lanes(K - k0 - 16);
    __m512i planes[kPlanes][kRows];
    for (int64_t r = 0; r < kRows; ++r) {
      __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
      if (r < rows) {
        const float* row = x + (m0 + r) * ldx + k0;
        const __m512 s = _mm512_set1_ps(inv[r]);
        a = _mm512_mul_ps(_mm512_maskz_loadu_ps(lo_mask, row), s);
        b = _mm512_mul_ps(_mm512_maskz_loadu_ps(hi_mask, row + 16), s);
      }
      // hi: the top 16 bits; mid: the top 16 bits of the rest; lo: what remains (exact).
      const __m512 a_hi = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), high));
      const __m512 b_hi = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(b), high));
      const __m512 a_r = _mm512_sub_ps(a, a_hi), b_r = _mm512_sub_ps(b, b_hi);
      const __m512 a_mid = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a_r), high));
      const __m512 b_mid = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(b_r), high));
      planes[0][r] = high_halves(a_hi, b_hi);
      planes[1][r] = high_halves(a_mid, b_mid);
      planes[2][r] = high_halves(_mm512_sub_ps(a_r, a_mid), _mm512_sub_ps(b_r, b_mid));
    }
    // Row r's 16 dwords are its K pairs; the B tile wants pair p's row at 64 * p bytes.
    for (int p = 0; p < kPlanes; ++p) {
      transpose16(planes[p]);
      uint16_t* tile = out + (kt * kPlanes + p) * kTile;
      for (int64_t pair = 0; pair < kRows; ++pair)
        _mm512_storeu_si512(tile + pair * 32, planes[p][pair]);
    }
  }
}

// K tile kt of `rows` weight rows (columns of y) from c0 on into their column tiles of bf16 (`out`,
// [tile][K tile of kts][16][32]): rows at c1 and past, and K past its end, are zero (nothing past
// them is read). vcvtne2ps2bf16 packs two converted halves at once (|w| <= 127: exact in bf16).
CONVERT_TARGET inline void convert_k_tile(const int8_t* w, int64_t K, int64_t c0, int64_t rows,
                                          int64_t c1, int64_t kt, int64_t kts, uint16_t* out) {
  const int64_t k0 = kt * kDepth, left = K - k0;
  const __mmask32 mask = left >= 32 ? 0xffffffffu : static_cast<__mmask32>((1u << left) - 1);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = c0 + r;
    __m512i v = _mm512_setzero_si512();
    if (n < c1) {
      const __m256i q = _mm256_maskz_loadu_epi8(mask, w + n * K + k0);
      const __m512 a = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)));
      const __m512 b = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
      v = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a));  // a: elements 0-15
    }
    _mm512_storeu_si512(out + ((r / kRows) * kts + kt) * kTile + (r % kRows) * kDepth, v);
  }
}

// Columns [c0, c1) of the weight, all K tiles, into `out` (convert_k_tile's layout).
CONVERT_TARGET void convert_weights(const int8_t* w, int64_t K, int64_t c0, int64_t c1,
                                    uint16_t* out) {
  const int64_t kts = k_tiles(K);
  for (int64_t t = 0; t * kRows < c1 - c0; ++t)
    for (int64_t kt = 0; kt < kts; ++kt)
      convert_k_tile(w, K, c0 + t * kRows, kRows, c1, kt, kts, out + t * kts * kTile);
}

// Loads the tile configuration: all 8 tiles 16 rows of 64 bytes. (Not _tile_loadconfig: GCC
// 12's version tells the compiler it reads 8 bytes, so the rest of the configuration's
// initialisation can be dropped as dead stores.)
// Tiles 0-7: 16 rows of 64 bytes (bf16 pairs: 16 x 32 values).
void load_tile_config() {
  constexpr uint8_t rows[8] = {16, 16, 16, 16, 16, 16, 16, 16};
  constexpr uint16_t colsb[8] = {64, 64, 64, 64, 64, 64, 64, 64};
  load_amx_tiles(rows, colsb);
}

void release_tiles() { release_amx_tiles(); }

// Into L1: the kt'th K step of NT weight tiles and MT row tiles' three planes (tile loads that
// miss L1 stall).
template <int NT, int MT>
SPLIT_TARGET inline void prefetch_step(const uint16_t* w, int64_t w_step, const uint16_t* x,
                                       int64_t x_step, int64_t kt) {
  const char* wk = reinterpret_cast<const char*>(w + kt * kTile);
  const char* xk = reinterpret_cast<const char*>(x + kt * kPlanes * kTile);
  for (int line = 0; line < 1024; line += 64) {
    _mm_prefetch(wk + line, _MM_HINT_T0);
    if constexpr (NT > 1) _mm_prefetch(wk + 2 * w_step + line, _MM_HINT_T0);
  }
  for (int line = 0; line < kPlanes * 1024; line += 64) {
    _mm_prefetch(xk + line, _MM_HINT_T0);
    if constexpr (MT > 1) _mm_prefetch(xk + 2 * x_step + line, _MM_HINT_T0);
  }
}

// C for NT column tiles (w, the next w_step values on) times MT row tiles (x, x_step on), all K
// tiles: C tile (i, j) into c + (2 i + j) * 256 as [16 columns][16 rows]. Tiles: 0-3 C, 4-5
// weights (shared by the three planes), 6-7 activations. The tiles are not renamed, so each is
// reloaded for the next step (plane, or K tile for the weights) right after its last product
// in this one, and the next K tile is prefetched into L1.
template <int NT, int MT>
AMX_TARGET void block(const uint16_t* w, int64_t w_step, const uint16_t* x, int64_t x_step,
                      int64_t kts, float* c) {
  _tile_zero(0);
  if constexpr (MT > 1) _tile_zero(1);
  if constexpr (NT > 1) _tile_zero(2);
  if constexpr (NT > 1 && MT > 1) _tile_zero(3);
  _tile_loadd(4, w, 64);
  if constexpr (NT > 1) _tile_loadd(5, w + w_step, 64);
  _tile_loadd(6, x, 64);
  if constexpr (MT > 1) _tile_loadd(7, x + x_step, 64);
  for (int64_t kt = 0; kt < kts; ++kt) {
    if (kt + 1 < kts) prefetch_step<NT, MT>(w, w_step, x, x_step, kt + 1);
    const uint16_t* wn = w + (kt + 1) * kTile;
    for (int p = 0; p < kPlanes; ++p) {
      // The next step's activations: the next plane, or plane 0 of the next K tile.
      const bool more = p + 1 < kPlanes || kt + 1 < kts, last_plane = p + 1 == kPlanes;
      const uint16_t* xn = x + kt * kPlanes * kTile + (p + 1) * kTile;
      _tile_dpbf16ps(0, 4, 6);
      if constexpr (NT > 1) _tile_dpbf16ps(2, 5, 6);
      if (more) _tile_loadd(6, xn, 64);
      if constexpr (MT > 1) {
        _tile_dpbf16ps(1, 4, 7);
        if (last_plane && more) _tile_loadd(4, wn, 64);
        if constexpr (NT > 1) _tile_dpbf16ps(3, 5, 7);
        if (more) _tile_loadd(7, xn + x_step, 64);
      } else {
        if (last_plane && more) _tile_loadd(4, wn, 64);
      }
      if constexpr (NT > 1)
        if (last_plane && more) _tile_loadd(5, wn + w_step, 64);
    }
  }
  _tile_stored(0, c, 64);
  if constexpr (MT > 1) _tile_stored(1, c + 256, 64);
  if constexpr (NT > 1) _tile_stored(2, c + 512, 64);
  if constexpr (NT > 1 && MT > 1) _tile_stored(3, c + 768, 64);
}

// y[m0 + r, n] for r < rows, n in [nb, nb + cols) from one C tile ([16 columns][16 rows]):
// c * 2^E(row) * s[n] (+ b[n]).
SPLIT_TARGET void epilogue(const GemmNT& a, const float* c, const float* factors, int64_t m0,
                           int64_t rows, int64_t nb, int64_t cols) {
  __m512i t[kRows];
  for (int64_t i = 0; i < kRows; ++i) t[i] = _mm512_loadu_si512(c + i * kRows);
  transpose16(t);
  const __mmask16 mask = first_lanes(cols);
  const __m512 s = _mm512_maskz_loadu_ps(mask, a.w_scale + nb);
  const __m512 b =
      a.b ? _mm512_maskz_loadu_ps(mask, static_cast<const float*>(a.b) + nb) : _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) {
    const __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(t[r]), _mm512_set1_ps(factors[m0 + r]));
    float* y = static_cast<float*>(a.y) + (m0 + r) * a.ldy + nb;
    _mm512_mask_storeu_ps(y, mask, _mm512_fmadd_ps(v, s, b));
  }
}

template <int NT, int MT>
void block_and_epilogue(const GemmNT& a, const uint16_t* w, int64_t w_step, const uint16_t* x,
                        int64_t x_step, const float* factors, int64_t m0, int64_t nb, int64_t n1) {
  alignas(64) float c[4 * 256];
  block<NT, MT>(w, w_step, x, x_step, k_tiles(a.K), c);
  for (int i = 0; i < NT; ++i)
    for (int j = 0; j < MT; ++j) {
      const int64_t mj = m0 + j * kRows, ni = nb + i * kRows;
      epilogue(a, c + (2 * i + j) * 256, factors, mj, std::min(kRows, a.M - mj), ni,
               std::min(kRows, n1 - ni));
    }
}

// The converted panel's weights, per thread (grown as needed, kept for the next call).
uint16_t* panel_buffer(int64_t values) {
  thread_local std::vector<uint16_t> buffer;
  const size_t need = static_cast<size_t>(values) + 32;  // + room to align to 64 bytes
  if (buffer.size() < need) buffer.resize(need);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buffer.data());
  return reinterpret_cast<uint16_t*>((p + 63) & ~uintptr_t{63});
}

}  // namespace

bool amx_bf16_permitted() {
  // AVX512_BF16 too: vcvtne2ps2bf16 converts the weights (every AMX-BF16 CPU so far has it).
  return cpu_isa() == Isa::avx512 && cpu_has_amx_bf16() && cpu_has_avx512_bf16() &&
         amx_tiles_permitted();
}

int64_t amx_split_bytes(int64_t M, int64_t K) {
  return row_tiles(M) * row_tile_values(K) * 2 + row_tiles(M) * kRows * 4;
}

void amx_split_rows(const float* x, int64_t ldx, int64_t M, int64_t K, int64_t t0, int64_t t1,
                    void* split) {
  uint16_t* planes = static_cast<uint16_t*>(split);
  float* factors = const_cast<float*>(row_factors(split, M, K));
  for (int64_t t = t0; t < t1; ++t)
    split_row_tile(x, ldx, M, K, t * kRows, planes + t * row_tile_values(K), factors + t * kRows);
}

uint16_t amx_split_term(const void* split, int64_t M, int64_t K, int plane, int64_t m, int64_t k) {
  (void)M;
  const int64_t at = (m / kRows) * row_tile_values(K) + ((k / kDepth) * kPlanes + plane) * kTile +
                     (k % kDepth / 2) * 32 + (m % kRows) * 2 + k % 2;
  return static_cast<const uint16_t*>(split)[at];
}

float amx_split_row_factor(const void* split, int64_t M, int64_t K, int64_t m) {
  return row_factors(split, M, K)[m];
}

int64_t amx_column_chunk(int64_t N, int64_t threads) {
  const int64_t chunks = 2 * std::max<int64_t>(1, threads);
  return std::max<int64_t>(32, (N + chunks * 32 - 1) / (chunks * 32) * 32);
}

void amx_split_columns(const GemmNT& a, int64_t n0, int64_t n1) {
  if (a.w_type != WeightType::i8 || !a.w_scale)
    fail("gemm_nt_columns: the amx-bf16x3 tiles need int8 weights and their scales");
  if (a.y_bf16 || (a.b && a.b_bf16))
    fail("gemm_nt_columns: the amx-bf16x3 tiles write f32 outputs from f32 biases only");
  if (!amx_bf16_permitted())
    fail("gemm_nt_columns: the amx-bf16x3 tiles need AMX-BF16 and the kernel's tile permission");
  if (n1 <= n0) return;
  const int64_t kts = k_tiles(a.K), mts = row_tiles(a.M), tile_values = kts * kTile;
  const int64_t x_step = row_tile_values(a.K);
  const uint16_t* x = static_cast<const uint16_t*>(a.x);
  const float* factors = row_factors(a.x, a.M, a.K);
  const int8_t* w = static_cast<const int8_t*>(a.w);
  const int64_t panel_tiles = std::max<int64_t>(2, kPanelBytes / (tile_values * 2));
  uint16_t* panel = panel_buffer(panel_tiles * tile_values);
  load_tile_config();
  for (int64_t p0 = n0; p0 < n1; p0 += panel_tiles * kRows) {
    const int64_t p1 = std::min(n1, p0 + panel_tiles * kRows);
    const int64_t nts = (p1 - p0 + kRows - 1) / kRows;
    convert_weights(w, a.K, p0, p1, panel);
    // Row tiles in pairs over the whole panel (it stays in L2), column tiles in pairs.
    for (int64_t mt = 0; mt < mts; mt += 2) {
      const uint16_t* xm = x + mt * x_step;
      const bool two_m = mt + 1 < mts;
      for (int64_t nt = 0; nt < nts; nt += 2) {
        const uint16_t* wn = panel + nt * tile_values;
        const int64_t nb = p0 + nt * kRows, m0 = mt * kRows;
        if (nt + 1 < nts) {
          if (two_m)
            block_and_epilogue<2, 2>(a, wn, tile_values, xm, x_step, factors, m0, nb, p1);
          else
            block_and_epilogue<2, 1>(a, wn, tile_values, xm, x_step, factors, m0, nb, p1);
        } else {
          if (two_m)
            block_and_epilogue<1, 2>(a, wn, tile_values, xm, x_step, factors, m0, nb, p1);
          else
            block_and_epilogue<1, 1>(a, wn, tile_values, xm, x_step, factors, m0, nb, p1);
        }
      }
    }
  }
  release_tiles();
}

}  // namespace metamath::model::kernels
