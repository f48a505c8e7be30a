#pragma once
// Tiles::amx_bf16x3 (planner candidate "amx-bf16x3"): int8 weights times f32 activations on AMX
// bf16 tiles, to f32 accuracy (internal to src/model/; no torch here).
//
// int8 weights (|w| <= 127: 7 significant bits) are exact in bf16 (8). Each f32 activation is split
// into three bf16 terms, x = hi + mid + lo, by truncation: hi = x with its low 16 bits cleared,
// r = x - hi (exact in f32: the bits hi dropped, at most 16 significant), mid = r with its low 16
// bits cleared, lo = r - mid (exact, at most 8 significant bits, so exact in bf16). The sum is
// exact for every normal x whose lo is normal (see the row scaling below). Each term * w is then
// exact in f32, and TDPBF16PS sums the three planes' products into the same f32 C tile: only
// f32 additions round, as in the f32 FMA tiles (model/linear_kernel.h), over 3K terms instead of
// K (the mid and lo terms are below 2^-8 and 2^-16 of hi, so their roundings are smaller still).
//
// Denormals: TDPBF16PS treats denormal bf16 inputs as zero and flushes denormal results, whatever
// MXCSR says. So each row is first scaled by a power of two, 2^-E with E = frexp's exponent of its
// largest |x| (clamped to [-120, 120]; the largest becomes [0.5, 1)), undone exactly in the
// epilogue: every element within 2^100 of the row's largest then splits exactly into normal
// planes, and the partial sums stay far above the denormal range. Only elements below 2^-100 of
// the row's largest can lose planes (each off by less than itself, times |w| <= 127), which the
// f32 tiles would keep: negligible next to the row's largest term whenever its weight is nonzero.
// Rows holding a NaN or an infinity are not scaled; outputs they reach are NaN (an infinite x
// splits into inf + NaN).
//
// Layouts (all tiles 16 rows of 64 bytes, 1 KiB contiguous): the split activations (B operand,
// AMX's VNNI pair layout) are [row tile of 16][K tile of 32][plane hi, mid, lo][16 pairs along
// K][16 rows][2], K padded with zeros to a multiple of 32 and rows to 16, followed by one f32
// factor 2^E per padded row. The weights (A operand) are converted per thread, panel by panel, to
// [column tile of 16][K tile][16 columns][32 bf16]; C tiles are [16 columns][16 rows], transposed
// in the epilogue, which applies 2^E, the row scale s[n] and the bias as the other tiles do.
//
// Calling it (what model::linear's kernel_linear() does): once per product, amx_split_rows()
// into amx_split_bytes(M, K) bytes (64-byte aligned; row tiles may be split across threads);
// set GemmNT::x to that buffer (ldx unused); then gemm_nt_columns(a, Tiles::amx_bf16x3, n0, n1)
// from each thread on its columns, in chunks of amx_column_chunk() (f32 y and bias only). Each
// call loads its own tile configuration and releases the tiles when done.
#include <cstdint>

#include "model/linear_kernel.h"

namespace metamath::model::kernels {

// True when the CPU has AMX-TILE and AMX-BF16 and the kernel granted this process the tile data
// (Linux arch_prctl, asked once). The candidate also needs kernel_isa() == Isa::avx512.
bool amx_bf16_permitted();

// The split activations' size for M rows of K.
int64_t amx_split_bytes(int64_t M, int64_t K);

// Splits the row tiles [t0, t1) (rows 16 * t0 .. 16 * t1 - 1; rows past M zero) of x ([M, K] f32,
// row m at x + m * ldx) into `split` (amx_split_bytes(M, K) bytes, the layout above).
void amx_split_rows(const float* x, int64_t ldx, int64_t M, int64_t K, int64_t t0, int64_t t1,
                    void* split);

// Reads back one bf16 term (plane 0 hi, 1 mid, 2 lo; raw bits) of row m, element k, and the
// row's factor 2^E, from a split buffer (tests).
uint16_t amx_split_term(const void* split, int64_t M, int64_t K, int plane, int64_t m, int64_t k);
float amx_split_row_factor(const void* split, int64_t M, int64_t K, int64_t m);

// Output columns per chunk when `threads` threads share a product's N columns (kernel_linear's
// dynamic chunks): each chunk streams all the split activations once, so few and wide ones, about
// 2 per thread, a multiple of 32 (column tile pairs).
int64_t amx_column_chunk(int64_t N, int64_t threads);

// The columns [n0, n1) of y for every row (gemm_nt_columns' Tiles::amx_bf16x3 case).
void amx_split_columns(const GemmNT& a, int64_t n0, int64_t n1);

}  // namespace metamath::model::kernels
