#pragma once
// The small-M matrix product behind model::linear() (internal to src/model/; no torch here):
// y[m, n] = s[n] * sum_k x[m, k] * w[n, k] (+ b[n]) with f32 accumulation, for weights stored
// [N, K] row-major as f32, bf16, or int8 with a per-row scale s (weight-only quantization, s = 1
// otherwise), f32 (or, for the bf16-dot tiles, bf16) activations, f32 or bf16 output. Tile sets
// (Tiles below):
//   - AVX2 + FMA and AVX-512 (F/BW/VL/DQ), which widen the weights to f32 in registers;
//   - AVX512_BF16, which multiplies bf16 activations by bf16 weights with vdpbf16ps (each product
//     exact in f32, pairs summed in f32);
//   - the int8-dot sets (AVX512_VNNI vpdpbusd; AVX2 vpmaddubsw + vpmaddwd), for int8 weights
//     only, which multiply the weights by activations quantized to int8 beforehand
//     (quantize_rows_q8: blocks of 32 along K, one f32 scale per block and row):
//       y[m, n] = s[n] * sum_blocks xs[m, blk] * (integer dot of the block's 32 int8 activations
//                 with the 32 int8 weights, exact in int32) (+ b[n]),
//     the block terms summed in f32. Each activation is then off by at most xs[m, blk] / 2
//     (plus the f32 rounding of x / scale: under 2e-5 of a step);
//   - AMX-INT8 (TDPBSSD tiles, model/amx_kernel.h), the same int8-dot arithmetic for 9 rows or
//     more, with the activations also packed into the tiles' layout.
// There is no scalar version: without AVX2, model::linear() uses libtorch instead.
//
// Calling the int8-dot tiles on raw buffers (what model::linear's kernel_linear() does):
//   1. once per product (not per thread): quantize_rows_q8(x, ...) into buffers of
//      M * q8_row_bytes(K) int8 and M * q8_row_blocks(K) floats;
//   2. set GemmNT::xq / ldxq / xq_scale / ldxq_scale to them (x and ldx are not read);
//   3. call gemm_nt_columns() from each thread on its own columns, as for the other sets.
// The weights must lie in [-127, 127] (quantize_q8's range; -128 would be negated wrongly).
#include <cstdint>
#include <vector>

#include "core/cpu.h"

namespace metamath::model::kernels {

enum class WeightType { f32, bf16, i8 };

enum class Tiles {
  avx2,         // needs kernel_isa() >= avx2
  avx512,       // needs kernel_isa() == avx512
  avx512_bf16,  // needs kernel_isa() == avx512 and cpu_has_avx512_bf16(); bf16 x and w only
  avx2_i8dot,   // needs kernel_isa() >= avx2; int8 w, x quantized by quantize_rows_q8
  avx512_vnni,  // needs kernel_isa() == avx512 and cpu_has_avx512_vnni(); as avx2_i8dot
  amx_int8,     // needs amx_int8_available() (model/amx_kernel.h); as avx2_i8dot, plus the
                // activations packed by pack_q8_amx (GemmNT::xq_amx)
  amx_bf16x3,   // needs kernel_isa() == avx512 and amx_bf16_permitted(); int8 w, f32 x split
                // into 3 bf16 planes by amx_split_rows (model/amx_split_kernel.h)
};

// True for the sets that read quantized activations (GemmNT::xq) instead of x.
bool quantizes_activations(Tiles tiles);

struct GemmNT {
  const void* x = nullptr;  // [M, K] float (bf16 raw bits for Tiles::avx512_bf16), row m at
  int64_t ldx = 0;          // x + m * ldx elements (unit stride along K); amx_split_rows's
                            // output for Tiles::amx_bf16x3 (ldx unused)
  int64_t M = 0, K = 0, N = 0;
  const void* w = nullptr;  // [N, K] contiguous: float, bf16 (raw uint16 bits) or int8
  WeightType w_type = WeightType::f32;
  const float* w_scale = nullptr;  // [N] for int8 weights, else null
  const void* b = nullptr;         // [N] or null: float, or bf16 when b_bf16
  bool b_bf16 = false;
  void* y = nullptr;  // [M, N], row m at y + m * ldy; float, or bf16 rounded to nearest even
  int64_t ldy = 0;
  bool y_bf16 = false;
  // The int8-dot sets only (x above unused): quantize_rows_q8's output for the same M rows.
  const int8_t* xq = nullptr;  // row m at xq + m * ldxq, ldxq >= q8_row_bytes(K)
  int64_t ldxq = 0;
  const float* xq_scale = nullptr;  // row m's block scales at xq_scale + m * ldxq_scale,
  int64_t ldxq_scale = 0;           // ldxq_scale >= q8_row_blocks(K)
  // Tiles::amx_int8 only: the same activations packed by pack_q8_amx (model/amx_kernel.h).
  const int8_t* xq_amx = nullptr;
  const float* xq_amx_scale = nullptr;
};

// The epilogue every tile set shares. epilogue_factors: the row scales s[n] (1 without int8
// weights) and biases b[n] (0 without) of weight rows [n, n + nr). store_outputs: y[m, n + j] =
// sums[j * step] * scale[j] + bias[j] for j < nr, rounded to bf16 (nearest even, NaN to 0x7FC0:
// c10::BFloat16's conversion) where a.y_bf16.
void epilogue_factors(const GemmNT& a, int64_t n, int64_t nr, float* scale, float* bias);
void store_outputs(const GemmNT& a, int64_t m, int64_t n, int64_t nr, const float* sums,
                   int64_t step, const float* scale, const float* bias);

// Activations are quantized in blocks of this many along K.
constexpr int64_t kQ8Block = 32;
// The block scales one row needs (K / 32 rounded up, then to an even count: the AVX-512 tiles
// read two blocks at once).
int64_t q8_row_blocks(int64_t K);
// The int8 bytes one quantized row needs: q8_row_blocks(K) * 32 (the tail zero-filled).
int64_t q8_row_bytes(int64_t K);

// Quantizes rows m < M of x ([M, K], row m at x + m * ldx elements, f32 or bf16 raw bits when
// x_bf16) block by block: for block j of row m, scale = max |x| over its (up to) 32 elements /
// 127 (f32), and q = x * (1 / scale) (f32) rounded to nearest (ties to even), in [-127, 127].
// A block whose max |x| is below 2^-96 (zeros included) is stored as zeros with scale 0 (1 /
// scale could overflow); a block holding a NaN or an infinity gets scale NaN and zeros, so the
// outputs it enters are NaN. Writes q to xq + m * ldxq (q8_row_bytes(K) bytes, zeros past K) and
// the scales to xs + m * ldxs (q8_row_blocks(K) floats, zeros past the last block). Uses AVX2
// when kernel_isa() allows (bit for bit the scalar code's results). xq, xs and x must not
// overlap.
void quantize_rows_q8(const void* x, bool x_bf16, int64_t ldx, int64_t M, int64_t K, int8_t* xq,
                      int64_t ldxq, float* xs, int64_t ldxs);

// Computes the output columns [n0, n1) for every row (one thread's share) with `tiles`, which
// the CPU must support (read kernel_isa() once per product so that every thread takes the same
// path). Weights are read from memory once per call when M * K * 4 bytes fit the per-core L2
// budget (rows are processed in blocks otherwise).
void gemm_nt_columns(const GemmNT& a, Tiles tiles, int64_t n0, int64_t n1);

// Weight rows per tile for one activation row (GEMV). A tile reads its rows side by side while it
// prefetches the next tile's, so the two are in flight in L1 together (and the tile after, into
// L2): f32 and bf16 tiles take the most rows, 8, 4, 2 or 1, whose bytes (rows x K x weight
// size) fit 8 KiB. Int8 tiles always take 8.
int64_t gemv_rows(int64_t K, WeightType w);

// A product's N output columns as chunks that `threads` threads claim one at a time (a thread
// that starts late takes fewer), widest first: chunk i is [b[i], b[i + 1]) of the returned
// bounds b (b[0] = 0, b.back() = N). Each takes 1/(2 x threads) of the columns not yet given out,
// rounded up to a multiple of 24 columns (the tile widths 3, 6 and 8) and to at least ~64K
// multiply-adds (M rows, K deep). Wide first chunks keep the claims few and the weight streams
// long; narrow last ones make the threads finish together. (Fixed chunks of N / (8 x threads)
// left the fused decode step's gate/up phase, 15 chunks on 2 threads, with one thread idle for a
// whole chunk at its end: 0.3 ms of a 9 ms bf16 step.)
std::vector<int64_t> column_bounds(int64_t N, int64_t M, int64_t K, int64_t threads);

}  // namespace metamath::model::kernels
