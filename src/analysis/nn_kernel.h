#pragma once
// Kernels of the exact nearest-neighbour search (analysis/diversity.h): the float64 re-check, and a
// bfloat16 AMX filter that computes approximate distances tile by tile and keeps, per query, only
// the base rows that can still be the nearest.
//
// Why a hand kernel: no library on Debian 12 fuses the row-minimum and the candidate selection into
// a GEMM's output tiles (OpenBLAS, oneDNN inside libtorch and FAISS all write the whole distance
// block to memory first), and OpenBLAS has no AMX path at all.
//
// The bfloat16 filter (Intel AMX-BF16 on Sapphire Rapids and later, else AVX512-BF16 on Zen 4 or
// Cooper Lake; chosen at run time): queries and base rows are rounded to bfloat16 (unit roundoff
// u = 2^-8), products accumulate in float32 inside the tiles (or vdpbf16ps registers), and each 32
// x 32 output tile is folded into its rows' state (minimum, candidates) while it is in L1, so the
// distance block never reaches memory. Error bound, for any summation order:
//   |approx(q.b) - q.b| <= E ||q|| ||b|| + d 2^-120 + sqrt(d) 2^-126 (||q|| + ||b||),
//   E = 2u + u^2 + gamma_d (1 + u)^2
// (bfloat16 products are exact in float32; gamma_d = d 2^-24 / (1 - d 2^-24); the last two terms
// cover AMX's flushing of denormal results and inputs), so an approximate squared distance is
// within bound(q) = 2 x that (max ||b||) + 12 * 2^-24 (||q||^2 + max ||b||^2) of the exact one
// (the last term: the float32 roundings of the norms and of ||q||^2 + ||b||^2 - 2 q.b). Every base
// row within 2 bound(q) of the row's approximate minimum is a candidate; the true nearest rows are
// always among them, and the float64 re-check picks it.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <utility>
#include <vector>

namespace metamath::analysis::nn {

// Runs f(begin, end) over [0, n) in chunks of `grain`, handed out one at a time to
// at::get_num_threads() threads (the caller is one of them; a slow core takes fewer chunks).
// Written by hand because at::parallel_for splits the range into one equal static share per
// thread up front, so on a shared machine the thread whose core is busy holds everyone up; chunks
// handed out one at a time keep both cores working to the end. Rethrows the first exception of
// any chunk.
void parallel_chunks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

// One query's search state over the base blocks (approximate distances in float32).
struct RowState {
  float best = 0;
  int64_t best_index = -1;
  float margin = 0;  // twice the error bound of this row's approximate distances
  bool overflow = false;
  std::vector<std::pair<float, int64_t>> candidates;  // (approximate distance, base row)
};
RowState fresh_row(float margin);

// sum over k of (a_k - b_k)^2 in float64 (16 running sums, lane k % 16, then added in order): the
// same bits on every instruction set (an AVX-512 path where kernel_isa() allows it).
double exact_sq_l2(const float* a, const float* b, int64_t dim);

// Whether this CPU has AVX512-BF16 (vdpbf16ps; Cooper Lake, Sapphire Rapids, AMD Zen 4 and later)
// on top of AVX-512 F/BW/VL/DQ. Ignores the METAMATH_ISA limit (callers check it).
bool avx512_bf16_supported();

// Whether this CPU has AMX-BF16 and the kernel lets this process use the tile registers (asked
// once, with arch_prctl(ARCH_REQ_XCOMP_PERM)). Ignores the METAMATH_ISA limit (callers check it).
bool amx_bf16_supported();

// Allocates on 64-byte boundaries: a tile row (64 bytes) is then one cache line. (A large
// std::vector from malloc starts 16 bytes past a page, so every tile row spanned two lines:
// measured ~1,370 -> ~900 GFLOP/s per core for the AMX loop on L2-resident operands.)
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t) { ::operator delete (p, std::align_val_t{64}); }
  bool operator==(const CacheLineAllocator&) const { return true; }
};
using Bf16Buffer = std::vector<uint16_t, CacheLineAllocator<uint16_t>>;

// The base set rounded to bfloat16 and packed for the tile loads, 32 rows at a time (padding rows
// have norm +inf, so they never win), with each row's squared norm.
struct PackedBase {
  int64_t rows = 0, dim = 0, padded_rows = 0, padded_dim = 0;
  Bf16Buffer data;           // [panel of 32][chunk of 32 dims][half][16 dim pairs][16 rows][2]
  std::vector<float> norms;  // padded_rows; +inf for padding
  double max_norm = 0;       // max ||b||^2
};
PackedBase pack_base(const float* base, int64_t rows, int64_t dim, const float* norms);

// Twice the error bound of one query's approximate distances (see the header comment; both
// engines round the same way: bfloat16 products exact in float32, float32 sums, denormals flushed).
float bf16_margin(double query_norm, const PackedBase& base);

// What computes the bfloat16 dot products: AMX tiles (32 x 32 blocks of 16 x 16 tiles), or
// AVX512-BF16 vdpbf16ps (8 query rows x 32 base rows in registers) where there is no AMX.
enum class Bf16Engine { amx, avx512 };

// Folds queries [0, n) (row-major float32, their squared norms qn) against the whole base into
// rows[0, n) (each from fresh_row()); rows whose candidates exceed max_candidates set overflow.
// Splits the queries over at::get_num_threads() threads with parallel_chunks (each takes chunks of
// whole 32-row query panels, up to 768 KB of them, and walks the base 192 KB of panels at a time,
// so that both stay in its L2 together: 8 and 2 panels at 1,536 dims). Requires the engine's
// *_supported().
void bf16_filter(Bf16Engine engine, const PackedBase& base, const float* queries, int64_t n,
                 const float* qn, RowState* rows, std::size_t max_candidates);

// The engine's peak on this machine in GFLOP/s: its inner loop on operands that stay in L1 or
// registers, on every libtorch thread for about `seconds` (what the bench reports against).
double bf16_engine_peak(Bf16Engine engine, double seconds = 0.3);

}  // namespace metamath::analysis::nn
