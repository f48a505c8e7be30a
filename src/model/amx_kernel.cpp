// AMX-INT8 tiles for the int8-dot product (see amx_kernel.h).
//
// Why hand-written: libtorch 1.13's oneDNN has no int8 matmul with one activation scale per block
// of 32, which the q8-dot arithmetic needs (each block's int32 dot is scaled before it is summed).
// Per block and pair (16 weight rows, 16 activation rows) one TDPBSSD makes the 256 int32 dots;
// they are stored to an L1 buffer and added, times the block's activation scales, into f32
// accumulators with AVX-512 (16 weight rows x 2 activation tiles per step: 32 zmm accumulators).
// Measured on 1 core of a 2-core Sapphire Rapids VM (weights in cache, thread CPU time): 16 x 32
// rows per step 340-380 GMAC/s at K = N = 768, M = 128, against 290-320 for 16 x 16 and 270-300
// for 32 x 32 (64 accumulators spill); the AVX512_VNNI tiles make 90. The tile instructions
// themselves (loads, TDPBSSD, the C store) bound it: without the scaling it runs at ~350.
//
// Only the functions marked AMX_TARGET use AMX / AVX-512 instructions, so the file builds with the
// project's default flags; model/linear.cpp lists the tiles only where amx_int8_available().
#include "model/amx_kernel.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"

namespace metamath::model::kernels {

namespace {

#define AMX_TARGET \
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

// GCC 12's _tile_loadd tells the compiler it reads no memory (so stores into a buffer it then
// loads could be dropped or moved past it): these forms say they touch memory.
#define TILE_LOAD(tile, base, stride)                                             \
  __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #tile ::"r"((const void*)(base)), \
                   "r"((long)(stride))                                            \
                   : "memory")
#define TILE_STORE(tile, base, stride)                                          \
  __asm__ volatile("tilestored %%tmm" #tile ", (%0,%1,1)" ::"r"((void*)(base)), \
                   "r"((long)(stride))                                          \
                   : "memory")
#define TILE_ZERO(tile) __asm__ volatile("tilezero %%tmm" #tile ::)
#define TILE_DPBSSD(c, a, b) __asm__ volatile("tdpbssd %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)

constexpr int64_t kBlock = kQ8Block;              // int8 values per block (A tile row: 32 bytes)
constexpr int64_t kRows = 16;                     // rows of a tile (weights and activations)
constexpr int64_t kPackedBlock = kRows * kBlock;  // bytes of one packed B tile (8 x 64)
// Activation tiles per step (at most): one weight tile times two activation tiles measured
// fastest (the numbers at the top of this file).
constexpr int64_t kTileGroups = 2;

int64_t blocks_of(int64_t K) { return (K + kBlock - 1) / kBlock; }
int64_t groups_of(int64_t M) { return (M + kRows - 1) / kRows; }

// Tiles 0-1: A (16 weight rows x 32 bytes); 2-3: B (8 x 64 bytes: 16 activation rows' block);
// 4-7: C (16 x 16 int32); see issue_block for which is used when.
void load_tile_config() {
  constexpr uint8_t rows[8] = {kRows, kRows, kBlock / 4, kBlock / 4, kRows, kRows, kRows, kRows};
  constexpr uint16_t colsb[8] = {kBlock, kBlock, 64, 64, 64, 64, 64, 64};
  load_amx_tiles(rows, colsb);
}

void release_tiles() { release_amx_tiles(); }

// Where one tile's 16 weight rows come from: block b of row i at rows + i * stride + 32 b for
// b < in_place, and the (at most one) block after those from tail (16 x 32 bytes, zero-padded).
struct WeightTile {
  const int8_t* rows = nullptr;
  int64_t stride = 0;
  int64_t in_place = 0;
  const int8_t* tail = nullptr;
};

// Weight rows [n, n + nr) of the [N, K] int8 matrix as a tile. A full tile is read in place
// except for a partial last block, copied zero-padded into tail_buf (16 x 32; the matrix may end
// right after the last row's last byte). A partial tile (nr < 16) is copied whole, zero rows and
// zero-padded blocks, into pad_buf (16 x blocks * 32).
WeightTile weight_tile(const int8_t* w, int64_t K, int64_t n, int64_t nr, int8_t* tail_buf,
                       std::vector<int8_t>& pad_buf) {
  const int64_t blocks = blocks_of(K), full = K / kBlock, rest = K - full * kBlock;
  if (nr == kRows) {
    WeightTile t{w + n * K, K, full, nullptr};
    if (rest > 0) {
      std::memset(tail_buf, 0, kRows * kBlock);
      for (int64_t i = 0; i < kRows; ++i)
        std::memcpy(tail_buf + i * kBlock, w + (n + i) * K + full * kBlock, rest);
      t.tail = tail_buf;
    }
    return t;
  }
  const int64_t stride = blocks * kBlock;
  pad_buf.assign(kRows * stride, 0);
  for (int64_t i = 0; i < nr; ++i) std::memcpy(pad_buf.data() + i * stride, w + (n + i) * K, K);
  return WeightTile{pad_buf.data(), stride, blocks, nullptr};
}

// The products of one weight tile (A tile ta, or tile 0) against one activation group (B tile tb)
// into C tile tc, or against two (tiles 2 and 3) into c0 and c1, stored to c[0] (and c[1]). Tile
// numbers are part of the instructions, hence macros.
#define ONE_GROUP(ta, tb, tc) \
  TILE_LOAD(ta, a, stride);   \
  TILE_LOAD(tb, x0, 64);      \
  TILE_ZERO(tc);              \
  TILE_DPBSSD(tc, ta, tb);    \
  TILE_STORE(tc, c[0], 64)
#define TWO_GROUPS(c0, c1)  \
  TILE_LOAD(0, a, stride);  \
  TILE_LOAD(2, x0, 64);     \
  TILE_LOAD(3, x1, 64);     \
  TILE_ZERO(c0);            \
  TILE_ZERO(c1);            \
  TILE_DPBSSD(c0, 0, 2);    \
  TILE_DPBSSD(c1, 0, 3);    \
  TILE_STORE(c0, c[0], 64); \
  TILE_STORE(c1, c[1], 64)

// One block's products, issued: A = the weight tile's block b, B = block b of NB activation
// groups, C = A times B from zero, stored to c[h] (16 rows of 16 int32). Blocks alternate
// between two sets of tiles (kPar), so that a block's products run while the previous block's
// sums are scaled: A 0 / 1, B 2 / 3 and C 4 / 5 for one group; for two, A 0, B 2-3, C 4-5 / 6-7.
template <int NB, int kPar>
AMX_TARGET inline __attribute__((always_inline)) void issue_block(const WeightTile& w,
                                                                  const int8_t* x, int64_t blocks,
                                                                  int64_t b,
                                                                  int32_t (&c)[NB][kRows * kRows]) {
  const bool in_place = b < w.in_place;
  const int8_t* a = in_place ? w.rows + b * kBlock : w.tail;
  const int64_t stride = in_place ? w.stride : kBlock;
  const int8_t* x0 = x + b * kPackedBlock;
  const int8_t* x1 = x + (blocks + b) * kPackedBlock;
  if constexpr (NB == 1 && kPar == 0) {
    ONE_GROUP(0, 2, 4);
  } else if constexpr (NB == 1) {
    ONE_GROUP(1, 3, 5);
  } else if constexpr (kPar == 0) {
    TWO_GROUPS(4, 5);
  } else {
    TWO_GROUPS(6, 7);
  }
}
#undef ONE_GROUP
#undef TWO_GROUPS

// acc[i][h] += f32(c[h] row i) * block b's scales of activation group h.
template <int NB>
AMX_TARGET inline __attribute__((always_inline)) void scale_block(
    const int32_t (&c)[NB][kRows * kRows], const float* xs, int64_t blocks, int64_t b,
    __m512 (&acc)[kRows][NB]) {
  __m512 scale[NB];
#pragma GCC unroll 2
  for (int h = 0; h < NB; ++h) scale[h] = _mm512_loadu_ps(xs + (h * blocks + b) * kRows);
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 2
    for (int h = 0; h < NB; ++h) {
      const __m512 d = _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_load_si512(c[h] + i * kRows));
      acc[i][h] = _mm512_fmadd_ps(d, scale[h], acc[i][h]);
    }
}

// out[i * 16 NB + 16 h + j] = sum over blocks b of xs[h, b, j] * (int32 dot of weight row i with
// activation row j of group h, block b), for NB activation groups (x, xs: group 0's packed
// blocks and scales, the next group's `blocks` blocks later).
// next (or null): the weight rows of the next tile (16 rows, K apart), prefetched into L1 a line
// of each row every other block (tile loads that miss the caches stall: measured at M = 32,
// K = N = 768 with weights from memory, 1 thread, 115-140 GMAC/s without against 185-205 with;
// prefetching two tiles ahead did no better).
template <int NB>
AMX_TARGET void tile_pass(const WeightTile& w, const int8_t* x, const float* xs, int64_t blocks,
                          const int8_t* next, int64_t K, float* out) {
  alignas(64) int32_t c0[NB][kRows * kRows], c1[NB][kRows * kRows];
  __m512 acc[kRows][NB];
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 2
    for (int h = 0; h < NB; ++h) acc[i][h] = _mm512_setzero_ps();
  issue_block<NB, 0>(w, x, blocks, 0, c0);
  for (int64_t b = 0; b < blocks; b += 2) {
    if (next)
      for (int64_t i = 0; i < kRows; ++i)
        _mm_prefetch(reinterpret_cast<const char*>(next + i * K + b * kBlock), _MM_HINT_T0);
    if (b + 1 < blocks) issue_block<NB, 1>(w, x, blocks, b + 1, c1);
    scale_block<NB>(c0, xs, blocks, b, acc);
    if (b + 1 == blocks) break;
    if (b + 2 < blocks) issue_block<NB, 0>(w, x, blocks, b + 2, c0);
    scale_block<NB>(c1, xs, blocks, b + 1, acc);
  }
#pragma GCC unroll 16
  for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 2
    for (int h = 0; h < NB; ++h) _mm512_storeu_ps(out + (i * NB + h) * kRows, acc[i][h]);
}

// y[m, n] = out * s[n] + b[n] for the weight rows [n, n + nr) and activation rows [m, m + mr) of
// one pass (out as tile_pass writes it, `cols` activation rows per weight row). Written row by row
// of y (a column at a time would touch 16 lines N * 4 bytes apart, which share a cache set when N
// is a multiple of 1024).
void store_pass(const GemmNT& a, const float* out, int64_t cols, int64_t n, int64_t nr, int64_t m,
                int64_t mr) {
  float scale[kRows], bias[kRows];
  epilogue_factors(a, n, nr, scale, bias);
  for (int64_t j = 0; j < mr; ++j) store_outputs(a, m + j, n, nr, out + j, cols, scale, bias);
}

AMX_TARGET void amx_columns_tiles(const GemmNT& a, int64_t n0, int64_t n1) {
  const int64_t blocks = blocks_of(a.K), groups = groups_of(a.M);
  const int8_t* w = static_cast<const int8_t*>(a.w);
  alignas(64) int8_t tail_buf[kRows * kBlock];
  std::vector<int8_t> pad_buf;
  alignas(64) float out[kRows * kTileGroups * kRows];
  load_tile_config();
  for (int64_t n = n0; n < n1; n += kRows) {
    const int64_t nr = std::min(kRows, n1 - n);
    const WeightTile tile = weight_tile(w, a.K, n, nr, tail_buf, pad_buf);
    for (int64_t g = 0; g < groups; g += kTileGroups) {
      const int64_t nb = std::min<int64_t>(kTileGroups, groups - g);
      const int8_t* x = a.xq_amx + g * blocks * kPackedBlock;
      const float* xs = a.xq_amx_scale + g * blocks * kRows;
      // The first pass over this tile prefetches the next one.
      const int8_t* next = g == 0 && n + kRows < n1 ? w + (n + kRows) * a.K : nullptr;
      if (nb == 2)
        tile_pass<2>(tile, x, xs, blocks, next, a.K, out);
      else
        tile_pass<1>(tile, x, xs, blocks, next, a.K, out);
      for (int64_t h = 0; h < nb; ++h) {
        const int64_t m = (g + h) * kRows;
        store_pass(a, out + h * kRows, nb * kRows, n, nr, m, std::min(kRows, a.M - m));
      }
    }
  }
  release_tiles();
}

}  // namespace

bool amx_int8_available() {
  return kernel_isa() == Isa::avx512 && cpu_has_amx_int8() && amx_tiles_permitted();
}

int64_t amx_q8_packed_bytes(int64_t M, int64_t K) {
  return groups_of(M) * blocks_of(K) * kPackedBlock;
}

int64_t amx_q8_packed_scales(int64_t M, int64_t K) { return groups_of(M) * blocks_of(K) * kRows; }

void pack_q8_amx(const int8_t* xq, int64_t ldxq, const float* xs, int64_t ldxs, int64_t M,
                 int64_t K, int64_t g0, int64_t g1, int8_t* packed, float* scales) {
  const int64_t blocks = blocks_of(K);
  for (int64_t g = g0; g < g1; ++g) {
    for (int64_t b = 0; b < blocks; ++b) {
      int8_t* p = packed + (g * blocks + b) * kPackedBlock;
      float* s = scales + (g * blocks + b) * kRows;
      for (int64_t j = 0; j < kRows; ++j) {
        const int64_t m = g * kRows + j;
        if (m >= M) {
          s[j] = 0.0f;
          for (int64_t r = 0; r < kBlock / 4; ++r) std::memset(p + r * 64 + 4 * j, 0, 4);
          continue;
        }
        s[j] = xs[m * ldxs + b];
        // The block's 8 groups of 4 bytes go down column j (4 bytes wide) of the 8 x 64 tile.
        const int8_t* q = xq + m * ldxq + b * kBlock;
        for (int64_t r = 0; r < kBlock / 4; ++r) std::memcpy(p + r * 64 + 4 * j, q + 4 * r, 4);
      }
    }
  }
}

void amx_columns(const GemmNT& a, int64_t n0, int64_t n1) {
  if (a.w_type != WeightType::i8) fail("gemm_nt_columns: the AMX-INT8 tiles need int8 weights");
  if (!a.xq_amx || !a.xq_amx_scale)
    fail("gemm_nt_columns: the AMX-INT8 tiles need packed activations (GemmNT::xq_amx)");
  if (!amx_int8_available()) fail("gemm_nt_columns: this CPU or process cannot use AMX-INT8 tiles");
  if (n0 < n1) amx_columns_tiles(a, n0, n1);
}

}  // namespace metamath::model::kernels
