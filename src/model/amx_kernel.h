#pragma once
// AMX-INT8 tiles for the int8-dot product of linear_kernel.h (Tiles::amx_int8), internal to
// src/model/; no torch here. Same arithmetic as the AVX-512 VNNI tiles: per block of 32 along K
// the exact int32 dot of the int8 weights with the quantized activations (quantize_rows_q8),
// converted to f32, times the block's activation scale, added into an f32 accumulator; the weight
// row's scale and the bias in the epilogue; f32 or bf16 output.
//
// Layout: TDPBSSD multiplies a 16 x 32-byte A tile by an 8 x 64-byte B tile into a 16 x 16 int32
// C tile. A is 16 weight rows, one block of each, read in place (stride K: no weight repacking);
// B is one block of 16 activation rows in AMX's 4-byte VNNI layout, which the activations take
// once per product (pack_q8_amx): group g (rows 16g .. 16g + 15, zero rows past M), block b:
//   packed[(g * blocks + b) * 512 + 64 r + 4 j + t] = xq[16g + j][32b + 4r + t]   (r < 8, j < 16)
//   scales[(g * blocks + b) * 16 + j]              = xs[16g + j][b]
// with blocks = ceil(K / 32). C row i then holds weight row i's dots with the 16 activation rows,
// and the block's 16 activation scales are one vector.
//
// Calling (what model::linear's kernel_linear() does): quantize_rows_q8 as for the VNNI tiles,
// then pack_q8_amx once per product into amx_q8_packed_bytes / amx_q8_packed_scales buffers, set
// GemmNT::xq_amx / xq_amx_scale to them, and call gemm_nt_columns(a, Tiles::amx_int8, n0, n1)
// from each thread. Each call loads its thread's tile configuration and releases the tiles
// before returning. Any M >= 1 works (missing rows of the last activation tile are zeros), but
// model::linear lists the tiles only from kAmxMinRows rows on, and only where
// amx_int8_available().
#include <cstdint>

#include "model/linear_kernel.h"

namespace metamath::model::kernels {

// The fewest rows model::linear offers the AMX tiles for: the planner's row class 16 (9 to 16
// rows share one plan key, so they must share one candidate list; fewer rows would waste most
// of a 16-row tile). The fused decode step (at most kFusedMaxRows = 8 rows, model/decode.h) thus
// never meets them.
constexpr int64_t kAmxMinRows = 9;

// kernel_isa() is avx512, the CPU has AMX-INT8 and Linux granted this process the tile state.
bool amx_int8_available();

// Sizes of pack_q8_amx's buffers for M rows, K deep: int8 bytes and floats.
int64_t amx_q8_packed_bytes(int64_t M, int64_t K);
int64_t amx_q8_packed_scales(int64_t M, int64_t K);

// Packs rows [16 * g0, 16 * g1) (groups g0 .. g1 - 1, rows past M as zeros) of quantize_rows_q8's
// output (xq, ldxq, xs, ldxs for M rows, K deep) into `packed` and `scales` (the layout above;
// whole buffers for M rows, of which these groups' parts are written). Threads may pack disjoint
// groups at once.
void pack_q8_amx(const int8_t* xq, int64_t ldxq, const float* xs, int64_t ldxs, int64_t M,
                 int64_t K, int64_t g0, int64_t g1, int8_t* packed, float* scales);

// Output columns [n0, n1) of every row (GemmNT::xq_amx / xq_amx_scale set); called by
// gemm_nt_columns for Tiles::amx_int8.
void amx_columns(const GemmNT& a, int64_t n0, int64_t n1);

}  // namespace metamath::model::kernels
