#include "analysis/nn_kernel.h"

#include <ATen/Parallel.h>
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>

#include "core/cpu.h"
#include "core/error.h"

// GCC 12 warns inside its own AVX-512 headers (the _mm512_undefined_* operands of min, reduce and
// convert intrinsics) when they are inlined at -O3: false positives.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace metamath::analysis::nn {

void parallel_chunks(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), chunks);
  if (threads <= 1) {
    if (n > 0) f(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_lock;
  auto work = [&] {
    try {
      for (int64_t c = next++; c < chunks; c = next++) f(c * grain, std::min(n, (c + 1) * grain));
    } catch (...) {
      const std::lock_guard<std::mutex> hold(error_lock);
      if (!error) error = std::current_exception();
      next = chunks;
    }
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

RowState fresh_row(float margin) {
  RowState st;
  st.best = std::numeric_limits<float>::infinity();
  st.margin = margin;
  return st;
}

// ---- the float64 re-check ----------------------------------------------------------------------

namespace {

// Adds the last dim - k (< 16) squared differences into lanes 0.. of acc, then sums the 16 lanes
// in order: the one tail and summation both instruction sets share, so they return the same bits.
double finish_lanes(double (&acc)[16], const float* a, const float* b, int64_t k, int64_t dim) {
  for (int l = 0; k + l < dim; ++l) {
    const double t = static_cast<double>(a[k + l]) - static_cast<double>(b[k + l]);
    acc[l] = std::fma(t, t, acc[l]);
  }
  double s = 0;
  for (double x : acc) s += x;
  return s;
}

double exact_scalar(const float* a, const float* b, int64_t dim) {
  double acc[16] = {};
  int64_t k = 0;
  for (; k + 16 <= dim; k += 16)
    for (int l = 0; l < 16; ++l) {
      const double t = static_cast<double>(a[k + l]) - static_cast<double>(b[k + l]);
      acc[l] = std::fma(t, t, acc[l]);
    }
  return finish_lanes(acc, a, b, k, dim);
}

__attribute__((target("avx512f"))) double exact_avx512(const float* a, const float* b,
                                                       int64_t dim) {
  __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();  // lanes 0-7, 8-15
  int64_t k = 0;
  for (; k + 16 <= dim; k += 16) {
    const __m512d t0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a + k)),
                                     _mm512_cvtps_pd(_mm256_loadu_ps(b + k)));
    const __m512d t1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(a + k + 8)),
                                     _mm512_cvtps_pd(_mm256_loadu_ps(b + k + 8)));
    lo = _mm512_fmadd_pd(t0, t0, lo);
    hi = _mm512_fmadd_pd(t1, t1, hi);
  }
  alignas(64) double acc[16];
  _mm512_store_pd(acc, lo);
  _mm512_store_pd(acc + 8, hi);
  return finish_lanes(acc, a, b, k, dim);
}

}  // namespace

double exact_sq_l2(const float* a, const float* b, int64_t dim) {
  if (kernel_isa() >= Isa::avx512) return exact_avx512(a, b, dim);
  return exact_scalar(a, b, dim);
}

// ---- AMX-BF16 ----------------------------------------------------------------------------------

namespace {

constexpr int64_t kPanel = 32;  // rows of a micro-tile (queries and base alike)
constexpr int64_t kChunk = 32;  // bfloat16 values per tile row (64 bytes)
// Per thread, a chunk of query panels and a block of base panels share the L2 (2 MB per core on
// Sapphire Rapids; measured there, the loop slows from ~1,050 to ~800 GFLOP/s per core once the
// two pass ~1 MB, since tile loads that miss L2 stall).
constexpr int64_t kChunkBytes = 8 * kPanel * 1536 * 2;  // 8 query panels of 1,536 dims
constexpr int64_t kBlockBytes = 2 * kPanel * 1536 * 2;  // 2 base panels of 1,536 dims

// Round to nearest even (finite inputs).
uint16_t to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

// 16 float32 values rounded to bfloat16 as to_bf16 does.
__attribute__((target("avx512f"))) inline __m256i to_bf16x16(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i up = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd);
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_add_epi32(bits, up), 16));
}

// One query row in bfloat16 into its tile rows: 32 values per chunk, chunks 1,024 values apart
// (dst points at chunk 0); the tail stays zero.
__attribute__((target("avx512f"))) void pack_query_row(const float* src, int64_t dim,
                                                       uint16_t* dst) {
  for (int64_t k = 0; k < dim; k += kChunk, dst += 1024) {
    const int64_t left = dim - k;
    const __mmask16 m0 = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
    const __mmask16 m1 = left >= 32   ? 0xffff
                         : left <= 16 ? 0
                                      : static_cast<__mmask16>((1u << (left - 16)) - 1);
    const __m256i lo = to_bf16x16(_mm512_maskz_loadu_ps(m0, src + k));
    const __m256i hi = to_bf16x16(_mm512_maskz_loadu_ps(m1, src + k + 16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 16), hi);
  }
}

// Tiles 0-7: 16 rows of 64 bytes (bfloat16 pairs: 16 x 32 values).
void load_tile_config() {
  constexpr uint8_t rows[8] = {16, 16, 16, 16, 16, 16, 16, 16};
  constexpr uint16_t colsb[8] = {64, 64, 64, 64, 64, 64, 64, 64};
  load_amx_tiles(rows, colsb);
}

void release_tiles() { release_amx_tiles(); }

// The 32 x 32 float32 block of dot products of a packed query panel and a packed base panel
// (both [chunk of 32 dims][half][16 rows][32 values]: every tile is 1 KiB contiguous, which
// avoids the cache-set conflicts of loading rows 3 KiB apart), over `chunks` chunks. Tiles: 0-3
// C, 4-5 A (query rows 0-15, 16-31), 6-7 B (base rows 0-15, 16-31). The tiles are not renamed, so
// each operand is reloaded right after its last use in a step (the next step's loads overlap this
// step's last products), and the next chunk is prefetched into L1 (tile loads from L2 stall):
// measured 700 -> 890 GFLOP/s per core on a Sapphire Rapids class CPU (bench/README.md).
__attribute__((target("amx-tile,amx-bf16"))) void micro_tile(const uint16_t* a, const uint16_t* b,
                                                             int64_t chunks, float* c) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, a, 64);
  _tile_loadd(6, b, 64);
  _tile_loadd(7, b + 512, 64);
  _tile_loadd(5, a + 512, 64);
  for (int64_t k = 0; k < chunks; ++k) {
    const uint16_t* an = a + (k + 1) * 1024;
    const uint16_t* bn = b + (k + 1) * 1024;
    const bool more = k + 1 < chunks;
    if (k + 2 < chunks)
      for (int line = 0; line < 2048; line += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(a + (k + 2) * 1024) + line, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b + (k + 2) * 1024) + line, _MM_HINT_T0);
      }
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    if (more) _tile_loadd(4, an, 64);
    _tile_dpbf16ps(2, 5, 6);
    if (more) _tile_loadd(6, bn, 64);
    _tile_dpbf16ps(3, 5, 7);
    if (more) {
      _tile_loadd(7, bn + 512, 64);
      _tile_loadd(5, an + 512, 64);
    }
  }
  _tile_stored(0, c, 128);
  _tile_stored(1, c + 16, 128);
  _tile_stored(2, c + 16 * 32, 128);
  _tile_stored(3, c + 16 * 32 + 16, 128);
}

// The same block with AVX-512-BF16 (vdpbf16ps: the same bfloat16 products, float32 sums, denormals
// flushed, so the same error bound): 8 query rows at a time, each row's 32 sums in two registers;
// per dimension pair, the base panel's pair (two loads, 16 rows each) meets each row's broadcast
// pair. Same packed layouts as micro_tile.
__attribute__((target("avx512f,avx512bf16"))) void micro_avx512(const uint16_t* a,
                                                                const uint16_t* b, int64_t chunks,
                                                                float* c) {
  for (int64_t g = 0; g < kPanel; g += 8) {
    const int64_t half = g / 16, r0 = g % 16;
    __m512 acc[8][2];
    for (auto& row : acc) row[0] = row[1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < chunks; ++k) {
      const uint16_t* ak = a + (k * 2 + half) * 512 + r0 * 32;
      const uint16_t* bk = b + k * 1024;
      for (int p = 0; p < 16; ++p) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bk + p * 32);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bk + 512 + p * 32);
        for (int r = 0; r < 8; ++r) {
          uint32_t pair;
          std::memcpy(&pair, ak + r * 32 + p * 2, 4);
          const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
          acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
          acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
        }
      }
    }
    for (int r = 0; r < 8; ++r) {
      _mm512_storeu_ps(c + (g + r) * 32, acc[r][0]);
      _mm512_storeu_ps(c + (g + r) * 32 + 16, acc[r][1]);
    }
  }
}

// Folds a 32 x 32 block of dot products (c[i][j] ~ q_i . b_{j0 + j}) into the states of `valid`
// query rows: approximate distance qn + ||b||^2 - 2 c, the new minimum, the candidates. A row is
// skipped on two adds and two compares when no distance reaches its limit best + margin (rounding
// is monotonic, so that is exactly when the block's minimum does not).
__attribute__((target("avx512f,avx512dq"))) void fold_block(const float* c, const float* bn,
                                                            int64_t j0, const float* qn,
                                                            RowState* rows, int64_t valid,
                                                            std::size_t max_candidates) {
  const __m512 b0 = _mm512_loadu_ps(bn), b1 = _mm512_loadu_ps(bn + 16);
  const __m512 minus2 = _mm512_set1_ps(-2.0f);
  alignas(64) float v[32];
  for (int64_t i = 0; i < valid; ++i) {
    const __m512 v0 = _mm512_fmadd_ps(minus2, _mm512_loadu_ps(c + 32 * i), b0);  // exact -2c
    const __m512 v1 = _mm512_fmadd_ps(minus2, _mm512_loadu_ps(c + 32 * i + 16), b1);
    RowState& st = rows[i];
    const float q = qn[i];
    const __m512 qv = _mm512_set1_ps(q);
    const __m512 d0 = _mm512_add_ps(qv, v0), d1 = _mm512_add_ps(qv, v1);
    __m512 lv = _mm512_set1_ps(st.best + st.margin);
    if ((_mm512_cmp_ps_mask(d0, lv, _CMP_LE_OQ) | _mm512_cmp_ps_mask(d1, lv, _CMP_LE_OQ)) == 0)
      continue;  // the usual case: nothing here can be nearest
    _mm512_store_ps(v, d0);
    _mm512_store_ps(v + 16, d1);
    const float dmin = _mm512_reduce_min_ps(_mm512_min_ps(d0, d1));
    if (dmin < st.best) {
      st.best = dmin;
      st.best_index = j0 + (std::find(v, v + 32, dmin) - v);
      const float limit = st.best + st.margin;
      std::erase_if(st.candidates, [limit](const auto& x) { return x.first > limit; });
      lv = _mm512_set1_ps(limit);
    }
    if (st.overflow) continue;
    const uint32_t mask = static_cast<uint32_t>(_mm512_cmp_ps_mask(d0, lv, _CMP_LE_OQ)) |
                          static_cast<uint32_t>(_mm512_cmp_ps_mask(d1, lv, _CMP_LE_OQ)) << 16;
    for (uint32_t m = mask; m; m &= m - 1) {
      const int k = __builtin_ctz(m);
      st.candidates.emplace_back(v[k], j0 + k);
    }
    if (st.candidates.size() > max_candidates) {
      st.overflow = true;
      st.candidates.clear();
    }
  }
}

}  // namespace

bool avx512_bf16_supported() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return cpu_isa() >= Isa::avx512 && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
  }();
  return ok;
}

bool amx_bf16_supported() {
  static const bool ok = cpu_isa() >= Isa::avx512 && cpu_has_amx_bf16() && amx_tiles_permitted();
  return ok;
}

PackedBase pack_base(const float* base, int64_t rows, int64_t dim, const float* norms) {
  PackedBase p;
  p.rows = rows;
  p.dim = dim;
  p.padded_rows = (rows + kPanel - 1) / kPanel * kPanel;
  p.padded_dim = (dim + kChunk - 1) / kChunk * kChunk;
  const int64_t chunks = p.padded_dim / kChunk;
  p.data.assign(static_cast<std::size_t>(p.padded_rows * p.padded_dim), 0);
  p.norms.assign(static_cast<std::size_t>(p.padded_rows), std::numeric_limits<float>::infinity());
  parallel_chunks(p.padded_rows / kPanel, 4, [&](int64_t b, int64_t e) {
    for (int64_t panel = b; panel < e; ++panel)
      for (int64_t r = 0; r < kPanel; ++r) {
        const int64_t row = panel * kPanel + r;
        if (row >= rows) break;
        const int64_t half = r / 16, n = r % 16;
        for (int64_t k = 0; k < dim; ++k) {
          const int64_t chunk = k / kChunk, pair = (k % kChunk) / 2, e2 = k % 2;
          const int64_t at_ =
              ((((panel * chunks + chunk) * 2 + half) * 16 + pair) * 16 + n) * 2 + e2;
          p.data[static_cast<std::size_t>(at_)] = to_bf16(base[row * dim + k]);
        }
      }
  });
  for (int64_t i = 0; i < rows; ++i) {
    p.norms[static_cast<std::size_t>(i)] = norms[i];
    p.max_norm = std::max(p.max_norm, static_cast<double>(norms[i]));
  }
  return p;
}

float bf16_margin(double query_norm, const PackedBase& base) {
  constexpr double u = 1.0 / 256, u32 = 1.0 / (1 << 24);
  const double d = static_cast<double>(base.padded_dim);
  const double gamma = d * u32 / (1 - d * u32);
  const double e = 2 * u + u * u + gamma * (1 + u) * (1 + u);
  const double qn = std::sqrt(query_norm), bn = std::sqrt(base.max_norm);
  const double bound = 2 * e * qn * bn + 12 * u32 * (query_norm + base.max_norm) +
                       d * std::ldexp(1.0, -119) + std::sqrt(d) * std::ldexp(1.0, -125) * (qn + bn);
  return static_cast<float>(2 * bound * (1 + 1e-6));
}

bool engine_supported(Bf16Engine engine) {
  return engine == Bf16Engine::amx ? amx_bf16_supported() : avx512_bf16_supported();
}

const char* engine_name(Bf16Engine engine) {
  return engine == Bf16Engine::amx ? "AMX-BF16" : "AVX512-BF16";
}

void bf16_filter(Bf16Engine engine, const PackedBase& base, const float* queries, int64_t n,
                 const float* qn, RowState* rows, std::size_t max_candidates) {
  if (!engine_supported(engine))
    fail("nearest neighbours: this CPU or kernel has no {}", engine_name(engine));
  const int64_t lda = base.padded_dim, chunks = lda / kChunk;
  const int64_t qpanels = (n + kPanel - 1) / kPanel, bpanels = base.padded_rows / kPanel;
  // Queries in bfloat16, packed as tiles ([panel][chunk][half][16 rows][32 dims]), padded to whole
  // panels with zero rows (their results are dropped).
  Bf16Buffer a(static_cast<std::size_t>(qpanels * kPanel * lda), 0);
  parallel_chunks(n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t panel = i / kPanel, half = (i % kPanel) / 16, row = i % 16;
      pack_query_row(queries + i * base.dim, base.dim,
                     a.data() + (panel * chunks * 2 + half) * 512 + row * 32);
    }
  });
  const bool amx = engine == Bf16Engine::amx;
  // Each thread takes chunks of query panels and walks the base a block of base panels at a time:
  // the chunk (up to kChunkBytes) and the block (kBlockBytes) stay in its L2, each block comes
  // from memory once per chunk. At least 4 chunks per thread (a slow or shared core takes fewer).
  const int64_t panel_bytes = kPanel * lda * 2;
  const int64_t grain = std::clamp<int64_t>(qpanels / (4 * at::get_num_threads()), 1,
                                            std::max<int64_t>(1, kChunkBytes / panel_bytes));
  const int64_t per_block = std::max<int64_t>(1, kBlockBytes / panel_bytes);
  parallel_chunks(qpanels, grain, [&](int64_t p0, int64_t p1) {
    if (amx) load_tile_config();  // per thread
    alignas(64) float c[kPanel * kPanel];
    for (int64_t b0 = 0; b0 < bpanels; b0 += per_block) {
      const int64_t b1 = std::min(bpanels, b0 + per_block);
      for (int64_t qp = p0; qp < p1; ++qp) {
        const int64_t valid = std::min(kPanel, n - qp * kPanel);
        for (int64_t bp = b0; bp < b1; ++bp) {
          const uint16_t* ap = a.data() + qp * kPanel * lda;
          const uint16_t* bptr = base.data.data() + bp * kPanel * lda;
          if (amx)
            micro_tile(ap, bptr, chunks, c);
          else
            micro_avx512(ap, bptr, chunks, c);
          fold_block(c, base.norms.data() + bp * kPanel, bp * kPanel, qn + qp * kPanel,
                     rows + qp * kPanel, valid, max_candidates);
        }
      }
    }
    if (amx) release_tiles();
  });
}

namespace {

// The engines' inner loops on operands that never leave L1 (or registers): the most this core's
// bfloat16 units give. AMX: the same four 1 KiB tiles reloaded every step, four products per step.
__attribute__((target("amx-tile,amx-bf16"))) int64_t amx_peak_loop(const uint16_t* t,
                                                                   int64_t steps) {
  load_tile_config();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(4, t, 64);
    _tile_loadd(5, t + 512, 64);
    _tile_loadd(6, t + 1024, 64);
    _tile_loadd(7, t + 1536, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float sink[256];
  _tile_stored(0, sink, 64);
  release_tiles();
  return steps * 4 * 16 * 16 * 32 * 2;
}

// AVX512-BF16: 16 independent accumulators (enough to cover vdpbf16ps's latency).
__attribute__((target("avx512f,avx512bf16"))) int64_t avx512_peak_loop(const uint16_t* t,
                                                                       int64_t steps) {
  __m512 acc[16];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const __m512bh x = (__m512bh)_mm512_loadu_si512(t), y = (__m512bh)_mm512_loadu_si512(t + 32);
  for (int64_t s = 0; s < steps; ++s) {
    for (auto& a : acc) a = _mm512_dpbf16_ps(a, x, y);
    __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[5]), "+v"(acc[10]), "+v"(acc[15]));
  }
  __m512 sum = acc[0];
  for (int k = 1; k < 16; ++k) sum = _mm512_add_ps(sum, acc[k]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  volatile float sink = lanes[0];  // keeps the loop
  (void)sink;
  return steps * 16 * 32 * 2;
}

}  // namespace

double bf16_engine_peak(Bf16Engine engine, double seconds) {
  if (!engine_supported(engine))
    fail("nearest neighbours: this CPU or kernel has no {}", engine_name(engine));
  const int threads = at::get_num_threads();
  std::vector<int64_t> flops(static_cast<std::size_t>(threads), 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  parallel_chunks(threads, 1, [&](int64_t b, int64_t e) {
    alignas(64) uint16_t tiles[2048];
    std::fill(std::begin(tiles), std::end(tiles), to_bf16(1e-3f));
    for (int64_t t = b; t < e; ++t)
      while (elapsed() < seconds)
        flops[static_cast<std::size_t>(t)] += engine == Bf16Engine::amx
                                                  ? amx_peak_loop(tiles, 1 << 14)
                                                  : avx512_peak_loop(tiles, 1 << 16);
  });
  const double wall = elapsed();
  double total = 0;
  for (int64_t f : flops) total += static_cast<double>(f);
  return total / wall / 1e9;
}

}  // namespace metamath::analysis::nn
